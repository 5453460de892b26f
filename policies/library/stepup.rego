# Library: stepup -- sensitive or destructive tools need a stronger
# authentication than the caller's token shows (multi-factor, a recent
# login); the reason says exactly which claim is missing, so the client can
# send the user through step-up and retry.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named stepup_*. It does nothing until
# data.library.stepup is set.
#
# data.library.stepup
#   tools            Tool names or globs that need step-up.
#   destructive      true: also every tool the server annotates
#                    destructiveHint: true (and not readOnlyHint: true), from
#                    the tool's definition (input.mcp.tool.definition).
#   require          The claims that count as step-up: a list of requirements,
#                    ANY of which suffices. Each is
#                      {"claim": "acr", "any_of": ["mfa", "phr"]}
#                    where `claim` names a top-level claim (a string) or a path
#                    into nested claims (an array), and the claim must be one of
#                    `any_of` (a string claim such as acr) or contain one of them
#                    (an array claim such as amr). Default:
#                      [{"claim": "acr", "any_of": ["mfa"]}, {"claim": "amr", "any_of": ["mfa"]}]
#   max_age_seconds  Optional: the `auth_time` claim must be at most this many
#                    seconds old (a recent login, as OpenID Connect's max_age).
#
# Claims come from the token Envoy's jwt_authn verified
# (input.identity.claims), never from the request itself.
#
# Reasons:
#   stepup: tool "delete_record" needs step-up authentication: claim "acr" containing "mfa" or claim "amr" containing "mfa"; the token has "amr": ["pwd"] and no "acr" claim
#   stepup: tool "delete_record" needs an authentication at most 300 s old; the token's auth_time is 3600 s old
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

stepup_config := data.library.stepup

stepup_default_require := [{"claim": "acr", "any_of": ["mfa"]}, {"claim": "amr", "any_of": ["mfa"]}]

stepup_match(pattern, name) if pattern == name

stepup_match(pattern, name) if glob.match(pattern, null, name)

stepup_tool := name if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

stepup_listed if {
	some pattern in object.get(stepup_config, "tools", [])
	stepup_match(pattern, stepup_tool)
}

stepup_destructive if {
	stepup_config.destructive == true
	annotations := input.mcp.tool.definition.annotations
	annotations.destructiveHint == true
	not annotations.readOnlyHint == true
}

stepup_needed if stepup_listed

stepup_needed if stepup_destructive

stepup_claim(path) := input.identity.claims[path] if is_string(path)

stepup_claim(path) := value if {
	is_array(path)
	value := object.get(input.identity.claims, path, null)
	value != null
}

stepup_claim_name(path) := path if is_string(path)

stepup_claim_name(path) := concat(".", [sprintf("%v", [p]) | some p in path]) if is_array(path)

stepup_values(value) := {value} if not is_array(value)

stepup_values(value) := {v | some v in value} if is_array(value)

stepup_satisfied(req) if {
	some v in stepup_values(stepup_claim(req.claim))
	v in req.any_of
}

stepup_requirements := object.get(stepup_config, "require", stepup_default_require)

stepup_any_satisfied if {
	some req in stepup_requirements
	stepup_satisfied(req)
}

stepup_requirement_text(req) := sprintf("claim %s containing %s", [json.marshal(stepup_claim_name(req.claim)), json.marshal(req.any_of[0])]) if {
	count(req.any_of) == 1
} else := sprintf("claim %s containing one of %s", [json.marshal(stepup_claim_name(req.claim)), concat(", ", [json.marshal(v) | some v in req.any_of])])

# What the token has, for each claim the requirements name.
stepup_has_text(req) := sprintf("%s: %s", [json.marshal(stepup_claim_name(req.claim)), json.marshal(stepup_claim(req.claim))]) if {
	stepup_claim(req.claim)
} else := sprintf("no %s claim", [json.marshal(stepup_claim_name(req.claim))])

stepup_caller_text := concat("", ["the token has ", concat(" and ", [stepup_has_text(req) | some req in stepup_requirements])]) if {
	input.identity
} else := "the caller is not authenticated"

stepup_what := sprintf("tool %q is destructive and", [stepup_tool]) if {
	not stepup_listed
	stepup_destructive
} else := sprintf("tool %q", [stepup_tool])

stepup_now_seconds := time.now_ns() / 1000000000

# The auth_time claim, or null (always defined: `not is_number(x)` fails when
# x is undefined, in OPA as in the filter, so the rule below needs a value).
stepup_auth_time := input.identity.claims.auth_time if {
	"auth_time" in object.keys(object.get(input.identity, "claims", {}))
} else := null

stepup_deny contains msg if {
	stepup_needed
	not stepup_any_satisfied
	needs := concat(" or ", [stepup_requirement_text(req) | some req in stepup_requirements])
	msg := sprintf("stepup: %s needs step-up authentication: %s; %s", [stepup_what, needs, stepup_caller_text])
}

stepup_deny contains msg if {
	stepup_needed
	max_age := stepup_config.max_age_seconds
	is_number(max_age)
	not is_number(stepup_auth_time)
	msg := sprintf("stepup: %s needs an authentication at most %v s old; the token has no \"auth_time\" claim", [stepup_what, max_age])
}

stepup_deny contains msg if {
	stepup_needed
	max_age := stepup_config.max_age_seconds
	is_number(max_age)
	auth_time := stepup_auth_time
	is_number(auth_time)
	age := floor(stepup_now_seconds - auth_time)
	age > max_age
	msg := sprintf("stepup: %s needs an authentication at most %v s old; the token's auth_time is %v s old", [stepup_what, max_age, age])
}

deny contains msg if some msg in stepup_deny
