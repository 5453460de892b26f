package killswitch_test

import rego.v1

import data.mcp

cfg := {"principals": {"sub:alice": "stolen token", "peer:spiffe://cluster.local/ns/a/sa/bot": "rogue agent"}, "sessions": {"s-1": "prompt injection seen"}}

msg(extra) := object.union({"mcp": {"kind": "request", "method": "tools/call", "id": 1, "params": {}, "tool": {"name": "echo", "arguments": {}}}}, extra)

test_killed_subject_is_denied if {
	r := mcp.deny with input as msg({"identity": {"subject": "alice"}}) with data.library.killswitch as cfg
	r == {"killswitch: principal sub:alice is killed: stolen token"}
}

test_killed_peer_is_denied if {
	r := mcp.deny with input as msg({"source": {"principal": "spiffe://cluster.local/ns/a/sa/bot"}}) with data.library.killswitch as cfg
	r == {"killswitch: principal peer:spiffe://cluster.local/ns/a/sa/bot is killed: rogue agent"}
}

test_killed_session_is_denied if {
	r := mcp.deny with input as msg({"mcp": {"kind": "request", "method": "tools/call", "id": 1, "params": {}, "session_id": "s-1"}, "identity": {"subject": "bob"}}) with data.library.killswitch as cfg
	r == {"killswitch: session s-1 is killed: prompt injection seen"}
}

test_others_pass if {
	count(mcp.deny) == 0 with input as msg({"identity": {"subject": "bob"}}) with data.library.killswitch as cfg
	count(mcp.deny) == 0 with input as msg({"mcp": {"kind": "request", "method": "tools/call", "id": 1, "params": {}, "session_id": "s-2"}}) with data.library.killswitch as cfg
}

test_unconfigured_does_nothing if {
	count(mcp.deny) == 0 with input as msg({"identity": {"subject": "alice"}})
}
