"""What a client sees when the module's VM fails, under each Envoy
`failure_policy`. The VM is made to fail on purpose with the module's
fault-injection setting (`debug.trap_header`, testing only): a request
carrying that header traps the VM.

- FAIL_CLOSED (the shipped default): the failing request and every later
  one get 503; nothing reaches the upstream unchecked.
- FAIL_RELOAD: 503 while Envoy backs off, then a fresh VM decides again.
- FAIL_OPEN: later requests bypass the policy (a denied tool goes through)
  — shown here so the documentation's warning is backed by a test.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from support import harness, rpc

POLICY = """package mcp
import rego.v1
default allow := true
deny contains "blocked" if input.mcp.tool.name == "delete_record"
"""
TRAP = "x-mcp-policy-trap"
HEADERS = rpc.JSON_HEADERS


def call(url: str, name: str, id_: int, trap: bool = False) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": "x", "id": 1}}}
    headers = dict(HEADERS, **({TRAP: "1"} if trap else {}))
    return httpx.post(url, content=json.dumps(body), headers=headers, timeout=10)


def start(envoy_factory: Any, failure_policy: str) -> harness.EnvoyHandle:
    return envoy_factory({"policy": {"modules": {"p.rego": POLICY}}, "debug": {"trap_header": TRAP}},
                         failure_policy=failure_policy)


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_fail_closed(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = start(envoy_factory, "FAIL_CLOSED")
    assert call(envoy.url, "echo", 1).status_code == 200
    assert call(envoy.url, "echo", 2, trap=True).status_code == 503
    for i, name in enumerate(["echo", "delete_record"], start=3):
        assert call(envoy.url, name, i).status_code == 503
    assert {m.get("id") for m in demo_server.received()} == {1}
    assert "trapping the VM" in envoy.log_text()


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_fail_reload_recovers_and_still_decides(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = start(envoy_factory, "FAIL_RELOAD")
    assert call(envoy.url, "echo", 1).status_code == 200
    assert call(envoy.url, "echo", 2, trap=True).status_code == 503
    # Envoy reloads the VM after a back-off (1 s by default): poll, bounded.
    r = harness.poll(lambda: call(envoy.url, "delete_record", 3), lambda r: r.status_code != 503)
    assert r.status_code == 200, "the VM was not reloaded within 20 s"
    assert r.json()["error"]["message"] == "Denied by policy: blocked"
    assert envoy.stat("wasm.mcp_policy.vm_reload_success") >= 1
    assert call(envoy.url, "echo", 4).json()["result"]["content"][0]["text"] == "x"
    assert 3 not in {m.get("id") for m in demo_server.received()}


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_fail_open_bypasses_the_policy(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = start(envoy_factory, "FAIL_OPEN")
    assert call(envoy.url, "delete_record", 1).json()["error"]["message"] == "Denied by policy: blocked"
    assert call(envoy.url, "echo", 2, trap=True).status_code == 503
    r = call(envoy.url, "delete_record", 3)
    assert r.status_code == 200 and "deleted record" in r.text
    assert 3 in {m.get("id") for m in demo_server.received()}


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_session_state_survives_a_vm_reload(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    """Kills (and counters, history) live in Envoy's shared data, outside the
    VM: a killed session is still killed after the VM fails and is reloaded."""
    policy = POLICY + 'kill := "self-destruct requested" if input.mcp.tool.name == "self_destruct"\n'
    envoy = envoy_factory({"policy": {"modules": {"p.rego": policy}}, "debug": {"trap_header": TRAP}},
                          failure_policy="FAIL_RELOAD")

    def on_session(name: str, id_: int, trap: bool = False) -> httpx.Response:
        body = rpc.call(name, id_)
        headers = dict(HEADERS, **{"mcp-session-id": "S-reload"}, **({TRAP: "1"} if trap else {}))
        return httpx.post(envoy.url, content=json.dumps(body), headers=headers, timeout=10)

    assert "self-destruct requested" in on_session("self_destruct", 1).json()["error"]["message"]
    assert on_session("echo", 2, trap=True).status_code == 503
    r = harness.poll(lambda: on_session("echo", 3), lambda r: r.status_code != 503)
    assert r.status_code == 200, "the VM was not reloaded within 20 s"
    assert r.json()["error"]["message"] == "Denied by policy: session killed: self-destruct requested"
