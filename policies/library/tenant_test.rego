# Tests for library/tenant.rego (opa test convention).
package tenant_test

import rego.v1

import data.mcp

cfg := {
	"tools": {"ledger_*": "finance", "patient_*": "healthcare", "audit_report": ["finance", "audit"]},
	"prompts": {"diagnose": "healthcare"},
	"resources": {"ehr://*": "healthcare"},
	"clusters": {"ehr_mcp": "healthcare"},
	"routes": {"finance_route": "finance"},
	"arguments": ["tenant_id"],
}

call(name, args, claims) := {
	"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": args}},
	"identity": {"subject": "agent", "claims": claims},
	"xds": {"cluster_name": "shared_mcp", "route_name": "r"},
}

test_own_tenant_allowed if {
	count(mcp.tenant_deny) == 0 with input as call("ledger_balance", {}, {"tenant": "finance"}) with data.library.tenant as cfg
}

test_other_tenant_denied if {
	r := mcp.tenant_deny with input as call("patient_lookup", {}, {"tenant": "finance"}) with data.library.tenant as cfg
	r == {`tenant: tool "patient_lookup" belongs to tenant "healthcare"; the caller's tenant is "finance"`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("patient_lookup", {}, {"tenant": "finance"}) with data.library.tenant as cfg
	`tenant: tool "patient_lookup" belongs to tenant "healthcare"; the caller's tenant is "finance"` in r
}

test_shared_tool_allowed if {
	count(mcp.tenant_deny) == 0 with input as call("echo", {}, {"tenant": "finance"}) with data.library.tenant as cfg
	count(mcp.tenant_deny) == 0 with input as call("echo", {}, {}) with data.library.tenant as cfg
}

test_tool_owned_by_several_tenants if {
	count(mcp.tenant_deny) == 0 with input as call("audit_report", {}, {"tenant": "audit"}) with data.library.tenant as cfg
	r := mcp.tenant_deny with input as call("audit_report", {}, {"tenant": "hr"}) with data.library.tenant as cfg
	r == {`tenant: tool "audit_report" belongs to tenants "audit", "finance"; the caller's tenant is "hr"`}
}

test_caller_in_several_tenants if {
	count(mcp.tenant_deny) == 0 with input as call("patient_lookup", {}, {"tenant": ["finance", "healthcare"]}) with data.library.tenant as cfg
}

test_no_tenant_claim if {
	r := mcp.tenant_deny with input as call("ledger_balance", {}, {"sub": "x"}) with data.library.tenant as cfg
	r == {`tenant: tool "ledger_balance" belongs to tenant "finance"; the caller has no tenant`}
}

test_unauthenticated if {
	inp := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": "ledger_balance", "arguments": {}}}}
	r := mcp.tenant_deny with input as inp with data.library.tenant as cfg
	r == {`tenant: tool "ledger_balance" belongs to tenant "finance"; the caller is not authenticated`}
}

test_nested_claim_path if {
	c := object.union(cfg, {"claim": ["org", "tenant"]})
	count(mcp.tenant_deny) == 0 with input as call("ledger_x", {}, {"org": {"tenant": "finance"}}) with data.library.tenant as c
	count(mcp.tenant_deny) == 1 with input as call("ledger_x", {}, {"tenant": "finance"}) with data.library.tenant as c
}

# The puppet attack: the model was told to act for another tenant. The
# argument does not count, the verified claim does.
test_tenant_argument_must_be_callers if {
	r := mcp.tenant_deny with input as call("echo", {"tenant_id": "healthcare"}, {"tenant": "finance"}) with data.library.tenant as cfg
	r == {`tenant: argument "tenant_id" names tenant "healthcare"; the caller's tenant is "finance"`}
	count(mcp.tenant_deny) == 0 with input as call("echo", {"tenant_id": "finance"}, {"tenant": "finance"}) with data.library.tenant as cfg
}

test_tenant_argument_not_a_string if {
	r := mcp.tenant_deny with input as call("echo", {"tenant_id": ["finance"]}, {"tenant": "finance"}) with data.library.tenant as cfg
	r == {`tenant: argument "tenant_id" names tenant ["finance"]; the caller's tenant is "finance"`}
}

test_cluster_owned_by_tenant if {
	inp := object.union(call("echo", {}, {"tenant": "finance"}), {"xds": {"cluster_name": "ehr_mcp"}})
	r := mcp.tenant_deny with input as inp with data.library.tenant as cfg
	r == {`tenant: upstream cluster "ehr_mcp" belongs to tenant "healthcare"; the caller's tenant is "finance"`}
	inp2 := object.union(inp, {"identity": {"claims": {"tenant": "healthcare"}}})
	count(mcp.tenant_deny) == 0 with input as inp2 with data.library.tenant as cfg
}

test_cluster_covers_transport_requests if {
	inp := {"http": {"method": "GET"}, "xds": {"cluster_name": "ehr_mcp"}, "identity": {"claims": {"tenant": "finance"}}}
	count(mcp.tenant_deny) == 1 with input as inp with data.library.tenant as cfg
}

test_route_owned_by_tenant if {
	inp := object.union(call("echo", {}, {"tenant": "healthcare"}), {"xds": {"route_name": "finance_route"}})
	r := mcp.tenant_deny with input as inp with data.library.tenant as cfg
	r == {`tenant: route "finance_route" belongs to tenant "finance"; the caller's tenant is "healthcare"`}
}

test_tool_and_cluster_both_checked if {
	inp := object.union(call("ledger_x", {}, {"tenant": "finance"}), {"xds": {"cluster_name": "ehr_mcp"}})
	count(mcp.tenant_deny) == 1 with input as inp with data.library.tenant as cfg
}

test_prompts_and_resources if {
	p := {"mcp": {"method": "prompts/get", "prompt": {"name": "diagnose", "arguments": {}}}, "identity": {"claims": {"tenant": "finance"}}}
	mcp.tenant_deny == {`tenant: prompt "diagnose" belongs to tenant "healthcare"; the caller's tenant is "finance"`} with input as p with data.library.tenant as cfg
	r := {"mcp": {"method": "resources/read", "resource": {"uri": "ehr://patients/1"}}, "identity": {"claims": {"tenant": "finance"}}}
	mcp.tenant_deny == {`tenant: resource "ehr://patients/1" belongs to tenant "healthcare"; the caller's tenant is "finance"`} with input as r with data.library.tenant as cfg
}

test_prompt_tenant_argument if {
	p := {"mcp": {"method": "prompts/get", "prompt": {"name": "greet", "arguments": {"tenant_id": "healthcare"}}}, "identity": {"claims": {"tenant": "finance"}}}
	count(mcp.tenant_deny) == 1 with input as p with data.library.tenant as cfg
}

test_inert_without_data if {
	count(mcp.tenant_deny) == 0 with input as call("patient_lookup", {"tenant_id": "x"}, {"tenant": "finance"})
}
