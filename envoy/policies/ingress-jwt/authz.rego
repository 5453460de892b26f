# Policy of envoy/ingress-jwt.yaml. Envoy's jwt_authn filter runs before the
# module and verifies the caller's bearer token against the JWKS; the module
# gives the policy the verified payload as input.identity.claims (and `sub` as
# input.identity.subject). It never decodes a token itself.
package mcp

import rego.v1

default allow := true

subject := object.get(input, ["identity", "subject"], "an unidentified caller")

roles := object.get(input, ["identity", "claims", "roles"], [])

# jwt_authn already refuses /mcp requests without a valid token (401). An MCP
# message without verified claims here means the filter order or the jwt_authn
# rules were changed: refuse rather than trust the request.
deny contains "no verified identity: the request did not pass jwt_authn" if {
	not input.identity.claims
}

# Tools that change records need the admin role.
admin_tools := {"delete_record"}

deny contains sprintf("tool %q needs role admin (%s has roles %v)", [input.mcp.tool.name, subject, roles]) if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name in admin_tools
	not "admin" in roles
}

# The listener offers TLS 1.3 only; this holds even if that setting drifts.
deny contains sprintf("TLS 1.3 required (this connection: %s)", [tls]) if {
	tls := object.get(input, ["connection", "tls_version"], "no TLS")
	tls != "TLSv1.3"
}
