"""The full decision, end to end through Envoy with the official SDK client:
denials in the form the policy chooses (a JSON-RPC error with its own code
and HTTP status, or a tool result with isError the model can read), argument
rewriting (what the upstream receives, with a correct Content-Length),
headers added upstream and on the response, and labels.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from support import harness
from support.rpc import text_of

POLICY = """package mcp
import rego.v1

default allow := true

# send_email: denied as a tool result, so the model reads why and adapts.
deny contains "external e-mail is blocked" if {
    input.mcp.tool.name == "send_email"
    not endswith(input.mcp.tool.arguments.to, "@example.com")
}
denial := {"as": "tool_result", "message": "send_email refused: only @example.com recipients are allowed"} if {
    input.mcp.tool.name == "send_email"
}

# delete_record: a JSON-RPC error with a code of the operator's choosing.
deny contains "deleting records is not allowed" if input.mcp.tool.name == "delete_record"
denial := {"code": 4030, "message": "no deletes through this gateway"} if input.mcp.tool.name == "delete_record"

# Clamp, redact, default.
rewrite["b"] := 10 if input.mcp.tool.arguments.b > 10
rewrite["text"] := "[REDACTED]" if contains(input.mcp.tool.arguments.text, "password")
rewrite["path"] := "/workspace/README.md" if {
    input.mcp.tool.name == "read_file"
    not input.mcp.tool.arguments.path
}

# The tool name upstream, for Envoy's own filters, and a response header.
request_headers["x-mcp-tool"] := input.mcp.tool.name if input.mcp.tool.name
response_headers["x-mcp-policy"] := "decision-e2e"

labels contains "sensitive_read" if input.mcp.tool.name == "read_file"
"""


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("demo_server", ["sse", "json"], indirect=True)
def test_full_decision_with_the_sdk_client(demo_server: harness.DemoServer, envoy_factory: Any, era: str) -> None:
    envoy = envoy_factory({"policy": {"modules": {"decision.rego": POLICY}}})

    async def scenario() -> None:
        async with Client(envoy.url, mode=era, read_timeout_seconds=15) as c:
            # Tool-result denial: no exception, the model reads isError + text.
            r = await c.call_tool("send_email", {"to": "x@evil.test", "body": "hi"})
            assert r.is_error is True
            assert text_of(r) == "send_email refused: only @example.com recipients are allowed"
            assert "sent" in text_of(await c.call_tool("send_email", {"to": "ops@example.com", "body": "hi"}))

            # Error denial with the policy's own code and message.
            with pytest.raises(MCPError) as info:
                await c.call_tool("delete_record", {"id": 1})
            assert info.value.code == 4030
            assert info.value.message == "no deletes through this gateway"

            # Rewrites reach the server: clamp, redact, default.
            assert text_of(await c.call_tool("add", {"a": 1, "b": 500})) == "11"
            assert text_of(await c.call_tool("echo", {"text": "my password is hunter2"})) == "[REDACTED]"
            assert "/workspace/README.md" in text_of(await c.call_tool("read_file", {}))
            # Untouched calls pass as sent.
            assert text_of(await c.call_tool("add", {"a": 1, "b": 2})) == "3"

    anyio.run(scenario)

    calls = [m for m in demo_server.received() if m.get("method") == "tools/call"]
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for m in calls:
        by_tool.setdefault(m["name"], []).append(m)
    assert "delete_record" not in by_tool
    assert [m["arguments"]["to"] for m in by_tool["send_email"]] == ["ops@example.com"]
    assert [m["arguments"]["b"] for m in by_tool["add"]] == [10, 2]
    assert by_tool["echo"][0]["arguments"]["text"] == "[REDACTED]"
    for m in calls:
        # The tool name header was set upstream, and a rewritten body carries
        # a Content-Length that matches it.
        assert m["x_headers"]["x-mcp-tool"] == m["name"]
        if m["content_length"] is not None:
            assert m["content_length"] == m["body_length"], m


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_response_headers_and_labels(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"decision.rego": POLICY}}}, component_log_level="wasm:debug")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": "/workspace/a"}}}
    r = httpx.post(envoy.url, content=json.dumps(body), timeout=15,
                   headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert r.status_code == 200 and "result" in r.json()
    assert r.headers["x-mcp-policy"] == "decision-e2e"
    # Denials carry the response headers too.
    body["params"] = {"name": "delete_record", "arguments": {"id": 1}}
    r = httpx.post(envoy.url, content=json.dumps(body), timeout=15,
                   headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert r.json()["error"]["code"] == 4030
    assert r.headers["x-mcp-policy"] == "decision-e2e"
    assert "allowed tools/call labels [\"sensitive_read\"]" in envoy.log_text()
