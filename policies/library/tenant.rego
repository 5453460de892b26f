# Library: tenant -- tenant isolation. Tools, prompts, resources and whole
# upstreams belong to tenants; a caller may only reach those of its own
# tenant, as stated by its verified token. What the model was told (a
# "puppet" prompt naming another tenant, a tenant argument) does not count.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named tenant_*. It does nothing until
# data.library.tenant is set.
#
# data.library.tenant
#   claim      The claim that holds the caller's tenant. Default "tenant". A
#              string names a top-level claim; an array is a path into nested
#              claims (["org", "id"]). The claim may be a string or an array
#              of strings (a caller that belongs to several tenants).
#   tools      Tool name or glob -> owning tenant ("finance_*": "finance").
#   prompts    Prompt name or glob -> owning tenant.
#   resources  Resource URI or glob -> owning tenant ("hr://*": "hr").
#   clusters   Envoy upstream cluster (input.xds.cluster_name) -> owning
#              tenant: every request routed there belongs to that tenant,
#              including transport requests (GET stream, DELETE), when one
#              Envoy fronts several MCP servers.
#   routes     Envoy route name (input.xds.route_name) -> owning tenant, likewise.
#   arguments  Argument names that carry a tenant (["tenant", "tenant_id"]).
#              When a tools/call or prompts/get passes one, its value must be
#              one of the caller's tenants.
#   An owner may also be an array of tenants: any of them may use it.
#   Globs: `*`, `?`, `[abc]`, no delimiter (`*` also matches `.` and `/`).
#
# Everything that matches is checked: a tool owned by "finance" behind a
# cluster owned by "healthcare" needs both. Anything no entry matches is
# shared. Reasons read like
#   tenant: tool "patient_lookup" belongs to tenant "healthcare"; the caller's tenant is "finance"
#
# Example:
#   {"library": {"tenant": {
#     "claim": "tenant",
#     "tools": {"ledger_*": "finance", "patient_*": "healthcare"},
#     "clusters": {"ehr_mcp": "healthcare"},
#     "arguments": ["tenant_id"]}}}
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

tenant_config := data.library.tenant

tenant_claim_value := input.identity.claims[path] if {
	path := object.get(tenant_config, "claim", "tenant")
	is_string(path)
}

tenant_claim_value := value if {
	path := tenant_config.claim
	is_array(path)
	value := object.get(input.identity.claims, path, null)
}

tenant_caller contains tenant_claim_value if is_string(tenant_claim_value)

tenant_caller contains t if {
	is_array(tenant_claim_value)
	some t in tenant_claim_value
	is_string(t)
}

tenant_owners(owner) := {owner} if is_string(owner)

tenant_owners(owner) := {t | some t in owner; is_string(t)} if is_array(owner)

tenant_match(pattern, name) if pattern == name

tenant_match(pattern, name) if glob.match(pattern, null, name)

# [noun, name, owners] for everything the message touches that a tenant owns.
tenant_owned contains ["tool", name, tenant_owners(owner)] if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
	some pattern, owner in object.get(tenant_config, "tools", {})
	tenant_match(pattern, name)
}

tenant_owned contains ["prompt", name, tenant_owners(owner)] if {
	name := input.mcp.prompt.name
	is_string(name)
	some pattern, owner in object.get(tenant_config, "prompts", {})
	tenant_match(pattern, name)
}

tenant_owned contains ["resource", uri, tenant_owners(owner)] if {
	uri := input.mcp.resource.uri
	is_string(uri)
	some pattern, owner in object.get(tenant_config, "resources", {})
	tenant_match(pattern, uri)
}

tenant_owned contains ["upstream cluster", cluster, tenant_owners(owner)] if {
	cluster := input.xds.cluster_name
	owner := tenant_config.clusters[cluster]
}

tenant_owned contains ["route", route, tenant_owners(owner)] if {
	route := input.xds.route_name
	owner := tenant_config.routes[route]
}

tenant_quoted(names) := concat(", ", [sprintf("%q", [n]) | some n in sort(names)])

tenant_owner_text(owners) := sprintf("tenant %q", [t]) if {
	count(owners) == 1
	some t in owners
}

tenant_owner_text(owners) := concat("", ["tenants ", tenant_quoted(owners)]) if count(owners) != 1

tenant_caller_text := sprintf("the caller's tenant is %q", [sort(tenant_caller)[0]]) if {
	count(tenant_caller) == 1
} else := concat("", ["the caller's tenants are ", tenant_quoted(tenant_caller)]) if {
	count(tenant_caller) > 1
} else := "the caller has no tenant" if {
	input.identity
} else := "the caller is not authenticated"

# Arguments that name a tenant.
tenant_arguments contains [name, value] if {
	args := object.get(input.mcp, "tool", object.get(input.mcp, "prompt", {})).arguments
	some name in object.get(tenant_config, "arguments", [])
	value := args[name]
}

tenant_deny contains msg if {
	some [what, name, owners] in tenant_owned
	count(owners & tenant_caller) == 0
	msg := sprintf("tenant: %s %q belongs to %s; %s", [what, name, tenant_owner_text(owners), tenant_caller_text])
}

tenant_deny contains msg if {
	some [name, value] in tenant_arguments
	not value in tenant_caller
	msg := sprintf("tenant: argument %q names tenant %s; %s", [name, json.marshal(value), tenant_caller_text])
}

deny contains msg if some msg in tenant_deny
