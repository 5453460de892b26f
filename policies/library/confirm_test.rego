# Tests for library/confirm.rego (opa test convention).
package confirm_test

import rego.v1

import data.mcp

call(name, args, annotations) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {
	"name": name, "arguments": args,
	"definition": {"name": name, "inputSchema": {"type": "object"}, "annotations": annotations},
}}}

unknown(name) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}}}

asks(inp, cfg) := r if {
	r := mcp.confirm_asks with input as inp with data.library.confirm as cfg
}

test_destructive_annotation_asks if {
	asks(call("drop_table", {}, {"destructiveHint": true}), {"destructive": true}) == {`tool "drop_table" is marked destructive by its server`}
}

test_read_only_or_unannotated_tools_are_not_asked if {
	count(asks(call("get", {}, {"destructiveHint": true, "readOnlyHint": true}), {"destructive": true})) == 0
	count(asks(call("get", {}, {}), {"destructive": true})) == 0
	count(asks(call("drop_table", {}, {"destructiveHint": false}), {"destructive": true})) == 0
}

test_unknown_definition_only_when_asked_for if {
	count(asks(unknown("mystery"), {"destructive": true})) == 0
	asks(unknown("mystery"), {"destructive": true, "unknown": true}) == {`tool "mystery" has no known definition, so it may be destructive`}
}

test_names_and_globs if {
	cfg := {"tools": ["deploy", "delete_*"]}
	asks(call("deploy", {}, {}), cfg) == {`tool "deploy" needs a person's approval (data.library.confirm.tools)`}
	count(asks(call("delete_user", {}, {}), cfg)) == 1
	count(asks(call("list_users", {}, {}), cfg)) == 0
}

test_argument_threshold if {
	cfg := {"thresholds": [{"tool": "pay*", "argument": "amount", "above": 1000}]}
	asks(call("pay", {"amount": 5000}, {}), cfg) == {`argument "amount" of "pay" is 5000, above 1000`}
	count(asks(call("pay", {"amount": 1000}, {}), cfg)) == 0
	count(asks(call("pay", {"amount": "5000"}, {}), cfg)) == 0
	count(asks(call("pay", {}, {}), cfg)) == 0
	count(asks(call("refund", {"amount": 5000}, {}), cfg)) == 0
}

test_except_wins if {
	cfg := {"destructive": true, "tools": ["*"], "except": ["clear_cache"]}
	count(asks(call("clear_cache", {}, {"destructiveHint": true}), cfg)) == 0
	count(asks(call("other", {}, {}), cfg)) == 1
}

test_reaches_confirm_not_deny if {
	c := mcp.confirm with input as call("deploy", {}, {}) with data.library.confirm as {"tools": ["deploy"]}
	`tool "deploy" needs a person's approval (data.library.confirm.tools)` in c
	d := mcp.deny with input as call("deploy", {}, {}) with data.library.confirm as {"tools": ["deploy"]}
	not `tool "deploy" needs a person's approval (data.library.confirm.tools)` in d
}

test_inert_without_data_and_other_methods if {
	count(asks(call("drop_table", {}, {"destructiveHint": true}), {})) == 0
	inp := {"mcp": {"kind": "request", "method": "prompts/get", "prompt": {"name": "deploy"}}}
	count(asks(inp, {"tools": ["*"]})) == 0
}
