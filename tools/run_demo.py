#!/usr/bin/env python3
"""`make run`: the demo MCP server on 127.0.0.1:8000 and Envoy on
127.0.0.1:10000 with the mcp-policy module and the shipped configuration
(envoy/envoy.yaml, which carries the default policy from policies/).

Runs until Ctrl-C (or SIGTERM), then stops both processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENVOY_CONFIG = REPO / "envoy" / "envoy.yaml"
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "mcp_policy.wasm"
BIN = Path(sys.executable).parent


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}; see its output above")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise SystemExit(f"{what} did not become ready within {timeout:.0f} s")


def main() -> int:
    if not WASM.is_file():
        raise SystemExit(f"{WASM} is missing: run `make build`")
    envoy_bin = os.environ.get("ENVOY_BIN") or str(BIN / "envoy")
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "support" / "demo_server.py"), "--host", "127.0.0.1", "--port", "8000"],
        cwd=REPO,
    )
    envoy = None
    try:
        envoy = subprocess.Popen(
            [envoy_bin, "-c", str(ENVOY_CONFIG), "--concurrency", "2", "--disable-hot-restart",
             "--log-level", "warning", "--component-log-level", "wasm:info"],
            cwd=REPO,  # envoy.yaml names the module relative to the repository root
        )
        wait_ready("http://127.0.0.1:9901/ready", envoy, "Envoy")
        print(
            "\n"
            "mcp-policy is running:\n"
            "  MCP endpoint (through Envoy + mcp-policy):  http://127.0.0.1:10000/mcp\n"
            "  demo MCP server (direct, no policy):         http://127.0.0.1:8000/mcp\n"
            "  Envoy admin (stats, logs):                   http://127.0.0.1:9901/\n"
            "\n"
            "Point any MCP client at the endpoint (Streamable HTTP), for example with the\n"
            "Python SDK in .venv:\n"
            "  .venv/bin/python -c 'import anyio; from mcp import Client\n"
            "  async def main():\n"
            "      async with Client(\"http://127.0.0.1:10000/mcp\") as c:\n"
            "          print(await c.call_tool(\"echo\", {\"text\": \"hi\"}))\n"
            "          print(await c.call_tool(\"delete_record\", {\"id\": 1}))  # denied by policy\n"
            "  anyio.run(main)'\n"
            "\n"
            "The policy is policies/default.rego (edit it, then `make envoy-config` and restart).\n"
            "Denials are logged below by Envoy's wasm logger. Ctrl-C stops everything.\n",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while server.poll() is None and envoy.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (envoy, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    sys.exit(main())
