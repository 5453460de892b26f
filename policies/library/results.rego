# Library: results -- what servers send back: secrets and personal data in
# results are redacted, and a tools/call result carrying prompt-injection
# markers is blocked.
#
# On a server-to-client response (input.mcp.direction "server_to_client",
# input.mcp.kind "response"; input.mcp.method, tool, prompt and resource are
# those of the request it answers) the filter runs its built-in detectors
# over the result of tools/call, resources/read and prompts/get and gives
# the policy input.mcp.findings, an array of
#   {"kind": "secret" | "pii" | "injection" | "limit",
#    "detector": "aws_access_key" | "email" | "ignore_instructions" | …,
#    "pointer": "/content/0/text", "start": 6, "end": 26}
# (offsets into that string; never the matched text). docs/detectors.md
# lists every detector; kind "limit" means part of the result was not
# scanned (too large, or too many findings).
#
# Load this file next to your main policy (package mcp). It adds `deny`
# reasons and members of the optional `redact` set: the names of kinds or
# detectors whose spans the filter replaces with "[REDACTED:<detector>]" in
# the result it forwards. Write your own redact rules as `redact contains …`
# too (a complete `redact := true` beside this file is a conflict). Its
# helpers are all named results_*. It does nothing until
# data.library.results is set ({} turns it on with the defaults below).
#
# data.library.results
#   methods        Whose results are inspected. Default
#                  ["tools/call", "resources/read", "prompts/get"].
#   redact         Kinds or detector names to redact. Default ["secret", "pii"].
#   block          Kinds or detector names that block the whole result.
#                  Default ["injection"].
#   block_methods  Where `block` applies. Default ["tools/call"] (a prompt
#                  template or a document may quote such phrases on purpose;
#                  add "resources/read" to block those too).
#   unscanned      "deny" (default) or "allow": a result part of which was not
#                  scanned (a kind "limit" finding) is blocked, on every
#                  inspected method: the filter fails closed.
#   allow_tools    Tool names or globs whose results are neither redacted nor
#                  blocked (e.g. a secrets manager whose job is to return one).
#
# A blocked result reaches the client as an error for its request. Reasons:
#   results: the result of tools/call "fetch_page" is blocked (detected: ignore_instructions, role_tag)
#   results: the result of resources/read is blocked: part of it was not scanned (scan_truncated)
package mcp

import rego.v1

# Rules come before the rules that use them (regorus 0.14.1 interpreter).

results_config := data.library.results

results_match(pattern, name) if pattern == name

results_match(pattern, name) if glob.match(pattern, null, name)

results_exempt if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
	some pattern in object.get(results_config, "allow_tools", [])
	results_match(pattern, name)
}

# A server's answer to a request whose results this file inspects.
results_inspected if {
	results_config
	input.mcp.direction == "server_to_client"
	input.mcp.kind == "response"
	input.mcp.method in object.get(results_config, "methods", ["tools/call", "resources/read", "prompts/get"])
	not results_exempt
}

results_findings contains f if {
	results_inspected
	some f in input.mcp.findings
}

results_selects(f, name) if f.kind == name

results_selects(f, name) if f.detector == name

redact contains name if {
	some f in results_findings
	some name in object.get(results_config, "redact", ["secret", "pii"])
	results_selects(f, name)
}

results_blocked contains f.detector if {
	input.mcp.method in object.get(results_config, "block_methods", ["tools/call"])
	some f in results_findings
	some name in object.get(results_config, "block", ["injection"])
	results_selects(f, name)
}

results_unscanned contains f.detector if {
	not results_config.unscanned == "allow"
	some f in results_findings
	f.kind == "limit"
}

results_what := sprintf("tools/call %q", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
} else := sprintf("prompts/get %q", [input.mcp.prompt.name]) if {
	input.mcp.method == "prompts/get"
	is_string(input.mcp.prompt.name)
} else := input.mcp.method

results_deny contains msg if {
	count(results_blocked) > 0
	msg := sprintf(
		"results: the result of %s is blocked (detected: %s)",
		[results_what, concat(", ", sort(results_blocked))],
	)
}

results_deny contains msg if {
	count(results_unscanned) > 0
	msg := sprintf(
		"results: the result of %s is blocked: part of it was not scanned (%s)",
		[results_what, concat(", ", sort(results_unscanned))],
	)
}

deny contains msg if some msg in results_deny
