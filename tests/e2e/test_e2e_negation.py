"""`not` over an absent value decides as OPA does, through a real Envoy
(issue 17 point 6; docs/policy.md "not and an absent value").

regorus evaluates a negated call with its operands inside the negation, so
`not startswith(input.mcp.tool.arguments.text, "x")` held when `text` was
absent and an `allow` built on it let the call through; OPA evaluates the
operands first and the literal fails. The filter compiles the policy as
OPA's compiler does (crates/core/src/policy/negation.rs)."""

from __future__ import annotations

import json

import pytest

from support import rpc
from support.stack import Stack, StackSpec

POLICY = r"""package mcp
import rego.v1

default allow := false

allow if {
    input.mcp.tool.name == "echo"
    not startswith(input.mcp.tool.arguments.text, "secret")
}

allow if {
    input.mcp.tool.name == "add"
    not 13 in input.mcp.tool.arguments.skip
}

# A comprehension without iteration whose body fails, then a failing
# literal: regorus 0.14.1's RVM looped to the instruction limit (an error,
# so every `add` call was denied).
deny contains "flagged" if {
    input.mcp.tool.name == "add"
    c := [1 | input.mcp.tool.arguments.flag == true]
    count(c) == 1
}

# A reference alone stays inside the negation: true when absent.
deny contains "forced" if {
    input.mcp.tool.name == "read_file"
    not input.mcp.tool.arguments.path
}
allow if input.mcp.tool.name == "read_file"
"""

HEADERS = dict(rpc.JSON_HEADERS, **{"mcp-protocol-version": rpc.LEGACY})

STACK = StackSpec(plugin_config={"policy": {"modules": {"neg.rego": POLICY}}}, name="negation")


@pytest.mark.parametrize(
    ("ident", "tool", "arguments", "allowed"),
    [
        (9301, "echo", {"text": "hello"}, True),
        (9302, "echo", {"text": "secret plans"}, False),
        # `text` absent: the operand is undefined, the literal fails (OPA).
        (9303, "echo", {}, False),
        (9304, "add", {"a": 1, "b": 2, "skip": [1]}, True),
        (9305, "add", {"a": 1, "b": 2}, False),
        (9308, "add", {"a": 1, "b": 2, "skip": [1], "flag": True}, False),
        # `not input…path` alone: true when absent, so `deny` fires.
        (9306, "read_file", {}, False),
        (9307, "read_file", {"path": "/w/a"}, True),
    ],
)
def test_negation_of_an_absent_operand_decides_as_opa(stack: Stack, ident, tool, arguments, allowed) -> None:
    r = stack.http.post("/mcp", content=json.dumps(rpc.call(tool, ident, arguments)), headers=HEADERS)
    reply = r.json()
    received = stack.received_ids()
    if allowed:
        assert "result" in reply, reply
        assert ident in received
    else:
        assert reply["error"]["message"].startswith("Denied by policy"), reply
        assert ident not in received
