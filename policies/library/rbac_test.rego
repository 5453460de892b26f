# Tests for library/rbac.rego (opa test convention).
package rbac_test

import rego.v1

import data.mcp

cfg := {
	"roles": {
		"viewer": {"tools": ["echo", "read_*"], "prompts": ["greet"]},
		"admin": {"tools": ["*"], "resources": ["demo://*"]},
		"ops": {"tools": ["delete_record", "restart"]},
	},
	"public": {"tools": ["ping_tool"], "resources": ["demo://readme"]},
}

call(name, claims) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}},
	"identity": {"subject": "u", "claims": claims},
}

anonymous_call(name) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}}}

test_granted_tool_allowed if {
	count(mcp.rbac_deny) == 0 with input as call("echo", {"roles": ["viewer"]}) with data.library.rbac as cfg
	count(mcp.rbac_deny) == 0 with input as call("read_file", {"roles": ["viewer"]}) with data.library.rbac as cfg
}

test_missing_single_role_named if {
	cfg2 := {"roles": {"viewer": {"tools": ["echo"]}, "admin": {"tools": ["wipe"]}}}
	r := mcp.rbac_deny with input as call("wipe", {"roles": ["viewer"]}) with data.library.rbac as cfg2
	r == {`rbac: tool "wipe" requires role "admin" (caller's roles: "viewer")`}
}

test_missing_role_among_several_named if {
	r := mcp.rbac_deny with input as call("delete_record", {"roles": ["viewer", "auditor"]}) with data.library.rbac as cfg
	r == {`rbac: tool "delete_record" requires one of the roles "admin", "ops" (caller's roles: "auditor", "viewer")`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("restart", {"roles": ["viewer"]}) with data.library.rbac as cfg
	`rbac: tool "restart" requires one of the roles "admin", "ops" (caller's roles: "viewer")` in r
}

test_groups_claim_by_default if {
	count(mcp.rbac_deny) == 0 with input as call("restart", {"groups": ["ops"]}) with data.library.rbac as cfg
}

test_space_separated_claim if {
	c := object.union(cfg, {"claims": ["scope"]})
	count(mcp.rbac_deny) == 0 with input as call("restart", {"scope": "openid ops"}) with data.library.rbac as c
	count(mcp.rbac_deny) == 1 with input as call("restart", {"scope": "openid viewer"}) with data.library.rbac as c
}

test_nested_claim_path if {
	c := object.union(cfg, {"claims": [["realm_access", "roles"]]})
	count(mcp.rbac_deny) == 0 with input as call("restart", {"realm_access": {"roles": ["ops"]}}) with data.library.rbac as c

	# The default claims are no longer read.
	count(mcp.rbac_deny) == 1 with input as call("restart", {"roles": ["ops"]}) with data.library.rbac as c
}

test_namespaced_claim_name if {
	c := object.union(cfg, {"claims": ["https://example.com/roles"]})
	count(mcp.rbac_deny) == 0 with input as call("restart", {"https://example.com/roles": ["ops"]}) with data.library.rbac as c
}

test_ungranted_tool if {
	c := {"roles": {"viewer": {"tools": ["echo"]}}}
	r := mcp.rbac_deny with input as call("launch", {"roles": ["viewer"]}) with data.library.rbac as c
	r == {`rbac: tool "launch" is not granted to any role`}
}

test_public_tool_for_anonymous if {
	count(mcp.rbac_deny) == 0 with input as anonymous_call("ping_tool") with data.library.rbac as cfg
}

test_anonymous_denied_with_reason if {
	r := mcp.rbac_deny with input as anonymous_call("echo") with data.library.rbac as cfg
	r == {`rbac: tool "echo" requires one of the roles "admin", "viewer" (the caller is not authenticated)`}
}

test_no_roles_reason if {
	r := mcp.rbac_deny with input as call("echo", {"sub": "x"}) with data.library.rbac as cfg
	r == {`rbac: tool "echo" requires one of the roles "admin", "viewer" (the caller has no roles)`}
}

test_prompts_governed if {
	inp := {"mcp": {"method": "prompts/get", "prompt": {"name": "summarise", "arguments": {}}}, "identity": {"claims": {"roles": ["viewer"]}}}
	r := mcp.rbac_deny with input as inp with data.library.rbac as cfg
	r == {`rbac: prompt "summarise" is not granted to any role`}
	ok := {"mcp": {"method": "prompts/get", "prompt": {"name": "greet"}}, "identity": {"claims": {"roles": ["viewer"]}}}
	count(mcp.rbac_deny) == 0 with input as ok with data.library.rbac as cfg
}

test_resources_by_uri_glob if {
	inp := {"mcp": {"method": "resources/read", "resource": {"uri": "demo://records/7"}}, "identity": {"claims": {"roles": ["viewer"]}}}
	r := mcp.rbac_deny with input as inp with data.library.rbac as cfg
	r == {`rbac: resource "demo://records/7" requires role "admin" (caller's roles: "viewer")`}
	count(mcp.rbac_deny) == 0 with input as object.union(inp, {"identity": {"claims": {"roles": ["admin"]}}}) with data.library.rbac as cfg
	public := {"mcp": {"method": "resources/read", "resource": {"uri": "demo://readme"}}}
	count(mcp.rbac_deny) == 0 with input as public with data.library.rbac as cfg
}

test_ungoverned_kind_not_checked if {
	c := {"roles": {"viewer": {"tools": ["echo"]}}}
	inp := {"mcp": {"method": "prompts/get", "prompt": {"name": "anything"}}}
	count(mcp.rbac_deny) == 0 with input as inp with data.library.rbac as c
}

test_enforce_makes_kind_default_deny if {
	c := {"roles": {"viewer": {"tools": ["echo"]}}, "enforce": ["tools", "prompts"]}
	inp := {"mcp": {"method": "prompts/get", "prompt": {"name": "anything"}}, "identity": {"claims": {"roles": ["viewer"]}}}
	mcp.rbac_deny == {`rbac: prompt "anything" is not granted to any role`} with input as inp with data.library.rbac as c
}

test_other_methods_not_checked if {
	inp := {"mcp": {"method": "tools/list"}}
	count(mcp.rbac_deny) == 0 with input as inp with data.library.rbac as cfg
	count(mcp.rbac_deny) == 0 with input as {"http": {"method": "GET"}} with data.library.rbac as cfg
}

test_inert_without_data if {
	count(mcp.rbac_deny) == 0 with input as anonymous_call("delete_record")
}

test_non_string_roles_ignored if {
	r := mcp.rbac_deny with input as call("restart", {"roles": [1, {"ops": true}, "viewer"]}) with data.library.rbac as cfg
	count(r) == 1
}
