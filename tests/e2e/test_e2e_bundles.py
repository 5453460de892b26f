"""Policy bundles through a real Envoy: the policy comes from a bundle source
(an Envoy cluster polled with dispatch_http_call, If-None-Match / ETag), a
new bundle is swapped in within a poll, a broken bundle or a source that is
down keeps the last good policy (logged and counted), bundles swap under a
load of real SDK calls without a failed request, and two Envoys polling one
source both apply a kill published as policy data.

The bundle source is tests/support/bundle_server.py on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp_types import Implementation

import envoy_config  # noqa: F401  (harness puts tools/ on sys.path)
from support import harness, rpc
from support.bundle_server import BundleServer, targz
from support.jwt_util import jwt_filter, make_keys, token

REPO = Path(__file__).resolve().parent.parent.parent
CLUSTER = "policy_bundles"
PATH = "/bundles/mcp.tar.gz"
POLL_MS = 300
HEADERS = rpc.JSON_HEADERS

MAIN = """package mcp

import rego.v1

default allow := true

deny contains sprintf("%s: tool %s is blocked", [data.rev.name, input.mcp.tool.name]) if {
\tinput.mcp.tool.name in data.rev.blocked
}
"""


def bundle(rev: str, blocked: list[str], **extra: str) -> bytes:
    files = {"policy/main.rego": MAIN, "rev/data.json": json.dumps({"name": rev, "blocked": blocked}), **extra}
    return targz(files, revision=rev)


def plugin_config(**bundle_kw: Any) -> dict[str, Any]:
    b = {"cluster": CLUSTER, "path": PATH, "poll_interval_ms": POLL_MS, "timeout_ms": 1000, **bundle_kw}
    return {"bundle": b}


@pytest.fixture
def server() -> Iterator[BundleServer]:
    s = BundleServer(bundle("r1", ["delete_record"]))
    try:
        yield s
    finally:
        s.stop()


def start(envoy_factory: Any, server: BundleServer, config: dict[str, Any] | None = None,
          **kw: Any) -> harness.EnvoyHandle:
    return envoy_factory(config or plugin_config(),
                         extra_clusters=[envoy_config.static_cluster(CLUSTER, server.port)], **kw)


def call(envoy: harness.EnvoyHandle, tool: str, client: httpx.Client | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(HTTP status, "ok" or the denial message)."""
    body = rpc.call(tool, 1, {"text": "x"})
    h = dict(HEADERS, **(headers or {}))
    if client is None:
        r = httpx.post(envoy.url, content=json.dumps(body), headers=h, timeout=10)
    else:
        r = client.post(envoy.url, content=json.dumps(body), headers=h)
    if r.status_code != 200:
        try:
            return r.status_code, json.loads(r.text)["error"]["message"]
        except (ValueError, KeyError):
            return r.status_code, r.text
    msg = json.loads(r.text) if r.headers.get("content-type", "").startswith("application/json") else {}
    if "error" in msg:
        return 200, msg["error"]["message"]
    return 200, "ok"


def stat(envoy: harness.EnvoyHandle, name: str) -> int:
    return sum(v for k, v in envoy.stats().items() if k.endswith(name) or f"{name}." in k)


def serving(envoy: harness.EnvoyHandle, rev: str, blocked: str, open_tool: str, n: int = 10) -> bool:
    """``n`` calls in a row (spread over the workers) all see revision ``rev``."""
    with httpx.Client(timeout=10) as c:
        for _ in range(n):
            if call(envoy, blocked, c) != (200, f"Denied by policy: {rev}: tool {blocked} is blocked"):
                return False
            if call(envoy, open_tool, c) != (200, "ok"):
                return False
    return True


def audit_events(envoy: harness.EnvoyHandle) -> list[dict[str, Any]]:
    return envoy.audit_events()


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_policy_from_a_bundle_and_a_new_bundle_swaps_it(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    envoy = start(envoy_factory, server, concurrency=2)
    assert harness.wait_until(lambda: serving(envoy, "r1", "delete_record", "echo")), call(envoy, "echo")
    log = envoy.log_text()
    assert f"policy bundle loaded from {CLUSTER}{PATH}: revision r1 (1 module(s): policy/main.rego; engine rvm" in log
    assert stat(envoy, "mcp_policy_bundle_loads") >= 1
    assert stat(envoy, "mcp_policy_bundle_active.revision.r1") >= 1

    # Polls carry the ETag; the server answers 304 and nothing is reloaded.
    etag = server.etag
    assert harness.wait_until(lambda: server.count(status=304) >= 3)
    assert all(h.if_none_match == etag for h in server.requests() if h.status == 304)
    assert all(h.path == PATH for h in server.requests())
    assert harness.wait_until(lambda: stat(envoy, "mcp_policy_bundle_not_modified") >= 3)
    loads = stat(envoy, "mcp_policy_bundle_loads")
    assert harness.wait_until(lambda: server.count(status=304) >= 10)
    assert stat(envoy, "mcp_policy_bundle_loads") == loads

    # A new bundle: every worker serves it after a poll.
    server.set_bundle(bundle("r2", ["echo"]))
    assert harness.wait_until(lambda: serving(envoy, "r2", "echo", "delete_record"), timeout=15)
    assert "revision r2" in envoy.log_text() and "replacing revision r1" in envoy.log_text()
    revisions = {e["policy_revision"] for e in audit_events(envoy)}
    assert revisions <= {"r1", "r2", "bundle-pending"}, revisions
    assert harness.wait_until(lambda: stat(envoy, "mcp_policy_bundle_active.revision.r1") == 0)
    assert stat(envoy, "mcp_policy_bundle_active.revision.r2") >= 1
    assert stat(envoy, "mcp_policy_bundle_failures") == 0


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_before_the_first_bundle_every_message_is_denied(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    server.set_status(503)
    envoy = start(envoy_factory, server)
    assert harness.wait_until(lambda: stat(envoy, "mcp_policy_bundle_failures") >= 1)
    status, message = call(envoy, "echo")
    assert status == 503 and "policy bundle not loaded yet" in message, (status, message)
    assert not [m for m in demo_server.received() if m.get("method") == "tools/call"]
    assert "bundle download failed: HTTP 503 (bundle server error); still serving revision bundle-pending" in envoy.log_text()
    server.set_bundle(bundle("r1", ["delete_record"]))
    assert harness.wait_until(lambda: serving(envoy, "r1", "delete_record", "echo"))


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_inline_policy_serves_until_the_first_bundle(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    server.stop()
    inline = MAIN.replace("data.rev.name", '"inline"').replace("data.rev.blocked", '["add"]')
    config = dict(plugin_config(), policy={"modules": {"inline.rego": inline}})
    envoy = start(envoy_factory, server, config)
    assert harness.wait_until(lambda: stat(envoy, "mcp_policy_bundle_failures") >= 1)
    assert serving(envoy, "inline", "add", "echo")
    server.start()
    assert harness.wait_until(lambda: serving(envoy, "r1", "delete_record", "add"))


BROKEN: list[tuple[str, Any, str]] = [
    ("not gzip", lambda s: s.set_garbage(b"certainly not a bundle"), "bundle unreadable: not a gzipped tar"),
    ("gzip, not tar", lambda s: s.set_garbage(__import__("gzip").compress(b"\x07" * 4096)),
     "bundle unreadable: not a gzipped tar"),
    ("bad rego", lambda s: s.set_bundle(targz({"policy/main.rego": "package mcp\n\nallow if {\n"}, revision="bad")),
     "bundle does not compile: policy/main.rego:4:1: expecting expression"),
    ("bad data", lambda s: s.set_bundle(bundle("bad2", [], **{"x/data.json": '{"a": [1,\n}'})),
     "bundle unreadable: x/data.json:2:"),
    ("too large", lambda s: s.set_bundle(targz({"policy/main.rego": MAIN, "pad.bin": __import__("os").urandom(30_000)},
                                               revision="big")),
     "bundle too large: "),
    ("http 500", lambda s: s.set_status(500), "bundle download failed: HTTP 500"),
    # No answer within timeout_ms: Envoy answers 504 itself.
    ("no answer", lambda s: s.hang(), "bundle download failed: HTTP 504 (upstream request timeout)"),
    # Envoy answers a refused connection itself, with a 503.
    ("down", lambda s: s.stop(), "bundle download failed: HTTP 503 (upstream connect error"),
]


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_broken_bundle_or_source_keeps_the_last_good_policy(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    # max_bytes: the "too large" bundle is refused before unpacking.
    envoy = start(envoy_factory, server, plugin_config(max_bytes=20_000), concurrency=2)
    assert harness.wait_until(lambda: serving(envoy, "r1", "delete_record", "echo"))
    for name, breakit, logged in BROKEN:
        before = stat(envoy, "mcp_policy_bundle_failures")
        breakit(server)
        assert harness.wait_until(lambda: stat(envoy, "mcp_policy_bundle_failures") > before), name
        assert harness.wait_until(lambda: logged in envoy.log_text()), (name, logged)
        assert "still serving revision r1" in envoy.log_text()
        assert serving(envoy, "r1", "delete_record", "echo"), name
        if name == "down":
            server.start()
        server.set_status(200)
    assert f"{CLUSTER}{PATH} not used" in envoy.log_text()
    # A broken bundle is fetched and compiled once, not at every poll: its
    # ETag is sent back and answered 304.
    t = server.requests()[-1].at
    server.set_bundle(targz({"policy/main.rego": "package mcp\n\nallow if {\n"}, revision="bad-again"))
    assert harness.wait_until(lambda: server.count(status=304, since=t) >= 12)
    assert server.count(status=200, since=t) <= 4  # once per VM (main thread + 2 workers)
    # And the source recovers: the next good bundle is served.
    server.set_bundle(bundle("r3", ["add"]))
    assert harness.wait_until(lambda: serving(envoy, "r3", "add", "delete_record"), timeout=15)
    assert {e["policy_revision"] for e in audit_events(envoy)} <= {"r1", "r3", "bundle-pending"}


def test_hot_reload_under_load_of_sdk_calls(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    """Real SDK sessions call tools while bundles swap several times: no call
    fails, and every decision was made by one of the revisions served."""
    revs = [f"load{i}" for i in range(5)]
    server.set_bundle(bundle(revs[0], ["delete_record"]))
    envoy = start(envoy_factory, server, concurrency=2)
    vms = 3  # one per worker, and the main thread's

    def loaded(rev: str) -> bool:
        """Every VM has swapped ``rev`` in."""
        return envoy.log_text().count(f"revision {rev} (") >= vms

    assert harness.wait_until(lambda: loaded(revs[0]))
    calls = 0
    failures: list[str] = []

    async def scenario() -> None:
        nonlocal calls
        current = 0
        async with Client(envoy.url, client_info=Implementation(name="bundle-load", version="1"),
                          read_timeout_seconds=15) as c:
            while calls < 3000:
                try:
                    r = await c.call_tool("echo", {"text": f"n{calls}"})
                    if r.is_error or r.content[0].text != f"n{calls}":
                        failures.append(str(r))
                except Exception as e:  # noqa: BLE001 -- any failure counts
                    failures.append(repr(e))
                calls += 1
                if loaded(revs[current]) and calls % 10 == 0:
                    if current == len(revs) - 1:
                        break
                    current += 1
                    server.set_bundle(bundle(revs[current], ["delete_record"]))

    anyio.run(scenario)
    assert not failures, failures[:5]
    assert all(loaded(r) for r in revs), [r for r in revs if not loaded(r)]
    events = audit_events(envoy)
    assert len([e for e in events if e.get("method") == "tools/call"]) == calls
    seen = {e["policy_revision"] for e in events}
    assert seen <= set(revs), seen
    assert len(seen) >= 3, seen
    assert stat(envoy, "mcp_policy_bundle_failures") == 0


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_kill_published_in_a_bundle_reaches_two_envoys(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    keys = make_keys()
    library = (REPO / "policies" / "library" / "killswitch.rego").read_text()
    main = "package mcp\n\nimport rego.v1\n\ndefault allow := true\n"

    def kill_bundle(rev: str, principals: dict[str, str]) -> bytes:
        data = {"killswitch": {"principals": principals}}
        return targz({"main.rego": main, "library/killswitch.rego": library,
                      "library/data.json": json.dumps(data)}, revision=rev)

    server.set_bundle(kill_bundle("k0", {}))
    envoys = [start(envoy_factory, server, extra_http_filters_before=[jwt_filter(keys["jwks"])], concurrency=2)
              for _ in range(2)]
    alice = {"authorization": f"Bearer {token(keys, sub='alice')}"}
    bob = {"authorization": f"Bearer {token(keys, sub='bob')}"}

    def all_loaded(rev: str) -> bool:
        return all(f"revision {rev} (" in e.log_text() for e in envoys)

    assert harness.wait_until(lambda: all_loaded("k0"))
    for e in envoys:
        assert harness.wait_until(lambda: call(e, "echo", headers=alice) == (200, "ok"))

    server.set_bundle(kill_bundle("k1", {"sub:alice": "stolen token"}))
    killed = "Denied by policy: killswitch: principal sub:alice is killed: stolen token"

    def everywhere_killed() -> bool:
        with httpx.Client(timeout=10) as c:
            return all(call(e, "echo", c, alice) == (200, killed) for e in envoys for _ in range(6))

    # Within one poll interval (plus jitter and the round trip) both replicas
    # deny alice; bounded wait, no timing asserted.
    assert harness.wait_until(everywhere_killed, timeout=15)
    for e in envoys:
        assert call(e, "echo", headers=bob) == (200, "ok")
    # Lifting the kill is publishing data without it.
    server.set_bundle(kill_bundle("k2", {}))
    assert harness.wait_until(lambda: all(call(e, "echo", headers=alice) == (200, "ok") for e in envoys
                                          for _ in range(6)), timeout=15)
    assert re.search(r"revision k1 \(", envoys[1].log_text())


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_reloaded_vm_starts_from_the_kept_bundle(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    """The last good bundle is kept in shared data: a VM that starts later
    (here: reloaded after a failure, with the bundle source down) serves it at
    once instead of failing closed until its first poll succeeds."""
    trap = "x-mcp-policy-trap"
    config = dict(plugin_config(), debug={"trap_header": trap})
    envoy = start(envoy_factory, server, config, failure_policy="FAIL_RELOAD")
    assert harness.wait_until(lambda: serving(envoy, "r1", "delete_record", "echo"))
    server.stop()
    before = len(audit_events(envoy))
    assert call(envoy, "echo", headers={trap: "1"})[0] == 503
    # Envoy reloads the VM after a back-off; the new VM serves r1 although
    # every poll fails.
    assert harness.wait_until(lambda: call(envoy, "echo") == (200, "ok"))
    assert serving(envoy, "r1", "delete_record", "echo")
    assert envoy.stat("wasm.mcp_policy.vm_reload_success") >= 1
    assert "policy bundle restored from shared data: revision r1" in envoy.log_text()
    assert harness.wait_until(lambda: "still serving revision r1" in envoy.log_text())
    assert {e["policy_revision"] for e in audit_events(envoy)[before:]} == {"r1"}


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_a_configuration_reload_keeps_serving_the_bundle(
    demo_server: harness.DemoServer, wasm_path: Path, tmp_path: Path, server: BundleServer
) -> None:
    """Envoy's own configuration update (LDS from a file, replaced atomically)
    of a bundle-configured filter, under a stream of calls: no call fails and
    none is decided by anything but the bundle (no `bundle-pending` window),
    because the new plugin starts from the bundle kept in shared data."""
    import threading

    port, admin = harness.free_port(), harness.free_port()
    clusters = [envoy_config.static_cluster(CLUSTER, server.port)]

    def listener(config: dict[str, Any]) -> dict[str, Any]:
        boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                                  wasm_path=str(wasm_path), plugin_config=config, access_log_json=True)
        return boot["static_resources"]["listeners"][0]

    def write_lds(path: Path, config: dict[str, Any]) -> None:
        harness.write_lds(path, listener(config))

    boot = envoy_config.build(listen_port=port, upstream_port=demo_server.port, admin_port=admin,
                              wasm_path=str(wasm_path), plugin_config=plugin_config(), access_log_json=True,
                              extra_clusters=clusters)
    lds = tmp_path / "lds.json"
    envoy = harness.start_envoy_bootstrap(tmp_path, harness.with_lds(boot, lds, "mcp-policy-bundle-reload"), ports_to_zero=False,
                                          concurrency=2, component_log_level="wasm:info")
    proc = envoy.proc
    url = f"http://127.0.0.1:{port}/mcp"
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def one(c: httpx.Client, tool: str) -> tuple[int, str]:
        body = rpc.call(tool, 1, {"text": "x"})
        try:
            r = c.post(url, content=json.dumps(body), headers=HEADERS)
        except httpx.HTTPError as e:
            return 0, repr(e)
        msg = r.json() if r.status_code == 200 else {}
        return r.status_code, msg.get("error", {}).get("message", "ok") if msg else r.text

    def load() -> None:
        with httpx.Client(timeout=10) as c:
            while not stop.is_set() and len(results) < 5000:
                results.append(one(c, "delete_record" if len(results) % 2 else "echo"))

    try:
        def ready() -> bool:
            with httpx.Client(timeout=5) as c:
                try:
                    return all(one(c, "echo") == (200, "ok") for _ in range(6))
                except Exception:  # noqa: BLE001 -- not up yet
                    return False

        assert harness.wait_until(ready, timeout=30), proc.log_tail()
        t = threading.Thread(target=load, daemon=True)
        t.start()
        configured = proc.stderr_text().count("mcp-policy: configured")
        # A changed setting: a new plugin configuration, new root contexts.
        write_lds(lds, dict(plugin_config(), max_body_bytes=500_000))
        assert harness.wait_until(lambda: proc.stderr_text().count("mcp-policy: configured") > configured,
                                  timeout=30), proc.log_tail()
        assert harness.wait_until(
            lambda: "policy bundle restored from shared data: revision r1" in proc.stderr_text(), timeout=30)
        n = len(results)
        assert harness.wait_until(lambda: len(results) >= n + 200, timeout=60)
        stop.set()
        t.join(timeout=30)
    finally:
        stop.set()
        proc.stop()
    expected = {(200, "ok"), (200, "Denied by policy: r1: tool delete_record is blocked")}
    bad = [r for r in results if r not in expected]
    assert not bad, bad[:5]
    assert len(results) >= 200


@pytest.mark.parametrize(
    "demo_server", [{"json_response": True, "stateless": True, "extra_args": ["--response-tools"]}], indirect=True
)
def test_a_pin_approval_published_in_a_bundle_reaches_two_envoys(
    demo_server: harness.DemoServer, envoy_factory: Any, server: BundleServer
) -> None:
    """Rug pull across replicas (docs/replicas.md): both Envoys pin `weather`,
    the server changes it, both refuse and unlist it; the operator approves
    the new definition once, in the bundle's policy data, and both accept it
    within a poll."""
    pins = (REPO / "policies" / "library" / "pins.rego").read_text()
    main = "package mcp\n\nimport rego.v1\n\ndefault allow := true\n"

    def pin_bundle(rev: str, approved: dict[str, str]) -> bytes:
        data = {"library": {"pins": {}}, "mcp": {"approved_tools": approved}}
        return targz({"main.rego": main, "library/pins.rego": pins, "data.json": json.dumps(data)}, revision=rev)

    def rpc(e: harness.EnvoyHandle, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        return httpx.post(e.url, content=json.dumps(body), headers=HEADERS, timeout=10).json()

    def names(e: harness.EnvoyHandle) -> set[str]:
        return {t["name"] for t in rpc(e, "tools/list", {})["result"]["tools"]}

    def weather(e: harness.EnvoyHandle) -> dict[str, Any]:
        return rpc(e, "tools/call", {"name": "weather", "arguments": {"city": "Oslo"}})

    server.set_bundle(pin_bundle("p0", {}))
    envoys = [start(envoy_factory, server) for _ in range(2)]
    assert harness.wait_until(lambda: all("revision p0 (" in e.log_text() for e in envoys))
    for e in envoys:
        assert harness.wait_until(lambda: "weather" in names(e))  # listed: pinned here
        assert "result" in weather(e)

    assert "result" in rpc(envoys[0], "tools/call", {"name": "rug_pull", "arguments": {}})
    hashes = set()
    for e in envoys:
        assert "weather" not in names(e)  # the changed definition is seen, and hidden
        denied = weather(e)["error"]["message"]
        assert 'pins: tool "weather" changed since it was pinned' in denied, denied
        hashes.add(denied.split('approved_tools["weather"] = "')[1].split('"')[0])
    assert len(hashes) == 1  # both replicas hashed the same new definition
    server.set_bundle(pin_bundle("p1", {"weather": hashes.pop()}))
    assert harness.wait_until(lambda: all("result" in weather(e) for e in envoys for _ in range(4)), timeout=15)
    for e in envoys:
        assert "weather" in names(e)
