# Tests for library/stepup.rego (opa test convention).
package stepup_test

import rego.v1

import data.mcp

cfg := {"tools": ["delete_record", "drop_*"], "destructive": true}

call(name, claims) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}},
	"identity": {"subject": "alice", "claims": claims},
}

annotated(name, annotations, claims) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {
		"name": name, "arguments": {},
		"definition": {"name": name, "annotations": annotations},
	}},
	"identity": {"subject": "alice", "claims": claims},
}

reasons(inp, c) := r if {
	r := mcp.stepup_deny with input as inp with data.library.stepup as c
}

test_mfa_acr_allowed if {
	count(reasons(call("delete_record", {"acr": "mfa"}), cfg)) == 0
}

test_mfa_amr_allowed if {
	count(reasons(call("delete_record", {"amr": ["pwd", "mfa"]}), cfg)) == 0
}

test_missing_claims_named if {
	r := reasons(call("delete_record", {"amr": ["pwd"]}), cfg)
	r == {`stepup: tool "delete_record" needs step-up authentication: claim "acr" containing "mfa" or claim "amr" containing "mfa"; the token has no "acr" claim and "amr": ["pwd"]`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("drop_table", {"acr": "1"}) with data.library.stepup as cfg
	`stepup: tool "drop_table" needs step-up authentication: claim "acr" containing "mfa" or claim "amr" containing "mfa"; the token has "acr": "1" and no "amr" claim` in r
}

test_unauthenticated if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "delete_record", "arguments": {}}}}
	r := reasons(inp, cfg)
	r == {`stepup: tool "delete_record" needs step-up authentication: claim "acr" containing "mfa" or claim "amr" containing "mfa"; the caller is not authenticated`}
}

test_destructive_annotation if {
	r := reasons(annotated("purge", {"destructiveHint": true}, {}), cfg)
	r == {`stepup: tool "purge" is destructive and needs step-up authentication: claim "acr" containing "mfa" or claim "amr" containing "mfa"; the token has no "acr" claim and no "amr" claim`}
	count(reasons(annotated("purge", {"destructiveHint": true}, {"acr": "mfa"}), cfg)) == 0
	count(reasons(annotated("get", {"destructiveHint": true, "readOnlyHint": true}, {}), cfg)) == 0
	count(reasons(annotated("purge", {"destructiveHint": true}, {}), {"tools": []})) == 0
}

test_other_tools_untouched if {
	count(reasons(call("echo", {}), cfg)) == 0
	count(reasons(annotated("add", {"destructiveHint": false}, {}), cfg)) == 0
}

test_custom_requirement if {
	c := {"tools": ["wire_*"], "require": [{"claim": ["ext", "loa"], "any_of": [3, 4]}]}
	count(reasons(call("wire_money", {"ext": {"loa": 3}}), c)) == 0
	r := reasons(call("wire_money", {"ext": {"loa": 2}}), c)
	r == {`stepup: tool "wire_money" needs step-up authentication: claim "ext.loa" containing one of 3, 4; the token has "ext.loa": 2`}
}

test_max_age if {
	c := object.union(cfg, {"max_age_seconds": 300})
	now := 1700000000000000000
	fresh := call("delete_record", {"acr": "mfa", "auth_time": 1699999900})
	r0 := mcp.stepup_deny with input as fresh with data.library.stepup as c with time.now_ns as now
	count(r0) == 0
	stale := call("delete_record", {"acr": "mfa", "auth_time": 1699996400})
	r1 := mcp.stepup_deny with input as stale with data.library.stepup as c with time.now_ns as now
	r1 == {`stepup: tool "delete_record" needs an authentication at most 300 s old; the token's auth_time is 3600 s old`}
	r2 := mcp.stepup_deny with input as call("delete_record", {"acr": "mfa"}) with data.library.stepup as c with time.now_ns as now
	r2 == {`stepup: tool "delete_record" needs an authentication at most 300 s old; the token has no "auth_time" claim`}
}

test_inert_without_data if {
	count(mcp.stepup_deny) == 0 with input as call("delete_record", {})
}
