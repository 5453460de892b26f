"""Session context end to end, through Envoy (with jwt_authn for identity)
and the official SDK client: flows across a session's calls (the lethal
trifecta), session binding (a stolen Mcp-Session-Id is refused), and rates
with a kill switch, kept in Envoy's shared data across worker threads.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from support.jwt_util import token
from support.rpc import DENY_CODE, text_of
from support.stack import Stack, StackSpec


POLICY = """package mcp
import rego.v1

default allow := true

labels contains "sensitive_read" if input.mcp.tool.name == "read_file"
labels contains "external_send" if input.mcp.tool.name == "send_email"

# The lethal trifecta: nothing leaves once something sensitive was read.
deny contains "no external send after a sensitive read in this session" if {
    "external_send" in labels
    "sensitive_read" in input.session.labels
}

# 5 calls a minute is an agent; more is a runaway.
deny contains sprintf("rate limit: %d add calls in the last minute", [n]) if {
    n := input.rate.identity.tools.add
    n > 5
}
kill := "runaway agent: more than 8 add calls a minute" if input.rate.identity.tools.add > 8
"""


# SSE, stateful sessions; two workers: state must hold across threads (shared data).
STACK = StackSpec(plugin_config={"policy": {"modules": {"sessions.rego": POLICY}}}, server="sse",
                  envoy={"concurrency": 2}, jwt=True, name="sessions")


def sdk(url: str, bearer: str | None, era: str = "legacy") -> Any:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    http = httpx2.AsyncClient(headers=headers, timeout=15)
    return http, Client(streamable_http_client(url, http_client=http), mode=era, read_timeout_seconds=15)


def test_lethal_trifecta_is_blocked_within_a_session(stack: Stack) -> None:
    server, envoy = stack.server, stack.envoy

    async def scenario() -> None:
        http, client = sdk(envoy.url, None)
        async with http, client as c:
            # Sending first is fine; after a sensitive read it is not.
            assert "sent" in text_of(await c.call_tool("send_email", {"to": "a@example.com", "body": "1"}))
            assert "contents" in text_of(await c.call_tool("read_file", {"path": "/workspace/secrets"}))
            with pytest.raises(MCPError) as info:
                await c.call_tool("send_email", {"to": "a@example.com", "body": "2"})
            assert info.value.code == DENY_CODE
            assert "no external send after a sensitive read" in info.value.message
        # A new session starts clean.
        http, client = sdk(envoy.url, None)
        async with http, client as c:
            assert "sent" in text_of(await c.call_tool("send_email", {"to": "a@example.com", "body": "3"}))

    anyio.run(scenario)
    bodies = [m for m in server.received() if m.get("name") == "send_email"]
    assert [m["arguments"]["body"] for m in bodies] == ["1", "3"]


def test_a_stolen_session_id_is_refused(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    server, envoy = stack.server, stack.envoy
    alice = token(jwt_keys, sub="alice")

    async def open_session() -> None:
        http, client = sdk(envoy.url, alice)
        async with http, client as c:
            assert text_of(await c.call_tool("echo", {"text": "mine"})) == "mine"

    anyio.run(open_session)
    session = next(m["session"] for m in server.received()
                   if m.get("name") == "echo" and m.get("session"))

    def replay(bearer: str | None, id_: int) -> httpx.Response:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "stolen"}}}
        return httpx.post(envoy.url, content=json.dumps(body), headers=headers, timeout=15)

    for bearer, id_ in ((token(jwt_keys, sub="mallory"), 7001), (None, 7002)):
        r = replay(bearer, id_)
        err = r.json()["error"]
        assert err["code"] == DENY_CODE
        assert f"session {session} belongs to another principal" in err["message"], err
    assert not ({7001, 7002} & {m.get("id") for m in server.received()})


def test_rate_limit_then_kill_per_principal(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    server, envoy = stack.server, stack.envoy
    bot = token(jwt_keys, sub="bot-7")

    async def hammer() -> list[str]:
        outcomes = []
        http, client = sdk(envoy.url, bot, era="2026-07-28")
        async with http, client as c:
            for i in range(10):
                try:
                    await c.call_tool("add", {"a": i, "b": 0})
                    outcomes.append("ok")
                except MCPError as e:
                    outcomes.append(e.message)
            try:
                await c.call_tool("echo", {"text": "innocent"})
                outcomes.append("ok")
            except MCPError as e:
                outcomes.append(e.message)
        return outcomes

    outcomes = anyio.run(hammer)
    assert outcomes[:5] == ["ok"] * 5, outcomes
    assert all("rate limit" in o for o in outcomes[5:8]), outcomes
    assert "runaway agent" in outcomes[8], outcomes
    # Killed: every further message is refused with the reason.
    assert outcomes[9] == "Denied by policy: session killed: runaway agent: more than 8 add calls a minute"
    assert outcomes[10] == outcomes[9]
    adds = [m for m in server.received() if m.get("name") == "add"]
    assert len(adds) == 5

    # Another principal is unaffected.
    async def other() -> str:
        http, client = sdk(envoy.url, token(jwt_keys, sub="careful-agent"), era="2026-07-28")
        async with http, client as c:
            return text_of(await c.call_tool("add", {"a": 2, "b": 2}))

    assert anyio.run(other) == "4"


def test_session_is_bound_when_minted_and_guards_the_get_stream(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    """The session id the server mints in its answer to alice's initialize is
    bound to alice at once; mallory cannot open its GET stream (which would
    carry server-to-client messages) or end it with DELETE."""
    server, envoy = stack.server, stack.envoy
    alice = token(jwt_keys, sub="alice-2")
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "1"}}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "authorization": f"Bearer {alice}"}
    with httpx.stream("POST", envoy.url, content=json.dumps(body), headers=headers, timeout=15) as r:
        assert r.status_code == 200
        session = r.headers["mcp-session-id"]
        r.read()

    def transport(method: str, bearer: str) -> int:
        h = {"accept": "text/event-stream", "mcp-session-id": session,
             "mcp-protocol-version": "2025-11-25", "authorization": f"Bearer {bearer}"}
        with httpx.stream(method, envoy.url, headers=h, timeout=15) as resp:
            return resp.status_code

    mallory = token(jwt_keys, sub="mallory-2")
    assert transport("GET", mallory) == 403
    assert transport("DELETE", mallory) == 403
    # Before alice ever used it, the session is already hers.
    assert transport("GET", alice) == 200
    assert transport("DELETE", alice) != 403
