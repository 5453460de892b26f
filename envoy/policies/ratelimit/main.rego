# Rate limits counted by Envoy's own rate-limit filters (envoy/ratelimit-local.yaml,
# envoy/ratelimit-global.yaml): every tools/call carries a descriptor (the
# caller's principal and the tool, with a cost per tool) in the `rate_limit`
# output; Envoy's local_ratelimit (per instance) or ratelimit (the global
# service, mesh-wide) filter counts it and answers 429 past the limit.
# The descriptor comes from policies/library/ratelimit.rego (library.txt),
# configured in data.json.
package mcp

import rego.v1

default allow := true

# Every tool call needs a verified caller (jwt_authn runs first).
deny contains "authentication required" if {
	input.mcp.method == "tools/call"
	not input.identity.subject
}

rate_limit := ratelimit_descriptor if ratelimit_descriptor
