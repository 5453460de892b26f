# The default policy shipped with mcp-policy: the one `make run` loads and
# envoy/envoy.yaml carries. It lets MCP traffic through and shows the three
# shapes of rule most policies start from: a tool denylist, an argument
# constraint, and an allowlist on an argument value.
#
# Contract (docs/policy.md): package `mcp`; `allow` must be exactly true;
# every member of the `deny` set denies the message and is a reason the
# client reads.
package mcp

import rego.v1

# Every message and transport request (the 2025-era GET stream and DELETE)
# is allowed unless a deny rule below matches.
default allow := true

# Tools no agent may call through this proxy.
blocked_tools := {"delete_record"}

deny contains sprintf("tool %q is blocked by policy", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name in blocked_tools
}

# read_file: only paths under /workspace/, no traversal.
deny contains sprintf("read_file may only read under /workspace/ (asked for %s)", [shown(path)]) if {
	input.mcp.tool.name == "read_file"
	path := object.get(input.mcp.tool.arguments, "path", "")
	not workspace_path(path)
}

workspace_path(path) if {
	is_string(path)
	startswith(path, "/workspace/")
	not contains(path, "..")
}

# send_email: only to addresses in example.com.
deny contains sprintf("send_email may only send to @example.com addresses (asked for %s)", [shown(to)]) if {
	input.mcp.tool.name == "send_email"
	to := object.get(input.mcp.tool.arguments, "to", "")
	not internal_address(to)
}

internal_address(to) if {
	is_string(to)
	endswith(lower(to), "@example.com")
}

# An argument as a reason shows it: a string in quotes, anything else as
# written. Not sprintf's %q on the value itself: regorus' %q accepts only
# strings, and a reason that fails to format would make its deny rule
# silently not fire (docs/policy.md, "Differences from OPA").
shown(v) := sprintf("%q", [v]) if is_string(v)

shown(v) := sprintf("%v", [v]) if not is_string(v)
