"""Self-check of the test harness, without the wasm module: Envoy as a plain proxy in front of the demo server.

Proves that tools/envoy_config.py renders a bootstrap Envoy accepts, that
start_envoy finds the kernel-chosen ports and notices a rejected config at once,
that a request makes it through (and shows up in the access log), and that
every process is gone after teardown.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import harness, rpc

INIT_REQUEST = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "harness-selfcheck", "version": "0"},
    },
}
MCP_HEADERS = rpc.JSON_HEADERS


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _start_upstream(tmp_path: Path) -> tuple[harness.Process, int]:
    """The demo MCP server (JSON responses), or a stdlib http.server if it is not there yet."""
    if harness.DEMO_SERVER.is_file():
        server = harness.start_demo_server(tmp_path, json_response=True)
        return server.proc, server.port
    script = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_POST(self):\n"
        "        body = self.rfile.read(int(self.headers.get('content-length', 0)))\n"
        "        self.send_response(200); self.send_header('content-type', 'application/json')\n"
        "        self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)\n"
        "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "print('READY', s.server_address[1], flush=True)\n"
        "s.serve_forever()\n"
    )
    proc = harness.Process([sys.executable, "-c", script], name="upstream", log_dir=tmp_path / "upstream").start()
    try:
        port = int(proc.wait_for_line(r"^READY (\d+)$", timeout=30).group(1))
    except BaseException:
        proc.stop()
        raise
    return proc, port


def test_render_is_yaml_with_expected_fields(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "main.rego").write_text('package mcp\n\n# "quoted" \u00e9\ndefault allow := false\n')
    (policy_dir / "main_test.rego").write_text("package mcp_test\n")
    (policy_dir / "data.json").write_text('{"tools": ["echo"]}')
    plugin = harness.envoy_config.plugin_config_from_dir(policy_dir, max_body_bytes=None, extra_option=None)
    assert plugin == {
        "policy": {"modules": {"main.rego": (policy_dir / "main.rego").read_text()}, "data": {"tools": ["echo"]}}
    }
    text = harness.envoy_config.render(
        listen_port=1, upstream_port=2, admin_port=3, wasm_path="/x.wasm", plugin_config=plugin
    )
    for needle in ("failure_policy: FAIL_CLOSED", "allow_on_headers_stop_iteration: true", "codec_type: AUTO",
                   'timeout: "0s"', "root_id: mcp_policy", "%RESPONSE_CODE_DETAILS%", "%REQ(:PATH)%"):
        assert needle in text
    as_json = json.loads(harness.envoy_config.render(
        listen_port=1, upstream_port=2, admin_port=3, wasm_path="/x.wasm", plugin_config=plugin, fmt="json"
    ))
    hcm = as_json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    value = hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
    assert json.loads(value) == plugin


def test_envoy_proxies_to_upstream_and_everything_stops(tmp_path: Path) -> None:
    upstream, upstream_port = _start_upstream(tmp_path)
    envoy = None
    try:
        envoy = harness.start_envoy(tmp_path, plugin_config=None, upstream_port=upstream_port, wasm=False)
        assert envoy.port and envoy.admin_port and envoy.port != upstream_port
        assert envoy.url == f"http://127.0.0.1:{envoy.port}/mcp"

        with httpx.Client(trust_env=False, timeout=10) as client:
            resp = client.post(envoy.url, json=INIT_REQUEST, headers=MCP_HEADERS)
        assert resp.status_code == 200, resp.text
        assert resp.json()["id"] == 1

        entry = envoy.wait_for_access_log(lambda e: e["path"] == "/mcp", timeout=10)
        assert entry["method"] == "POST"
        assert entry["response_code"] == 200
        assert entry["response_code_details"] == "via_upstream"

        stats = envoy.stats()
        assert stats["http.mcp.downstream_rq_completed"] >= 1
        assert envoy.stat("cluster.mcp_server.upstream_rq_200") == 1
        assert envoy.startup_seconds < 30
    finally:
        if envoy is not None:
            envoy.stop()
        upstream.stop()

    assert envoy is not None
    assert not envoy.is_running() and not upstream.is_running()
    assert _port_closed(envoy.port) and _port_closed(envoy.admin_port) and _port_closed(upstream_port)


def test_rejected_config_fails_fast_with_log_tail(tmp_path: Path) -> None:
    bogus_filter = {"name": "not.a.real.filter", "typed_config": {"@type": "type.googleapis.com/no.Such"}}
    started = time.monotonic()
    with pytest.raises(harness.ProcessError, match=r"exited with status \d+ during start-up") as info:
        harness.start_envoy(tmp_path, plugin_config=None, upstream_port=9, wasm=False,
                            extra_http_filters_before=[bogus_filter], timeout=30)
    assert time.monotonic() - started < 15  # noticed the exit, did not sit out the deadline
    assert "envoy stderr" in str(info.value) and "no.Such" in str(info.value)


def test_wait_for_line_timeout_and_eof(tmp_path: Path) -> None:
    with harness.Process([sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"],
                         name="sleeper", log_dir=tmp_path, term_timeout=5) as proc:
        assert proc.wait_for_line("^hello$", timeout=10)
        started = time.monotonic()
        with pytest.raises(harness.ProcessError, match="no stdout line matching"):
            proc.wait_for_line("^never$", timeout=0.3)
        assert time.monotonic() - started < 5
    assert not proc.is_running()

    with harness.Process([sys.executable, "-c", "print('bye')"], name="quitter", log_dir=tmp_path) as proc:
        with pytest.raises(harness.ProcessError, match="stdout closed"):
            proc.wait_for_line("^never$", timeout=30)
        assert "bye" in str(proc.log_tail())
