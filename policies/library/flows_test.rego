# Tests for library/flows.rego (opa test convention).
package flows_test

import rego.v1

import data.mcp

cfg := {
	"labels": {"read_db": "sensitive_read", "send_*": ["external_send"], "fetch_url": "untrusted_input"},
	"annotations": {"openWorldHint": "untrusted_input"},
	"forbidden": [
		{"after": "sensitive_read", "deny": "external_send"},
		{"after": ["sensitive_read", "untrusted_input"], "deny": ["code_exec", "external_send"], "reason": "the lethal trifecta: private data and untrusted content, then an outlet"},
	],
	"max_per_session": {"sensitive_read": 3},
}

call(name, seen) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}},
	"session": {"id": "s1", "calls": [], "labels": seen},
}

test_labels_from_tool_names if {
	mcp.flows_labels == {"sensitive_read"} with input as call("read_db", set()) with data.library.flows as cfg
	mcp.flows_labels == {"external_send"} with input as call("send_email", set()) with data.library.flows as cfg
	"external_send" in mcp.labels with input as call("send_sms", set()) with data.library.flows as cfg
	count(mcp.flows_labels) == 0 with input as call("echo", set()) with data.library.flows as cfg
}

test_labels_from_annotations if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "browse", "arguments": {}, "definition": {"name": "browse", "annotations": {"openWorldHint": true}}}}}
	mcp.flows_labels == {"untrusted_input"} with input as inp with data.library.flows as cfg
	inp2 := {"mcp": {"method": "tools/call", "tool": {"name": "browse", "arguments": {}, "definition": {"name": "browse", "annotations": {"openWorldHint": false}}}}}
	count(mcp.flows_labels) == 0 with input as inp2 with data.library.flows as cfg
}

test_send_before_read_allowed if {
	count(mcp.flows_deny) == 0 with input as call("send_email", set()) with data.library.flows as cfg
	count(mcp.flows_deny) == 0 with input as call("send_email", {"untrusted_input"}) with data.library.flows as cfg
}

test_send_after_read_denied if {
	r := mcp.flows_deny with input as call("send_email", {"sensitive_read"}) with data.library.flows as cfg
	r == {`flows: "send_email" (external_send) is not allowed after sensitive_read in this session`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("send_email", {"sensitive_read"}) with data.library.flows as cfg
	`flows: "send_email" (external_send) is not allowed after sensitive_read in this session` in r
}

test_trifecta_needs_all_labels if {
	exec := object.union(cfg, {"labels": {"run_code": "code_exec"}})
	count(mcp.flows_deny) == 0 with input as call("run_code", {"sensitive_read"}) with data.library.flows as exec
	r := mcp.flows_deny with input as call("run_code", {"sensitive_read", "untrusted_input"}) with data.library.flows as exec
	r == {"flows: the lethal trifecta: private data and untrusted content, then an outlet"}
}

test_both_rules_fire if {
	r := mcp.flows_deny with input as call("send_email", {"sensitive_read", "untrusted_input"}) with data.library.flows as cfg
	count(r) == 2
}

test_labels_set_by_the_main_policy_count if {
	# A label the main policy attaches (not from data) is checked too.
	c := {"forbidden": [{"after": "sensitive_read", "deny": "external_send"}]}
	count(mcp.flows_deny) == 0 with input as call("send_email", {"sensitive_read"}) with data.library.flows as c
	r := mcp.flows_deny with input as call("send_email", {"sensitive_read"}) with data.library.flows as c with data.mcp.labels as {"external_send"}
	count(r) == 1
}

test_max_per_session if {
	calls := [
		{"method": "tools/call", "tool": "read_db", "labels": {"sensitive_read"}, "allowed": true},
		{"method": "tools/call", "tool": "read_db", "labels": {"sensitive_read"}, "allowed": true},
		{"method": "tools/call", "tool": "read_db", "labels": {"sensitive_read"}, "allowed": false},
	]
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "read_db", "arguments": {}}}, "session": {"calls": calls, "labels": {"sensitive_read"}}}
	count(mcp.flows_deny) == 0 with input as inp with data.library.flows as cfg
	calls4 := array.concat(calls, [{"method": "tools/call", "tool": "read_db", "labels": {"sensitive_read"}, "allowed": true}])
	inp4 := object.union(inp, {"session": {"calls": calls4}})
	r := mcp.flows_deny with input as inp4 with data.library.flows as cfg
	r == {`flows: "read_db" would be call number 4 labelled sensitive_read in this session (at most 3)`}
}

test_no_session_state_no_flow_denial if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "send_email", "arguments": {}}}}
	count(mcp.flows_deny) == 0 with input as inp with data.library.flows as cfg
}

test_inert_without_data if {
	count(mcp.flows_deny) == 0 with input as call("send_email", {"sensitive_read"})
	count(mcp.flows_labels) == 0 with input as call("send_email", {"sensitive_read"})
}
