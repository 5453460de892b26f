# Tests for library/ratelimit.rego (opa test convention).
package ratelimit_test

import rego.v1

import data.mcp

cfg := {"limits": [
	{"tool": "get_record", "max": 50, "kill": 80},
	{"tool": "search_*", "max": 5, "scope": "session"},
	{"max": 300, "scope": "session", "kill": 1000},
]}

msg(name, identity_count, session_count, window) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}},
	"rate": {
		"identity": {"window": window, "tools": {name: identity_count}},
		"session": {"window": window, "tools": {name: session_count}},
	},
}

test_under_the_limit if {
	count(mcp.ratelimit_deny) == 0 with input as msg("get_record", 50, 50, 60) with data.library.ratelimit as cfg
	count(mcp.ratelimit_kill) == 0 with input as msg("get_record", 50, 50, 60) with data.library.ratelimit as cfg
}

test_over_the_limit_denied if {
	r := mcp.ratelimit_deny with input as msg("get_record", 51, 3, 60) with data.library.ratelimit as cfg
	r == {`ratelimit: 51 calls of "get_record" by this identity in the current window (limit 50)`}
	count(mcp.ratelimit_kill) == 0 with input as msg("get_record", 51, 3, 60) with data.library.ratelimit as cfg
}

test_over_the_kill_threshold if {
	k := mcp.ratelimit_kill with input as msg("get_record", 81, 3, 90) with data.library.ratelimit as cfg
	k == {`ratelimit: more than 80 calls of "get_record" by this identity in the current window`}
	r := mcp.ratelimit_deny with input as msg("get_record", 81, 3, 90) with data.library.ratelimit as cfg
	r == {
		`ratelimit: more than 80 calls of "get_record" by this identity in the current window`,
		`ratelimit: 81 calls of "get_record" by this identity in the current window (limit 50)`,
	}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as msg("get_record", 51, 3, 60) with data.library.ratelimit as cfg
	`ratelimit: 51 calls of "get_record" by this identity in the current window (limit 50)` in r
}

test_glob_and_session_scope if {
	r := mcp.ratelimit_deny with input as msg("search_docs", 100, 6, 60) with data.library.ratelimit as cfg
	r == {`ratelimit: 6 calls of "search_docs" in this session in the current window (limit 5)`}
}

test_all_messages_limit if {
	inp := {"mcp": {"kind": "notification", "method": "notifications/progress"}, "rate": {"session": {"window": 301, "tools": {}}}}
	r := mcp.ratelimit_deny with input as inp with data.library.ratelimit as cfg
	r == {"ratelimit: 301 messages in this session in the current window (limit 300)"}
	k := mcp.ratelimit_kill with input as object.union(inp, {"rate": {"session": {"window": 1001}}}) with data.library.ratelimit as cfg
	k == {"ratelimit: more than 1000 messages in this session in the current window"}
}

test_no_principal_no_identity_limit if {
	inp := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": "get_record", "arguments": {}}}, "rate": {"session": {"window": 1, "tools": {"get_record": 99}}}}
	count(mcp.ratelimit_deny) == 0 with input as inp with data.library.ratelimit as cfg
}

test_main_policy_kill_line if {
	# What the one-line `kill` rule in the main policy computes.
	k := mcp.ratelimit_kill with input as msg("get_record", 81, 3, 90) with data.library.ratelimit as cfg
	concat("; ", k) == `ratelimit: more than 80 calls of "get_record" by this identity in the current window`
}

test_inert_without_data if {
	count(mcp.ratelimit_deny) == 0 with input as msg("get_record", 1000, 1000, 1000)
	count(mcp.ratelimit_kill) == 0 with input as msg("get_record", 1000, 1000, 1000)
}

# --- descriptors for Envoy's rate-limit filters ---

dcfg := {"descriptor": {"costs": {"run_*": 5, "export": 20}}}

call(name, identity) := object.union(
	{"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}}},
	identity,
)

test_descriptor_principal_and_tool if {
	d := mcp.ratelimit_descriptor with input as call("get_record", {"identity": {"subject": "alice"}}) with data.library.ratelimit as dcfg
	d == {"entries": {"principal": "sub:alice", "tool": "get_record"}, "cost": 1}
}

test_descriptor_costs_and_peer_principal if {
	d := mcp.ratelimit_descriptor with input as call("run_query", {"source": {"principal": "spiffe://cluster.local/ns/a/sa/b"}}) with data.library.ratelimit as dcfg
	d == {"entries": {"principal": "peer:spiffe://cluster.local/ns/a/sa/b", "tool": "run_query"}, "cost": 5}
}

test_descriptor_anonymous if {
	d := mcp.ratelimit_descriptor with input as call("export", {}) with data.library.ratelimit as dcfg
	d == {"entries": {"principal": "anonymous", "tool": "export"}, "cost": 20}
}

test_descriptor_only_for_configured_methods if {
	not mcp.ratelimit_descriptor with input as {"mcp": {"kind": "request", "method": "tools/list"}} with data.library.ratelimit as dcfg
	d := mcp.ratelimit_descriptor with input as {"mcp": {"kind": "request", "method": "tools/list", "session_id": "s1"}}
		with data.library.ratelimit as {"descriptor": {"entries": ["method", "session"], "methods": ["tools/list"]}}
	d == {"entries": {"method": "tools/list", "session": "s1"}, "cost": 1}
}

test_no_descriptor_without_config if {
	not mcp.ratelimit_descriptor with input as call("get_record", {}) with data.library.ratelimit as cfg
}
