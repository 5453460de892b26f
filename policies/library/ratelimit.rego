# Library: ratelimit -- rate limits per identity or per session, per tool,
# from the filter's sliding-window counters (input.rate), and the threshold
# past which the session or identity is killed.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons and a helper set, `ratelimit_kill`; its helpers are all
# named ratelimit_*. It does nothing until data.library.ratelimit is set.
#
# `kill` is a complete rule, which only the main policy may define. To act
# on the kill thresholds, the main policy adds one line:
#
#   kill := concat("; ", ratelimit_kill) if count(ratelimit_kill) > 0
#
# or, to kill the principal (every session of that identity) for ten minutes:
#
#   kill := {"reason": concat("; ", ratelimit_kill), "scope": "principal", "ttl_seconds": 600} if count(ratelimit_kill) > 0
#
# A killed session (or principal) has every further message denied with
# "session killed: <reason>" until the kill expires or is cleared
# (clear_kill); kills and counters survive policy reloads.
#
# data.library.ratelimit
#   limits   A list of limits:
#              {"tool": "get_record", "max": 50, "kill": 200, "scope": "identity"}
#            tool   A tool name or glob: the limit counts the calls of the
#                   called tool (each matching tool on its own, not their sum).
#                   Without `tool`, the limit counts every message (any method)
#                   of the scope.
#            max    More than `max` in the window: this message is denied.
#            kill   More than `kill` in the window: the message is denied and
#                   a reason joins ratelimit_kill. Optional.
#            scope  "identity" (default): the caller's principal, across all its
#                   sessions (input.rate.identity; needs a verified subject or a
#                   TLS peer principal). "session": the session (input.rate.session;
#                   for session-less 2026-07-28 traffic, the principal).
#
# The window is the filter's sessions.rate_window_seconds (60 s by default),
# one window for every limit; the count includes the current message and
# denied messages too, so a caller who keeps hammering stays over the limit.
# Without a principal there is no identity count: identity limits do not
# apply to anonymous callers (combine with a session limit, or require
# authentication).
#
# Reasons: over `max` (a deny reason), and over `kill` (a deny reason and a
# ratelimit_kill member, without the count, so the kill keeps one reason):
#   ratelimit: 51 calls of "get_record" by this identity in the current window (limit 50)
#   ratelimit: more than 200 calls of "get_record" by this identity in the current window
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

ratelimit_config := data.library.ratelimit

ratelimit_scope_text := {"identity": "by this identity", "session": "in this session"}

ratelimit_match(pattern, name) if pattern == name

ratelimit_match(pattern, name) if glob.match(pattern, null, name)

# [limit, count, what] for every configured limit that applies to this message.
ratelimit_counts contains [limit, n, sprintf("calls of %q", [name])] if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
	some limit in object.get(ratelimit_config, "limits", [])
	ratelimit_match(limit.tool, name)
	n := input.rate[object.get(limit, "scope", "identity")].tools[name]
}

ratelimit_counts contains [limit, n, "messages"] if {
	some limit in object.get(ratelimit_config, "limits", [])
	not "tool" in object.keys(limit)
	n := input.rate[object.get(limit, "scope", "identity")].window
}

ratelimit_scope(limit) := ratelimit_scope_text[object.get(limit, "scope", "identity")]

ratelimit_text(limit, n, what) := sprintf("%d %s %s in the current window", [n, what, ratelimit_scope(limit)])

# The reasons to kill; the main policy turns them into `kill` (see above).
# They do not carry the count, so a kill stays the same while the caller
# keeps going.
ratelimit_kill contains sprintf("ratelimit: more than %v %s %s in the current window", [limit.kill, what, ratelimit_scope(limit)]) if {
	some [limit, n, what] in ratelimit_counts
	is_number(limit.kill)
	n > limit.kill
}

ratelimit_deny contains sprintf("ratelimit: %s (limit %v)", [ratelimit_text(limit, n, what), limit.max]) if {
	some [limit, n, what] in ratelimit_counts
	is_number(limit.max)
	n > limit.max
}

ratelimit_deny contains msg if some msg in ratelimit_kill

deny contains msg if some msg in ratelimit_deny

# --- Mesh-wide limits: a descriptor for Envoy's rate-limit filters ---------
#
# data.library.ratelimit.descriptor (optional) makes ratelimit_descriptor an
# object the main policy hands to the filter's `rate_limit` output, which
# Envoy's local_ratelimit filter (per instance) or ratelimit filter (the
# global rate-limit service, mesh-wide) count (docs/replicas.md):
#
#   rate_limit := ratelimit_descriptor if ratelimit_descriptor
#
#   entries  Which entries to send, from: "principal" (sub:<subject>,
#            peer:<TLS peer principal>, or "anonymous"), "tool" (tools/call
#            only), "method", "session", "upstream". Default
#            ["principal", "tool"]. An entry with no value for this message
#            is left out.
#   costs    Tool name (or glob) -> hits a call adds; the first match in
#            key order wins. Default cost 1.
#   methods  Methods that carry a descriptor. Default ["tools/call"].

ratelimit_descriptor_config := ratelimit_config.descriptor

ratelimit_principal := sprintf("sub:%s", [input.identity.subject]) if is_string(input.identity.subject)

else := sprintf("peer:%s", [input.source.principal]) if is_string(input.source.principal)

else := "anonymous"

ratelimit_entry_value("principal") := ratelimit_principal

ratelimit_entry_value("tool") := input.mcp.tool.name if is_string(input.mcp.tool.name)

ratelimit_entry_value("method") := input.mcp.method if is_string(input.mcp.method)

ratelimit_entry_value("session") := input.mcp.session_id if is_string(input.mcp.session_id)

ratelimit_entry_value("upstream") := input.xds.cluster_name if is_string(input.xds.cluster_name)

ratelimit_descriptor_entries[key] := value if {
	some key in object.get(ratelimit_descriptor_config, "entries", ["principal", "tool"])
	value := ratelimit_entry_value(key)
}

ratelimit_costs := [c |
	some pattern, c in object.get(ratelimit_descriptor_config, "costs", {})
	ratelimit_match(pattern, input.mcp.tool.name)
]

ratelimit_cost := ratelimit_costs[0] if count(ratelimit_costs) > 0

else := 1

ratelimit_descriptor := {"entries": ratelimit_descriptor_entries, "cost": ratelimit_cost} if {
	input.mcp.method in object.get(ratelimit_descriptor_config, "methods", ["tools/call"])
	count(ratelimit_descriptor_entries) > 0
}
