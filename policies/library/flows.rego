# Library: flows -- toxic flows across a session, from labels. Tools get
# labels (sensitive_read, external_send, untrusted_input, ...); a rule
# forbids a label once others have been seen in the session, e.g. the
# "lethal trifecta": once an agent has read private data and taken in
# untrusted content, nothing may leave.
#
# Load this file next to your main policy (package mcp). It adds `labels`
# (recorded with the decision and kept in the session history) and `deny`
# reasons; its helpers are all named flows_*. It does nothing until
# data.library.flows is set.
#
# data.library.flows
#   labels       Tool name or glob -> label or list of labels the call gets
#                ({"read_db": "sensitive_read", "send_*": ["external_send"]}).
#   annotations  Tool annotation -> label(s), from the tool's definition as
#                the server listed it (input.mcp.tool.definition.annotations):
#                a call gets them when that hint is true
#                ({"openWorldHint": "untrusted_input"}).
#   forbidden    A list of rules:
#                  {"after": "sensitive_read", "deny": "external_send", "reason": "..."}
#                after   A label, or a list of labels that must ALL have been seen.
#                deny    A label, or a list of labels: a message carrying any of
#                        them is denied once `after` holds.
#                reason  Optional text for the reason (after "flows: ").
#   max_per_session
#                Label -> N: at most N calls with that label per session
#                ({"sensitive_read": 20}); the N+1st is denied.
#
# "Seen" means a label of an earlier message of the session that was
# allowed (input.session.labels): a denied call leaves no trace. The current
# message's labels are every `labels` member, including those the main
# policy adds itself. A message is not checked against its own labels (a
# tool labelled both sensitive_read and external_send is not stopped by
# after sensitive_read -> deny external_send on its first call).
# max_per_session counts within the session history the filter keeps
# (sessions.max_calls, 64 messages by default). Session state needs a session
# id or a principal (see docs/decision.md, "Sessions, rates and kills"); for
# session-less (2026-07-28) traffic the session is the caller's principal,
# which the filter reads because this file mentions input.identity.
#
# Reasons:
#   flows: "send_email" (external_send) is not allowed after sensitive_read in this session
package mcp

import rego.v1

# Two regorus 0.14.1 quirks shape how this file is written:
# - Rules come before the rules that use them: the interpreter (which runs
#   the `with` tests) misses a rule defined further down when this module is
#   not the first module of package mcp.
# - In a rule with `else`, a body that fails by assigning an undefined value
#   (`x := f(y)` with f(y) undefined) or by a `some ... in` loop finding
#   nothing makes the RVM skip the else. Such bodies test with plain
#   conditions first, and loops live in helper rules.

flows_config := data.library.flows

flows_list(x) := [x] if is_string(x)

flows_list(x) := x if is_array(x)

flows_match(pattern, name) if pattern == name

flows_match(pattern, name) if glob.match(pattern, null, name)

flows_labels contains label if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
	some pattern, given in object.get(flows_config, "labels", {})
	flows_match(pattern, name)
	some label in flows_list(given)
}

flows_labels contains label if {
	input.mcp.method == "tools/call"
	annotations := input.mcp.tool.definition.annotations
	some hint, given in object.get(flows_config, "annotations", {})
	annotations[hint] == true
	some label in flows_list(given)
}

labels contains label if some label in flows_labels

flows_seen := {l | some l in input.session.labels}

flows_what := sprintf("%q", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
} else := input.mcp.method

flows_text(items, sep) := concat(sep, [sprintf("%v", [x]) | some x in items])

flows_reason(rule, hits, after) := sprintf("flows: %v", [rule.reason]) if {
	is_string(rule.reason)
} else := sprintf("flows: %s (%s) is not allowed after %s in this session", [flows_what, flows_text(sort(hits), ", "), flows_text(after, " and ")])

flows_deny contains msg if {
	some rule in object.get(flows_config, "forbidden", [])
	after := flows_list(rule.after)
	every a in after {
		a in flows_seen
	}
	hits := {b | some b in flows_list(rule.deny); b in labels}
	count(hits) > 0
	msg := flows_reason(rule, hits, after)
}

# Calls with `label` in the session so far (allowed ones), plus this one.
flows_count(label) := n if {
	before := count([c | some c in input.session.calls; c.allowed == true; label in c.labels])
	n := before + 1
}

flows_deny contains msg if {
	some label, max in object.get(flows_config, "max_per_session", {})
	label in labels
	n := flows_count(label)
	n > max
	msg := sprintf("flows: %s would be call number %d labelled %s in this session (at most %v)", [flows_what, n, label, max])
}

deny contains msg if some msg in flows_deny
