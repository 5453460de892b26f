"""tools/audit_report.py: a summary of audit events (docs/audit.md#report).

Unit tests on events generated here, written in each form the script reads
(Envoy's proxy log, JSON lines, a JSON access log with ``mcp_audit``), and
one end-to-end test that runs the report on the log of a real Envoy.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.jwt_util import jwt_filter, make_keys, token

from support import harness

sys.path.insert(0, str(harness.TOOLS_DIR))
import audit_report  # noqa: E402  (tools/audit_report.py)

SCRIPT = harness.TOOLS_DIR / "audit_report.py"
REVISION = "sha256:2a20a1d734a418c0cb74ae29a2ad8550a1e3829f1572b2e9a1c1eb1891cf488a"
T0 = dt.datetime(2026, 11, 22, 5, 0, 0, tzinfo=dt.timezone.utc)

# --------------------------------------------------------------------------- #
# Fixture events, shaped as crates/core/src/observe/audit.rs writes them
# --------------------------------------------------------------------------- #

_seq = iter(range(1, 10_000))


def ev(minute: float, decision: str, *, kind: str = "request", method: str = "tools/call",
       tool: str | None = None, reasons: list[str] | None = None, subject: str | None = None,
       principal: str | None = None, session: str | None = None, mode: str = "enforce",
       dry_run: list[str] | None = None, http_status: int | None = None,
       decision_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """One event; absent fields are left out, as the filter does."""
    t = T0 + dt.timedelta(minutes=minute)
    e: dict[str, Any] = {
        "decision_id": decision_id or f"{next(_seq):032x}",
        "time": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
        "mode": mode,
        "direction": "request",
        "decision": decision,
        "reasons": reasons or [],
        "labels": [],
        "kind": kind,
        "method": method,
        "policy_revision": REVISION,
        "eval_us": 90,
        "upstream": "mcp_server",
    }
    if dry_run:
        e["dry_run"] = dry_run
    if tool is not None:
        e["tool"] = tool
        e["arguments"] = {"digest": "sha256:" + "0" * 64}
    ident = {k: v for k, v in (("subject", subject), ("principal", principal)) if v}
    if ident:
        e["identity"] = ident
    if session:
        e["session_id"] = session
    if http_status is not None:
        e["http_status"] = http_status
    e.update(extra)
    return e


DELETE = "deleting records is not allowed"
KILL = "self-destruct requested"
SPIFFE = "spiffe://cluster.local/ns/agents/sa/batch"


def scenario() -> list[dict[str, Any]]:
    """A realistic day: alice is killed, bob is denied once, a workload with a
    client certificate sends a batch, an anonymous caller sends garbage, and
    an audit-mode replica records would-be denials."""
    return [
        ev(0, "allow", method="initialize", session=None, subject="alice"),
        ev(1, "allow", tool="echo", subject="alice", session="S-alice"),
        ev(2, "deny", tool="delete_record", reasons=[DELETE], subject="alice", session="S-alice", http_status=200),
        ev(3, "allow", tool="send_email", subject="alice", session="S-alice",
           dry_run=["send_email will need approval"]),
        ev(4, "deny", tool="self_destruct", reasons=[KILL], subject="alice", session="S-alice", http_status=200),
        ev(5, "deny", tool="echo", reasons=[f"session killed: {KILL}"], subject="alice", session="S-alice",
           http_status=200),
        ev(6, "deny", kind="transport", method="GET", reasons=[f"session killed: {KILL}"], subject="alice",
           session="S-alice", http_status=403),
        ev(10, "allow", tool="echo", subject="bob"),
        ev(11, "deny", tool="delete_record", reasons=[DELETE], subject="bob", http_status=200),
        # A batch: two elements, one id.
        ev(20, "allow", method="ping", principal=SPIFFE, decision_id="b" * 32 + "-0", http_status=200),
        ev(20, "deny", tool="delete_record", reasons=[DELETE], principal=SPIFFE, decision_id="b" * 32 + "-1",
           http_status=200),
        # A principal-scoped kill on session-less (2026-07-28) traffic.
        ev(21, "deny", tool="read_file", reasons=["session killed: exfiltration"], principal=SPIFFE,
           http_status=200),
        # Rejections: before any policy ran.
        ev(30, "deny", kind="rejected", method="",
           reasons=["request body is not valid JSON: key must be a string at line 1 column 2"], http_status=400),
        ev(31, "deny", kind="rejected", method="",
           reasons=["request body is not valid JSON: EOF while parsing a value at line 1 column 0"], http_status=400),
        ev(32, "deny", kind="rejected", method="",
           reasons=["Header mismatch: Mcp-Name header value 'add' does not match body value 'echo'"],
           http_status=400),
        ev(33, "deny", kind="invalid", method="", reasons=['`jsonrpc` must be "2.0"'], http_status=200),
        # An audit-mode replica: a would-be denial, forwarded (no http_status).
        ev(40, "deny", tool="delete_record", reasons=[DELETE], subject="carol", mode="audit",
           dry_run=["send_email will need approval"]),
        ev(41, "allow", tool="echo", subject="carol", mode="audit"),
    ]


def proxy_log(events: list[dict[str, Any]]) -> str:
    """Envoy's log, as `envoy -l info --component-log-level wasm:debug` writes it."""
    prefix = "[2026-11-22 05:17:51.205][16807][{lvl}][wasm] [source/extensions/common/wasm/context.cc:1151] " \
             "wasm log mcp_policy mcp_policy mcp_policy: "
    lines = [
        "[2026-11-22 05:17:50.001][16725][info][main] [source/server/server.cc:430] initializing epoch 0",
        prefix.format(lvl="info") + f"mcp-policy: configured: policy {REVISION} (1 module(s): p.rego; engine rvm), "
                                    "max_body_bytes 1048576",
    ]
    for e in events:
        if e["decision"] == "allow":
            lines.append(prefix.format(lvl="debug") + f"mcp-policy: allowed {e['method']}")
        lines.append(prefix.format(lvl="info") + "mcp-policy audit " + json.dumps(e, separators=(",", ":")))
        if e["decision"] == "deny":
            lines.append(prefix.format(lvl="info") + f"mcp-policy: denied {e['method']}: "
                         f"{'; '.join(e['reasons'])} -> HTTP {e.get('http_status', 200)}")
    lines.append("[2026-11-22 05:18:00.000][16725][info][main] [source/server/server.cc:1000] caught SIGTERM")
    return "\n".join(lines) + "\n"


def json_lines(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def access_log(events: list[dict[str, Any]]) -> str:
    """A JSON access log: one entry per HTTP request, batch elements together."""
    by_request: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_request.setdefault(e["decision_id"].split("-")[0], []).append(e)
    lines = [json.dumps({"method": "GET", "path": "/healthz", "response_code": 200,
                         "mcp_decision": None, "mcp_decision_id": None, "mcp_audit": None})]
    for rid, es in by_request.items():
        lines.append(json.dumps({
            "method": "POST", "path": "/mcp", "response_code": 200,
            "mcp_decision": "allow" if all(e["decision"] == "allow" for e in es) else "deny",
            "mcp_decision_id": ",".join(e["decision_id"] for e in es),
            "mcp_reasons": "; ".join(r for e in es for r in e["reasons"]),
            "mcp_audit": "\n".join(json.dumps(e, separators=(",", ":")) for e in es),
        }))
    return "\n".join(lines) + "\n"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


def report_of(tmp_path: Path, text: str, *args: str, name: str = "log") -> dict[str, Any]:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    r = run("--format", "json", *args, str(f))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def counts(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {row[key]: row["count"] for row in rows}


# --------------------------------------------------------------------------- #
# Unit tests
# --------------------------------------------------------------------------- #


def test_the_report_counts_what_happened(tmp_path: Path) -> None:
    rep = report_of(tmp_path, proxy_log(scenario()))
    assert rep["meta"]["events_read"] == 18 and rep["meta"]["malformed"] == 0
    t = rep["totals"]
    assert (t["decisions"], t["allowed"], t["denied"], t["rejected"]) == (18, 6, 12, 4)
    assert t["by_mode"] == {"audit": {"decisions": 2, "allowed": 1, "denied": 1},
                            "enforce": {"decisions": 16, "allowed": 5, "denied": 11}}
    assert t["by_kind"] == {"invalid": 1, "rejected": 3, "request": 13, "transport": 1}

    d = rep["denials"]
    assert d["total"] == 8
    assert d["by_identity"] == [{"identity": "alice", "count": 4}, {"identity": SPIFFE, "count": 2},
                                {"identity": "bob", "count": 1}, {"identity": "carol", "count": 1}]
    assert counts(d["by_tool"], "tool") == {"delete_record": 4, "echo": 1, "self_destruct": 1, "read_file": 1}
    assert counts(d["by_reason"], "reason") == {
        DELETE: 4, f"session killed: {KILL}": 2, KILL: 1, "session killed: exfiltration": 1}
    assert d["by_reason"][0] == {"reason": DELETE, "count": 4}

    assert rep["top_talkers"][:2] == [{"identity": "alice", "decisions": 7, "denied": 4},
                                      {"identity": "anonymous", "decisions": 4, "denied": 4}]
    assert {r["identity"]: r["decisions"] for r in rep["top_talkers"]} == {
        "alice": 7, "anonymous": 4, SPIFFE: 3, "bob": 2, "carol": 2}

    killed = rep["killed_sessions"]
    assert killed == [
        {"session_id": "S-alice", "identities": ["alice"], "kill_reasons": [KILL], "refused": 2,
         "first": "2026-11-22T05:05:00.000Z", "last": "2026-11-22T05:06:00.000Z"},
        {"session_id": None, "identities": [SPIFFE], "kill_reasons": ["exfiltration"], "refused": 1,
         "first": "2026-11-22T05:21:00.000Z", "last": "2026-11-22T05:21:00.000Z"},
    ]
    assert rep["dry_run"] == [{"reason": "send_email will need approval", "count": 2}]
    assert rep["rejections"] == [
        {"reason": "request body is not valid JSON", "count": 2,
         "example": "request body is not valid JSON: key must be a string at line 1 column 2"},
        {"reason": "Header mismatch", "count": 1,
         "example": "Header mismatch: Mcp-Name header value 'add' does not match body value 'echo'"},
        {"reason": "invalid JSON-RPC message", "count": 1, "example": '`jsonrpc` must be "2.0"'},
    ]
    assert rep["range"] == {"first": "2026-11-22T05:00:00.000Z", "last": "2026-11-22T05:41:00.000Z"}


def test_every_input_form_gives_the_same_report(tmp_path: Path) -> None:
    events = scenario()
    reports = [report_of(tmp_path, text, name=name) for name, text in (
        ("envoy.log", proxy_log(events)), ("events.jsonl", json_lines(events)), ("access.log", access_log(events)))]
    for r in reports:
        r.pop("meta")
    assert reports[0] == reports[1] == reports[2]


def test_an_event_read_twice_counts_once(tmp_path: Path) -> None:
    events = scenario()
    (tmp_path / "envoy.log").write_text(proxy_log(events))
    (tmp_path / "access.log").write_text(access_log(events))
    r = run("--format", "json", str(tmp_path / "envoy.log"), str(tmp_path / "access.log"))
    rep = json.loads(r.stdout)
    assert rep["meta"]["duplicates"] == len(events)
    assert rep["totals"]["decisions"] == len(events)


def test_since_and_until(tmp_path: Path) -> None:
    log = proxy_log(scenario())
    rep = report_of(tmp_path, log, "--since", "2026-11-22T05:10:00Z", "--until", "2026-11-22T05:30:00Z")
    # [05:10, 05:30): bob (2), the batch (2) and the principal kill (1).
    assert rep["totals"]["decisions"] == 5
    assert rep["meta"]["filtered_out"] == 13
    assert rep["meta"]["since"] == "2026-11-22T05:10:00.000Z"
    # An offset is honoured; until is exclusive.
    rep = report_of(tmp_path, log, "--since", "2026-11-22T06:10:00+01:00", "--until", "2026-11-22T05:11:00Z")
    assert rep["totals"]["decisions"] == 1
    # Relative times count back from now: these events are far in the past or future.
    now = dt.datetime.now(dt.timezone.utc)
    expect = sum(1 for e in scenario() if audit_report.parse_rfc3339(e["time"]) >= now - dt.timedelta(hours=1))
    assert report_of(tmp_path, log, "--since", "1h")["totals"]["decisions"] == expect


def test_mode_filter(tmp_path: Path) -> None:
    rep = report_of(tmp_path, proxy_log(scenario()), "--mode", "audit")
    assert rep["totals"]["decisions"] == 2
    assert rep["denials"]["by_identity"] == [{"identity": "carol", "count": 1}]


def test_time_options() -> None:
    now = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
    p = audit_report.parse_time_option
    assert p("90s", now) == now - dt.timedelta(seconds=90)
    assert p("15m", now) == now - dt.timedelta(minutes=15)
    assert p("1h", now) == now - dt.timedelta(hours=1)
    assert p("2d", now) == now - dt.timedelta(days=2)
    assert p("1w", now) == now - dt.timedelta(weeks=1)
    assert p("2026-11-22T05:17:51.205Z") == dt.datetime(2026, 11, 22, 5, 17, 51, 205000, tzinfo=dt.timezone.utc)
    assert p("2026-11-22T07:00:00+02:00") == dt.datetime(2026, 11, 22, 5, 0, tzinfo=dt.timezone.utc)
    assert p("2026-11-22") == dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    for bad in ("yesterday", "2026-13-01", "1y", ""):
        with pytest.raises(audit_report.ReportError):
            p(bad, now)


def test_text_output(tmp_path: Path) -> None:
    f = tmp_path / "envoy.log"
    f.write_text(proxy_log(scenario()))
    r = run(str(f))
    assert r.returncode == 0 and r.stderr == ""
    out = r.stdout
    for heading in ("Totals", "Denials by identity", "Denials by tool", "Denials by reason", "Top talkers",
                    "Killed sessions", "Dry-run hits", "Rejections"):
        assert f"\n{heading}" in out, heading
    assert "denied = 8 by policy + 4 rejected before the policy" in out
    assert "mode audit" in out and "recorded, not enforced" in out
    assert "S-alice" in out and "(none: principal)" in out
    lines = out.splitlines()
    i = lines.index("Denials by identity")
    assert lines[i + 3].split() == ["4", "alice"]
    # --top cuts every ranking and says how much is left.
    short = run("--top", "1", str(f)).stdout
    assert "... 3 more" in short and "bob" not in short.split("Denials by identity")[1].split("Denials by tool")[0]


def test_empty_and_malformed_input(tmp_path: Path) -> None:
    f = tmp_path / "envoy.log"
    f.write_text("[2026-11-22 05:17:51.205][1][info][main] nothing here\n"
                 "... wasm log mcp_policy: mcp-policy audit {\"decision\":\"allow\",\"decision_id\"\n"
                 + proxy_log(scenario()[:2]))
    r = run("--format", "json", str(f))
    assert r.returncode == 0
    assert json.loads(r.stdout)["meta"]["malformed"] == 1
    assert "1 audit record(s) could not be read" in r.stderr
    empty = tmp_path / "empty.log"
    empty.write_text("")
    r = run(str(empty))
    assert r.returncode == 0 and "no audit events found" in r.stderr
    assert "(none)" in r.stdout


def test_unreadable_inputs_are_clear_errors(tmp_path: Path) -> None:
    r = run(str(tmp_path / "missing.log"))
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "missing.log" in r.stderr and "No such file" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(str(tmp_path))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    bad_gz = tmp_path / "bad.log.gz"
    bad_gz.write_bytes(b"not gzip at all")
    r = run(str(bad_gz))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    r = run("--since", "last tuesday", str(bad_gz))
    assert r.returncode == 2 and "invalid time 'last tuesday'" in r.stderr
    r = run()
    assert r.returncode == 2 and "no input" in r.stderr


def test_gzip_stdin_and_json_application_log(tmp_path: Path) -> None:
    events = scenario()
    gz = tmp_path / "envoy.log.gz"
    gz.write_bytes(gzip.compress(proxy_log(events).encode()))
    assert json.loads(run("--format", "json", str(gz)).stdout)["totals"]["decisions"] == len(events)
    r = run("--format", "json", "-", stdin=json_lines(events))
    assert json.loads(r.stdout)["totals"]["decisions"] == len(events)
    # Envoy's JSON application-log format: the message is a string field.
    app = "".join(json.dumps({"timestamp": "2026-11-22 05:17:51.205", "level": "info", "name": "wasm",
                              "message": "wasm log mcp_policy: mcp-policy audit " + json.dumps(e)}) + "\n"
                  for e in events)
    assert report_of(tmp_path, app)["totals"]["decisions"] == len(events)
    # A batch of audit lines (audit.log_batch) is one message, a line each; in
    # the text log the lines after the first carry no Envoy prefix.
    batch = json.dumps({"timestamp": "2026-11-22 05:17:51.205", "level": "info", "name": "wasm",
                        "message": "wasm log mcp_policy: " + "\n".join(
                            "mcp-policy audit " + json.dumps(e) for e in events)}) + "\n"
    assert report_of(tmp_path, batch)["totals"]["decisions"] == len(events)
    text = "[2026-11-22 05:17:51.205][1][info][wasm] wasm log mcp_policy: " + "\n".join(
        "mcp-policy audit " + json.dumps(e) for e in events) + "\n"
    assert report_of(tmp_path, text)["totals"]["decisions"] == len(events)


def test_a_reason_that_quotes_the_marker_is_read_whole(tmp_path: Path) -> None:
    e = ev(0, "deny", tool="x", reasons=["tool said: mcp-policy audit {\"decision\":\"allow\"}"])
    rep = report_of(tmp_path, proxy_log([e]))
    assert rep["denials"]["by_reason"] == [{"reason": e["reasons"][0], "count": 1}]


# Digests the filter computed (Envoy 1.40, this module) for these arguments.
FILTER_DIGESTS = [
    ('{"text":"a"}', "sha256:6193c97585a0f731ce7b500bb69d2476816afb14c8d95ac8e6e865f680e9e438"),
    ('{"b":1.0,"a":[1e2,0.1,-0.0,2.50]}', "sha256:45a1a585b4ca7527e89fa102548a1edeaa0025ea965d85f38e37463481e9f9e7"),
    ('{"n":12345678901234567890123}', "sha256:f38cd47fb9cf6163e645fd5e3ca4f2b1dd937fe0909ccd2583ebb38c85b7b35a"),
    ('{"s":"é\\n\\u001f/\\u007f","z":{"y":1,"x":null}}',
     "sha256:da3ce29836e8f1096d2bf817cbf996ca6bd7cd65f2e729715c10018817f2164c"),
    ('{"f":1e300,"g":1e-7,"h":1.5e3}', "sha256:28acbcecbc5730e5ca12c5a9258c1b00f34dc74531e625dcf97191600e5e730d"),
    ("null", "sha256:74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"),
    ("[1,2]", "sha256:49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684"),
    ("{}", "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
]


@pytest.mark.parametrize(("arguments", "digest"), FILTER_DIGESTS)
def test_digest_matches_the_filter(arguments: str, digest: str) -> None:
    assert audit_report.arguments_digest(arguments) == digest


def test_digest_option() -> None:
    r = run("--digest", '{"text": "a"}')
    assert r.returncode == 0 and r.stdout.strip() == FILTER_DIGESTS[0][1]
    r = run("--digest", "{nope")
    assert r.returncode == 2 and "not JSON" in r.stderr


# --------------------------------------------------------------------------- #
# End to end: the report on a real Envoy's log
# --------------------------------------------------------------------------- #

E2E_POLICY = """package mcp
import rego.v1

default allow := true

deny contains "deleting records is not allowed" if input.mcp.tool.name == "delete_record"

kill := "self-destruct requested" if input.mcp.tool.name == "self_destruct"

dry_run contains "send_email will need approval" if input.mcp.tool.name == "send_email"

# Mentions identity, so the filter reads the verified subject.
labels contains "authenticated" if input.identity.subject
"""

E2E_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
ODD_ARGS = '{"id": 9, "why": "nettoyage du café\\n", "score": 2.50, "big": 123456789012345678901234567890}'


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_report_on_a_real_envoy_log(demo_server: harness.DemoServer, envoy_factory: Any, tmp_path: Path) -> None:
    keys = make_keys()
    envoy = envoy_factory({"policy": {"modules": {"report.rego": E2E_POLICY}}},
                          extra_http_filters_before=[jwt_filter(keys["jwks"])])
    alice, bob = token(keys, sub="alice"), token(keys, sub="bob")
    n = iter(range(1, 100))

    def send(body: str | bytes, bearer: str | None = None, session: str | None = None) -> str:
        headers = dict(E2E_HEADERS)
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        if session:
            headers["mcp-session-id"] = session
        r = httpx.post(envoy.url, content=body, headers=headers, timeout=15)
        assert r.status_code in (200, 400), r.text
        return r.headers["x-mcp-decision-id"]

    def call(tool: str, args: str = "{}", **kw: Any) -> str:
        body = f'{{"jsonrpc":"2.0","id":{next(n)},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}'
        return send(body, **kw)

    ids = [
        call("echo", '{"text": "hi"}', bearer=alice, session="S-alice"),        # allowed
        call("delete_record", '{"id": 7}', bearer=alice, session="S-alice"),    # denied
        call("send_email", '{"to": "a@example.com", "body": "x"}', bearer=alice, session="S-alice"),  # dry run
        call("self_destruct", bearer=alice, session="S-alice"),                # denied, kills the session
        call("echo", '{"text": "again"}', bearer=alice, session="S-alice"),     # session killed
        call("add", '{"a": 1, "b": 2}', bearer=alice, session="S-alice"),      # session killed
        call("echo", '{"text": "hi"}', bearer=bob),                             # allowed
        call("delete_record", '{"id": 8}', bearer=bob),                         # denied
        call("delete_record", ODD_ARGS),                                        # denied, anonymous
        send(b"{nope"),                                                         # rejected (400)
    ]
    assert len(set(ids)) == 10

    # Every decision is in the proxy log, and every request in the access log.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log_text = envoy.log_text()
        logged = {e.get("mcp_decision_id") for e in envoy.access_log()}
        if log_text.count("mcp-policy audit ") >= 10 and set(ids) <= logged:
            break
        time.sleep(0.05)
    assert log_text.count("mcp-policy audit ") == 10
    envoy_log = tmp_path / "envoy.log"
    envoy_log.write_text(log_text, encoding="utf-8")
    access = tmp_path / "access.log"
    access.write_text("\n".join(envoy.access_log_lines()) + "\n", encoding="utf-8")

    rep = json.loads(run("--format", "json", str(envoy_log)).stdout)
    t = rep["totals"]
    assert (t["decisions"], t["allowed"], t["denied"], t["rejected"]) == (10, 3, 7, 1)
    assert t["by_mode"] == {"enforce": {"decisions": 10, "allowed": 3, "denied": 7}}
    d = rep["denials"]
    assert d["total"] == 6
    assert d["by_identity"] == [{"identity": "alice", "count": 4}, {"identity": "anonymous", "count": 1},
                                {"identity": "bob", "count": 1}]
    assert counts(d["by_tool"], "tool") == {"delete_record": 3, "self_destruct": 1, "echo": 1, "add": 1}
    assert counts(d["by_reason"], "reason") == {
        "deleting records is not allowed": 3, "session killed: self-destruct requested": 2,
        "self-destruct requested": 1}
    assert rep["top_talkers"] == [{"identity": "alice", "decisions": 6, "denied": 4},
                                  {"identity": "anonymous", "decisions": 2, "denied": 2},
                                  {"identity": "bob", "decisions": 2, "denied": 1}]
    [killed] = rep["killed_sessions"]
    assert (killed["session_id"], killed["identities"], killed["kill_reasons"], killed["refused"]) == \
        ("S-alice", ["alice"], ["self-destruct requested"], 2)
    assert rep["dry_run"] == [{"reason": "send_email will need approval", "count": 1}]
    assert counts(rep["rejections"], "reason") == {"request body is not valid JSON": 1}

    # The JSON access log (mcp_audit) gives the same report, and both together
    # count each decision once.
    both = json.loads(run("--format", "json", str(access), str(envoy_log)).stdout)
    assert both["meta"]["duplicates"] == 10
    alone = json.loads(run("--format", "json", str(access)).stdout)
    for r in (rep, alone, both):
        r.pop("meta")
    assert alone == rep == both

    # Time selection: everything happened in the last hour, nothing before 2000.
    assert json.loads(run("--format", "json", "--since", "1h", str(envoy_log)).stdout)["totals"]["decisions"] == 10
    assert json.loads(run("--format", "json", "--until", "2000-01-01T00:00:00Z",
                          str(envoy_log)).stdout)["totals"]["decisions"] == 0
    text = run(str(envoy_log))
    assert text.returncode == 0 and "S-alice" in text.stdout

    # The digest the filter logged is the documented canonical form of the arguments.
    events = [json.loads(line.split("mcp-policy audit ", 1)[1]) for line in log_text.splitlines()
              if "mcp-policy audit " in line]
    odd = next(e for e in events if e["decision_id"] == ids[8])
    assert odd["arguments"]["digest"] == audit_report.arguments_digest(ODD_ARGS)
    assert "nettoyage" not in json.dumps(odd)
