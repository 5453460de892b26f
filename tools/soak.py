#!/usr/bin/env python3
"""Soak: steady MCP traffic through a real Envoy with the module for a set
time, then a verdict and a summary (bench/soak.md).

    .venv/bin/python tools/soak.py [--seconds 600] [--rps 40] [--workers 4] [--out bench/soak.md]

Traffic (real MCP JSON-RPC over Streamable HTTP, to the SDK demo server,
JSON responses, stateless): a fixed mix of allowed tools/call (echo, add),
tools/list and ping; denied tools/call (delete_record, and send_email
outside example.com); and malformed bodies (refused with -32700). Every
request has exactly one expected outcome; anything else is an unexpected
error.

Checks (the exit status is 1 if any fails):
  * zero unexpected outcomes (status, JSON-RPC error code, transport errors);
  * no denied call reached the upstream, every allowed one did (the demo
    server's log of received messages);
  * one `mcp-policy audit` event per request (Envoy's log), so the audit
    record count equals the request count;
  * Envoy's resident memory flat: sampled every few seconds; after a
    warm-up (the first fifth of the run), the largest sample may exceed the
    first by at most --rss-growth-mb (default 24 MiB).

Servers listen on 127.0.0.1 only and are stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from support import harness  # noqa: E402

POLICY = """package mcp
import rego.v1

default allow := true

deny contains "deleting records is not allowed" if input.mcp.tool.name == "delete_record"

deny contains "send_email may only send to @example.com" if {
    input.mcp.tool.name == "send_email"
    not endswith(input.mcp.tool.arguments.to, "@example.com")
}
"""

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2025-06-18"}
DENY_CODE = -31403

# (weight, kind, build(id) -> body bytes, expected)
# expected: ("result",) | ("error", code) with HTTP 200 | ("status", http, code)


def _call(tool: str, args: dict[str, Any]):
    return lambda i: json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                 "params": {"name": tool, "arguments": args}}).encode()


MIX = [
    (30, "allow:echo", _call("echo", {"text": "soak"}), ("result",)),
    (15, "allow:add", _call("add", {"a": 2, "b": 3}), ("result",)),
    (10, "allow:tools/list", lambda i: json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/list"}).encode(),
     ("result",)),
    (5, "allow:ping", lambda i: json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode(), ("result",)),
    (20, "deny:delete_record", _call("delete_record", {"id": 1}), ("error", DENY_CODE)),
    (10, "deny:send_email", _call("send_email", {"to": "x@evil.test", "body": "b"}), ("error", DENY_CODE)),
    (10, "reject:malformed", lambda i: b'{"jsonrpc":"2.0","id":%d,"method":' % i, ("status", 400, -32700)),
]
SCHEDULE = [entry for entry in MIX for _ in range(entry[0])]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = Counter()
        self.unexpected: list[str] = []
        self.allowed_ids: set[int] = set()
        self.denied_ids: set[int] = set()
        self.latencies: list[float] = []


def check(kind: str, expected: tuple, r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return f"{kind}: HTTP {r.status_code}, body not JSON: {r.text[:120]!r}"
    if expected[0] == "result":
        if r.status_code != 200 or "result" not in body:
            return f"{kind}: expected a result, got HTTP {r.status_code} {str(body)[:160]}"
    elif expected[0] == "error":
        if r.status_code != 200 or body.get("error", {}).get("code") != expected[1]:
            return f"{kind}: expected error {expected[1]}, got HTTP {r.status_code} {str(body)[:160]}"
    else:
        if r.status_code != expected[1] or body.get("error", {}).get("code") != expected[2]:
            return f"{kind}: expected HTTP {expected[1]} / {expected[2]}, got HTTP {r.status_code} {str(body)[:160]}"
    return None


def worker(base_url: str, ids: Any, deadline: float, interval: float, tally: Tally, offset: int) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as http:
        n = offset
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            _, kind, build, expected = SCHEDULE[n % len(SCHEDULE)]
            n += 7  # walk the schedule in a scattered order
            ident = next(ids)
            started = time.monotonic()
            try:
                r = http.post("/mcp", content=build(ident), headers=HEADERS)
                problem = check(kind, expected, r)
            except httpx.HTTPError as e:
                problem = f"{kind}: transport error {e!r}"
            took = time.monotonic() - started
            with tally.lock:
                tally.sent[kind] += 1
                tally.latencies.append(took)
                if problem:
                    tally.unexpected.append(problem)
                if kind.startswith("allow"):
                    tally.allowed_ids.add(ident)
                else:
                    tally.denied_ids.add(ident)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the load, not synchronisation
            else:
                next_at = time.monotonic()


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def audit_events(envoy: harness.EnvoyHandle) -> int:
    return sum(1 for line in envoy.log_text().splitlines() if "mcp-policy audit " in line)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib // 1024 // 1024} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({model}){mem}, {platform.system()} {platform.release()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--rps", type=float, default=float(os.environ.get("SOAK_RPS", 40)))
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rss-growth-mb", type=float, default=24.0)
    ap.add_argument("--sample-seconds", type=float, default=5.0)
    ap.add_argument("--out", default=str(REPO / "bench" / "soak.md"))
    ap.add_argument("--note", default="", help="a line added to the summary (e.g. what else ran on the machine)")
    a = ap.parse_args()

    wasm = harness.DEFAULT_WASM
    if not wasm.is_file():
        print(f"soak: {wasm} not found: run `make build`", file=sys.stderr)
        return 2
    # A fresh directory per run: the harness reads Envoy's admin address
    # from a file there, which a previous run must not have left behind.
    work = REPO / "build" / "soak" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=False)
    server = harness.start_demo_server(work, json_response=True, stateless=True, timeout=120)
    envoy = None
    try:
        envoy = harness.start_envoy(
            work,
            plugin_config={"policy": {"modules": {"soak.rego": POLICY}}, "audit": {"log": True, "log_flush_ms": 250}},
            upstream_port=server.port,
            wasm_path=wasm,
            component_log_level=None,
            concurrency=2,
            timeout=180,  # a busy machine compiles the module slowly
        )
        pid = envoy.proc.pid
        tally = Tally()
        ids = itertools.count(1)
        started = time.monotonic()
        deadline = started + a.seconds
        interval = a.workers / a.rps
        threads = [threading.Thread(target=worker, args=(envoy.base_url, ids, deadline, interval, tally, k),
                                    daemon=True) for k in range(a.workers)]
        for t in threads:
            t.start()
        samples: list[tuple[float, int]] = []
        while any(t.is_alive() for t in threads):
            kib = rss_kib(pid)
            if kib is not None:
                samples.append((time.monotonic() - started, kib))
            for t in threads:
                t.join(timeout=a.sample_seconds / max(1, len(threads)))
        elapsed = time.monotonic() - started
        kib = rss_kib(pid)
        if kib is not None:
            samples.append((elapsed, kib))
        envoy_alive = envoy.is_running()

        total = sum(tally.sent.values())
        # Audit events are written as requests are decided; wait for the
        # last ones to reach the log file.
        audits = harness.poll(lambda: audit_events(envoy), lambda n: n >= total, timeout=20)
        received = server.received()
        received_ids = {m.get("id") for m in received}
        leaked = sorted(tally.denied_ids & received_ids)
        missing = sorted(tally.allowed_ids - received_ids)

        warm = [kb for t, kb in samples if t >= a.seconds / 5] or [kb for _, kb in samples]
        rss_first, rss_max, rss_last = warm[0], max(warm), warm[-1]
        growth_mb = (rss_max - rss_first) / 1024
        lat = sorted(tally.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0

        checks = {
            "zero unexpected outcomes": not tally.unexpected,
            "no denied call reached the upstream": not leaked,
            "every allowed call reached the upstream": not missing,
            "audit events == requests": audits == total,
            f"RSS growth after warm-up <= {a.rss_growth_mb:g} MiB": growth_mb <= a.rss_growth_mb,
            "Envoy still running": envoy_alive,
        }
        ok = all(checks.values())
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            "# Soak",
            "",
            f"`make soak` (tools/soak.py): {a.seconds:g} s of steady MCP traffic through Envoy "
            f"({Path(harness.find_envoy()).name}, --concurrency 2) with the module, to the SDK demo server.",
            "",
            f"- date: {now}",
            f"- machine: {machine()}; **shared with other builds running at the same time**, so "
            "latencies are indicative only",
            *( [f"- note: {a.note}"] if a.note else [] ),
            f"- target rate {a.rps:g} requests/s over {a.workers} clients; achieved "
            f"{total / elapsed:.1f} requests/s, {total} requests in {elapsed:.0f} s",
            f"- latency through Envoy: p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "",
            "| request kind | sent |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in sorted(tally.sent.items())],
            "",
            "| check | result |",
            "|---|---|",
            *[f"| {name} | {'pass' if passed else 'FAIL'} |" for name, passed in checks.items()],
            "",
            f"- unexpected outcomes: {len(tally.unexpected)}"
            + (f" (first: {tally.unexpected[0]})" if tally.unexpected else ""),
            f"- audit events in Envoy's log: {audits} for {total} requests",
            f"- denied calls seen by the upstream: {len(leaked)}; allowed calls missing upstream: {len(missing)}",
            f"- Envoy RSS ({len(samples)} samples every {a.sample_seconds:g} s): after warm-up first "
            f"{rss_first / 1024:.1f} MiB, max {rss_max / 1024:.1f} MiB, last {rss_last / 1024:.1f} MiB "
            f"(growth {growth_mb:+.1f} MiB); whole run min {min(kb for _, kb in samples) / 1024:.1f} MiB",
            "",
            "RSS over time (s → MiB): "
            + ", ".join(f"{t:.0f}→{kb / 1024:.1f}" for t, kb in samples[:: max(1, len(samples) // 12)]),
            "",
            f"Verdict: **{'pass' if ok else 'FAIL'}**",
            "",
        ]
        Path(a.out).write_text("\n".join(lines), encoding="utf-8")
        print("\n".join(lines))
        return 0 if ok else 1
    finally:
        if envoy is not None:
            envoy.stop()
        server.proc.stop()


if __name__ == "__main__":
    sys.exit(main())
