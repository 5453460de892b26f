"""Human approval bound to the exact call (docs/approval.md), end to end: a
real Envoy with the module, the official MCP SDK client (2026-07-28) whose
elicitation callback approves or declines, and an official SDK server
(tests/support/mrtr_server.py: the demo server plus `wipe`, annotated
destructive, and `pick_color`, which uses multi round-trip requests itself),
answering JSON or SSE.

The policy asks for confirmation of `wipe` and `count` (which answers on an
SSE stream). The filter answers the first call itself with an
`input_required` result; the client asks its user (the callback) and retries
with the answer and the filter's signed `requestState`; the filter verifies
it and forwards the call without its own round trip. One test puts Envoy's
jwt_authn in front of the module, so the approval is bound to a verified
principal.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import ElicitResult, Implementation

from support import harness
from support.jwt_util import jwt_filter, token
from support.rpc import DENY_CODE

MRTR_SERVER = Path(__file__).resolve().parent.parent / "support" / "mrtr_server.py"
V = "2026-07-28"

POLICY = """package mcp
import rego.v1

default allow := true

confirm contains sprintf("wiping %s cannot be undone", [input.mcp.tool.arguments.path]) if {
    input.mcp.tool.name == "wipe"
}

confirm contains "counting is confirmed by a person" if input.mcp.tool.name == "count"

confirm contains "repainting is confirmed by a person" if input.mcp.tool.name == "repaint"

deny contains "only approved wipes of /tmp/ paths" if {
    input.mcp.tool.name == "wipe"
    input.approval
    not startswith(input.mcp.tool.arguments.path, "/tmp/")
}
"""

APPROVAL = {"keys": [{"id": "k1", "secret": "e2e-approval-secret-0123456789abcdef"}], "ttl_seconds": 120}


@pytest.fixture(params=["json", "sse"])
def mrtr_server(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[harness.DemoServer]:
    monkeypatch.setattr(harness, "DEMO_SERVER", MRTR_SERVER)
    server = harness.start_demo_server(tmp_path, json_response=request.param == "json")
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
def envoy(mrtr_server: harness.DemoServer, envoy_factory: Any, policy_config: Any) -> harness.EnvoyHandle:
    return envoy_factory(policy_config(POLICY, approval=APPROVAL), upstream_port=mrtr_server.port)


class User:
    """The person at the client: answers every elicitation, and remembers them."""

    def __init__(self, approve: bool | None) -> None:
        self.approve = approve
        self.asked: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params)
        if self.approve is None:
            return ElicitResult(action="decline")
        if "approve" in params.requested_schema.get("properties", {}):
            return ElicitResult(action="accept", content={"approve": self.approve})
        return ElicitResult(action="accept", content={"color": "teal"})


def client(url: str, user: User | None, mode: str = V) -> Client:
    return Client(url, mode=mode, client_info=Implementation(name="approval-e2e", version="1"),
                  read_timeout_seconds=15, elicitation_callback=user)


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def calls(server: harness.DemoServer, tool: str) -> list[dict[str, Any]]:
    return [m for m in server.received() if m.get("method") == "tools/call" and m.get("name") == tool]


def approvals(envoy: harness.EnvoyHandle) -> list[dict[str, Any]]:
    return [e for e in envoy.audit_events() if "approval" in e]


def approval_counts(envoy: harness.EnvoyHandle) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in envoy.stats(filter="mcp_policy_approvals").items():
        for status in ("asked", "approved", "declined", "expired", "forged", "mismatch", "unavailable"):
            if name.endswith(f"status.{status}") or f"status.{status}." in name or name.endswith(status):
                out[status] = out.get(status, 0) + value
    return out


def test_approved_call_runs_once_without_the_filters_round_trip(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    user = User(approve=True)

    async def scenario() -> None:
        async with client(envoy.url, user) as c:
            out = text(await c.call_tool("wipe", {"path": "/tmp/cache"}))
            assert out == "wiped /tmp/cache; server saw requestState=None inputResponses=[]", out
            # A tool answered on an SSE stream (progress notifications) works too.
            assert text(await c.call_tool("count", {"to": 2})) == "counted to 2"
            # Calls the policy does not want confirmed are not asked about.
            assert text(await c.call_tool("echo", {"text": "hi"})) == "hi"

    anyio.run(scenario)
    assert len(user.asked) == 2
    q = user.asked[0]
    assert "wiping /tmp/cache cannot be undone" in q.message
    assert "Tool: wipe" in q.message and '"path":"/tmp/cache"' in q.message
    assert q.requested_schema["required"] == ["approve"]
    # The server got each confirmed call once: the approved retry.
    assert [m["arguments"] for m in calls(mrtr_server, "wipe")] == [{"path": "/tmp/cache"}]
    assert len(calls(mrtr_server, "count")) == 1
    events = approvals(envoy)
    asked = [e for e in events if e["approval"].get("status") == "asked"]
    approved = [e for e in events if e["approval"].get("status") == "approved"]
    assert len(asked) == 2 and len(approved) == 2, events
    assert {e["approval"]["id"] for e in asked} == {e["approval"]["id"] for e in approved}
    assert all(e["decision"] == "allow" for e in approved)
    assert asked[0]["approval"]["confirm"] == ["wiping /tmp/cache cannot be undone"]
    counts = approval_counts(envoy)
    assert counts.get("asked") == 2 and counts.get("approved") == 2, counts


def test_declined_call_is_denied_and_never_reaches_the_server(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    async def scenario(user: User, reason: str) -> None:
        async with client(envoy.url, user) as c:
            with pytest.raises(MCPError) as info:
                await c.call_tool("wipe", {"path": "/tmp/cache"})
            assert info.value.code == DENY_CODE, info.value
            assert reason in info.value.message, info.value.message

    anyio.run(scenario, User(approve=None), 'the person declined the call to "wipe"')
    anyio.run(scenario, User(approve=False), 'the person did not approve the call to "wipe"')
    assert calls(mrtr_server, "wipe") == []
    statuses = [e["approval"].get("status") for e in approvals(envoy)]
    assert statuses == ["asked", "declined", "asked", "declined"], statuses


def test_the_policy_still_decides_the_approved_call(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    async def scenario() -> None:
        async with client(envoy.url, User(approve=True)) as c:
            with pytest.raises(MCPError) as info:
                await c.call_tool("wipe", {"path": "/home"})
            assert "only approved wipes of /tmp/ paths" in info.value.message

    anyio.run(scenario)
    assert calls(mrtr_server, "wipe") == []


def test_altered_arguments_on_retry_are_refused(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    """A client that shows its user one call and sends another."""

    async def scenario() -> None:
        async with client(envoy.url, User(approve=True)) as c:
            first = await c.session.call_tool("wipe", {"path": "/tmp/cache"}, allow_input_required=True)
            assert getattr(first, "result_type", None) == "input_required", first
            (key,) = first.input_requests.keys()
            yes = {key: ElicitResult(action="accept", content={"approve": True})}
            with pytest.raises(MCPError) as info:
                await c.session.call_tool("wipe", {"path": "/tmp/everything"}, input_responses=yes,
                                          request_state=first.request_state)
            assert "the arguments differ from the ones the person approved" in info.value.message
            # The state itself, altered: refused as forged.
            with pytest.raises(MCPError) as info:
                await c.session.call_tool("wipe", {"path": "/tmp/cache"}, input_responses=yes,
                                          request_state=first.request_state[:-2] + "AA")
            assert "does not verify" in info.value.message or "malformed" in info.value.message
            # The untouched retry still works (within its window).
            ok = await c.session.call_tool("wipe", {"path": "/tmp/cache"}, input_responses=yes,
                                           request_state=first.request_state)
            assert "wiped /tmp/cache" in text(ok)

    anyio.run(scenario)
    assert [m["arguments"] for m in calls(mrtr_server, "wipe")] == [{"path": "/tmp/cache"}]
    statuses = [e["approval"].get("status") for e in approvals(envoy)]
    assert statuses == ["asked", "mismatch", "forged", "approved"], statuses


def post(url: str, body: dict[str, Any], session: str | None, bearer: str | None = None) -> dict[str, Any]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": V, "mcp-method": body["method"], "mcp-name": body["params"]["name"]}
    if session:
        headers["mcp-session-id"] = session
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}}


def call(i: int, extra: dict[str, Any]) -> dict[str, Any]:
    """A raw 2026-07-28 call of `wipe` (/tmp/a), with `extra` params (a retry's state and answers)."""
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "wipe", "arguments": {"path": "/tmp/a"}, "_meta": META, **extra}}


def test_state_replayed_in_another_session_is_refused(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    first = post(envoy.url, call(1, {}), session="session-A")["result"]
    assert first["resultType"] == "input_required"
    (key,) = first["inputRequests"].keys()
    retry = {"requestState": first["requestState"],
             "inputResponses": {key: {"action": "accept", "content": {"approve": True}}}}
    other = post(envoy.url, call(2, retry), session="session-B")
    assert "the approval was given in another session" in other["error"]["message"], other
    none = post(envoy.url, call(3, retry), session=None)
    assert "another session" in none["error"]["message"], none
    ok = post(envoy.url, call(4, retry), session="session-A")
    assert "wiped /tmp/a" in ok["result"]["content"][0]["text"], ok
    assert len(calls(mrtr_server, "wipe")) == 1


def test_state_replayed_by_another_principal_is_refused(
        mrtr_server: harness.DemoServer, envoy_factory: Any, policy_config: Any,
        jwt_keys: dict[str, Any]) -> None:
    """The approval is bound to the verified caller (Envoy's jwt_authn in
    front of the module): the same state, session and answer presented by
    another principal, or by no principal, are refused."""
    envoy = envoy_factory(policy_config(POLICY, approval=APPROVAL), upstream_port=mrtr_server.port,
                          extra_http_filters_before=[jwt_filter(jwt_keys["jwks"])])
    alice, bob = token(jwt_keys, sub="alice"), token(jwt_keys, sub="bob")
    first = post(envoy.url, call(1, {}), session="s-1", bearer=alice)["result"]
    assert first["resultType"] == "input_required", first
    (key,) = first["inputRequests"].keys()
    retry = {"requestState": first["requestState"],
             "inputResponses": {key: {"action": "accept", "content": {"approve": True}}}}
    other = post(envoy.url, call(2, retry), session="s-1", bearer=bob)
    assert "the approval was given to another principal" in other["error"]["message"], other
    anonymous = post(envoy.url, call(3, retry), session="s-1")
    assert "the approval was given to another principal" in anonymous["error"]["message"], anonymous
    assert calls(mrtr_server, "wipe") == []
    ok = post(envoy.url, call(4, retry), session="s-1", bearer=alice)
    assert "wiped /tmp/a" in ok["result"]["content"][0]["text"], ok
    assert len(calls(mrtr_server, "wipe")) == 1
    statuses = [e["approval"].get("status") for e in approvals(envoy)]
    assert statuses == ["asked", "mismatch", "mismatch", "approved"], statuses


def test_older_protocol_is_denied_naming_the_version(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    async def scenario() -> None:
        async with client(envoy.url, User(approve=True), mode="legacy") as c:
            with pytest.raises(MCPError) as info:
                await c.call_tool("wipe", {"path": "/tmp/cache"})
            msg = info.value.message
            assert "needs a person's confirmation" in msg and "2026-07-28" in msg and "2025-11-25" in msg, msg
            assert text(await c.call_tool("echo", {"text": "still fine"})) == "still fine"

    anyio.run(scenario)
    assert calls(mrtr_server, "wipe") == []
    assert approval_counts(envoy).get("unavailable") == 1


def test_an_upstream_using_mrtr_itself_works_through_the_filter(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    user = User(approve=True)

    async def scenario() -> None:
        async with client(envoy.url, user) as c:
            assert text(await c.call_tool("pick_color", {})) == "color teal (server state server-state-color-1)"

    anyio.run(scenario)
    assert [q.message for q in user.asked] == ["Pick a color"]
    # Both legs reached the server; the filter asked nothing.
    assert len(calls(mrtr_server, "pick_color")) == 2
    assert approvals(envoy) == []


def test_a_confirmed_tool_whose_server_uses_mrtr_itself(
        envoy: harness.EnvoyHandle, mrtr_server: harness.DemoServer) -> None:
    """Each leg that reaches the server is confirmed; the server's own round
    trip (its state and the answer to its question) is kept in the filter's
    signed state across the question and handed back to it."""
    user = User(approve=True)

    async def scenario() -> None:
        async with client(envoy.url, user) as c:
            out = text(await c.call_tool("repaint", {"path": "/tmp/wall"}))
            assert out == "repainted /tmp/wall teal (server state server-state-repaint-/tmp/wall)", out

    anyio.run(scenario)
    asked = [("approve" in q.requested_schema.get("properties", {}), q.message.splitlines()[0]) for q in user.asked]
    assert asked == [(True, "Confirm this call."), (False, "Pick a color"), (True, "Confirm this call.")], asked
    assert len(calls(mrtr_server, "repaint")) == 2
    statuses = [e["approval"].get("status") for e in approvals(envoy)]
    assert statuses == ["asked", "approved", "asked", "approved"], statuses
