# Policy of envoy/mtls-server.yaml: the server-side Envoy requires a client
# certificate from the mesh CA. The peer's URI SAN, its SPIFFE ID, is
# input.source.principal; data.json says which tools each agent may call.
package mcp

import rego.v1

default allow := true

principal := object.get(input, ["source", "principal"], "")

agent := data.agents[principal]

deny contains "mutual TLS required" if {
	not input.connection.mtls
}

deny contains sprintf("TLS 1.3 required (this connection: %s)", [tls]) if {
	tls := object.get(input, ["connection", "tls_version"], "no TLS")
	tls != "TLSv1.3"
}

deny contains sprintf("unknown workload %q", [principal]) if {
	not data.agents[principal]
}

deny contains sprintf("%s may not call tool %q", [agent.name, input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	not input.mcp.tool.name in agent.tools
}
