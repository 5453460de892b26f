# Library: killswitch -- principals and sessions killed through policy data.
#
# Operators kill an identity (every session of it) or one session by
# publishing policy data, typically in a policy bundle (docs/bundles.md):
# every Envoy polling the bundle source applies it within one poll interval,
# so the kill holds across a whole mesh. Lifting it is removing the entry.
# Nothing is stored by the proxy: the kill lasts exactly as long as the data
# says so. (For kills decided by the policy itself, per Envoy, see the `kill`
# output in docs/decision.md.)
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named killswitch_*. It does nothing
# until data.library.killswitch is set.
#
# data.library.killswitch
#   principals  An object: principal -> reason. A principal is
#               "sub:<subject>" (the verified JWT's `sub`, input.identity.subject)
#               or "peer:<URI SAN>" (the TLS peer, input.source.principal), as
#               in docs/input.md.
#   sessions    An object: Mcp-Session-Id -> reason.
#
# Reasons:
#   killswitch: principal sub:alice is killed: stolen token
#   killswitch: session 1c75e0b2 is killed: prompt injection seen

package mcp

import rego.v1

# The caller's principals, as docs/input.md names them.
killswitch_principals contains sprintf("sub:%s", [input.identity.subject]) if is_string(input.identity.subject)

killswitch_principals contains sprintf("peer:%s", [input.source.principal]) if is_string(input.source.principal)

deny contains sprintf("killswitch: principal %s is killed: %s", [p, reason]) if {
	some p in killswitch_principals
	reason := data.library.killswitch.principals[p]
}

deny contains sprintf("killswitch: session %s is killed: %s", [id, reason]) if {
	id := input.mcp.session_id
	reason := data.library.killswitch.sessions[id]
}
