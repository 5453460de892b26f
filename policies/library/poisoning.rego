# Library: poisoning -- tools whose definitions carry hidden instructions for
# the model are refused and hidden from tools/list.
#
# The filter scans each tool definition an upstream lists (description,
# title, every string in inputSchema and outputSchema, annotations; see
# docs/detectors.md) and gives the policy what it found as
# input.mcp.tool.definition.poisoning, an array of
#   {"kind": "hidden_directive" | "exfiltration" | "invisible_unicode" |
#            "bidi_control" | "shadowing",
#    "pointer": "/description", "excerpt": "<up to 80 characters>"}
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named poisoning_*. It does nothing
# until data.library.poisoning is set ({} turns it on with the defaults).
#
# data.library.poisoning
#   kinds   The finding kinds that refuse a tool. Default: all five.
#   allow   Tool names or globs never refused by this file (a tool you have
#           reviewed, whose description trips a detector). Pair it with
#           pins.rego, so a reviewed tool that changes later is caught.
#
# Listings: when the filter decides which tools a tools/list shows a caller, it
# evaluates a tools/call of each tool (input.mcp.listing: true); a refused tool
# is not listed.
#
# The reason names the kinds only: pointers and excerpts are the server's text
# (property names, descriptions) and are not repeated to the client, which
# may be a model. They are in input.mcp.tool for the audit log.
#   poisoning: tool "add" has a suspicious description or schema (exfiltration, hidden_directive)
package mcp

import rego.v1

# Rules come before the rules that use them (regorus 0.14.1 interpreter).

poisoning_config := data.library.poisoning

poisoning_all_kinds := ["hidden_directive", "exfiltration", "invisible_unicode", "bidi_control", "shadowing"]

poisoning_kinds := object.get(poisoning_config, "kinds", poisoning_all_kinds)

# The client's request (or the filter's listing check), not a server's answer.
poisoning_tool := name if {
	poisoning_config
	not input.mcp.direction == "server_to_client"
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

poisoning_match(pattern, name) if pattern == name

poisoning_match(pattern, name) if glob.match(pattern, null, name)

poisoning_exempt if {
	some pattern in object.get(poisoning_config, "allow", [])
	poisoning_match(pattern, poisoning_tool)
}

poisoning_found contains kind if {
	poisoning_tool
	some f in input.mcp.tool.definition.poisoning
	kind := f.kind
	kind in poisoning_kinds
}

poisoning_deny contains msg if {
	name := poisoning_tool
	count(poisoning_found) > 0
	not poisoning_exempt
	msg := sprintf(
		"poisoning: tool %q has a suspicious description or schema (%s)",
		[name, concat(", ", sort(poisoning_found))],
	)
}

deny contains msg if some msg in poisoning_deny
