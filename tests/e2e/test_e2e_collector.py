"""Audit events to an HTTP collector through Envoy (dispatch_http_call):
batched, bounded, retried — and nothing lost silently. A real collector runs
on loopback in the test process and counts the NDJSON events it receives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import envoy_config  # noqa: F401  (harness puts tools/ on sys.path)
from support import harness, rpc

POLICY = """package mcp
import rego.v1
default allow := true
deny contains "blocked" if input.mcp.tool.name == "delete_record"
"""
HEADERS = rpc.JSON_HEADERS


class Collector:
    """Counts events; `fail_next` makes it answer 500 to that many batches."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    if outer.fail_next > 0:
                        outer.fail_next -= 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    outer.batches += 1
                    outer.events.extend(json.loads(line) for line in body.decode().splitlines() if line)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.events)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    try:
        yield c
    finally:
        c.stop()


def config(port_cluster: str, **collector: Any) -> dict[str, Any]:
    c = {"cluster": port_cluster, "path": "/events", "flush_interval_ms": 50, **collector}
    return {"policy": {"modules": {"p.rego": POLICY}}, "audit": {"collector": c}}


def burst(envoy: harness.EnvoyHandle, n: int) -> list[str]:
    ids = []
    with httpx.Client(timeout=15) as client:
        for i in range(n):
            name = "delete_record" if i % 3 == 0 else "echo"
            body = rpc.call(name, i, {"text": "x"})
            r = client.post(envoy.url, content=json.dumps(body), headers=HEADERS)
            ids.append(r.headers["x-mcp-decision-id"])
    return ids


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_every_event_reaches_the_collector_under_a_burst(
    demo_server: harness.DemoServer, envoy_factory: Any, collector: Collector
) -> None:
    envoy = envoy_factory(config("audit_collector", batch_size=25),
                          extra_clusters=[envoy_config.static_cluster("audit_collector", collector.port)],
                          concurrency=2)
    ids = burst(envoy, 300)
    assert harness.wait_until(lambda: collector.count() >= 300), collector.count()
    got = [e["decision_id"] for e in collector.events]
    assert sorted(got) == sorted(ids)                      # each exactly once
    assert sum(e["decision"] == "deny" for e in collector.events) == 100
    assert collector.batches >= 300 // 25
    assert sum(v for k, v in envoy.stats().items() if "mcp_policy_audit_dropped" in k) == 0
    assert sum(v for k, v in envoy.stats().items() if "mcp_policy_audit_sent" in k) == 300


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_failed_batches_are_retried(demo_server: harness.DemoServer, envoy_factory: Any, collector: Collector) -> None:
    collector.fail_next = 2
    envoy = envoy_factory(config("audit_collector", batch_size=10, max_retries=3),
                          extra_clusters=[envoy_config.static_cluster("audit_collector", collector.port)])
    ids = burst(envoy, 20)
    assert harness.wait_until(lambda: collector.count() >= 20), collector.count()
    assert sorted(e["decision_id"] for e in collector.events) == sorted(ids)
    assert "audit collector failed (HTTP 500); will retry" in envoy.log_text()


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_collector_that_is_down_loses_nothing_silently(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    dead = harness.free_port()  # nothing listens here
    envoy = envoy_factory(config("audit_collector", batch_size=5, max_retries=1, timeout_ms=500),
                          extra_clusters=[envoy_config.static_cluster("audit_collector", dead)])
    burst(envoy, 15)

    def dropped() -> int:
        return sum(v for k, v in envoy.stats().items() if "mcp_policy_audit_dropped" in k)

    assert harness.wait_until(lambda: dropped() >= 15), dropped()
    assert dropped() == 15
    assert "dropped after retries (counted in mcp_policy_audit_dropped)" in envoy.log_text()
    # The events are still in the proxy log and the access log.
    assert envoy.log_text().count("mcp-policy audit {") == 15
