"""Every decision on record, end to end: one audit event per MCP message in
Envoy's access log (through filter state) and in the proxy log, with the
decision id the client also gets back in a response header; audit mode
(a dry run of the whole policy) and per-rule dry run.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from support import harness, rpc

POLICY = """package mcp
import rego.v1
default allow := true
deny contains "deleting records is not allowed" if input.mcp.tool.name == "delete_record"
dry_run contains "send_email will be blocked from Monday" if input.mcp.tool.name == "send_email"
reveal contains "id" if input.mcp.tool.name == "delete_record"
labels contains "write" if input.mcp.tool.name in {"delete_record", "send_email"}
"""

HEADERS = rpc.JSON_HEADERS


def call(url: str, name: str, id_: int, args: dict[str, Any]) -> httpx.Response:
    body = rpc.call(name, id_, args)
    return httpx.post(url, content=json.dumps(body), headers=HEADERS, timeout=15)


def audits(envoy: harness.EnvoyHandle) -> list[dict[str, Any]]:
    return envoy.audit_events()


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_access_log_and_audit_events(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"audit.rego": POLICY}}})
    ok = call(envoy.url, "echo", 1, {"text": "x"})
    denied = call(envoy.url, "delete_record", 2, {"id": 42, "reason": "cleanup of customer 7"})
    dry = call(envoy.url, "send_email", 3, {"to": "a@example.com", "body": "hi"})
    bad = httpx.post(envoy.url, content=b"{nope", headers=HEADERS, timeout=15)
    ids = [r.headers["x-mcp-decision-id"] for r in (ok, denied, dry, bad)]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)

    entries = envoy.wait_for_access_log(lambda e: e.get("mcp_decision_id") == ids[3], timeout=10) and \
        envoy.access_log()
    by_id = {e["mcp_decision_id"]: e for e in entries if e.get("mcp_decision_id") not in (None, "", "-")}
    assert set(ids) <= set(by_id), (ids, entries)
    assert by_id[ids[0]]["mcp_decision"] == "allow"
    assert by_id[ids[1]]["mcp_decision"] == "deny"
    assert by_id[ids[1]]["mcp_reasons"] == "deleting records is not allowed"
    assert by_id[ids[2]]["mcp_decision"] == "allow"
    assert by_id[ids[3]]["mcp_decision"] == "deny"

    events = {e["decision_id"]: e for e in audits(envoy)}
    e = events[ids[1]]
    assert e["decision"] == "deny" and e["tool"] == "delete_record" and e["mode"] == "enforce"
    assert e["arguments"]["revealed"] == {"id": 42}            # only what the policy reveals
    assert "cleanup of customer 7" not in json.dumps(e)        # everything else masked
    assert e["arguments"]["digest"].startswith("sha256:")
    assert e["policy_revision"].startswith("sha256:") and e["labels"] == ["write"]
    assert isinstance(e["eval_us"], int) and e["http_status"] == 200
    assert events[ids[2]]["dry_run"] == ["send_email will be blocked from Monday"]
    assert events[ids[3]]["kind"] == "rejected" and events[ids[3]]["http_status"] == 400
    # The access log's full event is the same record.
    assert json.loads(by_id[ids[1]]["mcp_audit"])["decision_id"] == ids[1]


@pytest.mark.parametrize("demo_server", ["sse"], indirect=True)
def test_audit_mode_blocks_nothing_and_records_would_be_denials(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"audit.rego": POLICY}}, "mode": "audit"})

    async def scenario() -> None:
        async with Client(envoy.url, mode="legacy", read_timeout_seconds=15) as c:
            r = await c.call_tool("delete_record", {"id": 1})
            assert "deleted record 1" in r.content[0].text

    anyio.run(scenario)
    assert ("tools/call", "delete_record") in [(m.get("method"), m.get("name")) for m in demo_server.received()]
    events = [e for e in audits(envoy) if e.get("tool") == "delete_record"]
    assert len(events) == 1
    assert events[0]["decision"] == "deny" and events[0]["mode"] == "audit"
    assert events[0]["reasons"] == ["deleting records is not allowed"]


@pytest.mark.parametrize("demo_server", ["json"], indirect=True)
def test_one_event_per_message_through_an_sdk_session(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"audit.rego": POLICY}}})

    async def scenario() -> None:
        async with Client(envoy.url, mode="legacy", read_timeout_seconds=15) as c:
            await c.list_tools()
            await c.call_tool("echo", {"text": "a"})
            with pytest.raises(MCPError):
                await c.call_tool("delete_record", {"id": 3})

    anyio.run(scenario)
    received = demo_server.received()
    events = audits(envoy)
    message_events = [e for e in events if e["kind"] != "transport" and e["direction"] == "request"]
    # Every message the server got was decided and recorded, plus the denial.
    assert len(message_events) == len(received) + 1
    # The tools/list answer was filtered for this caller (and recorded).
    responses = [e for e in events if e["direction"] == "response"]
    assert [(e["method"], e.get("hidden")) for e in responses] == [("tools/list", ["delete_record"])]
    sessions = {e.get("session_id") for e in message_events if e.get("method") not in ("initialize",)}
    assert len(sessions) == 1 and None not in sessions


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_audit_lines_are_batched_and_none_is_lost_when_envoy_stops(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    """The default: audit lines gathered per worker, written together (a batch of
    `log_batch`, or at the next tick, at most `log_flush_ms` later), and those
    still waiting written when Envoy stops."""
    config = {"policy": {"modules": {"audit.rego": POLICY}},
              "audit": {"log_flush_ms": 60_000, "log_batch": 4}}
    envoy = envoy_factory(config, concurrency=1)
    ids = []
    for i in range(6):
        r = call(envoy.url, "echo", i + 1, {"text": str(i)})
        assert r.status_code == 200
        ids.append(r.headers["x-mcp-decision-id"])
    # The first four in one write (one Envoy log line, then three bare lines).
    assert harness.wait_until(lambda: len(audits(envoy)) >= 4, timeout=10), envoy.log_text()[-2000:]
    logged = [e["decision_id"] for e in audits(envoy)]
    assert logged == ids[:4], (logged, ids)
    text = envoy.log_text()
    assert sum(1 for line in text.splitlines() if line.startswith("mcp-policy audit {")) == 3
    # Two wait (the next tick is a minute away); Envoy stops: they are written.
    envoy.stop()
    assert [e["decision_id"] for e in audits(envoy)] == ids, envoy.log_text()[-2000:]


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_audit_lines_waiting_are_written_at_the_next_tick(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    """With the default `log_flush_ms` (250) a lone line is written within a tick."""
    config = {"policy": {"modules": {"audit.rego": POLICY}}, "audit": {"log_flush_ms": 250}}
    envoy = envoy_factory(config)
    r = call(envoy.url, "echo", 1, {"text": "x"})
    decision_id = r.headers["x-mcp-decision-id"]
    assert harness.wait_until(lambda: any(e["decision_id"] == decision_id for e in audits(envoy)), timeout=10)
