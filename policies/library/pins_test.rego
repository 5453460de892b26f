# Tests for library/pins.rego (opa test convention).
package pins_test

import rego.v1

import data.mcp

h1 := "1a2b3c4d5e6f00112233445566778899aabbccddeeff00112233445566778899"

h2 := "9f2c4d5e6f70112233445566778899aabbccddeeff0011223344556677889900"

call(name, pin) := {"mcp": {"kind": "request", "method": "tools/call", "direction": "client_to_server", "tool": {
	"name": name, "arguments": {},
	"definition": {"name": name, "inputSchema": {"type": "object"}, "pin": pin},
}}}

listing(name, pin) := {"mcp": {"kind": "request", "method": "tools/call", "listing": true, "tool": {
	"name": name,
	"definition": {"name": name, "pin": pin},
}}}

changed := {"status": "changed", "hash": h2, "pinned_hash": h1, "pinned_at_ms": 1700000000000}

pinned := {"status": "pinned", "hash": h1, "pinned_hash": h1, "pinned_at_ms": 1700000000000}

new := {"status": "new", "hash": h1, "pinned_hash": h1, "pinned_at_ms": 1700000000000}

reason := concat("", [
	`pins: tool "add" changed since it was pinned (pinned sha256 1a2b3c4d5e6f…, now 9f2c4d5e6f70…); `,
	`approve the new definition with data.mcp.approved_tools["add"] = "`, h2, `"`,
])

reasons(inp, cfg, approved) := r if {
	r := mcp.pins_deny with input as inp with data.library.pins as cfg with data.mcp.approved_tools as approved
}

test_changed_tool_denied if {
	reasons(call("add", changed), {}, {}) == {reason}
}

test_changed_tool_hidden_from_lists if {
	reasons(listing("add", changed), {}, {}) == {reason}
}

test_new_and_pinned_pass if {
	count(reasons(call("add", new), {}, {})) == 0
	count(reasons(call("add", pinned), {}, {})) == 0
	count(reasons(listing("add", pinned), {}, {})) == 0
}

test_approved_hash_passes if {
	count(reasons(call("add", changed), {}, {"add": h2})) == 0

	# Approving the old hash, or another tool, does not.
	reasons(call("add", changed), {}, {"add": h1}) == {reason}
	reasons(call("add", changed), {}, {"echo": h2}) == {reason}
}

test_allowlisted_tools_pass if {
	count(reasons(call("clock_now", object.union(changed, {})), {"allow": ["clock_*"]}, {})) == 0
	count(reasons(call("add", changed), {"allow": ["clock_*"]}, {})) == 1
}

test_require_pin if {
	inp := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": "x", "arguments": {}}}}
	count(reasons(inp, {}, {})) == 0
	reasons(inp, {"require_pin": true}, {}) == {`pins: tool "x" has no pinned definition`}
	count(reasons(call("x", pinned), {"require_pin": true}, {})) == 0
}

test_only_requests if {
	resp := {"mcp": {"kind": "response", "method": "tools/call", "direction": "server_to_client", "tool": {
		"name": "add",
		"definition": {"name": "add", "pin": changed},
	}}}
	count(reasons(resp, {}, {})) == 0
	other := {"mcp": {"kind": "request", "method": "prompts/get", "prompt": {"name": "add"}}}
	count(reasons(other, {}, {})) == 0
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("add", changed) with data.library.pins as {}
	reason in r
}

test_inert_without_data if {
	r := mcp.pins_deny with input as call("add", changed)
	count(r) == 0
}
