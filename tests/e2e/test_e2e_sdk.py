"""End to end with the official MCP SDK: a real Envoy 1.40 with the module and
the shipped default policy (policies/), in front of an MCP server built with
the official Python SDK, driven by the official SDK client.

Every combination of server response mode (SSE / JSON, stateful sessions /
stateless) and protocol era (2025-11-25 with the initialize handshake and
Mcp-Session-Id; the stateless 2026-07-28 with per-request metadata headers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import Implementation

from support import harness  # noqa: I001  (puts tools/ on sys.path)
from support.rpc import DENY_CODE, text_of
import envoy_config

REPO = Path(__file__).resolve().parent.parent.parent

ERAS = ["legacy", "2026-07-28"]


def default_policy_config() -> dict[str, Any]:
    return envoy_config.plugin_config_from_dir(REPO / "policies")


def client(url: str, era: str) -> Client:
    return Client(
        url,
        mode=era,
        client_info=Implementation(name="mcp-policy-e2e", version="1"),
        read_timeout_seconds=15,
    )


async def expect_denied(c: Client, tool: str, args: dict[str, Any], reason: str) -> MCPError:
    with pytest.raises(MCPError) as info:
        await c.call_tool(tool, args)
    err = info.value
    assert err.code == DENY_CODE, err
    assert err.message.startswith("Denied by policy: "), err.message
    assert reason in err.message, err.message
    return err


def names_called(server: harness.DemoServer) -> list[tuple[str | None, str | None]]:
    return [(m.get("method"), m.get("name") or m.get("uri")) for m in server.received()]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("demo_server", ["sse", "json", "sse-stateless", "json-stateless"], indirect=True)
def test_allowed_calls_pass_and_denied_calls_never_reach_the_server(
    demo_server: harness.DemoServer, envoy_factory: Any, era: str
) -> None:
    envoy = envoy_factory(default_policy_config())

    async def scenario() -> None:
        async with client(envoy.url, era) as c:
            if era == "legacy":
                assert c.protocol_version == "2025-11-25"
            else:
                assert c.protocol_version == "2026-07-28"

            tools = {t.name for t in (await c.list_tools()).tools}
            assert {"echo", "read_file"} <= tools
            # Lists are filtered per caller by the same policy: a tool the
            # policy would refuse to call is not listed.
            assert "delete_record" not in tools

            assert text_of(await c.call_tool("echo", {"text": "hello"})) == "hello"

            # Denied: a blocked tool, then an argument constraint.
            await expect_denied(c, "delete_record", {"id": 7}, 'tool "delete_record" is blocked by policy')
            await expect_denied(c, "read_file", {"path": "/etc/passwd"}, "may only read under /workspace/")

            # The same session carries on.
            assert "workspace/notes" in text_of(await c.call_tool("read_file", {"path": "/workspace/notes"}))
            assert text_of(await c.call_tool("add", {"a": 2, "b": 3})) == "5"
            # Notifications on an SSE stream (progress, log) pass through.
            assert text_of(await c.call_tool("count", {"to": 3})) == "counted to 3"
            resource = await c.read_resource("demo://readme")
            assert "demo upstream" in resource.contents[0].text
            prompt = await c.get_prompt("greet", {"name": "Ada"})
            assert "Ada" in prompt.messages[0].content.text

    anyio.run(scenario)

    called = names_called(demo_server)
    # Everything allowed arrived...
    for expected in [("tools/list", None), ("tools/call", "echo"), ("tools/call", "read_file"),
                     ("tools/call", "add"), ("tools/call", "count"), ("resources/read", "demo://readme"),
                     ("prompts/get", "greet")]:
        assert expected in called, (expected, called)
    # ...and nothing denied did.
    assert ("tools/call", "delete_record") not in called
    read_paths = [m for m in demo_server.received() if m.get("name") == "read_file"]
    assert len(read_paths) == 1, read_paths

    if era == "legacy" and "stateless" not in str(demo_server.proc.argv):
        # The 2025-11-25 session went through Envoy: every message after
        # initialize carried the session the server minted.
        sessions = {m.get("session") for m in demo_server.received() if m.get("method") != "initialize"}
        assert len(sessions) == 1 and None not in sessions, sessions

    # Denials are logged by the filter with their reason.
    log = envoy.log_text()
    assert 'denied tools/call "delete_record"' in log


@pytest.mark.parametrize("demo_server", ["sse"], indirect=True)
def test_unicode_tool_names_use_the_base64_header_form(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    """A 2026-07-28 client sends a non-ASCII name as Mcp-Name: =?base64?…?=;
    the filter decodes it, matches it against the body, and the policy sees
    the decoded name."""
    policy = """package mcp
import rego.v1
default allow := true
deny contains sprintf("tool %q is not served here", [input.mcp.tool.name]) if {
    input.mcp.tool.name == "café"
    input.mcp.headers.name == "café"
}
"""
    envoy = envoy_factory({"policy": {"modules": {"p.rego": policy}}})

    async def scenario() -> None:
        async with client(envoy.url, "2026-07-28") as c:
            err = await expect_denied(c, "café", {}, 'tool "café" is not served here')
            assert err.code == DENY_CODE
            assert text_of(await c.call_tool("echo", {"text": "après"})) == "après"

    anyio.run(scenario)
    sent = [m for m in demo_server.received() if m.get("method") == "tools/call"]
    assert [m.get("name") for m in sent] == ["echo"]


@pytest.mark.parametrize("demo_server", ["json"], indirect=True)
def test_policy_sees_protocol_version_and_session(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    """Rules on input.mcp.protocol_version and input.mcp.session_id."""
    policy = """package mcp
import rego.v1
default allow := true
# Only the 2026-07-28 era may call add; a 2025 session must be present for echo.
deny contains "add needs protocol 2026-07-28" if {
    input.mcp.tool.name == "add"
    input.mcp.protocol_version != "2026-07-28"
}
deny contains "echo needs a session" if {
    input.mcp.tool.name == "echo"
    input.mcp.protocol_version != "2026-07-28"
    not input.mcp.session_id
}
"""
    envoy = envoy_factory({"policy": {"modules": {"p.rego": policy}}})

    async def legacy() -> None:
        async with client(envoy.url, "legacy") as c:
            assert text_of(await c.call_tool("echo", {"text": "x"})) == "x"
            await expect_denied(c, "add", {"a": 1, "b": 2}, "add needs protocol 2026-07-28")

    async def modern() -> None:
        async with client(envoy.url, "2026-07-28") as c:
            assert text_of(await c.call_tool("add", {"a": 1, "b": 2})) == "3"
            assert text_of(await c.call_tool("echo", {"text": "y"})) == "y"

    anyio.run(legacy)
    anyio.run(modern)
