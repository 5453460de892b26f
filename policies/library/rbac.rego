# Library: rbac -- which tools, prompts and resources each role may use,
# from the caller's verified JWT claims (input.identity.claims).
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; allow and the other decision rules stay in the main policy. Its
# helpers are all named rbac_*. It does nothing until data.library.rbac is set.
#
# data.library.rbac
#   claims    The claims that hold the caller's roles. Default ["roles", "groups"].
#             A string names a top-level claim ("roles",
#             "https://example.com/roles"); an array is a path into nested
#             claims (["realm_access", "roles"]). A claim may be an array of
#             strings or one string of names divided by spaces (like OAuth
#             `scope`). The caller's roles are the union over all claims.
#   roles     Role name -> {"tools": [...], "prompts": [...], "resources": [...]}:
#             what the role grants. Tools and prompts by name, resources by
#             URI. Each entry is an exact name or a glob (`*`, `?`, `[abc]`;
#             no delimiter: `*` also matches `.` and `/`).
#   public    {"tools": [...], "prompts": [...], "resources": [...]}: granted to
#             every caller, with or without a token. Optional.
#   enforce   Which kinds are governed: any of "tools", "prompts", "resources".
#             Default: every kind that appears in `roles` or `public`.
#
# A governed kind is default-deny: a tools/call (prompts/get and prompt
# completions; resources/read, subscribe, unsubscribe and resource
# completions) whose name no role of the caller grants is denied with
#   rbac: tool "delete_record" requires role "admin" (caller's roles: "viewer")
# A kind that is not governed is not checked. Other methods are not checked.
#
# Example:
#   {"library": {"rbac": {
#     "roles": {"viewer": {"tools": ["echo", "add", "read_*"]},
#               "admin":  {"tools": ["*"]}}}}}
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

rbac_config := data.library.rbac

# The caller's roles, from every configured claim.
rbac_claim(path) := input.identity.claims[path] if is_string(path)

rbac_claim(path) := value if {
	is_array(path)
	value := object.get(input.identity.claims, path, null)
}

rbac_names(value) := {x | some x in value; is_string(x)} if is_array(value)

rbac_names(value) := {x | some x in regex.find_n(`[^[:space:]]+`, value, -1)} if is_string(value)

rbac_caller_roles contains role if {
	some path in object.get(rbac_config, "claims", ["roles", "groups"])
	value := rbac_claim(path)
	some role in rbac_names(value)
}

# Whether a grant entry ({"tools": [...], ...}) covers a name.
rbac_match(pattern, name) if pattern == name

rbac_match(pattern, name) if glob.match(pattern, null, name)

rbac_grants(entry, kind, name) if {
	some pattern in object.get(entry, kind, [])
	rbac_match(pattern, name)
}

rbac_allowed(kind, name) if rbac_grants(object.get(rbac_config, "public", {}), kind, name)

rbac_allowed(kind, name) if {
	some role in rbac_caller_roles
	rbac_grants(rbac_config.roles[role], kind, name)
}

# [kind, noun, name] of what the message uses.
rbac_targets contains ["tools", "tool", name] if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

rbac_targets contains ["prompts", "prompt", name] if {
	name := input.mcp.prompt.name
	is_string(name)
}

rbac_targets contains ["resources", "resource", uri] if {
	uri := input.mcp.resource.uri
	is_string(uri)
}

# The governed kinds.
rbac_enforced contains kind if {
	some kind in rbac_config.enforce
}

rbac_enforced contains kind if {
	not rbac_config.enforce
	some role in object.get(rbac_config, "roles", {})
	some kind, _ in role
}

rbac_enforced contains kind if {
	not rbac_config.enforce
	some kind, _ in object.get(rbac_config, "public", {})
}

# The roles that would grant it.
rbac_granting(kind, name) := {role |
	some role, entry in object.get(rbac_config, "roles", {})
	rbac_grants(entry, kind, name)
}

rbac_quoted(names) := concat(", ", [sprintf("%q", [n]) | some n in sort(names)])

rbac_need_text(roles) := sprintf("role %q", [r]) if {
	count(roles) == 1
	some r in roles
}

rbac_need_text(roles) := concat("", ["one of the roles ", rbac_quoted(roles)]) if count(roles) > 1

rbac_caller_text := concat("", ["caller's roles: ", rbac_quoted(rbac_caller_roles)]) if {
	count(rbac_caller_roles) > 0
} else := "the caller has no roles" if {
	input.identity
} else := "the caller is not authenticated"

rbac_reason(kind, what, name) := sprintf("rbac: %s %q is not granted to any role", [what, name]) if {
	count(rbac_granting(kind, name)) == 0
}

rbac_reason(kind, what, name) := sprintf("rbac: %s %q requires %s (%s)", [what, name, need, rbac_caller_text]) if {
	roles := rbac_granting(kind, name)
	count(roles) > 0
	need := rbac_need_text(roles)
}

# The reasons this library gives for the current message.
rbac_deny contains msg if {
	some [kind, what, name] in rbac_targets
	kind in rbac_enforced
	not rbac_allowed(kind, name)
	msg := rbac_reason(kind, what, name)
}

deny contains msg if some msg in rbac_deny
