"""Replicated gateways (docs/replicas.md): two module-carrying Envoys behind
a front Envoy that hashes on `Mcp-Session-Id` with ring-hash load balancing
(envoy/replicas-front.yaml, rendered by the same tools/mesh_config.py
function with free ports). Every message of one session lands on one
replica, so a policy that reads the session's history holds. The control
test runs the same sessions through a round-robin front: the history is then
split between replicas and the same policy no longer sees it -- which is why
the hashing matters (and shows the first test can fail).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from support import harness
from support.rpc import DENY_CODE
from support import mesh as mh


# History-based: `add` is refused once the session has called `echo`.
POLICY = """package mcp
import rego.v1

default allow := true

deny contains "add after echo in this session" if {
    input.mcp.tool.name == "add"
    some c in input.session.calls
    c.tool == "echo"
}
"""

SESSIONS = 4


class Replicas:
    def __init__(self, server: harness.DemoServer, replicas: list[harness.EnvoyHandle]) -> None:
        self.server = server
        self.replicas = replicas

    def front(self, tmp: Path, lb_policy: str) -> harness.EnvoyHandle:
        config = mh.mesh_config.replicas_front(
            replicas=[("127.0.0.1", r.port) for r in self.replicas], lb_policy=lb_policy, json_log=True)
        return harness.start_envoy_bootstrap(tmp, config, name=f"front-{lb_policy.lower()}")

    def calls_by_session(self) -> dict[str, set[int]]:
        """Session id -> the replicas (indexes) that decided a tools/call of it."""
        seen: dict[str, set[int]] = defaultdict(set)
        for i, r in enumerate(self.replicas):
            for e in r.audit_events():
                if e.get("method") == "tools/call" and e.get("session_id"):
                    seen[e["session_id"]].add(i)
        return seen


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    # One MCP server behind both replicas (a replicated gateway in front of a
    # server), stateful: it mints session ids.
    server = harness.start_demo_server(tmp, json_response=True, stateless=False)
    started: list[harness.EnvoyHandle] = []
    try:
        for _ in range(2):
            started.append(harness.start_envoy(
                tmp, plugin_config={"policy": {"modules": {"history.rego": POLICY}}},
                upstream_port=server.port, wasm_path=wasm_path))
        yield Replicas(server, started)
    finally:
        for r in started:
            r.stop()
        server.proc.stop()


async def _session(url: str) -> tuple[str, int | None]:
    """One SDK session: echo, then add (which the policy must refuse)."""
    from mcp import Client, MCPError

    async with Client(url, mode="legacy", read_timeout_seconds=15) as c:
        echoed = (await c.call_tool("echo", {"text": "hi"})).content[0].text
        try:
            await c.call_tool("add", {"a": 1, "b": 2})
            code = None
        except MCPError as e:
            code = e.code
        return echoed, code


def test_a_session_sticks_to_one_replica(replicas: Replicas, tmp_path: Path) -> None:
    front = replicas.front(tmp_path, "RING_HASH")
    try:
        url = f"http://127.0.0.1:{front.port}/mcp"
        for _ in range(SESSIONS):
            assert anyio.run(_session, url) == ("hi", DENY_CODE)
    finally:
        front.stop()
    by_session = harness.poll(replicas.calls_by_session, lambda s: len(s) >= SESSIONS, timeout=10)
    assert len(by_session) == SESSIONS
    for sid, where in by_session.items():
        assert len(where) == 1, f"session {sid} was decided on replicas {where}"


def _raw_session(url: str) -> tuple[str, httpx.Response]:
    """initialize, initialized, echo, add -- four sequential POSTs."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    with httpx.Client(timeout=15) as http:
        r = http.post(url, headers=headers, content=json.dumps({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "control", "version": "1"}}}))
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        headers.update({"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})
        r = http.post(url, headers=headers, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        assert r.status_code == 202, r.text
        r = http.post(url, headers=headers, content=json.dumps({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}))
        assert "result" in r.json(), r.text
        add = http.post(url, headers=headers, content=json.dumps({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}))
        return sid, add


def test_control_round_robin_splits_the_history(replicas: Replicas, tmp_path: Path) -> None:
    front = replicas.front(tmp_path, "ROUND_ROBIN")
    try:
        sid, add = _raw_session(f"http://127.0.0.1:{front.port}/mcp")
    finally:
        front.stop()
    # Sequential requests alternate between the two replicas: echo and add
    # are decided on different ones, and the replica deciding add has no
    # record of the echo.
    where = harness.poll(replicas.calls_by_session, lambda s: len(s.get(sid, ())) >= 2, timeout=10)[sid]
    assert where == {0, 1}
    assert "result" in add.json(), add.text
