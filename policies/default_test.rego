# Tests for default.rego, in the `opa test` convention (test_ rules).
package mcp_test

import rego.v1

import data.mcp

call(name, args) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": args}}}

denied(inp) := reasons if {
	reasons := mcp.deny with input as inp
	count(reasons) > 0
}

test_echo_allowed if {
	mcp.allow with input as call("echo", {"text": "hi"})
	count(mcp.deny) == 0 with input as call("echo", {"text": "hi"})
}

test_list_allowed if {
	inp := {"mcp": {"kind": "request", "method": "tools/list"}}
	mcp.allow with input as inp
	count(mcp.deny) == 0 with input as inp
}

test_transport_requests_allowed if {
	inp := {"http": {"method": "DELETE", "path": "/mcp"}}
	mcp.allow with input as inp
	count(mcp.deny) == 0 with input as inp
}

test_blocked_tool_denied if {
	reasons := denied(call("delete_record", {"id": 1}))
	reasons == {"tool \"delete_record\" is blocked by policy"}
}

test_read_file_inside_workspace_allowed if {
	count(mcp.deny) == 0 with input as call("read_file", {"path": "/workspace/notes.txt"})
}

test_read_file_outside_workspace_denied if {
	denied(call("read_file", {"path": "/etc/passwd"}))
}

test_read_file_traversal_denied if {
	denied(call("read_file", {"path": "/workspace/../etc/passwd"}))
}

test_read_file_without_path_denied if {
	denied(call("read_file", {}))
}

# Arguments of the wrong type are refused too, with a reason that shows them.
test_read_file_non_string_path_denied if {
	denied(call("read_file", {"path": 7})) == {"read_file may only read under /workspace/ (asked for 7)"}
	denied(call("read_file", {"path": null}))
	denied(call("read_file", {"path": ["/etc/passwd"]}))
}

test_send_email_internal_allowed if {
	count(mcp.deny) == 0 with input as call("send_email", {"to": "Ops@Example.com", "body": "x"})
}

test_send_email_external_denied if {
	denied(call("send_email", {"to": "attacker@evil.test", "body": "x"})) == {"send_email may only send to @example.com addresses (asked for \"attacker@evil.test\")"}
}

test_send_email_to_a_list_denied if {
	denied(call("send_email", {"to": ["attacker@evil.test"], "body": "x"})) == {"send_email may only send to @example.com addresses (asked for [\"attacker@evil.test\"])"}
}
