"""End to end over raw HTTP: the filter's answers to everything an SDK client
would not send, through a real Envoy 1.40 in front of the SDK demo server.

Batches, 2026-07-28 routing-header mismatches and duplicates, oversized and
encoded bodies, malformed JSON and JSON-RPC, wrong content types, policy
errors, transport requests (GET/DELETE), denied notifications, and
configurations that must be refused. Every case that must not reach the
upstream is checked against the server's own log of what it received.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import harness
from support.rpc import DENY_CODE, JSON_HEADERS, MODERN, call
from support.stack import Stack, StackSpec

MAX_BODY = 4096

POLICY = """package mcp
import rego.v1

default allow := true

deny contains "tool forbidden" if input.mcp.tool.name == "delete_record"

deny contains "DELETE is not allowed" if input.http.method == "DELETE"

deny contains "roots notifications are not allowed" if input.mcp.method == "notifications/roots/list_changed"

# Runs out of the instruction budget: a policy that fails at run time.
deny contains "unreachable" if {
    input.mcp.tool.name == "boom"
    count([x | some x in numbers.range(1, 1000000)]) < 0
}
"""



class HttpStack(Stack):
    def post(self, body: bytes | str | Any, headers: Any = None, **kw: Any) -> httpx.Response:
        if not isinstance(body, (bytes, str)) and not hasattr(body, "__iter__") or isinstance(body, (dict, list)):
            body = json.dumps(body)
        h = httpx.Headers(JSON_HEADERS)
        if headers is not None:
            h = httpx.Headers(list(h.multi_items()) + list(httpx.Headers(headers).multi_items()))
        return self.http.post("/mcp", content=body, headers=h, **kw)

    def sync(self, marker: int) -> None:
        """Send an allowed message with a unique id and wait for its answer, so
        everything sent before it that was going to reach the server has."""
        r = self.post(modern_call("echo", marker, {"text": "sync"}), modern_headers("tools/call", "echo"))
        assert r.status_code == 200, r.text
        assert marker in self.received_ids()


def modern_call(tool: str, id_: Any, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return call(tool, id_, args, meta={"io.modelcontextprotocol/protocolVersion": MODERN,
                                       "io.modelcontextprotocol/clientCapabilities": {}})


def modern_headers(method: str, name: str | None = None) -> list[tuple[str, str]]:
    h = [("mcp-protocol-version", MODERN), ("mcp-method", method)]
    if name is not None:
        h.append(("mcp-name", name))
    return h


STACK = StackSpec(
    plugin_config={
        "policy": {"modules": {"raw.rego": POLICY}},
        "max_body_bytes": MAX_BODY,
        "max_instructions": 20000,
    },
    cls=HttpStack, name="http",
)


def answer_of(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["jsonrpc"] == "2.0"
    return body


# --- single messages ---------------------------------------------------------


def test_allowed_modern_call_is_forwarded(stack: HttpStack) -> None:
    r = stack.post(modern_call("echo", 101, {"text": "hi"}), modern_headers("tools/call", "echo"))
    assert r.status_code == 200
    assert r.json()["result"]["content"][0]["text"] == "hi"
    assert 101 in stack.received_ids()


def test_denied_call_gets_200_and_a_jsonrpc_error_with_its_id(stack: HttpStack) -> None:
    r = stack.post(modern_call("delete_record", 102, {"id": 1}), modern_headers("tools/call", "delete_record"))
    assert r.status_code == 200
    body = answer_of(r)
    assert body["id"] == 102
    assert body["error"] == {
        "code": DENY_CODE,
        "message": "Denied by policy: tool forbidden",
        "data": {"reasons": ["tool forbidden"]},
    }
    stack.sync(103)
    assert 102 not in stack.received_ids()


def test_string_and_large_ids_are_echoed_exactly(stack: HttpStack) -> None:
    r = stack.post(call("delete_record", "req-α"))
    assert answer_of(r)["id"] == "req-α"
    big = b'{"jsonrpc":"2.0","id":123456789012345678901,"method":"tools/call","params":{"name":"delete_record"}}'
    r = stack.post(big)
    assert b'"id":123456789012345678901,' in r.content


def test_policy_runtime_error_denies_with_a_clear_reason(stack: HttpStack) -> None:
    r = stack.post(modern_call("boom", 104), modern_headers("tools/call", "boom"))
    assert r.status_code == 200
    body = answer_of(r)
    assert body["id"] == 104
    assert body["error"]["code"] == DENY_CODE
    assert "policy evaluation failed" in body["error"]["message"]
    assert "instruction" in body["error"]["message"].lower()
    stack.sync(105)
    assert 104 not in stack.received_ids()


def test_denied_notification_gets_403(stack: HttpStack) -> None:
    r = stack.post({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
    assert r.status_code == 403
    body = answer_of(r)
    assert body["id"] is None
    assert body["error"]["message"] == "Denied by policy: roots notifications are not allowed"


# --- routing headers (2026-07-28) --------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expect"),
    [
        (modern_headers("tools/call", "echo"), "does not match body value 'delete_record'"),
        (modern_headers("tools/list", "delete_record"), "Mcp-Method header value 'tools/list'"),
        (modern_headers("tools/call"), "missing required Mcp-Name"),
        ([("mcp-protocol-version", MODERN), ("mcp-name", "delete_record")], "missing required Mcp-Method"),
        ([("mcp-protocol-version", "2025-11-25")] + modern_headers("tools/call", "delete_record")[1:],
         "MCP-Protocol-Version header value '2025-11-25'"),
        (modern_headers("tools/call", "delete_record") + [("mcp-method", "tools/call")], "duplicated Mcp-Method"),
        (modern_headers("tools/call", "delete_record") + [("Mcp-Name", "delete_record")], "duplicated Mcp-Name"),
        (modern_headers("tools/call", "=?base64?not base64?="), "invalid base64"),
        (modern_headers("tools/call", "delete_record")
         + [("mcp-param-x", "a"), ("mcp-param-X", "a")], "duplicated Mcp-Param-x"),
    ],
    ids=["name", "method", "missing-name", "missing-method", "version", "dup-method", "dup-name", "bad-base64",
         "dup-param"],
)
def test_header_mismatch_is_rejected_with_32020(stack: HttpStack, headers: list[tuple[str, str]], expect: str) -> None:
    # The body names delete_record, which the policy would deny anyway; the
    # header check comes first and the request never reaches the upstream.
    id_ = 200 + abs(hash(expect)) % 10000
    r = stack.post(modern_call("delete_record", id_), headers)
    assert r.status_code == 400, r.text
    body = answer_of(r)
    assert body["error"]["code"] == -32020
    assert body["id"] == id_
    assert expect in body["error"]["message"], body
    stack.sync(id_ + 100000)
    assert id_ not in stack.received_ids()


def test_base64_name_matching_the_body_passes(stack: HttpStack) -> None:
    r = stack.post(modern_call("echo", 106, {"text": "b64"}), modern_headers("tools/call", "=?base64?ZWNobw==?="))
    assert r.status_code == 200
    assert r.json()["result"]["content"][0]["text"] == "b64"


# --- batches -------------------------------------------------------------------


def test_batch_with_a_denied_element_is_not_forwarded(stack: HttpStack) -> None:
    batch = [
        call("echo", 301, {"text": "a"}),
        call("delete_record", 302, {"id": 1}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        call("echo", 303, {"text": "b"}),
        {"jsonrpc": "2.0", "id": 304},
    ]
    r = stack.post(batch, [("mcp-protocol-version", "2025-03-26")])
    assert r.status_code == 200
    answers = {a["id"]: a for a in r.json()}
    assert set(answers) == {301, 302, 303, 304}
    assert answers[302]["error"]["message"] == "Denied by policy: tool forbidden"
    assert answers[302]["error"]["code"] == DENY_CODE
    for held in (301, 303):
        assert answers[held]["error"]["message"].startswith("Not forwarded: the batch contains a denied message")
    assert answers[304]["error"]["code"] == -32600
    stack.sync(305)
    assert not ({301, 302, 303, 304} & stack.received_ids())


def test_batch_with_only_allowed_elements_is_forwarded_whole(stack: HttpStack) -> None:
    batch = [call("echo", 311, {"text": "a"}), call("add", 312, {"a": 1, "b": 2})]
    stack.post(batch, [("mcp-protocol-version", "2025-03-26")])
    # The demo server itself refuses batches (the SDK does not support them);
    # what matters is that the filter decided both and forwarded the body.
    received = [m for m in stack.server.received() if m.get("batch")]
    assert {311, 312} <= {m.get("id") for m in received}


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]'],
                         ids=["empty", "scalars", "nested"])
def test_malformed_batches_are_rejected(stack: HttpStack, body: bytes) -> None:
    r = stack.post(body, [("mcp-protocol-version", "2025-03-26")])
    assert r.status_code in (200, 400)
    payload = r.json()
    errors = payload if isinstance(payload, list) else [payload]
    assert errors and all(e["error"]["code"] == -32600 for e in errors), payload


def test_batch_in_the_2026_era_is_a_header_mismatch(stack: HttpStack) -> None:
    r = stack.post([call("echo", 321)], [("mcp-protocol-version", MODERN)])
    assert r.status_code == 400
    assert answer_of(r)["error"]["code"] == -32020


# --- bodies and transport -----------------------------------------------------


def test_oversized_body_with_content_length_is_rejected(stack: HttpStack) -> None:
    big = modern_call("echo", 401, {"text": "x" * (MAX_BODY + 10)})
    r = stack.post(big, modern_headers("tools/call", "echo"))
    assert r.status_code == 413
    assert answer_of(r)["error"]["code"] == -32600
    assert str(MAX_BODY) in answer_of(r)["error"]["message"]


def test_oversized_chunked_body_is_rejected_not_decided_on_a_prefix(stack: HttpStack) -> None:
    # The first chunk alone is a complete, allowed message; the rest pushes the
    # body past the limit. The filter must not decide on the prefix.
    payload = json.dumps(modern_call("echo", 402, {"text": "y" * (MAX_BODY + 10)})).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 512):
            yield payload[i:i + 512]

    r = stack.post(chunks(), modern_headers("tools/call", "echo"))
    assert r.status_code == 413
    # Refused mid-stream by the adapter, and still on the audit trail.
    decision_id = r.headers["x-mcp-decision-id"]
    assert f'"decision_id":"{decision_id}"' in stack.envoy.log_text()
    stack.sync(403)
    assert 402 not in stack.received_ids()


def test_chunked_body_within_the_limit_is_decided_whole(stack: HttpStack) -> None:
    payload = json.dumps(modern_call("delete_record", 404, {"id": 1})).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    r = stack.post(chunks(), modern_headers("tools/call", "delete_record"))
    assert answer_of(r)["error"]["message"] == "Denied by policy: tool forbidden"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip"])
def test_encoded_request_bodies_are_rejected(stack: HttpStack, encoding: str) -> None:
    body = gzip.compress(json.dumps(modern_call("delete_record", 405)).encode())
    r = stack.post(body, modern_headers("tools/call", "delete_record") + [("content-encoding", encoding)])
    assert r.status_code == 415
    assert "Content-Encoding" in answer_of(r)["error"]["message"]


def test_identity_encoding_is_accepted(stack: HttpStack) -> None:
    r = stack.post(modern_call("echo", 406, {"text": "i"}),
                   modern_headers("tools/call", "echo") + [("content-encoding", "identity")])
    assert r.status_code == 200 and "result" in r.json()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":', 400, -32700),
        (b"not json at all", 400, -32700),
        (b"", 400, -32700),
        (b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}', 400, -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"} trailing', 400, -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', 400, -32600),
        (b'{"id":1,"method":"ping"}', 400, -32600),
        (b'"just a string"', 400, -32600),
    ],
    ids=["truncated", "text", "empty", "bom", "trailing", "duplicate-key", "null-id", "no-jsonrpc", "scalar"],
)
def test_unparseable_bodies_are_rejected(stack: HttpStack, body: bytes, status: int, code: int) -> None:
    r = stack.post(body)
    assert r.status_code == status, r.text
    assert answer_of(r)["error"]["code"] == code


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_types_are_rejected(stack: HttpStack, content_type: str | None) -> None:
    headers = {"accept": "application/json"}
    if content_type:
        headers["content-type"] = content_type
    r = stack.http.post("/mcp", content=json.dumps(call("echo", 501)).encode(), headers=headers)
    assert r.status_code == 415
    assert "application/json" in answer_of(r)["error"]["message"]


def test_transport_requests_are_decided_by_the_policy(stack: HttpStack) -> None:
    r = stack.http.delete("/mcp", headers={"mcp-session-id": "abc"})
    assert r.status_code == 403
    assert answer_of(r)["error"]["message"] == "Denied by policy: DELETE is not allowed"
    # GET is allowed by the policy and reaches the server, which may hold an
    # SSE stream open: read the status line only.
    with stack.http.stream("GET", "/mcp", headers={"accept": "text/event-stream"}) as r:
        assert r.status_code != 403
        assert r.headers.get("server") != "envoy" or "x-envoy-upstream-service-time" in r.headers


# --- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expect"),
    [
        ({"policy": {"modules": {"authz.rego": "package mcp\n\nallow if {\n  input.x ==\n}\n"}}},
         "policy does not compile: authz.rego:5:1"),
        ({"policy": {"modules": {"authz.rego": "package mcp\nallow if nope(1)\n"}}},
         "authz.rego:2:10: Unknown function: 'nope'"),
        ({"policy": {"modules": {"a.rego": "package mcp\nallow := true\n"}}, "max_body_byte": 10},
         "unknown field `max_body_byte`"),
        ({"max_body_bytes": 10}, "missing field `policy`"),
        ({"policy": {"modules": {"a.rego": "package other\nallow := true\n"}}}, "package mcp"),
        ({"policy": {"modules": {"a.rego": "package mcp\nallow := true\n"}}, "deny_code": -32001}, "deny_code"),
    ],
    ids=["syntax", "unknown-function", "unknown-key", "missing-policy", "wrong-package", "reserved-code"],
)
def test_bad_configuration_is_refused_with_a_clear_log_line(
    tmp_path: Path, wasm_path: Path, config: dict[str, Any], expect: str
) -> None:
    with pytest.raises(harness.ProcessError) as info:
        harness.start_envoy(tmp_path, plugin_config=config, upstream_port=harness.free_port(), wasm_path=wasm_path,
                            timeout=30)
    assert expect in str(info.value), str(info.value)


# --- hosts that cannot hold headers ---------------------------------------------


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_hold_headers_false_works_without_allow_on_headers_stop_iteration(
    demo_server: harness.DemoServer, envoy_factory: Any
) -> None:
    """With `allow_on_headers_stop_iteration: false` (or a host without it)
    and `hold_headers: false`, headers go upstream at once but the body is
    still decided whole: allowed calls work, denied ones never reach the server."""
    envoy = envoy_factory(
        {"policy": {"modules": {"raw.rego": POLICY}}, "hold_headers": False},
        allow_on_headers_stop_iteration=False,
    )
    s = HttpStack(demo_server, envoy)
    try:
        r = s.post(modern_call("echo", 601, {"text": "early"}), modern_headers("tools/call", "echo"))
        assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "early"
        r = s.post(modern_call("delete_record", 602, {"id": 1}), modern_headers("tools/call", "delete_record"))
        body = answer_of(r)
        assert (body["id"], body["error"]["code"]) == (602, DENY_CODE)
        s.sync(603)
        assert 602 not in s.received_ids()
    finally:
        s.http.close()


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_the_interpreter_fallback_is_bounded_by_time(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    """A policy the RVM cannot compile (`with`) runs on the interpreter, which
    has no instruction counter: `max_eval_ms` bounds it with the host's
    monotonic clock, and a runaway evaluation denies the message."""
    policy = """package mcp
import rego.v1
default allow := false
allow if { fine with input.extra as 1 }
fine if input.mcp.tool.name != "spin"
fine if {
    input.mcp.tool.name == "spin"
    count([y | some y in numbers.range(1, 3000000); y % 7 == 0]) < 0
}
"""
    envoy = envoy_factory({"policy": {"modules": {"slow.rego": policy}}, "max_eval_ms": 20})
    assert "engine interpreter" in envoy.log_text()
    s = HttpStack(demo_server, envoy)
    try:
        r = s.post(call("spin", 701))
        body = answer_of(r)
        assert body["id"] == 701
        assert "policy evaluation failed" in body["error"]["message"]
        assert "time" in body["error"]["message"].lower(), body
        # The VM is fine: the next message is decided normally.
        r = s.post(call("echo", 702, {"text": "ok"}))
        assert r.json()["result"]["content"][0]["text"] == "ok"
    finally:
        s.http.close()
