# Tests for library/readonly.rego (opa test convention).
package readonly_test

import rego.v1

import data.mcp

call(name, annotations) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {
	"name": name, "arguments": {},
	"definition": {"name": name, "inputSchema": {"type": "object"}, "annotations": annotations},
}}}

unknown(name) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}}}

reasons(inp, cfg) := r if {
	r := mcp.readonly_deny with input as inp with data.library.readonly as cfg
}

test_read_only_tool_allowed if {
	count(reasons(call("get_record", {"readOnlyHint": true}), {"enabled": true})) == 0
}

test_unannotated_tool_denied if {
	reasons(call("add", {}), {"enabled": true}) == {`readonly: tool "add" is not annotated readOnlyHint: true, and this server is in read-only mode`}
	reasons(call("add", {"readOnlyHint": false, "idempotentHint": true}), {"enabled": true}) == {`readonly: tool "add" is not annotated readOnlyHint: true, and this server is in read-only mode`}
}

test_definition_without_annotations if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "add", "arguments": {}, "definition": {"name": "add"}}}}
	count(reasons(inp, {"enabled": true})) == 1
}

test_unknown_definition_fails_closed if {
	reasons(unknown("mystery"), {"enabled": true}) == {`readonly: tool "mystery" has no known definition (the proxy has not seen it in tools/list), and this server is in read-only mode`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("add", {}) with data.library.readonly as {"enabled": true}
	`readonly: tool "add" is not annotated readOnlyHint: true, and this server is in read-only mode` in r
}

test_not_active_without_enabled if {
	count(reasons(call("add", {}), {})) == 0
	count(reasons(call("add", {}), {"enabled": false})) == 0
	count(reasons(unknown("x"), {"enabled": false})) == 0
}

test_per_cluster_and_route if {
	cfg := {"clusters": ["analytics"], "routes": ["ro_route"]}
	inp := object.union(call("add", {}), {"xds": {"cluster_name": "analytics", "route_name": "r"}})
	count(reasons(inp, cfg)) == 1
	inp2 := object.union(call("add", {}), {"xds": {"cluster_name": "main", "route_name": "ro_route"}})
	count(reasons(inp2, cfg)) == 1
	inp3 := object.union(call("add", {}), {"xds": {"cluster_name": "main", "route_name": "r"}})
	count(reasons(inp3, cfg)) == 0
}

test_exempt_tools if {
	cfg := {"enabled": true, "allow": ["echo", "list_*"]}
	count(reasons(call("echo", {}), cfg)) == 0
	count(reasons(unknown("list_things"), cfg)) == 0
	count(reasons(call("add", {}), cfg)) == 1
}

test_deny_destructive_always if {
	cfg := {"deny_destructive": true}
	reasons(call("drop_table", {"destructiveHint": true}), cfg) == {`readonly: tool "drop_table" is destructive (destructiveHint: true)`}
	count(reasons(call("add", {}), cfg)) == 0
	count(reasons(call("add", {"destructiveHint": false}), cfg)) == 0
	count(reasons(unknown("x"), cfg)) == 0

	# readOnlyHint wins: destructiveHint means nothing on a read-only tool.
	count(reasons(call("get", {"readOnlyHint": true, "destructiveHint": true}), cfg)) == 0
}

test_deny_destructive_in_read_only_mode_gives_both_reasons if {
	r := reasons(call("drop_table", {"destructiveHint": true}), {"enabled": true, "deny_destructive": true})
	r == {
		`readonly: tool "drop_table" is destructive (destructiveHint: true)`,
		`readonly: tool "drop_table" is not annotated readOnlyHint: true, and this server is in read-only mode`,
	}
}

test_assume_destructive_follows_the_spec_default if {
	cfg := {"deny_destructive": true, "assume_destructive": true}
	reasons(call("add", {}), cfg) == {`readonly: tool "add" may be destructive (no destructiveHint, and not read-only)`}
	count(reasons(call("add", {"destructiveHint": false}), cfg)) == 0
	count(reasons(call("get", {"readOnlyHint": true}), cfg)) == 0
	reasons(unknown("x"), cfg) == {`readonly: tool "x" has no known definition, so it may be destructive`}
}

test_other_methods_untouched if {
	count(reasons({"mcp": {"method": "resources/read", "resource": {"uri": "x://y"}}}, {"enabled": true})) == 0
	count(reasons({"mcp": {"method": "tools/list"}}, {"enabled": true})) == 0
}

test_inert_without_data if {
	count(mcp.readonly_deny) == 0 with input as call("drop", {"destructiveHint": true})
}
