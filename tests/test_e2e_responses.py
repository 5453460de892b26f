"""The response side, end to end: a real Envoy 1.40 with the module, in front of
the demo MCP server (official Python SDK) with its response-side test tools
(--response-tools), driven by the official SDK client.

What the server sends — tool results, list results, server requests
(elicitation) and notifications, on JSON bodies and on SSE streams — is
decided by the same Rego policy as what the client sends
(input.mcp.direction == "server_to_client"). A blocked result becomes a
JSON-RPC error with the request's id; lists only carry what this caller may
use; a compressed upstream is made to answer uncompressed, and one that
compresses anyway fails closed.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError
from mcp_types import ElicitResult, Implementation

import harness

DENY_CODE = -31403
ERAS = ["legacy", "2026-07-28"]

# A policy written for this test: string matching on results stands in for the
# built-in detectors (see test_e2e_detectors.py for those).
POLICY = """package mcp
import rego.v1

default allow := true

server_result := json.marshal(input.mcp.result) if {
    input.mcp.direction == "server_to_client"
    input.mcp.kind == "response"
}

deny contains "the result carries a cloud key" if contains(server_result, "AKIA")

deny contains "the result carries a prompt injection" if {
    contains(lower(server_result), "ignore all previous instructions")
}

deny contains "elicitation is not allowed" if {
    input.mcp.direction == "server_to_client"
    input.mcp.method == "elicitation/create"
    not data.allow_elicitation
}

deny contains "log messages may not carry keys" if {
    input.mcp.direction == "server_to_client"
    input.mcp.method == "notifications/message"
    contains(json.marshal(input.mcp.params), "AKIA")
}

# Request side, which also decides what lists show.
deny contains "poisoned tool" if {
    input.mcp.method == "tools/call"
    contains(input.mcp.tool.definition.description, "<IMPORTANT>")
}

deny contains "prompt summarize is not for this caller" if input.mcp.prompt.name == "summarize"
"""

RESPONSE_TOOLS = ["--response-tools"]


def server_mode(json_response: bool, *extra: str) -> dict[str, Any]:
    return {"json_response": json_response, "extra_args": [*RESPONSE_TOOLS, *extra]}


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def audits(envoy: harness.EnvoyHandle) -> list[dict[str, Any]]:
    out = []
    for line in envoy.log_text().splitlines():
        i = line.find("mcp-policy audit ")
        if i >= 0:
            out.append(json.loads(line[i + len("mcp-policy audit "):]))
    return out


def client(url: str, era: str, **kw: Any) -> Client:
    return Client(
        url,
        mode=era,
        client_info=Implementation(name="mcp-policy-e2e", version="1"),
        read_timeout_seconds=15,
        **kw,
    )


async def denied(coro: Any, reason: str) -> MCPError:
    with pytest.raises(MCPError) as info:
        await coro
    assert info.value.code == DENY_CODE, info.value
    assert reason in info.value.message, info.value.message
    return info.value


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    "demo_server", [server_mode(False), server_mode(True)], ids=["sse", "json"], indirect=True
)
def test_results_are_decided_and_lists_filtered(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"responses.rego": POLICY}}})

    async def scenario() -> None:
        async with client(envoy.url, era) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            # The poisoned tool is not listed for this caller; the rest is.
            assert "poisoned_add" not in tools
            assert {"echo", "leak_secret", "fetch_page", "weather"} <= set(tools)
            # Benign results pass unchanged (no false positive).
            assert text_of(await c.call_tool("echo", {"text": "hello, world"})) == "hello, world"
            assert text_of(await c.call_tool("add", {"a": 2, "b": 3})) == "5"
            # Results carrying a key or an injection are replaced by an error
            # with the request's id: the client's call fails cleanly.
            await denied(c.call_tool("leak_secret", {}), "the result carries a cloud key")
            await denied(c.call_tool("fetch_page", {"url": "https://example.com"}), "prompt injection")
            # The session carries on.
            assert text_of(await c.call_tool("echo", {"text": "still here"})) == "still here"
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert "greet" in prompts and "summarize" not in prompts
            if era != "legacy":
                # A filtered 2026-07-28 list may not be cached across callers.
                listed = await c.list_tools()
                assert listed.cache_scope == "private"

    anyio.run(scenario)
    # The server did answer those calls: the results were stopped on the way back.
    called = [m.get("name") for m in demo_server.received() if m.get("method") == "tools/call"]
    assert "leak_secret" in called and "fetch_page" in called
    events = [e for e in audits(envoy) if e["direction"] == "response"]
    blocked = [e for e in events if e["decision"] == "deny"]
    assert {e["tool"] for e in blocked} == {"leak_secret", "fetch_page"}
    assert all(e["kind"] == "response" and e["method"] == "tools/call" for e in blocked)
    hidden = [e for e in events if e.get("hidden")]
    assert {(e["method"], tuple(e["hidden"])) for e in hidden} >= {
        ("tools/list", ("poisoned_add",)),
        ("prompts/list", ("summarize",)),
    }


@pytest.mark.parametrize("demo_server", [server_mode(False)], ids=["sse"], indirect=True)
def test_server_requests_and_notifications_on_the_post_stream(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"responses.rego": POLICY}}})
    asked: list[str] = []
    logged: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    async def on_log(params: Any) -> None:
        logged.append(str(params.data))

    async def scenario() -> None:
        async with client(envoy.url, "legacy", elicitation_callback=on_elicit, logging_callback=on_log) as c:
            # The elicitation request is dropped and the call it belongs to
            # fails at once with the reason.
            await denied(c.call_tool("ask_user", {}), "elicitation is not allowed")
            # Notifications are decided one by one: the log line with a key is
            # dropped, the other one passes, and so does the result.
            assert text_of(await c.call_tool("chatty", {})) == "chatted"

    anyio.run(scenario)
    assert asked == []
    assert logged == ["step one"]
    events = [e for e in audits(envoy) if e["direction"] == "response"]
    kinds = {(e["kind"], e["method"], e["decision"]) for e in events}
    assert ("request", "elicitation/create", "deny") in kinds
    assert ("notification", "notifications/message", "deny") in kinds
    assert ("notification", "notifications/message", "allow") in kinds


@pytest.mark.parametrize(
    "demo_server", [server_mode(False), server_mode(True)], ids=["sse", "json"], indirect=True
)
def test_notifications_on_the_get_stream_are_decided(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"responses.rego": POLICY}}})

    async def scenario() -> None:
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            method = getattr(getattr(message, "root", message), "method", None)
            if method == "notifications/tools/list_changed":
                changed.set()

        async with client(envoy.url, "legacy", message_handler=on_message) as c:
            before = {t.name: t.description for t in (await c.list_tools()).tools}
            assert text_of(await c.call_tool("rug_pull", {})) == "weather changed"
            with anyio.fail_after(10):
                await changed.wait()
            after = {t.name: t.description for t in (await c.list_tools()).tools}
            assert before["weather"] != after["weather"]

    anyio.run(scenario)
    # The notification came on the standalone GET stream, decided like the rest.
    events = [e for e in audits(envoy) if e["direction"] == "response"]
    assert ("notification", "notifications/tools/list_changed", "allow") in {
        (e["kind"], e["method"], e["decision"]) for e in events
    }


@pytest.mark.parametrize(
    "demo_server", [server_mode(True, "--gzip")], ids=["json-gzip"], indirect=True
)
def test_a_compressing_upstream_is_asked_for_identity(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"responses.rego": POLICY}}})
    # Straight to the server, a client that accepts gzip gets gzip.
    direct = httpx.post(
        demo_server.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}},
        headers={"accept": "application/json, text/event-stream", "accept-encoding": "gzip"},
        timeout=10,
    )
    assert direct.headers.get("content-encoding") == "gzip"

    async def scenario() -> None:
        # httpx (under the SDK client) accepts gzip; through the filter the
        # server is asked for identity, so results are still inspected.
        async with client(envoy.url, "legacy") as c:
            assert text_of(await c.call_tool("echo", {"text": "x" * 2000})) == "x" * 2000
            await denied(c.call_tool("leak_secret", {}), "the result carries a cloud key")

    anyio.run(scenario)


@pytest.mark.parametrize(
    "demo_server", [server_mode(True, "--force-gzip")], ids=["json-force-gzip"], indirect=True
)
def test_a_compressed_response_fails_closed(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"responses.rego": POLICY}}})
    r = httpx.post(
        envoy.url,
        json={"jsonrpc": "2.0", "id": 41, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}},
        headers={"accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    body = r.json()
    assert body["id"] == 41
    assert "Content-Encoding gzip" in body["error"]["message"]
    assert any(e["kind"] == "rejected" and e["direction"] == "response" for e in audits(envoy))
