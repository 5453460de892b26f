"""A policy update through Envoy's own configuration reload (LDS from a
file, replaced atomically): the new policy takes over without a restart,
and session state — kills and rate counters — survives it, because it lives
in Envoy's shared data, not in the plugin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import envoy_config  # noqa: F401  (harness puts tools/ on sys.path)
from support import harness, rpc

V1 = """package mcp
import rego.v1
default allow := true
kill := "self-destruct requested" if input.mcp.tool.name == "self_destruct"
"""
# v2: a new rule that reads the session's counter.
V2 = V1 + """
deny contains sprintf("session rate: %d calls in the window", [n]) if {
    n := input.rate.session.window
    n > 3
}
"""
HEADERS = rpc.JSON_HEADERS




@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_policy_reload_keeps_session_state(
    demo_server: harness.DemoServer, wasm_path: Path, tmp_path: Path
) -> None:
    port, admin = harness.free_port(), harness.free_port()

    def listener(policy: str) -> dict[str, Any]:
        boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                                  wasm_path=str(wasm_path), plugin_config={"policy": {"modules": {"p.rego": policy}}},
                                  access_log_json=True)
        return boot["static_resources"]["listeners"][0]

    boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                              wasm_path=str(wasm_path), plugin_config={"policy": {"modules": {"p.rego": V1}}},
                              access_log_json=True)
    lds = tmp_path / "lds.json"
    envoy = harness.start_envoy_bootstrap(tmp_path, harness.with_lds(boot, lds, "mcp-policy-reload-test"), ports_to_zero=False,
                                          concurrency=2, component_log_level="wasm:info")
    proc = envoy.proc
    try:
        url = f"http://127.0.0.1:{port}/mcp"

        def call(name: str, id_: int, session: str) -> httpx.Response:
            body = rpc.call(name, id_)
            return httpx.post(url, content=json.dumps(body), headers=dict(HEADERS, **{"mcp-session-id": session}),
                              timeout=10)

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{admin}/ready", timeout=2).status_code == 200 and \
                    call("echo", 0, "probe").status_code == 200
            except httpx.HTTPError:
                return False

        assert harness.wait_until(up, timeout=30), proc.log_tail()
        # Under v1: a kill, and three calls on another session.
        assert "self-destruct requested" in call("self_destruct", 1, "S-kill").json()["error"]["message"]
        for i in range(3):
            assert "result" in call("echo", 10 + i, "S-count").json()

        revisions_before = proc.stderr_text().count("mcp-policy: configured")
        harness.write_lds(lds, listener(V2))
        assert harness.wait_until(
            lambda: proc.stderr_text().count("mcp-policy: configured") > revisions_before, timeout=30
        ), proc.log_tail()
        # v2 is in force once a call on a fresh session is decided by it.
        assert harness.wait_until(lambda: "result" in call("echo", 99, "S-fresh").json(), timeout=30)

        # The kill survived the reload...
        r = call("echo", 2, "S-kill")
        assert r.json()["error"]["message"] == "Denied by policy: session killed: self-destruct requested"
        # ...and so did the counter the new rule reads: this is the 4th call.
        r = call("echo", 13, "S-count")
        assert r.json()["error"]["message"] == "Denied by policy: session rate: 4 calls in the window", r.text
    finally:
        proc.stop()


def _library(name: str) -> str:
    return (harness.REPO / "policies" / "library" / f"{name}.rego").read_text()


@pytest.mark.parametrize(
    "demo_server", [{"json_response": True, "stateless": True, "extra_args": ["--response-tools"]}], indirect=True
)
def test_tool_pins_survive_a_reload_and_an_approval_lifts_them(
    demo_server: harness.DemoServer, wasm_path: Path, tmp_path: Path
) -> None:
    port, admin = harness.free_port(), harness.free_port()
    main = "package mcp\nimport rego.v1\ndefault allow := true\n"

    def plugin(data: dict[str, Any], note: str = "") -> dict[str, Any]:
        return {"policy": {"modules": {"main.rego": main + note, "library/pins.rego": _library("pins")},
                           "data": {"library": {"pins": {}}, **data}}}

    def listener(cfg: dict[str, Any]) -> dict[str, Any]:
        boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                                  wasm_path=str(wasm_path), plugin_config=cfg, access_log_json=True)
        return boot["static_resources"]["listeners"][0]

    boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                              wasm_path=str(wasm_path), plugin_config=plugin({}), access_log_json=True)
    lds = tmp_path / "lds.json"
    envoy = harness.start_envoy_bootstrap(tmp_path, harness.with_lds(boot, lds, "mcp-policy-pins-test"), ports_to_zero=False,
                                          concurrency=2, component_log_level="wasm:info")
    proc = envoy.proc
    try:
        url = f"http://127.0.0.1:{port}/mcp"

        def rpc(id_: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
            body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
            return httpx.post(url, content=json.dumps(body), headers=HEADERS, timeout=10).json()

        def names() -> set[str]:
            return {t["name"] for t in rpc(1, "tools/list", {})["result"]["tools"]}

        def weather() -> dict[str, Any]:
            return rpc(2, "tools/call", {"name": "weather", "arguments": {"city": "Oslo"}})

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{admin}/ready", timeout=2).status_code == 200 and \
                    "weather" in names()
            except httpx.HTTPError:
                return False

        def reload(cfg_: dict[str, Any]) -> None:
            before = proc.stderr_text().count("mcp-policy: configured")
            harness.write_lds(lds, listener(cfg_))
            assert harness.wait_until(
                lambda: proc.stderr_text().count("mcp-policy: configured") > before, timeout=30
            ), proc.log_tail()

        assert harness.wait_until(up, timeout=30), proc.log_tail()
        assert "result" in weather()
        assert "result" in rpc(3, "tools/call", {"name": "rug_pull", "arguments": {}})
        assert "weather" not in names()
        denied = weather()["error"]["message"]
        assert 'pins: tool "weather" changed since it was pinned' in denied, denied
        new_hash = denied.split('approved_tools["weather"] = "')[1].split('"')[0]
        assert len(new_hash) == 64

        # A reload keeps the pins: still refused under the reloaded policy.
        reload(plugin({}, "# reloaded\n"))
        assert harness.wait_until(lambda: "changed since it was pinned" in json.dumps(weather()), timeout=30)
        # The operator approves the new definition through policy data.
        reload(plugin({"mcp": {"approved_tools": {"weather": new_hash}}}))
        assert harness.wait_until(lambda: "result" in weather(), timeout=30), weather()
        assert "weather" in names()
    finally:
        proc.stop()
