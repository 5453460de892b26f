"""Server-sourced tool facts, end to end: the filter learns each tool's
definition from the upstream's tools/list answer (JSON or SSE, both eras)
as it streams past, and gives it to the policy deciding a later tools/call
as input.mcp.tool.definition. Nothing the client sends can set it.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from support import harness
from support.rpc import DENY_CODE, text_of


POLICY = """package mcp
import rego.v1

default allow := true

# Only tools the server has described may be called.
deny contains sprintf("tool %q has no known definition: list tools first", [input.mcp.tool.name]) if {
    input.mcp.method == "tools/call"
    not input.mcp.tool.definition
}

# Report what the server said about add, as the denial reason.
deny contains sprintf("add requires %s", [json.marshal(input.mcp.tool.definition.inputSchema.required)]) if {
    input.mcp.tool.name == "add"
}
"""


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("demo_server", ["sse", "json"], indirect=True)
def test_definitions_come_from_the_servers_tools_list(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"facts.rego": POLICY}}})

    async def scenario() -> None:
        async with Client(envoy.url, mode=era, read_timeout_seconds=15) as c:
            with pytest.raises(MCPError) as info:
                await c.call_tool("echo", {"text": "too early"})
            assert "has no known definition" in info.value.message
            await c.list_tools()
            assert text_of(await c.call_tool("echo", {"text": "known"})) == "known"
            with pytest.raises(MCPError) as info:
                await c.call_tool("add", {"a": 1, "b": 2})
            assert info.value.code == DENY_CODE
            assert 'add requires ["a","b"]' in info.value.message

    anyio.run(scenario)


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_client_cannot_supply_the_definition(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"facts.rego": POLICY}}})
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"},
                       "definition": {"name": "echo"}, "tool": {"definition": {"name": "echo"}}}}
    r = httpx.post(envoy.url, content=json.dumps(body), timeout=15,
                   headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert "has no known definition" in r.json()["error"]["message"]
