#!/usr/bin/env python3
"""`make run`: the demo MCP server on 127.0.0.1:8000 and Envoy on
127.0.0.1:10000 with the mcp-policy module, the shipped settings and the
policy in policies/, served live.

policies/ is served as a policy bundle (docs/bundles.md) from 127.0.0.1:8181,
which the module polls every second: an edit to a policy is live within a
couple of seconds, and the terminal says which revision is serving, or why an
edit was refused (with the file and line of a compile error); a refused edit
leaves the last good policy serving.

Runs until Ctrl-C (or SIGTERM), then stops everything it started.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import envoy_config  # noqa: E402

WASM = REPO / "target" / "wasm32-wasip1" / "release" / "mcp_policy.wasm"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
# Overridable (--policy-dir, --ports) so the demo's own test runs it beside anything.
POLICIES = REPO / "policies"
SERVER_PORT, LISTEN_PORT, ADMIN_PORT, BUNDLE_PORT = 8000, 10000, 9901, 8181


def ports() -> dict[int, str]:
    return {
        SERVER_PORT: "the demo MCP server",
        LISTEN_PORT: "Envoy's MCP listener",
        ADMIN_PORT: "Envoy's admin interface",
        BUNDLE_PORT: "the policy bundle server",
    }
BUNDLE_PATH = "/bundles/policies.tar.gz"
POLL_MS = 1000
READY_TIMEOUT = 60.0


def say(text: str) -> None:
    print(f"[make run] {text}", flush=True)


def taken_ports() -> list[str]:
    """The demo's ports that something else already listens on, described."""
    taken = []
    for port, what in ports().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                taken.append(f"{HOST}:{port} (for {what}) is already in use")
    return taken


# --------------------------------------------------------------------------- #
# policies/ as a bundle
# --------------------------------------------------------------------------- #


def policy_files() -> dict[str, bytes]:
    """What the bundle carries: the *.rego modules directly in policies/ (tests
    excluded, as in envoy/envoy.yaml) and policies/data.json when present."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(POLICIES.glob("*.rego"))
        if p.is_file() and not p.name.endswith("_test.rego")
    }
    data = POLICIES / "data.json"
    if data.is_file():
        files["data.json"] = data.read_bytes()
    return files


def build_bundle() -> tuple[bytes, str]:
    """(the bundle, its revision): a gzipped tar in OPA's layout with a
    .manifest naming the revision, a digest of the files (so it changes with
    every edit and not otherwise)."""
    files = policy_files()
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    revision = "policies-" + digest.hexdigest()[:12]
    entries = {**files, ".manifest": json.dumps({"revision": revision}).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(entries.items()):
            info = tarfile.TarInfo(name=name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0), revision


class Bundles:
    """The current bundle of policies/, rebuilt when the files change."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.body, self.revision = build_bundle()

    def refresh(self) -> str | None:
        """Rebuild; the new revision when policies/ changed, else None."""
        try:
            body, revision = build_bundle()
        except OSError as e:  # a file removed mid-edit: try again next time
            say(f"could not read policies/: {e}")
            return None
        with self.lock:
            if revision == self.revision:
                return None
            self.body, self.revision = body, revision
        return revision

    def current(self) -> tuple[bytes, str]:
        with self.lock:
            return self.body, self.revision


def serve_bundles(bundles: Bundles) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body, revision = bundles.current()
            etag = f'"{revision}"'
            if self.path.split("?", 1)[0] != BUNDLE_PATH:
                self.send_response(404)
                self.send_header("content-length", "0")
            elif self.headers.get("if-none-match") == etag:
                self.send_response(304)
                self.send_header("etag", etag)
            else:
                self.send_response(200)
                self.send_header("content-type", "application/gzip")
                self.send_header("content-length", str(len(body)))
                self.send_header("etag", etag)
                self.end_headers()
                self.wfile.write(body)
                return
            self.end_headers()

        def log_message(self, *_: Any) -> None:  # polls every second: keep the terminal quiet
            pass

    server = ThreadingHTTPServer((HOST, BUNDLE_PORT), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bundles", daemon=True).start()
    return server


# --------------------------------------------------------------------------- #
# Envoy and the demo server
# --------------------------------------------------------------------------- #


def envoy_config_file(work: Path) -> Path:
    """envoy/envoy.yaml's configuration (policies/ inline, so the demo decides
    before the first poll), plus the bundle source."""
    plugin_config = envoy_config.plugin_config_from_dir(POLICIES)
    plugin_config["bundle"] = {"cluster": "policy_bundles", "path": BUNDLE_PATH, "poll_interval_ms": POLL_MS}
    text = envoy_config.render(
        listen_port=LISTEN_PORT, upstream_port=SERVER_PORT, admin_port=ADMIN_PORT,
        wasm_path=WASM, plugin_config=plugin_config,
        extra_clusters=[envoy_config.static_cluster("policy_bundles", BUNDLE_PORT)], fmt="json",
    )
    path = work / "envoy.json"
    path.write_text(text, encoding="utf-8")
    return path


class EnvoyLog:
    """Envoy's output, passed through, except the module's bundle lines (one
    per VM): a refused edit is said once, with its reason; loads are said
    by :func:`serving` once every VM has swapped."""

    BUNDLE = re.compile(r"mcp-policy: policy bundle (?:loaded from \S+: revision (?P<rev>\S+)|from \S+ not used: (?P<why>.*))")

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        # Each VM logs the same refusal: each is said once (until the next edit).
        self.refused: set[str] = set()
        threading.Thread(target=self.pump, name="envoy-log", daemon=True).start()

    def pump(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            m = self.BUNDLE.search(line)
            if not m:
                print(line, file=sys.stderr, flush=True)
            elif m.group("why") and m.group("why") not in self.refused:
                self.refused.add(m.group("why"))
                say(f"policy edit refused, the last good policy keeps serving: {m.group('why')}")


def serving() -> dict[str, int]:
    """VMs serving each bundle revision, from Envoy's stats (the module's
    `mcp_policy_bundle_active.revision.<r>` gauge); empty when unreadable."""
    url = f"http://{HOST}:{ADMIN_PORT}/stats?filter=mcp_policy_bundle_active"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode("utf-8", "replace")
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r"mcp_policy_bundle_active\.revision\.(\S+): (\d+)", text):
        out[m.group(1)] = int(m.group(2))
    return out


def live_revision() -> tuple[str, int] | None:
    """The revision every VM serves, and how many VMs, once they all agree."""
    active = {r: n for r, n in serving().items() if n > 0}
    if len(active) == 1:
        ((revision, vms),) = active.items()
        return revision, vms
    return None


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}; its errors are above")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise SystemExit(f"{what} did not become ready within {timeout:.0f} s")


def start_demo_server() -> subprocess.Popen[bytes]:
    """The demo MCP server; returns once it listens. Its errors go to the terminal."""
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "support" / "demo_server.py"), "--host", HOST, "--port", str(SERVER_PORT)],
        cwd=REPO, stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    ready: list[bool] = []
    done = threading.Event()

    def pump() -> None:
        assert server.stdout is not None
        for raw in iter(server.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not ready and line.startswith("READY"):
                ready.append(True)
                done.set()
            else:
                print(line, flush=True)
        done.set()

    threading.Thread(target=pump, name="demo-server", daemon=True).start()
    if not done.wait(READY_TIMEOUT) or not ready:
        code = server.poll()
        raise SystemExit(
            "the demo MCP server did not start"
            + (f" (exit status {code}; its errors are above)" if code is not None else f" within {READY_TIMEOUT:.0f} s")
        )
    return server


BANNER = """
mcp-policy is running:
  MCP endpoint (through Envoy + mcp-policy):  http://{HOST}:{LISTEN_PORT}/mcp
  demo MCP server (direct, no policy):         http://{HOST}:{SERVER_PORT}/mcp
  Envoy admin (stats, logs):                   http://{HOST}:{ADMIN_PORT}/

Point any MCP client at the endpoint (Streamable HTTP), for example with the
Python SDK in .venv:
  .venv/bin/python -c 'import anyio; from mcp import Client, MCPError
  async def main():
      async with Client("http://{HOST}:{LISTEN_PORT}/mcp") as c:
          print((await c.call_tool("echo", {{"text": "hi"}})).content[0].text)
          try:
              await c.call_tool("delete_record", {{"id": 1}})
          except MCPError as e:
              print("denied:", e.error.message)
  anyio.run(main)'

The policy is policies/*.rego (and policies/data.json if you add one), served
live: save an edit and it is in force within about two seconds (the revision
is printed here; an edit that does not compile is refused with its file and
line, and the last good policy keeps serving).
Every decision, allowed or denied, is logged below as an audit line by
Envoy's wasm logger. Ctrl-C stops everything.
"""


def banner() -> str:
    return BANNER.format(HOST=HOST, LISTEN_PORT=LISTEN_PORT, SERVER_PORT=SERVER_PORT, ADMIN_PORT=ADMIN_PORT)


def main(argv: list[str] | None = None) -> int:
    global POLICIES, SERVER_PORT, LISTEN_PORT, ADMIN_PORT, BUNDLE_PORT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy-dir", type=Path, default=POLICIES, help="the policies served live (default: policies/)")
    parser.add_argument("--ports", default=f"{SERVER_PORT},{LISTEN_PORT},{ADMIN_PORT},{BUNDLE_PORT}",
                        help="SERVER,LISTENER,ADMIN,BUNDLES (default: %(default)s)")
    args = parser.parse_args(argv)
    POLICIES = args.policy_dir.resolve()
    try:
        SERVER_PORT, LISTEN_PORT, ADMIN_PORT, BUNDLE_PORT = (int(p) for p in args.ports.split(","))
    except ValueError:
        parser.error(f"--ports expects four port numbers separated by commas, not {args.ports!r}")
    if not WASM.is_file():
        raise SystemExit(f"{WASM} is missing: run `make build`")
    taken = taken_ports()
    if taken:
        raise SystemExit("cannot start the demo:\n  " + "\n  ".join(taken)
                         + "\n(another `make run`? stop it, or find the process with `ss -ltnp`)")
    envoy_bin = os.environ.get("ENVOY_BIN") or str(BIN / "envoy")
    bundles = Bundles()
    bundle_server = serve_bundles(bundles)
    server = envoy = None
    work = tempfile.TemporaryDirectory(prefix="mcp-policy-run-")
    try:
        say(f"starting the demo MCP server on {HOST}:{SERVER_PORT}")
        server = start_demo_server()
        say(f"starting Envoy on {HOST}:{LISTEN_PORT} (compiling the module takes a few seconds)")
        envoy = subprocess.Popen(
            [envoy_bin, "-c", str(envoy_config_file(Path(work.name))), "--concurrency", "2", "--disable-hot-restart",
             "--log-level", "warning", "--component-log-level", "wasm:info"],
            cwd=REPO, stderr=subprocess.PIPE,
        )
        assert envoy.stderr is not None
        log = EnvoyLog(envoy.stderr)
        wait_ready(f"http://{HOST}:{ADMIN_PORT}/ready", envoy, "Envoy")
        announced = None
        deadline = time.monotonic() + 15
        live = live_revision()
        while (live is None or live[0] != bundles.current()[1]) and time.monotonic() < deadline:
            time.sleep(0.2)
            live = live_revision()
        if live is not None and live[0] == bundles.current()[1]:
            announced = live[0]
            say(f"policy revision {announced} is live (all {live[1]} VMs)")
        else:
            say("the first policy bundle has not loaded yet: the inline copy of policies/ is serving")
        print(banner(), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while server.poll() is None and envoy.poll() is None:
            time.sleep(0.25)
            revision = bundles.refresh()
            if revision is not None and revision == announced:
                say(f"{POLICIES.name}/ is back to revision {revision}, the one serving")
            elif revision is not None:
                log.refused.clear()
                say(f"{POLICIES.name}/ changed: offering revision {revision} to Envoy")
            live = live_revision()
            if live is not None and live[0] != announced:
                announced = live[0]
                say(f"policy revision {announced} is live (all {live[1]} VMs)")
        say("the demo server or Envoy stopped; its errors are above")
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
        bundle_server.shutdown()
        work.cleanup()


if __name__ == "__main__":
    sys.exit(main())
