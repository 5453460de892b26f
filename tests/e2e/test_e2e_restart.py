"""Envoy's own ways of changing a running proxy, under load (issues 6 and 9):
a listener update from a file (LDS, the same path xDS takes) that swaps the
policy several times, and a hot restart (a new Envoy process taking the
listening socket over from the old one). Two client threads -- one keeping
its connection alive, one opening a connection per request -- send a fixed
number of calls throughout: every call must get its expected answer (the
allowed ones a result, the denied ones the policy's denial), none may fail,
and every call must have exactly one audit event, from one of the revisions
in use.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

import envoy_config  # noqa: F401  (harness puts tools/ on sys.path)
from support import harness
from support.rpc import DENY_CODE, JSON_HEADERS

V1 = """package mcp
import rego.v1
default allow := true
deny contains "delete_record is not allowed" if input.mcp.tool.name == "delete_record"
"""
# v2 decides the load the same way; only its revision differs.
V2 = V1 + """
deny contains "never called" if input.mcp.tool.name == "never_called"
"""
HEADERS = dict(JSON_HEADERS, **{"mcp-protocol-version": "2025-11-25"})
# A bound on each client thread; a test stops the load earlier, once what
# it waits for (swaps, a takeover) happened during the load.
MAX_CALLS_PER_THREAD = 3000


class Load:
    """Two bounded client threads, until ``stop()``; ``done`` counts answered calls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.done = 0
        self.issued: list[int] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t, keep), daemon=True)
                        for t, keep in ((0, True), (1, False))]

    def _one(self, http: httpx.Client | None, id_: int) -> None:
        tool = "delete_record" if id_ % 3 == 0 else "echo"
        body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                "params": {"name": tool, "arguments": {"text": str(id_)} if tool == "echo" else {"id": 1}}}
        try:
            if http is not None:
                r = http.post(self.url, content=json.dumps(body), headers=HEADERS)
            else:
                r = httpx.post(self.url, content=json.dumps(body), headers=HEADERS, timeout=15)
            j = r.json()
            if r.status_code != 200 or j.get("id") != id_:
                raise AssertionError(f"HTTP {r.status_code}: {r.text[:200]}")
            if tool == "echo" and j.get("result", {}).get("content", [{}])[0].get("text") != str(id_):
                raise AssertionError(f"echo not answered: {r.text[:200]}")
            if tool == "delete_record" and j.get("error", {}).get("code") != DENY_CODE:
                raise AssertionError(f"delete_record not denied: {r.text[:200]}")
        except Exception as e:  # noqa: BLE001 - every failure is recorded and reported
            with self.lock:
                self.failures.append(f"call {id_} ({tool}): {type(e).__name__}: {e}")
        with self.lock:
            self.done += 1
            self.issued.append(id_)

    def _run(self, t: int, keep_alive: bool) -> None:
        ids = range(10_000 * (t + 1), 10_000 * (t + 1) + MAX_CALLS_PER_THREAD)
        http = httpx.Client(timeout=15) if keep_alive else None
        try:
            for i in ids:
                if self.stopping.is_set():
                    break
                self._one(http, i)
        finally:
            if http is not None:
                http.close()

    def start(self) -> Load:
        for th in self.threads:
            th.start()
        return self

    def wait_for(self, n: int) -> None:
        assert harness.wait_until(lambda: self.done >= n or self.finished(), timeout=120), f"load stalled at {self.done}"
        assert self.done >= n, f"the load ended after {self.done} calls"

    def finished(self) -> bool:
        return not any(th.is_alive() for th in self.threads)

    def stop(self) -> None:
        self.stopping.set()
        for th in self.threads:
            th.join(timeout=60)
        assert self.finished(), "load did not stop"


def load_events(texts: list[str]) -> list[dict[str, Any]]:
    marker = "mcp-policy audit "
    out = []
    for text in texts:
        for line in text.splitlines():
            i = line.find(marker)
            if i >= 0:
                e = json.loads(line[i + len(marker):])
                if e.get("tool") in ("echo", "delete_record") and e.get("session_id") is None:
                    out.append(e)
    return out


def written(logs: Callable[[], list[str]], n: int) -> None:
    """Bounded wait for `n` audit events of the load in the logs (`check` then
    says what is missing, if any)."""
    harness.wait_until(lambda: len(load_events(logs())) >= n, timeout=10)


def revision_of(log: str) -> str:
    marker = "mcp-policy: configured: policy "
    return log[log.rindex(marker) + len(marker):].split(" ", 1)[0]


def check(load: Load, events: list[dict[str, Any]], revisions: set[str]) -> None:
    assert not load.failures, "\n".join(load.failures[:20])
    # One audit event per call, each decided as the call was answered.
    assert len(events) == load.done, Counter(e["decision"] for e in events)
    decisions = Counter((e["tool"], e["decision"]) for e in events)
    denied = sum(1 for i in load.issued if i % 3 == 0)
    assert decisions == {("delete_record", "deny"): denied, ("echo", "allow"): load.done - denied}
    assert {e["policy_revision"] for e in events} <= revisions




@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_listener_updates_under_load(demo_server: harness.DemoServer, wasm_path: Path, tmp_path: Path) -> None:
    port, admin = harness.free_port(), harness.free_port()

    def boot(policy: str) -> dict[str, Any]:
        return envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                                  wasm_path=str(wasm_path), plugin_config={"policy": {"modules": {"p.rego": policy}}})

    lds = tmp_path / "lds.json"
    envoy = harness.start_envoy_bootstrap(tmp_path, harness.with_lds(boot(V1), lds, "mcp-policy-restart-test"),
                                          ports_to_zero=False, concurrency=2, component_log_level="wasm:info",
                                          extra_args=["--drain-time-s", "2"])
    proc = envoy.proc
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        assert harness.wait_until(lambda: _ready(url), timeout=30), proc.log_tail()
        revisions = {revision_of(proc.stderr_text())}
        load = Load(url).start()
        swaps = 4
        for k in range(swaps):
            load.wait_for(load.done + 40)
            configured = proc.stderr_text().count("mcp-policy: configured")
            # Each swap a new revision (going back to an identical plugin
            # configuration may reuse the still-draining one's VMs).
            harness.write_lds(lds, boot(V2 + f"# revision {k + 2}\n")["static_resources"]["listeners"][0])
            assert harness.wait_until(lambda: proc.stderr_text().count("mcp-policy: configured") > configured,
                                      timeout=30), proc.log_tail()
            revisions.add(revision_of(proc.stderr_text()))
        load.wait_for(load.done + 40)
        load.stop()
        assert len(revisions) == swaps + 1
        # Audit lines are written in batches, at most audit.log_flush_ms
        # after the decision (draining plugins write theirs as they stop).
        written(lambda: [proc.stderr_text()], load.done)
        events = load_events([proc.stderr_text()])
        check(load, events, revisions)
        # Several revisions decided parts of the load.
        assert len({e["policy_revision"] for e in events}) >= 2
    finally:
        proc.stop()


def _ready(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    try:
        return httpx.post(url, content=json.dumps(body), headers=HEADERS, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_hot_restart_under_load(demo_server: harness.DemoServer, wasm_path: Path, tmp_path: Path) -> None:
    """A second Envoy process (restart epoch 1) takes the listener over from
    the first, which drains and exits; the load runs throughout."""
    port = harness.free_port()
    config = envoy_config.render(listen_port=port, upstream_port=demo_server.port, admin_port=0,
                                 wasm_path=str(wasm_path), plugin_config={"policy": {"modules": {"p.rego": V1}}})
    base_id = 20000 + os.getpid() % 10000

    def envoy(epoch: int) -> harness.Process:
        return harness.launch_envoy(
            tmp_path, config, name=f"envoy-epoch{epoch}", concurrency=2, hot_restart=(base_id, epoch),
            component_log_level="wasm:info", extra_args=["--drain-time-s", "2", "--parent-shutdown-time-s", "6"],
        ).proc

    url = f"http://127.0.0.1:{port}/mcp"
    first = envoy(0)
    second = None
    try:
        assert harness.wait_until(lambda: _ready(url), timeout=30), first.log_tail()
        load = Load(url).start()
        load.wait_for(60)
        second = envoy(1)
        # The old process hands over, drains, and exits on its own; the load
        # goes on until the new one has decided some of it.
        assert harness.wait_until(lambda: "starting main dispatch loop" in second.stderr_text(), timeout=60), \
            second.log_tail()
        assert first.wait_exit(60) is not None, "the parent did not shut down"
        assert harness.wait_until(lambda: load_events([second.stderr_text()]) != [], timeout=60), second.log_tail()
        load.wait_for(load.done + 40)
        load.stop()
        assert second.is_running(), second.log_tail()
        # The parent wrote its waiting lines as it stopped; the new process
        # writes its last batch at most audit.log_flush_ms later.
        written(lambda: [first.stderr_text(), second.stderr_text()], load.done)
        events = load_events([first.stderr_text(), second.stderr_text()])
        check(load, events, {revision_of(first.stderr_text())})
        # Both processes decided part of the load.
        assert load_events([first.stderr_text()]) and load_events([second.stderr_text()])
    finally:
        if second is not None:
            second.stop()
        first.stop()
