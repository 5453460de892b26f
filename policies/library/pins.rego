# Library: pins -- a tool whose definition changed since it was first seen
# (a "rug pull") is refused, and hidden from tools/list, until an operator
# approves the new definition.
#
# The filter hashes each tool definition an upstream lists (sha256 of the
# canonical JSON of name, title, description, inputSchema, outputSchema and
# annotations; docs/detectors.md) and pins the first hash it sees per
# upstream and tool, in shared data (pins outlive policy reloads). The
# policy sees the comparison as input.mcp.tool.definition.pin:
#   {"status": "new" | "pinned" | "changed", "hash": "<sha256 hex now>",
#    "pinned_hash": "<sha256 hex first seen>", "pinned_at_ms": <ms>}
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named pins_*. It does nothing until
# data.library.pins is set ({} turns it on with the defaults below).
#
# Approving a changed tool: put its new hash (from the reason, or the audit
# record) into the policy data, for any upstream:
#   {"mcp": {"approved_tools": {"add": "9f2c…"}}}
# A call (and the listing) of "add" passes while its definition hashes to
# exactly that value. Another change needs another approval.
#
# data.library.pins
#   allow         Tool names or globs never refused for a change (e.g. tools whose
#                 descriptions legitimately change, like a dynamic date).
#   require_pin   true: also refuse a tools/call whose definition carries no pin
#                 (the proxy has not seen the tool listed, or could not pin it:
#                 store full or the per-upstream bound reached). Default false.
#
# Listings: when the filter decides which tools a tools/list shows a caller, it
# evaluates a tools/call of each tool (input.mcp.listing: true); a refused tool
# is not listed. So a changed tool disappears from lists too.
#
# Reasons:
#   pins: tool "add" changed since it was pinned (pinned sha256 1a2b…, now 9f2c…); approve the new definition with data.mcp.approved_tools["add"] = "9f2c…"
#   pins: tool "add" has no pinned definition
package mcp

import rego.v1

# Two regorus 0.14.1 quirks shape how this file is written:
# - Rules come before the rules that use them: the interpreter (which runs
#   the `with` tests) misses a rule defined further down when this module is
#   not the first module of package mcp.
# - In a rule with `else`, a body that fails by assigning an undefined value
#   makes the RVM skip the else. Such bodies test with plain conditions first.

pins_config := data.library.pins

# The client's request (or the filter's listing check), not a server's answer.
pins_request if {
	pins_config
	not input.mcp.direction == "server_to_client"
}

pins_tool := name if {
	pins_request
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

pins_match(pattern, name) if pattern == name

pins_match(pattern, name) if glob.match(pattern, null, name)

pins_exempt if {
	some pattern in object.get(pins_config, "allow", [])
	pins_match(pattern, pins_tool)
}

pins_pin := input.mcp.tool.definition.pin

pins_approved if {
	hash := pins_pin.hash
	is_string(hash)
	data.mcp.approved_tools[pins_tool] == hash
}

pins_short(hash) := substring(hash, 0, 12) if is_string(hash)

pins_short(hash) := "unknown" if not is_string(hash)

pins_shown(hash) := sprintf("%q", [hash]) if is_string(hash)

pins_shown(hash) := sprintf("%v", [hash]) if not is_string(hash)

pins_deny contains msg if {
	name := pins_tool
	pins_pin.status == "changed"
	not pins_exempt
	not pins_approved
	msg := sprintf(
		"pins: tool %q changed since it was pinned (pinned sha256 %s…, now %s…); approve the new definition with data.mcp.approved_tools[%q] = %s",
		[name, pins_short(pins_pin.pinned_hash), pins_short(pins_pin.hash), name, pins_shown(pins_pin.hash)],
	)
}

pins_deny contains msg if {
	name := pins_tool
	pins_config.require_pin == true
	not pins_pin
	not pins_exempt
	msg := sprintf("pins: tool %q has no pinned definition", [name])
}

deny contains msg if some msg in pins_deny
