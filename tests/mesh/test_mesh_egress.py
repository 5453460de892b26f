"""envoy/egress.yaml end to end: one Envoy beside an agent, two upstream MCP
servers behind it (`/github/` -> cluster github_mcp, `/files/` -> files_mcp,
the prefix rewritten away), one module whose policy (envoy/policies/egress/)
is keyed by the route and cluster the request matched (input.xds).

The agent is the official MCP SDK client, one session per server through the
same listener. Rendered by the same tools/mesh_config.py function as the
shipped file, with free ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from support import harness, rpc
from support.rpc import DENY_CODE
from support import mesh as mh



@pytest.fixture(scope="module")
def input_fields(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> set[str]:
    return mh.probe_input_fields(tmp_path_factory.mktemp("probe"), wasm_path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path,
          input_fields: set[str]) -> Iterator[tuple[dict[str, harness.DemoServer], harness.EnvoyHandle]]:
    mh.require_fields(input_fields, "xds.route_name", "xds.cluster_name")
    tmp = tmp_path_factory.mktemp("egress")
    servers: dict[str, harness.DemoServer] = {}
    try:
        for name in mh.mesh_config.EGRESS_UPSTREAMS:
            servers[name] = harness.start_demo_server(tmp / name)
        config = mh.mesh_config.egress(
            plugin_config=mh.mesh_config.plugin_config_for("egress"), wasm_path=wasm_path,
            upstream_ports={name: s.port for name, s in servers.items()}, json_log=True,
        )
        envoy = harness.start_envoy_bootstrap(tmp, config, name="egress")
        try:
            yield servers, envoy
        finally:
            envoy.stop()
    finally:
        for s in servers.values():
            s.proc.stop()


def tools_called(server: harness.DemoServer) -> list[Any]:
    return [m.get("name") for m in server.received() if m.get("method") == "tools/call"]


async def denied(c: Client, tool: str, args: dict[str, Any]) -> str:
    with pytest.raises(MCPError) as info:
        await c.call_tool(tool, args)
    assert info.value.code == DENY_CODE, info.value
    return info.value.message


def test_one_policy_per_route_through_one_egress(stack: Any) -> None:
    servers, envoy = stack

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(f"{envoy.base_url}/github/mcp", read_timeout_seconds=15) as gh, \
                Client(f"{envoy.base_url}/files/mcp", read_timeout_seconds=15) as files:
            out["gh_add"] = (await gh.call_tool("add", {"a": 2, "b": 3})).content[0].text
            out["gh_read"] = await denied(gh, "read_file", {"path": "/workspace/a.txt"})
            out["files_read"] = (await files.call_tool("read_file", {"path": "/workspace/a.txt"})).content[0].text
            out["files_escape"] = await denied(files, "read_file", {"path": "/workspace/../etc/passwd"})
            out["files_add"] = await denied(files, "add", {"a": 1, "b": 1})
            out["files_echo"] = (await files.call_tool("echo", {"text": "hi"})).content[0].text
        return out

    out = anyio.run(run)
    assert out["gh_add"] == "5"
    assert 'tool "read_file" is not allowed on github (allowed: echo, add)' in out["gh_read"]
    assert "/workspace/a.txt" in out["files_read"]
    assert 'files: read_file may only read under /workspace/ (asked for "/workspace/../etc/passwd")' \
        in out["files_escape"]
    assert 'tool "add" is not allowed on files' in out["files_add"]
    assert out["files_echo"] == "hi"
    # Each server saw only what its route allows.
    assert tools_called(servers["github"]) == ["add"]
    assert tools_called(servers["files"]) == ["read_file", "echo"]


def test_a_path_without_a_route_is_refused_by_the_policy(stack: Any) -> None:
    servers, envoy = stack
    body = rpc.call("echo", 99)
    r = httpx.post(f"{envoy.base_url}/mcp", json=body, timeout=10,
                   headers={"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"})
    err = r.json()["error"]
    assert err["code"] == DENY_CODE
    assert 'no MCP server is configured for route ""' in err["message"]
    assert all(99 not in {m.get("id") for m in s.received()} for s in servers.values())
