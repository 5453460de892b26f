#!/usr/bin/env python3
"""`make bench`: one run, one report (bench/report.md and bench/report.json).

Measures, in this order (see bench/README.md for the design and the choices):

1. the machine, the tools and their versions;
2. module size and Envoy start-up (`envoy --mode validate` wall time);
3. native micro-benchmarks (criterion, crates/core/benches/request_path.rs), read back
   from target/criterion;
4. end-to-end load on loopback with h2load (HTTP/1.1) through Envoy for the
   scenarios (a) bare Envoy, (b) Envoy + mcp-policy (default policy),
   (b-nolog) the same without the audit log line, (b-lean) without any
   optional audit output (log line, filter state, argument digest), (e) Envoy + a no-op
   proxy-wasm filter that holds the headers and buffers the body, (c) Envoy's
   RBAC filter on the Mcp-Name header, (d) Envoy ext_authz (HTTP, with the
   body) to bench/authz-service; the upstream is a second Envoy answering
   with canned JSON-RPC results (direct_response);
5. end-to-end body-size scaling (a, e, b on one connection);
6. Envoy memory (RSS) with and without the module, at 1 and 2 workers.

Every parameter has an environment variable (BENCH_*, listed in
bench/README.md). Standard library only; the servers listen on 127.0.0.1,
every load phase is bounded in time, and everything started is stopped.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import envoy_config  # noqa: E402

BENCH = REPO / "bench"
# BENCH_MODULE measures another build of the module (for example the one of an
# earlier commit, kept aside) against the same floor and ext_authz service.
WASM = Path(os.environ.get("BENCH_MODULE") or REPO / "target/wasm32-wasip1/release/mcp_policy.wasm")
NOOP_WASM = REPO / "target/bench/wasm32-wasip1/release/noop_filter.wasm"
AUTHZ_BIN = REPO / "target/bench/release/authz-service"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


P = {
    "rate": env_int("BENCH_RATE", 1000),
    "fixed_seconds": env_float("BENCH_FIXED_SECONDS", 10),
    "single_seconds": env_float("BENCH_SINGLE_SECONDS", 5),
    "max_seconds": env_float("BENCH_MAX_SECONDS", 10),
    "max_connections": env_int("BENCH_MAX_CONNECTIONS", 16),
    "rate_clients": env_int("BENCH_RATE_CLIENTS", 1),
    "warmup_requests": env_int("BENCH_WARMUP_REQUESTS", 3000),
    "concurrency": env_int("BENCH_CONCURRENCY", 1),
    "authz_threads": env_int("BENCH_AUTHZ_THREADS", 2),
    "scenarios": os.environ.get("BENCH_SCENARIOS", "a,e,b,b-nolog,c,d").split(","),
    "list_tools": env_int("BENCH_LIST_TOOLS", 100),
    "body_sizes": [int(x) for x in os.environ.get("BENCH_BODY_SIZES", "1024,16384,131072,1048576").split(",") if x],
    "scaling_seconds": env_float("BENCH_SCALING_SECONDS", 3),
    "criterion_seconds": env_float("BENCH_CRITERION_SECONDS", 2),
    "micro": os.environ.get("BENCH_MICRO", "1") != "0",
    "e2e": os.environ.get("BENCH_E2E", "1") != "0",
    "memory": os.environ.get("BENCH_MEMORY", "1") != "0",
    "startup_runs": env_int("BENCH_STARTUP_RUNS", 3),
}

LOG: list[str] = []


def say(msg: str) -> None:
    line = f"[bench {time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    LOG.append(line)


def sh(argv: list[str], **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_envoy() -> str:
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    for c in (REPO / ".venv/bin/envoy",):
        if c.exists():
            return str(c)
    found = shutil.which("envoy")
    if found:
        return found
    raise SystemExit("envoy not found (make setup installs it into .venv, or set ENVOY_BIN)")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def other_cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy during `seconds` (before we load the machine)."""

    def snap():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f), idle

    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return round(1 - (i1 - i0) / max(1, t1 - t0), 3)


# --------------------------------------------------------------------------- #
# The workload
# --------------------------------------------------------------------------- #


def call_body(size: int = 1024) -> bytes:
    """A tools/call for read_file of about `size` bytes (the filler grows)."""

    def render(filler: str) -> bytes:
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 42,
                "method": "tools/call",
                "params": {
                    "name": "read_file",
                    "arguments": {"path": "/workspace/src/main.rs", "encoding": "utf-8", "note": filler},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            },
            separators=(",", ":"),
        ).encode()

    base = len(render(""))
    words = "lorem ipsum dolor sit amet "
    filler = (words * (max(0, size - base) // len(words) + 1))[: max(0, size - base)]
    return render(filler)


def list_body() -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        },
        separators=(",", ":"),
    ).encode()


def call_result() -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 42,
            "result": {"content": [{"type": "text", "text": "fn main() { println!(\"hello\"); }\n"}], "isError": False},
        },
        separators=(",", ":"),
    ).encode()


def list_result(n: int) -> bytes:
    tools = [
        {
            "name": f"tool_{i:04d}",
            "title": f"Tool {i}",
            "description": f"Does thing number {i} with a path and a limit.",
            "inputSchema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
                "required": ["path"],
            },
        }
        for i in range(n)
    ]
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}, separators=(",", ":")).encode()


COMMON_HEADERS = [
    "content-type: application/json",
    "accept: application/json, text/event-stream",
    "mcp-protocol-version: 2026-07-28",
]
WORKLOADS = {
    "tools_call": {"headers": COMMON_HEADERS + ["mcp-method: tools/call", "mcp-name: read_file"]},
    "tools_list": {"headers": COMMON_HEADERS + ["mcp-method: tools/list"]},
}


# --------------------------------------------------------------------------- #
# Envoy configurations
# --------------------------------------------------------------------------- #


def sa(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": sa(port)}}]}],
        },
    }


def hcm(filters: list[dict], route_config: dict) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "bench",
            "codec_type": "AUTO",
            "route_config": route_config,
            "http_filters": filters
            + [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }
            ],
        },
    }


def bootstrap(listen: int, admin: int, filters: list[dict], route_config: dict, clusters: list[dict]) -> dict:
    return {
        "admin": {"address": sa(admin)},
        "static_resources": {
            "listeners": [
                {"name": "main", "address": sa(listen), "filter_chains": [{"filters": [hcm(filters, route_config)]}]}
            ],
            "clusters": clusters,
        },
    }


def upstream_config(listen: int, admin: int, files: dict[str, Path]) -> dict:
    """The fast upstream: canned JSON-RPC results by Mcp-Method (and a tool count header)."""

    def answer(path: Path) -> dict:
        return {"status": 200, "body": {"filename": str(path)}}

    routes = []
    for name, path in files.items():
        if name.startswith("list_"):
            n = name.split("_")[1]
            routes.append(
                {
                    "match": {
                        "prefix": "/",
                        "headers": [
                            {"name": "mcp-method", "string_match": {"exact": "tools/list"}},
                            {"name": "x-bench-tools", "string_match": {"exact": n}},
                        ],
                    },
                    "direct_response": answer(path),
                }
            )
    routes.append(
        {
            "match": {"prefix": "/", "headers": [{"name": "mcp-method", "string_match": {"exact": "tools/list"}}]},
            "direct_response": answer(files[f"list_{P['list_tools']}"]),
        }
    )
    routes.append({"match": {"prefix": "/"}, "direct_response": answer(files["call"])})
    route_config = {
        "max_direct_response_body_size_bytes": 16 * 1024 * 1024,
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}],
    }
    # The buffer filter reads the whole request before the direct response:
    # answering at the headers, with the body still in flight, makes the
    # proxy under test close the upstream connection after every request
    # (one TCP connection per request in every scenario).
    buffer = {
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 16 * 1024 * 1024,
        },
    }
    return bootstrap(listen, admin, [buffer], route_config, [])


def proxy_route() -> dict:
    return {
        "virtual_hosts": [
            {"name": "mcp", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "0s"}}]}
        ]
    }


def plugin_config(log: bool = True, lean: bool = False) -> dict:
    cfg = envoy_config.plugin_config_from_dir(REPO / "policies")
    if not log:
        cfg["audit"] = {"log": False}
    if lean:
        # Every optional audit output off: no log line, no filter state, no
        # argument digest (the decision, its metrics and the reply stay).
        cfg["audit"] = {"log": False, "filter_state": False, "arguments_digest": False}
    return cfg


def scenario_filters(name: str, authz_port: int | None) -> tuple[list[dict], list[dict]]:
    """(http filters before the router, extra clusters) of a scenario."""
    if name == "a":
        return [], []
    if name in ("b", "b-nolog", "b-lean"):
        cfg = plugin_config(log=name == "b", lean=name == "b-lean")
        return [envoy_config.wasm_filter(wasm_path=WASM, plugin_config=cfg)], []
    if name == "e":
        f = envoy_config.wasm_filter(wasm_path=NOOP_WASM, plugin_config="")
        vm = f["typed_config"]["config"]
        vm["name"] = vm["root_id"] = vm["vm_config"]["vm_id"] = "noop"
        return [f], []
    if name == "c":
        return [
            {
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {
                        "action": "DENY",
                        "policies": {
                            "blocked-tools": {
                                "permissions": [
                                    {"header": {"name": "mcp-name", "string_match": {"exact": "delete_record"}}}
                                ],
                                "principals": [{"any": True}],
                            }
                        },
                    },
                },
            }
        ], []
    if name == "d":
        assert authz_port is not None
        return [
            {
                "name": "envoy.filters.http.ext_authz",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "transport_api_version": "V3",
                    "failure_mode_allow": False,
                    "with_request_body": {"max_request_bytes": 4 * 1024 * 1024, "allow_partial_message": False},
                    "http_service": {
                        "server_uri": {"uri": f"http://127.0.0.1:{authz_port}", "cluster": "authz", "timeout": "2s"},
                        "authorization_request": {
                            "allowed_headers": {
                                "patterns": [
                                    {"prefix": "mcp-"},
                                    {"exact": "content-type"},
                                    {"exact": "accept"},
                                    {"exact": "authorization"},
                                ]
                            }
                        },
                        "authorization_response": {
                            "allowed_client_headers": {"patterns": [{"prefix": "x-mcp-"}, {"exact": "content-type"}]}
                        },
                    },
                },
            }
        ], [cluster("authz", authz_port)]
    raise ValueError(f"unknown scenario {name}")


SCENARIO_TITLES = {
    "a": "(a) bare Envoy",
    "e": "(e) no-op proxy-wasm filter (holds headers, buffers body)",
    "b": "(b) mcp-policy, default policy",
    "b-nolog": "(b) mcp-policy, default policy, audit.log off",
    "b-lean": "(b) mcp-policy, default policy, no audit log line, filter state or argument digest",
    "c": "(c) Envoy RBAC on Mcp-Name",
    "d": "(d) ext_authz (HTTP, with body) to authz-service",
}


# --------------------------------------------------------------------------- #
# Processes
# --------------------------------------------------------------------------- #


class Proc:
    def __init__(self, argv: list[str], log: Path):
        self.log = log
        self.fh = open(log, "wb")
        self.p = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.fh.close()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (every thread), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wait_ready(admin: int, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"exited ({proc.p.returncode}); see {proc.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - not ready yet
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"not ready within {timeout} s ({last}); see {proc.log}")


def wait_port(port: int, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"exited ({proc.p.returncode}); see {proc.log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open within {timeout} s; see {proc.log}")


def start_envoy(envoy: str, cfg: dict, work: Path, name: str, concurrency: int, admin: int) -> Proc:
    path = work / f"{name}.json"
    path.write_text(json.dumps(cfg, indent=1))
    argv = [envoy, "-c", str(path), "--concurrency", str(concurrency), "-l", "warning",
            "--component-log-level", "wasm:info", "--base-id", str(free_port()), "--disable-hot-restart"]
    proc = Proc(argv, work / f"{name}.log")
    wait_ready(admin, proc)
    return proc


# --------------------------------------------------------------------------- #
# Load
# --------------------------------------------------------------------------- #


#: Processes whose CPU time each load phase accounts (the Envoy under test,
#: and the ext_authz service in (d)).
ACCOUNTED: list[int] = []


def h2load(url: str, body: Path, headers: list[str], extra: list[str], work: Path, tag: str) -> dict:
    log = work / f"h2load-{tag}.tsv"
    cpu0 = cpu_seconds(ACCOUNTED)
    argv = ["h2load", "--h1", "-t", "1", "-d", str(body), "--log-file", str(log)]
    for h in headers:
        argv += ["-H", h]
    argv += extra + [url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    cpu = cpu_seconds(ACCOUNTED) - cpu0
    (work / f"h2load-{tag}.out").write_text(out)
    lat = []
    codes: dict[str, int] = {}
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            codes[parts[1]] = codes.get(parts[1], 0) + 1
            lat.append(int(parts[2]))
    lat.sort()
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    rps = float(m.group(3)) if m else 0.0
    st = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)

    def pct(q: float) -> float | None:
        if not lat:
            return None
        return float(lat[min(len(lat) - 1, int(q * len(lat)))])

    res = {
        "requests": len(lat),
        "rps": rps,
        "status": codes,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": float(lat[-1]) if lat else None,
        "mean_us": round(statistics.fmean(lat), 1) if lat else None,
        # CPU the proxy (and in (d) the authz service) spent per request:
        # what a busy machine inflates least.
        "cpu_us_per_request": round(cpu * 1e6 / len(lat), 1) if lat else None,
    }
    if st:
        res["failed"] = int(st.group(5)) + int(st.group(6))
    non2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
    if non2xx or res.get("failed"):
        say(f"  WARNING {tag}: {non2xx} non-2xx, {res.get('failed')} failed (codes {codes})")
    return res


def probe(url: str) -> dict:
    """One tools/call of a tool the default policy blocks: shows whether the
    scenario's filter is in the path (the module, RBAC and ext_authz deny it)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": "delete_record", "arguments": {"id": 1}}}).encode()
    headers = dict(h.split(": ", 1) for h in COMMON_HEADERS)
    headers.update({"mcp-method": "tools/call", "mcp-name": "delete_record"})
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    denied = status >= 400 or '"error"' in text
    return {"status": status, "denied": denied, "body": text[:200]}


def dur(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def phases(url: str, files: dict[str, Path], work: Path, tag: str, workload: str, body: Path) -> dict:
    headers = WORKLOADS[workload]["headers"]
    out: dict = {}
    h2load(url, body, headers, ["-n", str(P["warmup_requests"]), "-c", "4"], work, f"{tag}-{workload}-warmup")
    out["single"] = h2load(url, body, headers, ["-c", "1", "-D", dur(P["single_seconds"])], work, f"{tag}-{workload}-single")
    clients = P["rate_clients"]
    out["fixed"] = h2load(
        url, body, headers,
        ["-c", str(clients), "--rps", str(max(1, P["rate"] // clients)), "-D", dur(P["fixed_seconds"])],
        work, f"{tag}-{workload}-fixed",
    )
    out["max"] = h2load(url, body, headers, ["-c", str(P["max_connections"]), "-D", dur(P["max_seconds"])], work, f"{tag}-{workload}-max")
    return out


# --------------------------------------------------------------------------- #
# Sections
# --------------------------------------------------------------------------- #


def machine(envoy: str) -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "git": git + ("-dirty" if dirty else ""),
        "envoy": envoy,
        "envoy_version": sh([envoy, "--version"]).strip().splitlines()[-1],
        "load_tool": sh(["h2load", "--version"]).strip(),
        "rustc": sh(["rustc", "--version"]).strip(),
        "loadavg_start": loadavg(),
        "cpu_busy_before_start": other_cpu_busy(),
    }


def module_and_startup(envoy: str, work: Path) -> dict:
    res: dict = {"module_bytes": WASM.stat().st_size, "noop_module_bytes": NOOP_WASM.stat().st_size}
    for name in ("a", "b"):
        filters, clusters = scenario_filters(name, None)
        cfg = bootstrap(free_port(), free_port(), filters, proxy_route(), [cluster("upstream", 1)] + clusters)
        path = work / f"validate-{name}.json"
        path.write_text(json.dumps(cfg))
        times, cpu = [], []
        for _ in range(P["startup_runs"]):
            t = time.monotonic()
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "error"], check=True,
                           capture_output=True, timeout=300)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append(time.monotonic() - t)
            cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
        res[f"validate_{name}_s"] = round(statistics.median(times), 3)
        # CPU time is what a busy machine does not inflate (wall time is).
        res[f"validate_{name}_cpu_s"] = round(statistics.median(cpu), 3)
    return res


def micro(work: Path) -> dict:
    start = time.time()
    env = dict(os.environ, BENCH_CRITERION_SECONDS=str(P["criterion_seconds"]))
    log = work / "criterion.log"
    say(f"cargo bench (criterion, {P['criterion_seconds']} s per benchmark); log {log}")
    with open(log, "w") as fh:
        subprocess.run(
            ["cargo", "bench", "--bench", "request_path", "--", "--noplot",
             "--warm-up-time", "1", "--measurement-time", str(P["criterion_seconds"])],
            cwd=REPO, check=True, stdout=fh, stderr=subprocess.STDOUT, env=env,
        )
    results = []
    root = REPO / "target/criterion"
    for est in root.rglob("new/estimates.json"):
        if est.stat().st_mtime < start:
            continue
        meta = json.loads((est.parent / "benchmark.json").read_text())
        e = json.loads(est.read_text())
        results.append(
            {
                "group": meta.get("group_id"),
                "function": meta.get("function_id"),
                "parameter": meta.get("value_str"),
                "median_ns": round(e["median"]["point_estimate"], 1),
                "mean_ns": round(e["mean"]["point_estimate"], 1),
                "mean_ci_ns": [round(e["mean"]["confidence_interval"]["lower_bound"], 1),
                               round(e["mean"]["confidence_interval"]["upper_bound"], 1)],
            }
        )
    results.sort(key=lambda r: (r["group"] or "", r["function"] or "", _num(r["parameter"])))
    return {"benchmarks": results}


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def e2e(envoy: str, work: Path) -> dict:
    files = {"call": work / "call-result.json"}
    files["call"].write_bytes(call_result())
    for n in sorted({10, 100, 1000, P["list_tools"]}):
        files[f"list_{n}"] = work / f"list-result-{n}.json"
        files[f"list_{n}"].write_bytes(list_result(n))
    bodies = {"tools_call": work / "call-1k.json", "tools_list": work / "list.json"}
    bodies["tools_call"].write_bytes(call_body(1024))
    bodies["tools_list"].write_bytes(list_body())
    up_port, up_admin = free_port(), free_port()
    upstream = start_envoy(envoy, upstream_config(up_port, up_admin, files), work, "upstream", 1, up_admin)
    authz = None
    out: dict = {
        "upstream": "a second Envoy (concurrency 1) answering with canned JSON-RPC results (direct_response)",
        "request_bytes": {k: v.stat().st_size for k, v in bodies.items()},
        "tools_list_response_bytes": files[f"list_{P['list_tools']}"].stat().st_size,
        "scenarios": {},
        "body_scaling": {},
    }
    try:
        for name in P["scenarios"]:
            authz_port = None
            if name == "d":
                authz_port = free_port()
                cfg_path = work / "authz-plugin.json"
                cfg_path.write_text(json.dumps(plugin_config()))
                authz = Proc([str(AUTHZ_BIN), "--config", str(cfg_path), "--listen", f"127.0.0.1:{authz_port}",
                              "--threads", str(P["authz_threads"])], work / "authz.log")
                wait_port(authz_port, authz)
            filters, clusters = scenario_filters(name, authz_port)
            port, admin = free_port(), free_port()
            cfg = bootstrap(port, admin, filters, proxy_route(), [cluster("upstream", up_port)] + clusters)
            say(f"scenario {SCENARIO_TITLES[name]} (load average {loadavg()})")
            proxy = start_envoy(envoy, cfg, work, f"proxy-{name}", P["concurrency"], admin)
            ACCOUNTED[:] = [proxy.p.pid] + ([authz.p.pid] if authz is not None else [])
            try:
                url = f"http://127.0.0.1:{port}/mcp"
                res = {"title": SCENARIO_TITLES[name], "loadavg_before": loadavg()}
                res["blocked_tool_probe"] = probe(url)
                expect = name in ("b", "b-nolog", "b-lean", "c", "d")
                if res["blocked_tool_probe"]["denied"] != expect:
                    say(f"  WARNING: a blocked tool was {'denied' if not expect else 'allowed'} "
                        f"in {name}: {res['blocked_tool_probe']}")
                for wl in WORKLOADS:
                    res[wl] = phases(url, files, work, name, wl, bodies[wl])
                    say(f"  {wl}: single p50 {res[wl]['single']['p50_us']} µs, fixed p50/p99/p99.9 "
                        f"{res[wl]['fixed']['p50_us']}/{res[wl]['fixed']['p99_us']}/{res[wl]['fixed']['p999_us']} µs, "
                        f"max {res[wl]['max']['rps']:.0f} req/s")
                res["rss_kib_after"] = proxy.rss_kib()
                if authz is not None:
                    res["authz_rss_kib_after"] = authz.rss_kib()
                out["scenarios"][name] = res
            finally:
                proxy.stop()
                if authz is not None:
                    authz.stop()
                    authz = None
        # Body size: one connection, closed loop, a, e, b.
        for name in [s for s in ("a", "e", "b") if s in P["scenarios"]]:
            filters, clusters = scenario_filters(name, None)
            port, admin = free_port(), free_port()
            cfg = bootstrap(port, admin, filters, proxy_route(), [cluster("upstream", up_port)] + clusters)
            proxy = start_envoy(envoy, cfg, work, f"size-{name}", P["concurrency"], admin)
            ACCOUNTED[:] = [proxy.p.pid]
            try:
                url = f"http://127.0.0.1:{port}/mcp"
                rows = {}
                for size in P["body_sizes"]:
                    body = work / f"call-{size}.json"
                    body.write_bytes(call_body(size))
                    hd = WORKLOADS["tools_call"]["headers"]
                    h2load(url, body, hd, ["-n", "200", "-c", "1"], work, f"size-{name}-{size}-warmup")
                    rows[str(size)] = h2load(url, body, hd, ["-c", "1", "-D", dur(P["scaling_seconds"])], work,
                                             f"size-{name}-{size}")
                out["body_scaling"][name] = rows
                say(f"  body scaling {name}: " + ", ".join(f"{k} B p50 {v['p50_us']} µs" for k, v in rows.items()))
            finally:
                proxy.stop()
    finally:
        if authz is not None:
            authz.stop()
        upstream.stop()
    return out


def memory(envoy: str, work: Path) -> dict:
    """Envoy RSS after warm-up, with (b) and without (a) the module, at 1 and 2 workers."""
    res: dict = {}
    up_port, up_admin = free_port(), free_port()
    files = {"call": work / "call-result.json", f"list_{P['list_tools']}": work / f"list-result-{P['list_tools']}.json"}
    files["call"].write_bytes(call_result())
    files[f"list_{P['list_tools']}"].write_bytes(list_result(P["list_tools"]))
    body = work / "call-1k.json"
    body.write_bytes(call_body(1024))
    upstream = start_envoy(envoy, upstream_config(up_port, up_admin, files), work, "upstream-mem", 1, up_admin)
    try:
        for name in ("a", "b"):
            for workers in (1, 2):
                filters, clusters = scenario_filters(name, None)
                port, admin = free_port(), free_port()
                cfg = bootstrap(port, admin, filters, proxy_route(), [cluster("upstream", up_port)] + clusters)
                proxy = start_envoy(envoy, cfg, work, f"mem-{name}-{workers}", workers, admin)
                try:
                    idle = proxy.rss_kib()
                    # Enough connections that every worker serves some.
                    h2load(f"http://127.0.0.1:{port}/mcp", body, WORKLOADS["tools_call"]["headers"],
                           ["-n", "4000", "-c", "8"], work, f"mem-{name}-{workers}")
                    res[f"{name}_workers{workers}"] = {"idle_kib": idle, "loaded_kib": proxy.rss_kib()}
                finally:
                    proxy.stop()
    finally:
        upstream.stop()
    a1, a2 = res["a_workers1"]["loaded_kib"], res["a_workers2"]["loaded_kib"]
    b1, b2 = res["b_workers1"]["loaded_kib"], res["b_workers2"]["loaded_kib"]
    res["module_total_kib_1_worker"] = b1 - a1
    res["module_per_extra_worker_kib"] = (b2 - a2) - (b1 - a1)
    return res


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def ratios(sc: dict) -> dict:
    if "a" not in sc:
        return {}
    out: dict = {}
    for name, r in sc.items():
        out[name] = {}
        for wl in WORKLOADS:
            base, me = sc["a"][wl], r[wl]
            row = {"throughput_ratio": round(me["max"]["rps"] / base["max"]["rps"], 3) if base["max"]["rps"] else None}
            bc, mc = base["max"].get("cpu_us_per_request"), me["max"].get("cpu_us_per_request")
            if bc and mc:
                row["cpu_us_per_request_added"] = round(mc - bc, 1)
                row["cpu_ratio"] = round(mc / bc, 2)
            for phase in ("single", "fixed"):
                for q in ("p50_us", "p99_us", "p999_us"):
                    b, m = base[phase][q], me[phase][q]
                    if b and m:
                        row[f"{phase}_{q}_ratio"] = round(m / b, 2)
                        row[f"{phase}_{q}_added"] = round(m - b, 1)
            out[name][wl] = row
    return out


def host_calls() -> dict:
    """Host calls per request of the two workloads, counted by the adapter's
    host emulator (crates/filter/src/proxy/tests/counts.rs): the same
    adapter code, every proxy-wasm call it makes recorded."""
    out = subprocess.run(
        ["cargo", "test", "-q", "-p", "mcp-policy", "--lib", "host_calls_per_request", "--", "--nocapture"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    ).stdout
    m = re.search(r"host calls per request: tools_call (\d+) tools_list_100 (\d+)", out)
    if not m:
        return {}
    return {"tools_call": int(m.group(1)), "tools_list_100": int(m.group(2))}


def _cpu(sc: dict, name: str, wl: str):
    return sc.get(name, {}).get(wl, {}).get("max", {}).get("cpu_us_per_request")


def targets(report: dict) -> list[dict]:
    """Issue 19's targets, each from figures measured side by side in this run."""
    t: list[dict] = []
    r = report.get("ratios", {})
    sc = report.get("e2e", {}).get("scenarios", {})
    wl = "tools_call"
    cb, ce, cd = _cpu(sc, "b", wl), _cpu(sc, "e", wl), _cpu(sc, "d", wl)
    if cb and ce:
        v = cb - ce
        t.append({"target": "Envoy CPU per allowed tools/call over the floor (b) − (e) ≤ +40 µs",
                  "value": f"+{v:.0f} µs ({cb:.0f} vs {ce:.0f})", "met": v <= 40})
    if cb and cd:
        v = cb / cd
        t.append({"target": "CPU per allowed tools/call as a ratio to (d) ext_authz ≤ 0.5",
                  "value": f"{v:.2f} ({cb:.0f} vs {cd:.0f} µs)", "met": v <= 0.5})
    if "b" in r:
        vb = r["b"][wl].get("single_p50_us_added")
        vd = r.get("d", {}).get(wl, {}).get("single_p50_us_added")
        if vb is not None:
            ok = vb <= 100 and (vd is None or vb <= vd / 2)
            extra = f", (d) +{vd:.0f} µs" if vd is not None else ""
            t.append({"target": "added p50 over (a), one connection ≤ +100 µs and ≤ half of (d)'s",
                      "value": f"+{vb:.0f} µs{extra}", "met": ok})
    hc = report.get("host_calls", {})
    if hc:
        t.append({"target": "host calls per allowed tools/call ≤ 8 / per filtered 100-tool list exchange ≤ 10",
                  "value": f"{hc['tools_call']} / {hc['tools_list_100']}",
                  "met": hc["tools_call"] <= 8 and hc["tools_list_100"] <= 10})
    cl = _cpu(sc, "b", "tools_list")
    if cl:
        t.append({"target": "CPU per filtered 100-tool tools/list exchange ≤ 200 µs",
                  "value": f"{cl:.0f} µs (request and answer; (e) {_cpu(sc, 'e', 'tools_list') or 0:.0f})",
                  "met": cl <= 200})
    m = report.get("module", {})
    if m:
        t.append({"target": "Envoy start-up with the module ≤ 1.5 s (validate)",
                  "value": f"{m['validate_b_s']:.2f} s wall, {m['validate_b_cpu_s']:.2f} s CPU "
                           f"(without it {m['validate_a_s']:.2f} s)",
                  "met": m["validate_b_s"] <= 1.5})
        t.append({"target": "default module ≤ 3 MiB", "value": f"{m['module_bytes'] / 1048576:.2f} MiB",
                  "met": m["module_bytes"] <= 3 * 1048576})
    mem = report.get("memory", {})
    if mem:
        v = mem["module_per_extra_worker_kib"] / 1024
        t.append({"target": "≤ 16 MiB per VM", "value": f"{v:.1f} MiB per extra worker", "met": v <= 16})
    bs = report.get("e2e", {}).get("body_scaling", {})
    if "b" in bs and "a" in bs:
        added = {int(k): bs["b"][k]["p50_us"] - bs["a"][k]["p50_us"] for k in bs["b"] if k in bs["a"]}
        if len(added) >= 2:
            lo, hi = min(added), max(added)
            per_kib_lo = added[lo] / (lo / 1024)
            per_kib_hi = added[hi] / (hi / 1024)
            t.append({"target": "linear in body size", "value": f"added {added[lo]:.0f} µs at {lo} B, {added[hi]:.0f} µs at {hi} B "
                      f"({per_kib_hi:.2f} µs/KiB at the top)", "met": per_kib_hi <= max(per_kib_lo, 1.0) * 1.5})
    return t


def fmt(v, nd=0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(rep: dict) -> str:
    m = rep["machine"]
    L = ["# mcp-policy benchmark report", ""]
    L.append(f"Generated by `make bench` (bench/run.py) on {m['date_utc']}, commit {m['git']}.")
    L.append("")
    L.append("| | |\n|---|---|")
    for k in ("host", "cpu", "cpus", "memory_gib", "kernel", "envoy_version", "load_tool", "rustc",
              "loadavg_start", "cpu_busy_before_start", "loadavg_end"):
        L.append(f"| {k} | {m.get(k)} |")
    L.append("| parameters | " + ", ".join(f"{k}={v}" for k, v in rep["parameters"].items()) + " |")
    if rep.get("contended"):
        L.append("")
        L.append(f"**Measured under contention**: the machine was busy before the run "
                 f"({m['cpu_busy_before_start']:.0%} of the CPUs, load average {m['loadavg_start']}); "
                 "absolute figures are noisy, ratios less so. Re-run on an idle machine for clean numbers.")
    if rep.get("targets"):
        L += ["", "## Targets (issue 19)", "", "| target | measured | met |", "|---|---|---|"]
        for t in rep["targets"]:
            L.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    mo = rep.get("module")
    if mo:
        L += ["", "## Module and start-up", "",
              f"- module: {mo['module_bytes']:,} bytes ({mo['module_bytes'] / 1048576:.2f} MiB); no-op filter {mo['noop_module_bytes']:,} bytes",
              f"- `envoy --mode validate` (median of {P['startup_runs']}): without the module {mo['validate_a_s']:.2f} s, "
              f"with it {mo['validate_b_s']:.2f} s (CPU time: {mo['validate_a_cpu_s']:.2f} s and {mo['validate_b_cpu_s']:.2f} s)"]
    mi = rep.get("micro", {}).get("benchmarks")
    if mi:
        L += ["", "## Micro-benchmarks (criterion, native)", "", "| group | benchmark | parameter | median | mean (95% CI) |",
              "|---|---|---|---|---|"]
        for b in mi:
            L.append(f"| {b['group']} | {b['function'] or ''} | {b['parameter'] or ''} | {b['median_ns'] / 1000:.2f} µs | "
                     f"{b['mean_ns'] / 1000:.2f} µs ({b['mean_ci_ns'][0] / 1000:.2f}–{b['mean_ci_ns'][1] / 1000:.2f}) |")
    e = rep.get("e2e")
    if e and e.get("scenarios"):
        L += ["", "## End to end (loopback, h2load HTTP/1.1)", "",
              f"Upstream: {e['upstream']}. Proxy Envoy concurrency {P['concurrency']}. Request bodies: {e['request_bytes']} bytes; "
              f"tools/list response {e['tools_list_response_bytes']} bytes ({P['list_tools']} tools). "
              f"Phases: one connection closed loop ({P['single_seconds']} s); fixed rate {P['rate']} req/s over "
              f"{P['rate_clients']} connections ({P['fixed_seconds']} s); maximum throughput with {P['max_connections']} "
              f"connections ({P['max_seconds']} s). Latencies are h2load's per-request times (µs). "
              "CPU µs/req: user+system CPU time of the Envoy under test (plus the authz service in (d)) during "
              "the maximum-throughput phase, per request — the figure a busy machine distorts least."]
        for wl in WORKLOADS:
            L += ["", f"### {wl}", "",
                  "| scenario | 1 conn p50 | 1 conn p99 | fixed p50 | fixed p99 | fixed p99.9 | max req/s | ×(a) thr | +p50 1 conn | +p50 fixed | +p99 fixed | +p99.9 fixed | CPU µs/req | +CPU µs/req | non-2xx |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for name, r in e["scenarios"].items():
                w = r[wl]
                ra = rep.get("ratios", {}).get(name, {}).get(wl, {})
                non2xx = sum(v for k, v in w["max"]["status"].items() if not k.startswith("2")) + \
                    sum(v for k, v in w["fixed"]["status"].items() if not k.startswith("2"))
                L.append(
                    f"| {r['title']} | {fmt(w['single']['p50_us'])} | {fmt(w['single']['p99_us'])} | {fmt(w['fixed']['p50_us'])} | "
                    f"{fmt(w['fixed']['p99_us'])} | {fmt(w['fixed']['p999_us'])} | {w['max']['rps']:.0f} | "
                    f"{fmt(ra.get('throughput_ratio'), 3)} | {fmt(ra.get('single_p50_us_added'))} | {fmt(ra.get('fixed_p50_us_added'))} | "
                    f"{fmt(ra.get('fixed_p99_us_added'))} | {fmt(ra.get('fixed_p999_us_added'))} | "
                    f"{fmt(w['max'].get('cpu_us_per_request'))} | {fmt(ra.get('cpu_us_per_request_added'))} | {non2xx} |")
        L += ["", "Filter in the path: a tools/call of `delete_record` (blocked by the default policy) got "
              + "; ".join(f"{n}: HTTP {r['blocked_tool_probe']['status']}, {'denied' if r['blocked_tool_probe']['denied'] else 'allowed'}"
                          for n, r in e["scenarios"].items()) + "."]
        if e.get("body_scaling"):
            L += ["", "### Body size (tools/call, one connection, p50 µs)", ""]
            names = list(e["body_scaling"])
            L.append("| bytes | " + " | ".join(SCENARIO_TITLES[n] for n in names) + " |")
            L.append("|---" * (len(names) + 1) + "|")
            for size in P["body_sizes"]:
                L.append(f"| {size} | " + " | ".join(fmt(e["body_scaling"][n].get(str(size), {}).get("p50_us")) for n in names) + " |")
    mem = rep.get("memory")
    if mem:
        L += ["", "## Memory (Envoy RSS after 4,000 requests, KiB)", "", "| | 1 worker | 2 workers |", "|---|---|---|"]
        for name in ("a", "b"):
            L.append(f"| {SCENARIO_TITLES[name]} | {mem[f'{name}_workers1']['loaded_kib']} | {mem[f'{name}_workers2']['loaded_kib']} |")
        L.append("")
        L.append(f"The module adds {mem['module_total_kib_1_worker'] / 1024:.1f} MiB at one worker (V8, compiled code, one VM) "
                 f"and {mem['module_per_extra_worker_kib'] / 1024:.1f} MiB for each further worker (its own VM).")
    L += ["", f"Run took {rep['elapsed_s']:.0f} s. Raw data: bench/report.json; logs in {rep['work_dir']}.", ""]
    return "\n".join(L)


def main() -> None:
    t0 = time.monotonic()
    envoy = find_envoy()
    work = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="mcp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    say(f"work directory {work}")
    rep: dict = {"parameters": P, "work_dir": str(work)}
    rep["machine"] = machine(envoy)
    # The busy fraction is measured over a second before the load starts;
    # the load average is not used: right after `make bench`'s own build
    # steps it is always high.
    rep["contended"] = rep["machine"]["cpu_busy_before_start"] > 0.1
    say(f"machine: {rep['machine']['cpu']} ×{rep['machine']['cpus']}, CPU busy before start "
        f"{rep['machine']['cpu_busy_before_start']:.0%}, load {rep['machine']['loadavg_start']}")
    rep["host_calls"] = host_calls()
    say(f"host calls per request: {rep['host_calls']}")
    rep["module"] = module_and_startup(envoy, work)
    say(f"module {rep['module']['module_bytes']} bytes; validate {rep['module']['validate_a_s']} s without, "
        f"{rep['module']['validate_b_s']} s with")
    if P["micro"]:
        rep["micro"] = micro(work)
    if P["e2e"]:
        rep["e2e"] = e2e(envoy, work)
        rep["ratios"] = ratios(rep["e2e"]["scenarios"])
    if P["memory"]:
        rep["memory"] = memory(envoy, work)
    rep["machine"]["loadavg_end"] = loadavg()
    rep["targets"] = targets(rep)
    rep["elapsed_s"] = round(time.monotonic() - t0, 1)
    out_json = Path(os.environ.get("BENCH_REPORT_JSON", BENCH / "report.json"))
    out_md = Path(os.environ.get("BENCH_REPORT_MD", BENCH / "report.md"))
    out_json.write_text(json.dumps(rep, indent=1) + "\n")
    out_md.write_text(markdown(rep))
    say(f"wrote {out_md} and {out_json} ({rep['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
