"""`make run` (tools/run_demo.py) as a newcomer meets it: the banner's example
works and prints the denial's reason, a policy edit is live within seconds, an
edit that does not compile is refused with its file and line while the last
good policy keeps serving, and a second demo on the same ports says which port
is taken instead of starting.

The demo runs on free loopback ports with a copy of policies/ (--ports,
--policy-dir), so the repository is not touched."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError

from support import REPO, harness

DEMO = REPO / "tools" / "run_demo.py"
DEADLINE = 90.0


class Demo:
    """One run_demo.py process and the lines it printed."""

    def __init__(self, policy_dir: Path, ports: list[int]) -> None:
        self.ports = ports
        self.lines: list[str] = []
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, str(DEMO), "--policy-dir", str(policy_dir), "--ports", ",".join(map(str, ports))],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, ENVOY_BIN=harness.find_envoy()),
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def _next_line(self, deadline: float, what: object) -> str | None:
        """The demo's next line, or None once ``deadline`` has passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            line = self.queue.get(timeout=left)
        except queue.Empty:
            return None
        if line is None:
            raise AssertionError(f"the demo exited ({self.proc.wait()}) before {what!r}:\n" + "\n".join(self.lines))
        self.lines.append(line)
        return line

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """The first line from now on matching ``pattern`` (a regex)."""
        deadline = time.monotonic() + timeout
        while (line := self._next_line(deadline, pattern)) is not None:
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f} s:\n" + "\n".join(self.lines[-40:]))

    def wait_for_all(self, patterns: list[str], timeout: float = DEADLINE) -> None:
        """Lines from now on matching each of ``patterns``, in any order:
        audit lines come in batches per worker (``audit.log_flush_ms``), so
        two workers' lines are not in the order of their decisions."""
        left_to_see = list(patterns)
        deadline = time.monotonic() + timeout
        while left_to_see and (line := self._next_line(deadline, left_to_see)) is not None:
            left_to_see = [p for p in left_to_see if not re.search(p, line)]
        if left_to_see:
            raise AssertionError(f"no line matching {left_to_see!r} within {timeout:.0f} s:\n" + "\n".join(self.lines[-40:]))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[1]}/mcp"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[tuple[Demo, Path]]:
    policy_dir = tmp_path_factory.mktemp("policies")
    for rego in (REPO / "policies").glob("*.rego"):
        if not rego.name.endswith("_test.rego"):
            shutil.copy(rego, policy_dir / rego.name)
    d = Demo(policy_dir, [harness.free_port() for _ in range(4)])
    try:
        d.wait_for(r"^mcp-policy is running:")
        d.wait_for(r"Ctrl-C stops everything")
        yield d, policy_dir
    finally:
        assert d.stop() == 0, "\n".join(d.lines[-40:])


def call(endpoint: str, tool: str, args: dict[str, Any]) -> str:
    """The tool's text, or ``denied: <reason>`` — what the banner's example prints."""
    async def main() -> str:
        async with Client(endpoint) as c:
            try:
                return (await c.call_tool(tool, args)).content[0].text
            except MCPError as e:
                return f"denied: {e.error.message}"
    return anyio.run(main)


def test_the_banners_example_prints_the_reason(demo: tuple[Demo, Path]) -> None:
    d, _ = demo
    assert any("audit line" in line for line in d.lines), d.lines
    assert call(d.endpoint, "echo", {"text": "hi"}) == "hi"
    assert call(d.endpoint, "delete_record", {"id": 1}) == \
        'denied: Denied by policy: tool "delete_record" is blocked by policy'
    # Every decision is logged, the allowed ones too (each worker writes
    # its own batches: in either order).
    d.wait_for_all([r'mcp-policy audit \{.*"decision":"allow".*"tool":"echo"',
                    r'mcp-policy audit \{.*"decision":"deny".*"tool":"delete_record"'])


def test_an_edit_is_live_and_a_broken_one_is_refused(demo: tuple[Demo, Path]) -> None:
    d, policy_dir = demo
    policy = policy_dir / "default.rego"
    good = policy.read_text(encoding="utf-8")
    policy.write_text(good + '\ndeny contains "no greetings today" if input.mcp.tool.name == "echo"\n',
                      encoding="utf-8")
    offered = d.wait_for(r"changed: offering revision (\S+) to Envoy").group(1)
    d.wait_for(rf"policy revision {re.escape(offered)} is live \(all \d+ VMs\)")
    assert call(d.endpoint, "echo", {"text": "hi"}) == "denied: Denied by policy: no greetings today"

    lines = len(policy.read_text(encoding="utf-8").splitlines())
    policy.write_text(policy.read_text(encoding="utf-8") + "deny contains \"x\" if 1 +* 2\n", encoding="utf-8")
    refused = d.wait_for(r"policy edit refused, the last good policy keeps serving: (.*)").group(1)
    assert re.search(rf"default\.rego:{lines + 1}:\d+:", refused), refused
    assert f"still serving revision {offered}" in refused, refused
    assert call(d.endpoint, "echo", {"text": "hi"}) == "denied: Denied by policy: no greetings today"

    policy.write_text(good, encoding="utf-8")
    back = d.wait_for(r"changed: offering revision (\S+) to Envoy").group(1)
    d.wait_for(rf"policy revision {re.escape(back)} is live \(all \d+ VMs\)")
    assert call(d.endpoint, "echo", {"text": "hi"}) == "hi"


def test_a_second_demo_says_which_port_is_taken(demo: tuple[Demo, Path]) -> None:
    d, policy_dir = demo
    r = subprocess.run(
        [sys.executable, str(DEMO), "--policy-dir", str(policy_dir), "--ports", ",".join(map(str, d.ports))],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    for port in d.ports:
        assert f"127.0.0.1:{port} (for " in r.stderr and "is already in use" in r.stderr, r.stderr
    assert "mcp-policy is running" not in r.stdout
