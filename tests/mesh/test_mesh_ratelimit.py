"""envoy/ratelimit-local.yaml end to end: the policy's `rate_limit` output
(a descriptor per principal and tool, with a cost per tool, from
policies/library/ratelimit.rego) reaches Envoy's own `local_ratelimit`
filter as request headers, which counts it and answers 429 past the limit --
before the MCP server sees the call. A client cannot spend someone else's
budget by sending the headers itself: the module removes them.

The configuration is rendered by the same tools/mesh_config.py function as
the shipped file, with a small limit (3 hits per principal and tool a
minute), free ports and the JWKS of freshly generated keys inline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx

from support import mesh as mh
from support.rpc import call
from support.stack import Stack, StackSpec

PER_TOOL = 3


class RatelimitStack(Stack):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.certs = mh.gen_certs.generate(kw["tmp"] / "certs", force=False)  # written by bootstrap()
        self.url = f"http://127.0.0.1:{self.envoy.port}/mcp"
        self.next_id = 100

    def token(self, sub: str) -> str:  # type: ignore[override]
        return mh.gen_certs.mint_jwt(self.certs["jwt-signing-key"], {"sub": sub})

    def post(self, sub: str, body: dict[str, Any], extra: dict[str, str] | None = None) -> httpx.Response:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2025-11-25", "authorization": f"Bearer {self.token(sub)}"}
        headers.update(extra or {})
        return httpx.post(self.url, content=json.dumps(body), headers=headers, timeout=15)

    def call(self, sub: str, tool: str, args: dict[str, Any], extra: dict[str, str] | None = None) -> tuple[int, httpx.Response]:
        self.next_id += 1
        return self.next_id, self.post(sub, call(tool, self.next_id, args), extra)

    def received_by_id(self) -> dict[Any, dict[str, Any]]:
        return {m.get("id"): m for m in self.server.received()}


def bootstrap(tmp: Path, upstream_port: int, wasm_path: Path) -> dict[str, Any]:
    certs = mh.gen_certs.generate(tmp / "certs")
    return mh.mesh_config.ratelimit_local(
        plugin_config=mh.mesh_config.plugin_config_for("ratelimit-local"), wasm_path=wasm_path,
        certs_dir=tmp / "certs", upstream_port=upstream_port,
        jwks_inline=certs["jwks"].read_text(encoding="utf-8"),
        per_tool=PER_TOOL, per_principal=100, json_log=True,
    )


STACK = StackSpec(bootstrap=bootstrap, cls=RatelimitStack, name="ratelimit")


def test_descriptor_counted_by_local_ratelimit(stack: RatelimitStack) -> None:
    ids = []
    for i in range(PER_TOOL):
        id_, r = stack.call("alice", "echo", {"text": str(i)})
        assert r.status_code == 200 and "result" in r.json(), r.text
        ids.append(id_)
    over, r = stack.call("alice", "echo", {"text": "one too many"})
    assert r.status_code == 429, r.text
    assert r.headers.get("x-mcp-rate-limited") == "local"
    seen = stack.received_by_id()
    assert all(i in seen for i in ids)
    assert over not in seen  # refused before the MCP server
    # What reached the server: the descriptor of the policy, as headers.
    assert seen[ids[0]]["x_headers"]["x-mcp-ratelimit-principal"] == "sub:alice"
    assert seen[ids[0]]["x_headers"]["x-mcp-ratelimit-tool"] == "echo"
    assert seen[ids[0]]["x_headers"]["x-mcp-ratelimit-cost"] == "1"
    # Another tool is another bucket; another caller too.
    _, r = stack.call("alice", "add", {"a": 1, "b": 2})
    assert r.status_code == 200, r.text
    _, r = stack.call("bob", "echo", {"text": "x"})
    assert r.status_code == 200, r.text
    assert stack.envoy.stat("mcp_ratelimit.http_local_rate_limit.rate_limited") >= 1


def test_cost_per_tool(stack: RatelimitStack) -> None:
    # `add` costs 2 (envoy/policies/ratelimit/data.json): the second call is over 3.
    _, r = stack.call("carol", "add", {"a": 1, "b": 1})
    assert r.status_code == 200, r.text
    over, r = stack.call("carol", "add", {"a": 2, "b": 2})
    assert r.status_code == 429, r.text
    assert over not in stack.received_by_id()


def test_client_cannot_send_descriptor_headers(stack: RatelimitStack) -> None:
    spoof = {"x-mcp-ratelimit-principal": "sub:dave", "x-mcp-ratelimit-tool": "echo",
             "x-mcp-ratelimit-cost": "1000"}
    # A message the policy gives no descriptor: the forged headers are removed,
    # so nothing is counted against dave (and the server never sees them).
    r = stack.post("mallory", {"jsonrpc": "2.0", "id": 7001, "method": "tools/list"}, spoof)
    assert r.status_code == 200, r.text
    assert "x-mcp-ratelimit-principal" not in stack.received_by_id()[7001].get("x_headers", {})
    # On a tools/call the policy's own descriptor replaces them.
    id_, r = stack.call("mallory", "echo", {"text": "x"}, spoof)
    assert r.status_code == 200, r.text
    assert stack.received_by_id()[id_]["x_headers"]["x-mcp-ratelimit-principal"] == "sub:mallory"
    assert stack.received_by_id()[id_]["x_headers"]["x-mcp-ratelimit-cost"] == "1"
    for i in range(PER_TOOL):
        _, r = stack.call("dave", "echo", {"text": str(i)})
        assert r.status_code == 200, (i, r.text)


def test_sdk_client_sees_an_error(stack: RatelimitStack) -> None:
    """The official client over the same listener: calls within the limit
    succeed; the one past it fails with an error (HTTP 429), promptly."""
    import httpx2
    from mcp import Client

    async def run() -> tuple[list[str], str]:
        headers = {"authorization": f"Bearer {stack.token('erin')}"}
        from mcp.client.streamable_http import streamable_http_client

        async with httpx2.AsyncClient(headers=headers, timeout=15) as http:
            async with Client(streamable_http_client(stack.url, http_client=http), mode="legacy",
                              read_timeout_seconds=15) as c:
                texts = []
                for i in range(PER_TOOL):
                    res = await c.call_tool("echo", {"text": f"t{i}"})
                    texts.append(res.content[0].text)
                try:
                    await c.call_tool("echo", {"text": "over"})
                    failure = ""
                except Exception as e:  # noqa: BLE001 - whatever the SDK raises for HTTP 429
                    failure = f"{type(e).__name__}: {e}"
                return texts, failure

    texts, failure = anyio.run(run)
    assert texts == [f"t{i}" for i in range(PER_TOOL)]
    assert failure, "the call past the limit succeeded"
    print("SDK error past the limit:", failure)


def test_global_service_config_covers_the_shipped_descriptors() -> None:
    """deploy/ratelimit/config.yaml (envoyproxy/ratelimit's format) has a
    limit for every descriptor envoy/ratelimit-global.yaml sends, and no
    duplicate key/value at one level (which the service refuses)."""
    import yaml

    doc = yaml.safe_load((mh.REPO / "deploy" / "ratelimit" / "config.yaml").read_text(encoding="utf-8"))
    assert doc["domain"] == mh.mesh_config.RATE_LIMIT_DOMAIN

    def check_level(nodes: list[dict[str, Any]]) -> None:
        keys = [(n["key"], n.get("value")) for n in nodes]
        assert len(keys) == len(set(keys)), keys
        for n in nodes:
            if "rate_limit" in n:
                assert n["rate_limit"]["unit"] in {"second", "minute", "hour", "day"}
                assert int(n["rate_limit"]["requests_per_unit"]) > 0
            check_level(n.get("descriptors", []))

    check_level(doc["descriptors"])

    def limited(path: list[str]) -> bool:
        nodes = doc["descriptors"]
        node: dict[str, Any] = {}
        for key in path:
            match = [n for n in nodes if n["key"] == key and "value" not in n]
            if not match:
                return False
            node = match[0]
            nodes = node.get("descriptors", [])
        return "rate_limit" in node

    shipped = mh.mesh_config.ratelimit_global(plugin_config={"policy": {"modules": {}}})
    route = shipped["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    sent = [[a["request_headers"]["descriptor_key"] for a in rl["actions"]] for rl in route["rate_limits"]]
    assert sent == mh.mesh_config.RATE_LIMIT_DESCRIPTORS
    for path in sent:
        assert limited(path), path
