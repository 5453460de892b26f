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

import dataclasses
import json
from pathlib import Path

import httpx
import pytest

from support import FIXTURES, harness, rpc
from support.stack import Stack, StackSpec, open_stack

#: The fault policy, shared with tests/faults.rs (include_str!).
POLICY = (FIXTURES / "policies" / "faults" / "faults.rego").read_text(encoding="utf-8")

HEADERS = dict(rpc.JSON_HEADERS, **{"mcp-protocol-version": rpc.LEGACY})


class FaultStack(Stack):
    def call(self, tool: str, ident: int) -> httpx.Response:
        return self.http.post("/mcp", content=json.dumps(rpc.call(tool, ident)), headers=HEADERS)


STACK = StackSpec(
    plugin_config={"policy": {"modules": {"faults.rego": POLICY}}, "max_instructions": 20000, "audit": {"log": True}},
    cls=FaultStack, name="faults",
)


@pytest.mark.parametrize(
    ("tool", "reason"),
    [
        ("budget", "policy evaluation failed: "),
        ("builtin_in_allow", "policy evaluation failed: builtin error at faults.rego:10:"),
        ("bad_output", "policy evaluation failed: "),
    ],
)
def test_runtime_errors_deny_with_a_reason_and_an_audit_event(stack: FaultStack, tool: str, reason: str) -> None:
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
def test_errors_inside_deny_rules_deny(stack: FaultStack, tool: str, reason: str, kind: str) -> None:
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


def test_else_after_a_body_without_a_value_is_taken(stack: FaultStack) -> None:
    r = stack.call("else_gap", 9201)
    assert r.json()["error"]["message"] == "Denied by policy: needs a label (unlabelled)", r.json()
    assert 9201 not in stack.received_ids()


def test_policy_errors_undefined_reads_builtin_errors_as_opa_does(
        tmp_path: Path, wasm_path: Path) -> None:
    """The documented opt-out: a failing builtin is undefined, so the `deny`
    rule does not fire and the call is allowed; a conflict still denies."""
    spec = dataclasses.replace(STACK, plugin_config={"policy": {"modules": {"faults.rego": POLICY}},
                                                     "max_instructions": 20000, "policy_errors": "undefined"})
    with open_stack(spec, tmp_path, wasm_path) as s:
        assert isinstance(s, FaultStack)
        ok = s.call("builtin_in_deny", 9301)
        assert "result" in ok.json(), ok.json()
        assert 9301 in s.received_ids()
        denied = s.call("conflict", 9302)
        assert denied.json()["error"]["message"].startswith(
            "Denied by policy: policy evaluation failed: conflict error at faults.rego:"), denied.json()
        assert 9302 not in s.received_ids()
