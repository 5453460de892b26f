"""One policy for calls and lists (issue 17, point 5), end to end: a real
Envoy 1.40 with the module, in front of the demo MCP server (official Python
SDK), driven by the official SDK client.

The policy is the one an author naturally writes: `allow` by role, and a
`deny` about read_file's argument. Its meaning for lists is "a tool is listed
when some call of it by this caller could be allowed" (docs/input.md, "One
policy for calls and lists"): the argument rule decides each call, it does not
hide read_file from a caller who may read files under /workspace. Before that
meaning, the list was decided as a call without arguments, the argument rule
fired, and read_file was hidden from everyone.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from support import harness
from support.rpc import DENY_CODE, text_of

ERAS = ["legacy", "2026-07-28"]

# No `not input.mcp.listing` anywhere: nobody should need it for this.
POLICY = """package mcp
import rego.v1

default allow := false

# Transport requests (the GET stream, the DELETE) and every method but
# tools/call are open; tools are for readers.
allow if not input.mcp
allow if input.mcp.method != "tools/call"
allow if {
    input.mcp.method == "tools/call"
    input.http.headers["x-role"] == "reader"
}

deny contains "files must be under /workspace" if {
    input.mcp.tool.name == "read_file"
    not startswith(input.mcp.tool.arguments.path, "/workspace/")
}

deny contains "delete_record is never allowed" if input.mcp.tool.name == "delete_record"
"""


def client(url: str, role: str, era: str) -> tuple[Any, Any]:
    http = httpx2.AsyncClient(headers={"x-role": role}, timeout=15)
    return http, Client(streamable_http_client(url, http_client=http), mode=era, read_timeout_seconds=15)


@pytest.mark.parametrize("era", ERAS)
def test_a_rule_about_arguments_does_not_hide_the_tool(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"listing.rego": POLICY}}})

    async def scenario() -> None:
        http, c = client(envoy.url, "reader", era)
        async with http, c:
            tools = {t.name for t in (await c.list_tools()).tools}
            # read_file: some call (a path under /workspace) is allowed.
            assert "read_file" in tools, tools
            assert "echo" in tools
            # delete_record: no call is allowed, whatever the arguments.
            assert "delete_record" not in tools
            ok = await c.call_tool("read_file", {"path": "/workspace/notes.txt"})
            assert text_of(ok) == "(fake) contents of /workspace/notes.txt"
            with pytest.raises(MCPError) as info:
                await c.call_tool("read_file", {"path": "/etc/passwd"})
            assert info.value.code == DENY_CODE
            assert "files must be under /workspace" in info.value.message

        http, c = client(envoy.url, "guest", era)
        async with http, c:
            # A guest may call no tool, so it is shown none.
            tools = {t.name for t in (await c.list_tools()).tools}
            assert tools == set(), tools
            with pytest.raises(MCPError) as info:
                await c.call_tool("read_file", {"path": "/workspace/notes.txt"})
            assert info.value.code == DENY_CODE

    anyio.run(scenario)
    # The server saw the allowed call and nothing of the denied ones.
    calls = [m for m in demo_server.received() if m.get("method") == "tools/call"]
    assert [m["arguments"]["path"] for m in calls] == ["/workspace/notes.txt"], calls
