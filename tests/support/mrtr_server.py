#!/usr/bin/env python3
"""The demo upstream (tests/support/demo_server.py, same flags) plus tools for
the human-approval tests (tests/e2e/test_approval.py):

  wipe(path)     a destructive fake (annotated destructiveHint) that answers
                 with what the server itself saw of a multi round-trip request:
                 its `requestState` and `inputResponses` keys (both should be
                 none when the approval round trip was the proxy's own).
  pick_color()   uses MCP 2026-07-28 multi round-trip requests itself: the
                 first call answers `input_required` with a form elicitation
                 and the server's own `requestState`; the retry carries the
                 answer and that state back.
  repaint(path)  both: annotated destructive, and asks for a color itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_server  # noqa: E402
from mcp.server import MCPServer  # noqa: E402
from mcp.server.mcpserver import Context  # noqa: E402
from mcp.types import ToolAnnotations  # noqa: E402
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult  # noqa: E402

_build = demo_server.build_server


def build_server(log_level: str = "WARNING") -> MCPServer:
    mcp = _build(log_level)

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def wipe(path: str, ctx: Context) -> str:
        """Pretend to wipe a directory (fake); report the round-trip fields the server saw."""
        responses = sorted((ctx.input_responses or {}).keys())
        return f"wiped {path}; server saw requestState={ctx.request_state!r} inputResponses={responses}"

    @mcp.tool()
    async def pick_color(ctx: Context) -> str | InputRequiredResult:
        """Ask the user for a color through the server's own multi round-trip request."""
        answer = (ctx.input_responses or {}).get("color")
        if answer is None or ctx.request_state is None:
            return InputRequiredResult(
                input_requests={
                    "color": ElicitRequest(
                        params=ElicitRequestFormParams(
                            message="Pick a color",
                            requested_schema={
                                "type": "object",
                                "properties": {"color": {"type": "string"}},
                                "required": ["color"],
                            },
                        )
                    )
                },
                request_state="server-state-color-1",
            )
        content = getattr(answer, "content", None) or {}
        return f"color {content.get('color')} (server state {ctx.request_state})"

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def repaint(path: str, ctx: Context) -> str | InputRequiredResult:
        """Destructive and asking itself: a color through the server's own multi round-trip request."""
        answer = (ctx.input_responses or {}).get("color")
        if answer is None or ctx.request_state is None:
            return InputRequiredResult(
                input_requests={
                    "color": ElicitRequest(
                        params=ElicitRequestFormParams(
                            message="Pick a color",
                            requested_schema={
                                "type": "object",
                                "properties": {"color": {"type": "string"}},
                                "required": ["color"],
                            },
                        )
                    )
                },
                request_state=f"server-state-repaint-{path}",
            )
        content = getattr(answer, "content", None) or {}
        return f"repainted {path} {content.get('color')} (server state {ctx.request_state})"

    return mcp


demo_server.build_server = build_server

if __name__ == "__main__":
    sys.exit(demo_server.main())
