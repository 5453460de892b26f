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

from support import harness
from support.rpc import DENY_CODE, text_of

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


# The built-in detectors: findings in the input, redaction, blocking.
DETECT_POLICY = """package mcp
import rego.v1

default allow := true

redact contains kind if {
    input.mcp.direction == "server_to_client"
    some kind in {"secret", "pii"}
}

deny contains sprintf("prompt injection in the result (%s)", [f.detector]) if {
    input.mcp.direction == "server_to_client"
    some f in input.mcp.findings
    f.kind == "injection"
}
"""


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    "demo_server", [server_mode(False), server_mode(True)], ids=["sse", "json"], indirect=True
)
def test_detectors_redact_secrets_and_block_injections(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"detect.rego": DETECT_POLICY}}})

    async def scenario() -> None:
        async with client(envoy.url, era) as c:
            # Benign results: nothing found, nothing changed (false positives).
            benign = {
                ("echo", json.dumps({"text": "Meeting at 10:30 in room 4; agenda: budget, hiring (v2.1), 3 items"})): None,
                ("add", json.dumps({"a": 40, "b": 2})): "42",
                ("read_file", json.dumps({"path": "/srv/app/README.md"})): "(fake) contents of /srv/app/README.md",
                ("get_record", json.dumps({"id": 7})): json.dumps({"id": 7, "value": "record 7"}),
                ("query", json.dumps({"sql": "select id, name from users where id = 4"})): None,
            }
            for (tool, args), expected in benign.items():
                got = text_of(await c.call_tool(tool, json.loads(args)))
                if expected is not None:
                    assert got == expected, (tool, got)
                assert "REDACTED" not in got, (tool, got)
            # Secrets and PII are replaced in the forwarded result.
            leaked = text_of(await c.call_tool("leak_secret", {}))
            assert "AKIA" not in leaked and "alice.martin@acme-corp.com" not in leaked, leaked
            assert "[REDACTED:aws_access_key]" in leaked and "[REDACTED:email]" in leaked, leaked
            assert "region=eu-west-1" in leaked
            structured = await c.call_tool("leak_structured", {})
            assert structured.structured_content["token"] == "[REDACTED:github_token]"
            assert structured.structured_content["repo"] == "demo/app"
            assert "ghp_" not in text_of(structured)
            read = await c.read_resource("demo://secret")
            body = "".join(getattr(x, "text", "") for x in read.contents)
            assert "BEGIN RSA PRIVATE KEY" not in body and "[REDACTED:private_key]" in body, body
            # Injections block the result.
            await denied(c.call_tool("fetch_page", {"url": "https://example.com"}), "prompt injection in the result")
            await denied(c.get_prompt("summarize", {"topic": "q3"}), "prompt injection in the result")

    anyio.run(scenario)
    events = [e for e in audits(envoy) if e["direction"] == "response"]
    redacted = [e for e in events if e.get("redacted")]
    assert {e.get("tool") or e.get("resource") for e in redacted} == {"leak_secret", "leak_structured", "demo://secret"}
    assert all(e["decision"] == "allow" for e in redacted)
    assert any("secret/aws_access_key" in e.get("findings", []) for e in redacted)
    # No event carries the secret itself.
    assert "AKIAIOSFODNN7EXAMPLE" not in envoy.log_text()


# Pins and poisoning on the request side, which also filters lists; the
# policy does not rule on responses, so none is evaluated.
PIN_POLICY = """package mcp
import rego.v1

default allow := true

deny contains sprintf("tool %s changed since it was pinned", [input.mcp.tool.name]) if {
    input.mcp.tool.definition.pin.status == "changed"
}

deny contains sprintf("tool %s has a poisoned definition", [input.mcp.tool.name]) if {
    count(input.mcp.tool.definition.poisoning) > 0
}
"""


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    "demo_server", [server_mode(False), server_mode(True)], ids=["sse", "json"], indirect=True
)
def test_rug_pull_and_poisoned_tools_are_hidden_and_refused(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory({"policy": {"modules": {"pins.rego": PIN_POLICY}}})

    async def scenario() -> None:
        async with client(envoy.url, era) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "weather" in tools and "echo" in tools
            assert "poisoned_add" not in tools
            await denied(c.call_tool("poisoned_add", {"a": 1, "b": 2}), "has a poisoned definition")
            assert text_of(await c.call_tool("weather", {"city": "Oslo"})) == "sunny in Oslo"
            # The server changes the tool's definition (the rug pull).
            assert text_of(await c.call_tool("rug_pull", {})) == "weather changed"
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "weather" not in tools and "echo" in tools
            await denied(c.call_tool("weather", {"city": "Oslo"}), "tool weather changed since it was pinned")

    anyio.run(scenario)
    # Only the lists were decided on the way back.
    events = [e for e in audits(envoy) if e["direction"] == "response"]
    assert {e["method"] for e in events} == {"tools/list"}
    assert [e.get("hidden") for e in events] == [["poisoned_add"], ["poisoned_add", "weather"]]


# The shipped library policies for the response side (policies/library/
# pins.rego, poisoning.rego, results.rego) with their defaults, beside a
# permissive main policy.
LIBRARY = harness.REPO / "policies" / "library"


def library_config() -> dict[str, Any]:
    modules = {"main.rego": "package mcp\nimport rego.v1\ndefault allow := true\n"}
    for name in ("pins", "poisoning", "results"):
        modules[f"library/{name}.rego"] = (LIBRARY / f"{name}.rego").read_text()
    return {
        "policy": {
            "modules": modules,
            "data": {"library": {"pins": {}, "poisoning": {}, "results": {}}},
        }
    }


@pytest.mark.parametrize(
    ("demo_server", "era"),
    [(server_mode(False), "legacy"), (server_mode(True), "2026-07-28")],
    ids=["sse-legacy", "json-2026"],
    indirect=["demo_server"],
)
def test_library_policies_on_the_response_side(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory(library_config())

    async def scenario() -> None:
        async with client(envoy.url, era) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert {"echo", "weather", "leak_secret"} <= tools
            assert "poisoned_add" not in tools
            assert text_of(await c.call_tool("echo", {"text": "plain words"})) == "plain words"
            leaked = text_of(await c.call_tool("leak_secret", {}))
            assert "[REDACTED:aws_access_key]" in leaked and "[REDACTED:email]" in leaked, leaked
            with pytest.raises(MCPError) as info:
                await c.call_tool("fetch_page", {"url": "https://example.com"})
            assert "results: the result of tools/call" in info.value.message, info.value.message
            assert text_of(await c.call_tool("weather", {"city": "Rome"})) == "sunny in Rome"
            assert text_of(await c.call_tool("rug_pull", {})) == "weather changed"
            assert "weather" not in {t.name for t in (await c.list_tools()).tools}
            with pytest.raises(MCPError) as info:
                await c.call_tool("weather", {"city": "Rome"})
            assert 'pins: tool "weather" changed since it was pinned' in info.value.message, info.value.message

    anyio.run(scenario)
