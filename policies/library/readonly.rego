# Library: readonly -- read-only mode from the tools' own annotations.
#
# The filter gives the policy the called tool's definition as the server
# listed it in tools/list (input.mcp.tool.definition, with `annotations`:
# readOnlyHint, destructiveHint, idempotentHint, openWorldHint). In
# read-only mode, only tools the server marks readOnlyHint: true may be
# called. Annotations are what the server says about its tools: they are
# as trustworthy as the server, and they never come from the client.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named readonly_*. It does nothing
# until data.library.readonly is set.
#
# data.library.readonly
#   enabled           true: read-only mode for every upstream.
#   clusters          Envoy upstream clusters (input.xds.cluster_name) in read-only
#                     mode, when one Envoy fronts several servers.
#   routes            Envoy route names (input.xds.route_name) in read-only mode.
#   allow             Tool names or globs exempt from read-only mode (and from
#                     deny_destructive), e.g. a tool known to be harmless whose
#                     server does not annotate it.
#   deny_destructive  true: deny tools annotated destructiveHint: true, in read-only
#                     mode or not (a tool that is also readOnlyHint: true is not
#                     destructive: the MCP spec says destructiveHint only means
#                     something when readOnlyHint is false).
#   assume_destructive
#                     true: for deny_destructive, treat a tool without
#                     destructiveHint (and not read-only) as destructive, which
#                     is the MCP spec's default for the hint. It also refuses
#                     tools whose definition is unknown. Default false.
#
# In read-only mode a tool whose definition is unknown (the proxy has not
# seen it in a tools/list answer from that server, e.g. just after a restart
# or a tool the server never listed) is denied: read-only mode fails closed.
# Clients list tools before calling them, so this is rare in practice.
#
# Reasons:
#   readonly: tool "delete_record" is not annotated readOnlyHint: true, and this server is in read-only mode
#   readonly: tool "x" has no known definition (the proxy has not seen it in tools/list), and this server is in read-only mode
#   readonly: tool "drop_table" is destructive (destructiveHint: true)
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

readonly_config := data.library.readonly

readonly_active if readonly_config.enabled == true

readonly_active if input.xds.cluster_name in object.get(readonly_config, "clusters", [])

readonly_active if input.xds.route_name in object.get(readonly_config, "routes", [])

readonly_tool := name if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
}

readonly_exempt if {
	some pattern in object.get(readonly_config, "allow", [])
	readonly_match(pattern, readonly_tool)
}

readonly_match(pattern, name) if pattern == name

readonly_match(pattern, name) if glob.match(pattern, null, name)

readonly_annotations := object.get(input.mcp.tool.definition, "annotations", {})

readonly_read_only if readonly_annotations.readOnlyHint == true

readonly_destructive if {
	not readonly_read_only
	readonly_annotations.destructiveHint == true
}

readonly_destructive if {
	readonly_config.assume_destructive == true
	input.mcp.tool.definition
	not readonly_read_only
	not "destructiveHint" in object.keys(readonly_annotations)
}

readonly_destructive if {
	readonly_config.assume_destructive == true
	not input.mcp.tool.definition
}

readonly_destructive_reason(name) := sprintf("readonly: tool %q is destructive (destructiveHint: true)", [name]) if {
	readonly_annotations.destructiveHint == true
} else := sprintf("readonly: tool %q may be destructive (no destructiveHint, and not read-only)", [name]) if {
	input.mcp.tool.definition
} else := sprintf("readonly: tool %q has no known definition, so it may be destructive", [name])

readonly_deny contains msg if {
	readonly_active
	name := readonly_tool
	not readonly_exempt
	not input.mcp.tool.definition
	msg := sprintf("readonly: tool %q has no known definition (the proxy has not seen it in tools/list), and this server is in read-only mode", [name])
}

readonly_deny contains msg if {
	readonly_active
	name := readonly_tool
	not readonly_exempt
	input.mcp.tool.definition
	not readonly_read_only
	msg := sprintf("readonly: tool %q is not annotated readOnlyHint: true, and this server is in read-only mode", [name])
}

readonly_deny contains msg if {
	readonly_config.deny_destructive == true
	name := readonly_tool
	not readonly_exempt
	readonly_destructive
	msg := readonly_destructive_reason(name)
}

deny contains msg if some msg in readonly_deny
