# Policy of envoy/egress.yaml: one Envoy beside an agent, several upstream MCP
# servers, one policy. Each request is keyed by the Envoy route it matched
# (input.xds.route_name: "github", "files") and the cluster it goes to
# (input.xds.cluster_name); data.json says what the agent may do on each.
package mcp

import rego.v1

default allow := true

route := object.get(input, ["xds", "route_name"], "")

server := data.servers[route]

deny contains sprintf("no MCP server is configured for route %q (path %s)", [route, input.http.path]) if {
	not data.servers[route]
}

# The route and the cluster must agree: a route edited to point elsewhere
# does not inherit the permissions of the server it used to reach.
deny contains sprintf("route %q must go to cluster %q, not %q", [route, server.cluster, cluster]) if {
	cluster := object.get(input, ["xds", "cluster_name"], "")
	cluster != server.cluster
}

deny contains sprintf("tool %q is not allowed on %s (allowed: %s)", [input.mcp.tool.name, route, concat(", ", server.tools)]) if {
	input.mcp.method == "tools/call"
	not input.mcp.tool.name in server.tools
}

deny contains sprintf("%s: read_file may only read under %s (asked for %s)", [route, server.read_prefix, shown(path)]) if {
	input.mcp.tool.name == "read_file"
	path := object.get(input.mcp.tool.arguments, "path", "")
	not under_prefix(path, server.read_prefix)
}

under_prefix(path, prefix) if {
	is_string(path)
	startswith(path, prefix)
	not contains(path, "..")
}

# An argument as a reason shows it: a string in quotes, anything else as
# written (regorus' %q accepts only strings; a reason that fails to format
# would make its deny rule silently not fire).
shown(v) := sprintf("%q", [v]) if is_string(v)

shown(v) := sprintf("%v", [v]) if not is_string(v)
