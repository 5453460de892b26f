"""End to end with the official TypeScript MCP SDK (npm @modelcontextprotocol/sdk):
a server and a client built with it (tests/ts/), through a real Envoy running
the module with the shipped default policy.

The Python SDK tests (test_e2e_sdk.py) cover the same ground with the other
official SDK; the two differ in what they put on the wire (the TypeScript
client opens the GET stream after initialize, sends DELETE on terminate; its
server answers with `event: message` SSE frames, ids and priming events), and
the filter must not care which one it sits between.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import Implementation

from support import harness  # noqa: I001  (puts tools/ on sys.path)
from support.rpc import DENY_CODE
import envoy_config
from support.ts import TsServer, ts_node

REPO = Path(__file__).resolve().parent.parent.parent
TS_DIR = REPO / "tests" / "ts"
MODES = ["sse", "json", "sse-stateless", "json-stateless"]


def run_ts_client(url: str) -> dict[str, Any]:
    done = subprocess.run([ts_node(), str(TS_DIR / "client.mjs"), url], cwd=TS_DIR, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def ok(out: dict[str, Any], step: str) -> Any:
    outcome = out["steps"][step]
    assert outcome["ok"], (step, outcome)
    return outcome["result"]


def denied(out: dict[str, Any], step: str, reason: str) -> None:
    outcome = out["steps"][step]
    assert not outcome["ok"], (step, outcome)
    assert outcome["code"] == DENY_CODE, outcome
    assert "Denied by policy: " in outcome["message"] and reason in outcome["message"], outcome


def texts(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


@pytest.mark.parametrize("ts_server", MODES, indirect=True)
def test_typescript_client_and_server_through_the_filter(
    ts_server: TsServer, envoy_factory: Any, request: pytest.FixtureRequest
) -> None:
    mode = request.node.callspec.params["ts_server"]
    envoy = envoy_factory(envoy_config.plugin_config_from_dir(REPO / "policies"), upstream_port=ts_server.port)
    out = run_ts_client(envoy.url)

    ok(out, "connect")
    assert out["protocol"] == "2025-11-25"
    if mode.endswith("stateless"):
        assert out["session"] is None
    else:
        assert out["session"], out
        ok(out, "terminate")
    ok(out, "ping")

    # The list is filtered per caller: the blocked tool is not offered.
    tools = {t["name"] for t in ok(out, "listTools")["tools"]}
    assert {"echo", "add", "count", "read_file"} <= tools, tools
    assert "delete_record" not in tools

    assert texts(ok(out, "echo")) == "hello"
    assert ok(out, "add")["structuredContent"] == {"sum": 5}
    assert texts(ok(out, "count")) == "counted to 3"
    if mode.startswith("sse"):
        # Notifications inside the call's SSE stream pass through in order.
        assert out["logs"] == ["step 1", "step 2", "step 3"], out["logs"]
        assert out["progress"] == [1, 2, 3], out["progress"]
    assert "/workspace/notes.txt" in texts(ok(out, "readAllowed"))
    denied(out, "readDenied", "may only read under /workspace/")
    denied(out, "deleteDenied", 'tool "delete_record" is blocked by policy')
    # The server's own requests during a call (elicitation, sampling) reach
    # the client — on the call's SSE stream, or on the GET stream when the
    # server answers in JSON — and the client's answers (POSTed responses)
    # reach the server. (A stateless server has no session to send them on.)
    if not mode.endswith("stateless"):
        assert texts(ok(out, "confirm")) == 'accept:{"ok":true}'
        assert texts(ok(out, "summarize")) == "model said: short"

    ok(out, "setLevel")
    assert [r["uri"] for r in ok(out, "listResources")["resources"]] == ["file:///workspace/README.md"]
    assert [t["uriTemplate"] for t in ok(out, "listTemplates")["resourceTemplates"]] == ["items://{id}"]
    assert ok(out, "readResource")["contents"][0]["text"] == "# workspace"
    assert ok(out, "readTemplate")["contents"][0]["text"] == "item 42"
    assert [p["name"] for p in ok(out, "listPrompts")["prompts"]] == ["greet"]
    assert ok(out, "getPrompt")["messages"][0]["content"]["text"] == "Hello Ada"
    ok(out, "close")

    # What was denied never reached the server; everything else did.
    calls = [(m["method"], m.get("name") or m.get("uri")) for m in ts_server.received()]
    assert ("tools/call", "delete_record") not in calls, calls
    assert calls.count(("tools/call", "read_file")) == 1, calls
    for expected in [("initialize", None), ("tools/list", None), ("tools/call", "echo"), ("tools/call", "add"),
                     ("tools/call", "count"), ("resources/read", "items://42"), ("prompts/get", "greet")]:
        assert expected in calls, (expected, calls)

    # Each denial is in the audit trail with its reason.
    events = envoy.audit_events()
    denials = [e for e in events if e.get("decision") == "deny"]
    assert len(denials) == 2, denials
    assert any("delete_record" in json.dumps(e) for e in denials), denials


@pytest.mark.parametrize("ts_server", ["sse", "json-stateless"], indirect=True)
def test_python_client_against_typescript_server(ts_server: TsServer, envoy_factory: Any) -> None:
    """The other SDK's client against this SDK's server, both through the filter."""
    envoy = envoy_factory(envoy_config.plugin_config_from_dir(REPO / "policies"), upstream_port=ts_server.port)

    async def scenario() -> None:
        async with Client(envoy.url, mode="legacy", read_timeout_seconds=15,
                          client_info=Implementation(name="py-against-ts", version="1")) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "echo" in tools and "delete_record" not in tools
            result = await c.call_tool("echo", {"text": "über"})
            assert result.content[0].text == "über"
            with pytest.raises(MCPError) as info:
                await c.call_tool("delete_record", {"id": 1})
            assert info.value.code == DENY_CODE
            assert (await c.call_tool("add", {"a": 1, "b": 2})).structured_content == {"sum": 3}

    anyio.run(scenario)
    calls = [(m["method"], m.get("name")) for m in ts_server.received()]
    assert ("tools/call", "echo") in calls and ("tools/call", "delete_record") not in calls, calls


# Results of `add` are withheld from everyone: a rule on what the server sends.
WITHHOLD_ADD = """package mcp
import rego.v1
deny contains "results of add are withheld" if {
    input.mcp.direction == "server_to_client"
    input.mcp.method == "tools/call"
    input.mcp.tool.name == "add"
}
"""


@pytest.mark.parametrize("ts_server", [{"mode": "sse", "extra": ["--resumable", "--close-streams"]}], indirect=True)
def test_answers_on_a_resumed_stream_are_decided_as_on_their_own(
    ts_server: TsServer, envoy_factory: Any
) -> None:
    """2025-11-25 SSE polling: the server ends the POST's stream before it
    answers; the client resumes with GET + Last-Event-ID and the answer comes
    there. The filter must still know what it answers: the tools/list is
    filtered for this caller, a tools/call result is decided as that tool's."""
    config = envoy_config.plugin_config_from_dir(REPO / "policies")
    config["policy"]["modules"]["withhold.rego"] = WITHHOLD_ADD
    envoy = envoy_factory(config, upstream_port=ts_server.port)
    out = run_ts_client(envoy.url)

    ok(out, "connect")
    tools = {t["name"] for t in ok(out, "listTools")["tools"]}
    assert {"echo", "add", "count", "read_file"} <= tools, tools
    assert "delete_record" not in tools, tools
    assert texts(ok(out, "echo")) == "hello"
    denied(out, "add", "results of add are withheld")
    denied(out, "deleteDenied", 'tool "delete_record" is blocked by policy')
    ok(out, "terminate")

    # The server did answer add (its result was withheld on the way back),
    # on a GET that resumed the POST's stream.
    assert ("tools/call", "add") in [(m["method"], m.get("name")) for m in ts_server.received()]
    events = envoy.audit_events()
    gets = [e for e in events if e.get("kind") == "transport" and e.get("method") == "GET"]
    assert len(gets) >= 2, [e.get("method") for e in events]
    withheld = [e for e in events if e.get("direction") == "response" and e.get("decision") == "deny"]
    assert [e.get("tool") for e in withheld] == ["add"], withheld


def http_post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("ts_server", ["sse"], indirect=True)
def test_passthrough_paths_let_a_same_host_authorization_server_work(
    ts_server: TsServer, envoy_factory: Any
) -> None:
    """An MCP server that hosts its own OAuth endpoints: with
    `passthrough_paths` their form and JSON POSTs reach it undecided, exact
    paths only, while /mcp is still decided."""
    form = b"grant_type=authorization_code&code=abc"
    plain = envoy_factory(envoy_config.plugin_config_from_dir(REPO / "policies"), upstream_port=ts_server.port)
    status, body = http_post(plain.base_url + "/token", form, "application/x-www-form-urlencoded")
    assert status == 415, (status, body)

    config = envoy_config.plugin_config_from_dir(REPO / "policies")
    config["passthrough_paths"] = ["/token", "/register"]
    envoy = envoy_factory(config, upstream_port=ts_server.port)
    status, body = http_post(envoy.base_url + "/token", form, "application/x-www-form-urlencoded")
    assert (status, body.get("served"), body.get("body")) == (200, "not-mcp", form.decode()), body
    status, body = http_post(envoy.base_url + "/register", b'{"client_name":"c","redirect_uris":["http://127.0.0.1/cb"]}',
                             "application/json")
    assert (status, body.get("served")) == (200, "not-mcp"), body
    # Another spelling is decided (and refused as not JSON-RPC).
    status, body = http_post(envoy.base_url + "/token/", form, "application/x-www-form-urlencoded")
    assert status == 415, (status, body)
    # The audit trail has that refusal and nothing about the two requests
    # before it (events are logged in order); /mcp is decided.
    assert harness.wait_until(lambda: len(envoy.audit_events()) >= 1, timeout=10)
    assert [e["kind"] for e in envoy.audit_events()] == ["rejected"], envoy.audit_events()
    out = run_ts_client(envoy.url)
    denied(out, "deleteDenied", 'tool "delete_record" is blocked by policy')
    assert "delete_record" not in {t["name"] for t in ok(out, "listTools")["tools"]}
