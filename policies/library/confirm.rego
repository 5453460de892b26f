# Library: confirm -- a person approves the exact call before it runs.
#
# Adds `confirm` messages (docs/decision.md, docs/approval.md): for such a
# tools/call the filter asks the person at the client (an MCP 2026-07-28
# form elicitation) and forwards the call only when the same call comes
# back approved, signed by the filter and within its validity. The filter
# needs `approval.keys` in its configuration; without them, or for a client
# on an older protocol version, these calls are denied with the reason.
#
# Load this file next to your main policy (package mcp). It only adds
# `confirm` messages; its helpers are all named confirm_*. It does nothing
# until data.library.confirm is set.
#
# data.library.confirm
#   destructive   true: tools the server annotates destructiveHint: true (and
#                 not readOnlyHint: true) in its tools/list answer
#                 (input.mcp.tool.definition.annotations). Annotations are
#                 what the server says: as trustworthy as the server.
#   unknown       true: with `destructive`, also tools whose definition the
#                 filter has not seen (fail closed). Default false.
#   tools         Tool names or globs that always need confirmation.
#   thresholds    [{"tool": name or glob, "argument": name, "above": number}]:
#                 the numeric argument is above the number (e.g. a payment's
#                 amount).
#   except        Tool names or globs never asked about (e.g. a tool the
#                 server annotates destructive that is harmless here).
#
# Messages (shown to the person, and in the audit event's approval.confirm):
#   tool "drop_table" is marked destructive by its server
#   tool "drop_table" has no known definition, so it may be destructive
#   tool "deploy" needs a person's approval (data.library.confirm.tools)
#   argument "amount" of "pay" is 5000, above 1000
package mcp

import rego.v1

# Rules come before the rules that use them (a regorus 0.14.1 quirk, see
# readonly.rego).

confirm_config := data.library.confirm

confirm_tool := name if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

confirm_match(pattern, name) if pattern == name

confirm_match(pattern, name) if glob.match(pattern, null, name)

confirm_excepted if {
	some pattern in object.get(confirm_config, "except", [])
	confirm_match(pattern, confirm_tool)
}

confirm_annotations := object.get(input.mcp.tool.definition, "annotations", {})

confirm_destructive if {
	not confirm_annotations.readOnlyHint == true
	confirm_annotations.destructiveHint == true
}

confirm_listed if {
	some pattern in object.get(confirm_config, "tools", [])
	confirm_match(pattern, confirm_tool)
}

confirm_asks contains msg if {
	confirm_config.destructive == true
	name := confirm_tool
	not confirm_excepted
	confirm_destructive
	msg := sprintf("tool %q is marked destructive by its server", [name])
}

confirm_asks contains msg if {
	confirm_config.destructive == true
	confirm_config.unknown == true
	name := confirm_tool
	not confirm_excepted
	not input.mcp.tool.definition
	msg := sprintf("tool %q has no known definition, so it may be destructive", [name])
}

confirm_asks contains msg if {
	name := confirm_tool
	not confirm_excepted
	confirm_listed
	msg := sprintf("tool %q needs a person's approval (data.library.confirm.tools)", [name])
}

confirm_asks contains msg if {
	name := confirm_tool
	not confirm_excepted
	some t in object.get(confirm_config, "thresholds", [])
	confirm_match(t.tool, name)
	value := object.get(object.get(input.mcp.tool, "arguments", {}), t.argument, null)
	is_number(value)
	value > t.above
	msg := sprintf("argument %q of %q is %v, above %v", [t.argument, name, value, t.above])
}

confirm contains msg if some msg in confirm_asks
