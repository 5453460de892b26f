"""Policy faults through a real Envoy: a policy that fails at run time is a
denial with the error as the reason, never an allowed call; every decision
has its audit event (`mcp-policy audit` log line, matched by decision id);
nothing denied reaches the upstream. A failing builtin or a rule conflict
inside a `deny` rule denies (it used to make the rule silently not fire on
the RVM), names the module and line, is counted in
`mcp_policy_errors.kind.<kind>` and logged as a warning with the decision id;
`"policy_errors": "undefined"` chooses OPA's non-strict reading instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import harness

POLICY = r"""package mcp
import rego.v1

default allow := false

allow if input.mcp.tool.name in {"echo", "budget", "builtin_in_deny", "conflict", "bad_output", "else_gap"}

allow if {
    input.mcp.tool.name == "builtin_in_allow"
    to_number("not a number") > 0
}

deny contains "unreachable" if {
    input.mcp.tool.name == "budget"
    count([x | some x in numbers.range(1, 1000000)]) < 0
}

deny contains "builtin failed" if {
    input.mcp.tool.name == "builtin_in_deny"
    to_number("not a number") > 0
}

tier := "a" if input.mcp.tool.name == "conflict"
tier := "b" if input.mcp.tool.name == "conflict"
deny contains "tier b" if tier == "b"
deny contains "tier a" if tier == "a"

request_headers := {"bad header name": "v"} if input.mcp.tool.name == "bad_output"

# An else after a body that ends on an undefined assignment: OPA takes the
# else (regorus 0.14.1's RVM skipped it, so this rule did not fire).
label := x if { x := input.mcp.tool.arguments.label } else := "unlabelled"
deny contains sprintf("needs a label (%v)", [label]) if {
    input.mcp.tool.name == "else_gap"
    label == "unlabelled"
}
"""

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2025-06-18"}


class Stack:
    def __init__(self, server: harness.DemoServer, envoy: harness.EnvoyHandle) -> None:
        self.server, self.envoy = server, envoy
        self.http = httpx.Client(base_url=envoy.base_url, timeout=15)

    def call(self, tool: str, ident: int) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
        return self.http.post("/mcp", content=json.dumps(body), headers=HEADERS)

    def audit(self, decision_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for line in self.envoy.log_text().splitlines():
                i = line.find("mcp-policy audit ")
                if i >= 0:
                    event = json.loads(line[i + len("mcp-policy audit "):])
                    if event.get("decision_id") == decision_id:
                        return event
            return None

        event = harness.poll(find, lambda e: e is not None, timeout=10)
        assert event is not None, f"no audit event for {decision_id}"
        return event

    def received_ids(self) -> set[Any]:
        return {m.get("id") for m in self.server.received()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("faults")
    server = harness.start_demo_server(tmp, json_response=True, stateless=True)
    try:
        envoy = harness.start_envoy(
            tmp,
            plugin_config={"policy": {"modules": {"faults.rego": POLICY}}, "max_instructions": 20000,
                           "audit": {"log": True}},
            upstream_port=server.port,
            wasm_path=wasm_path,
        )
        try:
            s = Stack(server, envoy)
            yield s
            s.http.close()
        finally:
            envoy.stop()
    finally:
        server.proc.stop()


@pytest.mark.parametrize(
    ("tool", "reason"),
    [
        ("budget", "policy evaluation failed: "),
        ("builtin_in_allow", "policy evaluation failed: builtin error at faults.rego:10:"),
        ("bad_output", "policy evaluation failed: "),
    ],
)
def test_runtime_errors_deny_with_a_reason_and_an_audit_event(stack: Stack, tool: str, reason: str) -> None:
    ident = 9000 + len(tool)
    r = stack.call(tool, ident)
    assert r.status_code == 200
    error = r.json()["error"]
    assert error["message"].startswith("Denied by policy: " + reason), error
    event = stack.audit(r.headers["x-mcp-decision-id"])
    assert event["decision"] == "deny"
    assert event["tool"] == tool
    assert any(x.startswith(reason) for x in event["reasons"]), event
    # Decided and answered: an allowed call after it reaches the server,
    # the denied one does not.
    ok = stack.call("echo", ident + 500)
    assert ok.status_code == 200 and "result" in ok.json()
    assert ident + 500 in stack.received_ids()
    assert ident not in stack.received_ids()
    assert stack.audit(ok.headers["x-mcp-decision-id"])["decision"] == "allow"


@pytest.mark.parametrize(
    ("tool", "reason", "kind"),
    [
        ("builtin_in_deny", "policy evaluation failed: builtin error at faults.rego:20:", "builtin"),
        ("conflict", "policy evaluation failed: conflict error at faults.rego:", "conflict"),
    ],
)
def test_errors_inside_deny_rules_deny(stack: Stack, tool: str, reason: str, kind: str) -> None:
    counter = f"wasmcustom.mcp_policy_errors.kind.{kind}"
    before = stack.envoy.stat(counter)
    ident = 9100 + len(tool)
    r = stack.call(tool, ident)
    error = r.json()["error"]
    assert error["message"].startswith("Denied by policy: " + reason), error
    assert ident not in stack.received_ids()
    decision_id = r.headers["x-mcp-decision-id"]
    event = stack.audit(decision_id)
    assert event["decision"] == "deny" and event["reasons"][0].startswith(reason), event
    assert harness.poll(lambda: stack.envoy.stat(counter), lambda n: n > before, timeout=10) > before
    warning = harness.poll(
        lambda: [ln for ln in stack.envoy.log_text().splitlines()
                 if "denied by a policy error" in ln and decision_id in ln],
        lambda lines: bool(lines), timeout=10)
    assert warning and "[warning]" in warning[0], warning


def test_else_after_a_body_without_a_value_is_taken(stack: Stack) -> None:
    r = stack.call("else_gap", 9201)
    assert r.json()["error"]["message"] == "Denied by policy: needs a label (unlabelled)", r.json()
    assert 9201 not in stack.received_ids()


def test_policy_errors_undefined_reads_builtin_errors_as_opa_does(
        tmp_path: Path, wasm_path: Path) -> None:
    """The documented opt-out: a failing builtin is undefined, so the `deny`
    rule does not fire and the call is allowed; a conflict still denies."""
    server = harness.start_demo_server(tmp_path, json_response=True, stateless=True)
    try:
        envoy = harness.start_envoy(
            tmp_path,
            plugin_config={"policy": {"modules": {"faults.rego": POLICY}}, "max_instructions": 20000,
                           "policy_errors": "undefined"},
            upstream_port=server.port,
            wasm_path=wasm_path,
        )
        try:
            s = Stack(server, envoy)
            ok = s.call("builtin_in_deny", 9301)
            assert "result" in ok.json(), ok.json()
            assert 9301 in s.received_ids()
            denied = s.call("conflict", 9302)
            assert denied.json()["error"]["message"].startswith(
                "Denied by policy: policy evaluation failed: conflict error at faults.rego:"), denied.json()
            assert 9302 not in s.received_ids()
            s.http.close()
        finally:
            envoy.stop()
    finally:
        server.proc.stop()
