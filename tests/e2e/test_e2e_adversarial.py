"""The adversarial corpus through a real Envoy 1.40 in front of the SDK demo
server: requests crafted so that the proxy and the MCP server might read them
differently, or so that body inspection might be skipped. Each case has one
defined outcome (docs/hardening.md lists them), and every call the policy
denies is checked not to have reached the upstream: against the server's own
log of the messages it received, and, for requests it does not log (GET,
DELETE), against Envoy's access log (no upstream host).

Complements tests/e2e/test_e2e_http.py (batches, header mismatches, encodings,
oversized and malformed bodies), which is not repeated here.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import http2
from support.rpc import DENY_CODE, JSON_HEADERS, LEGACY, call, error_of, no_upstream
from support.stack import Stack, StackSpec

MAX_BODY = 65536
TWO_53 = 2**53

POLICY = """package mcp
import rego.v1

default allow := true

deny contains "tool forbidden" if input.mcp.tool.name == "delete_record"

deny contains "record id out of range" if {
    input.mcp.tool.name == "get_record"
    input.mcp.tool.arguments.id > 9007199254740992
}

deny contains "DELETE needs a session" if {
    input.http.method == "DELETE"
    not input.http.headers["mcp-session-id"]
}
"""

_ids = itertools.count(10_000)


class AdversarialStack(Stack):
    def post(self, body: Any, headers: list[tuple[str, str]] | None = None, path: str = "/mcp",
             **kw: Any) -> httpx.Response:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        extra = list(headers or [])
        if not any(k.lower() == "mcp-protocol-version" for k, _ in extra):
            extra.append(("mcp-protocol-version", LEGACY))
        h = list(JSON_HEADERS.items()) + extra
        return self.http.post(path, content=body, headers=h, **kw)

    def sync(self) -> None:
        """An allowed call answered by the server: everything sent before it
        that was going to reach the server has."""
        ident = next(_ids)
        r = self.post(call("echo", ident, {"text": "sync"}))
        assert r.status_code == 200, r.text
        assert ident in self.received_ids()

    def assert_not_received(self, ident: Any) -> None:
        self.sync()
        assert ident not in self.received_ids(), f"denied call {ident} reached the upstream"


STACK = StackSpec(
    plugin_config={"policy": {"modules": {"adversarial.rego": POLICY}}, "max_body_bytes": MAX_BODY,
                   "audit": {"log": True}},
    cls=AdversarialStack, name="adversarial",
)


# --- HTTP/2: DATA frames and request trailers ---------------------------------


def h2_post(stack: AdversarialStack, body: bytes, *, pieces: int = 3, trailers: bool = True, path: str = "/mcp",
            extra: list[tuple[str, str]] | None = None) -> http2.Response:
    size = max(1, len(body) // pieces + 1)
    chunks = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
               ("mcp-protocol-version", LEGACY)] + (extra or [])
    return http2.request(stack.host, stack.port, path=path, headers=headers, chunks=chunks,
                       trailers=[("x-trailer", "end")] if trailers else None)


def test_h2_body_ended_by_trailers_is_decided_and_denied(stack: AdversarialStack) -> None:
    # The classic bypass: the body's last DATA frame does not end the stream,
    # the trailers do. The filter decides when the trailers arrive.
    ident = next(_ids)
    r = h2_post(stack, json.dumps(call("delete_record", ident, {"id": 1})).encode(), pieces=4)
    assert r.status == 200 and not r.reset
    answer = json.loads(r.body)
    assert answer["id"] == ident
    assert answer["error"]["message"] == "Denied by policy: tool forbidden"
    stack.assert_not_received(ident)


def test_h2_body_ended_by_trailers_is_forwarded_whole_when_allowed(stack: AdversarialStack) -> None:
    ident = next(_ids)
    body = json.dumps(call("echo", ident, {"text": "trailers " * 50})).encode()
    r = h2_post(stack, body, pieces=5)
    assert r.status == 200, r
    assert json.loads(r.body)["result"]["content"][0]["text"].startswith("trailers")
    got = [m for m in stack.received() if m.get("id") == ident]
    assert len(got) == 1 and got[0]["body_length"] == len(body)


def test_h2_body_without_trailers_in_many_frames_is_denied(stack: AdversarialStack) -> None:
    ident = next(_ids)
    r = h2_post(stack, json.dumps(call("delete_record", ident)).encode(), pieces=9, trailers=False)
    assert json.loads(r.body)["error"]["code"] == DENY_CODE
    stack.assert_not_received(ident)


def test_h2_oversized_body_with_trailers_is_413(stack: AdversarialStack) -> None:
    ident = next(_ids)
    body = json.dumps(call("echo", ident, {"text": "z" * (MAX_BODY + 100)})).encode()
    r = h2_post(stack, body, pieces=20)
    assert r.status == 413, r
    assert str(MAX_BODY) in json.loads(r.body)["error"]["message"]
    stack.assert_not_received(ident)


def test_h2_duplicated_routing_header_fields_are_a_mismatch(stack: AdversarialStack) -> None:
    ident = next(_ids)
    body = json.dumps(call("echo", ident, {"text": "x"})).encode()
    r = h2_post(stack, body, extra=[("mcp-method", "tools/call"), ("mcp-method", "tools/call")])
    assert r.status == 400, r
    assert json.loads(r.body)["error"]["code"] == -32020
    stack.assert_not_received(ident)


# --- slow, chunked and oddly typed bodies -------------------------------------


def test_slow_chunked_body_is_decided_whole(stack: AdversarialStack) -> None:
    # 12 pieces, 0.1 s apart (the slowness is the input, not a wait): the
    # decision is made on the whole body, after the last piece.
    ident = next(_ids)
    payload = json.dumps(call("delete_record", ident, {"id": 7})).encode()
    step = len(payload) // 12 + 1

    def slow() -> Iterator[bytes]:
        for i in range(0, len(payload), step):
            yield payload[i:i + step]
            time.sleep(0.1)

    started = time.monotonic()
    r = stack.post(slow())
    assert time.monotonic() - started >= 1.0  # the body really was slow
    assert error_of(r)["message"] == "Denied by policy: tool forbidden"
    stack.assert_not_received(ident)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/json ; foo=bar", True),
        ("application/json-rpc", False),
        ("text/json", False),
        ("application/jsonx", False),
        ("multipart/form-data; boundary=x", False),
        ("", False),
    ],
)
def test_content_types(stack: AdversarialStack, content_type: str, accepted: bool) -> None:
    ident = next(_ids)
    h = [("accept", "application/json, text/event-stream"), ("mcp-protocol-version", LEGACY)]
    if content_type:
        h.append(("content-type", content_type))
    r = stack.http.post("/mcp", content=json.dumps(call("delete_record", ident)), headers=h)
    if accepted:
        assert error_of(r)["message"] == "Denied by policy: tool forbidden"
    else:
        assert r.status_code == 415
        assert "application/json" in error_of(r)["message"]
    stack.assert_not_received(ident)


def test_two_content_type_headers_are_joined_and_refused(stack: AdversarialStack) -> None:
    # Envoy joins repeated headers with a comma: "application/json,text/plain"
    # is not application/json, so the request is refused, whatever a server
    # would have made of the pair.
    ident = next(_ids)
    h = [("content-type", "application/json"), ("content-type", "text/plain"),
         ("accept", "application/json, text/event-stream"), ("mcp-protocol-version", LEGACY)]
    r = stack.http.post("/mcp", content=json.dumps(call("delete_record", ident)), headers=h)
    assert r.status_code == 415, r.text
    assert "application/json,text/plain" in error_of(r)["message"]
    stack.assert_not_received(ident)


@pytest.mark.parametrize("encoding", ["GZIP", "x-gzip", "compress", "zstd", "identity, br"])
def test_more_content_encodings_are_refused(stack: AdversarialStack, encoding: str) -> None:
    ident = next(_ids)
    r = stack.post(call("echo", ident, {"text": "e"}), [("content-encoding", encoding)])
    assert r.status_code == 415
    assert "Content-Encoding" in error_of(r)["message"]
    stack.assert_not_received(ident)


def test_two_content_encoding_headers_are_both_read(stack: AdversarialStack) -> None:
    ident = next(_ids)
    r = stack.post(call("echo", ident, {"text": "e"}), [("content-encoding", "identity"),
                                                         ("content-encoding", "gzip")])
    assert r.status_code == 415
    stack.assert_not_received(ident)


# --- GET and DELETE on the session endpoint ----------------------------------


def test_delete_without_a_session_is_denied_before_the_upstream(stack: AdversarialStack) -> None:
    path = f"/mcp?case=delete-{next(_ids)}"
    r = stack.http.delete(path)
    assert r.status_code == 403
    assert error_of(r)["message"] == "Denied by policy: DELETE needs a session"
    assert no_upstream(stack.access_entry(path))


def test_delete_with_a_session_reaches_the_server(stack: AdversarialStack) -> None:
    path = f"/mcp?case=delete-{next(_ids)}"
    r = stack.http.delete(path, headers={"mcp-session-id": "s1", "mcp-protocol-version": LEGACY})
    # The stateless server has no sessions to end: its own answer.
    assert r.status_code != 403
    assert not no_upstream(stack.access_entry(path))


def test_get_with_a_json_rpc_body_is_refused_not_decided_as_a_message(stack: AdversarialStack) -> None:
    # The server never reads a GET's body as a message: the filter does not
    # decide it as one (tests/e2e/test_e2e_crafted.py has the DELETE case).
    path = f"/mcp?case=get-body-{next(_ids)}"
    ident = next(_ids)
    r = stack.http.request("GET", path, content=json.dumps(call("echo", ident, {"text": "x"})),
                           headers=JSON_HEADERS)
    assert r.status_code == 400
    assert error_of(r)["message"] == (
        "a GET request cannot carry a body: MCP messages are sent with POST; the request was not forwarded")
    assert no_upstream(stack.access_entry(path))


def test_get_with_a_body_of_another_type_is_refused(stack: AdversarialStack) -> None:
    path = f"/mcp?case=get-text-{next(_ids)}"
    r = stack.http.request("GET", path, content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 400
    assert error_of(r)["code"] == -32600
    assert no_upstream(stack.access_entry(path))


# --- numbers: what the policy reads is what the Python SDK server reads ------


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1E+999", b"1e999999999", b"9" * 4301],
    ids=["nan", "inf", "-inf", "1e400", "-1e400", "1E+999", "1e999999999", "4301-digits"],
)
def test_numbers_beyond_a_double_are_not_json(stack: AdversarialStack, raw: bytes) -> None:
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"add","arguments":{"a":%s,"b":1}}}' % (
        ident, raw)
    r = stack.post(body)
    assert r.status_code == 400
    assert error_of(r)["code"] == -32700
    stack.assert_not_received(ident)


def test_integer_above_2_53_is_compared_exactly(stack: AdversarialStack) -> None:
    # 2^53 + 1 rounds to 2^53 as a double: a policy reading doubles would
    # allow it, while the server reads the exact integer.
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_record","arguments":{"id":%d}}}' % (
        ident, TWO_53 + 1)
    r = stack.post(body)
    assert error_of(r)["message"] == "Denied by policy: record id out of range"
    stack.assert_not_received(ident)


def test_integer_at_2_53_is_allowed_and_read_alike(stack: AdversarialStack) -> None:
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_record","arguments":{"id":%d}}}' % (
        ident, TWO_53)
    r = stack.post(body)
    assert r.status_code == 200 and "result" in r.json(), r.text
    got = next(m for m in stack.received() if m.get("id") == ident)
    assert got["arguments"]["id"] == TWO_53


def test_huge_integers_reach_the_server_exactly(stack: AdversarialStack) -> None:
    ident = 2**70 + 3
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"add","arguments":{"a":%d,"b":1}}}' % (
        ident, 2**63)
    r = stack.post(body)
    assert b'"id":%d' % ident in r.content
    assert r.json()["result"]["content"][0]["text"] == str(2**63 + 1)
    got = next(m for m in stack.received() if m.get("id") == ident)
    assert got["arguments"]["a"] == 2**63


# --- strings: escapes, surrogates, invalid UTF-8 -------------------------------


@pytest.mark.parametrize(
    "name_json",
    [b'"\\u0064elete_record"', b'"delete\\u005frecord"', b'"\\u0064\\u0065\\u006c\\u0065\\u0074\\u0065_record"'],
    ids=["escape-first", "escape-underscore", "escape-many"],
)
def test_unicode_escapes_in_names_are_decoded_before_the_policy(stack: AdversarialStack, name_json: bytes) -> None:
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools\\/call","params":{"name":%s,"arguments":{"id":1}}}' % (
        ident, name_json)
    r = stack.post(body)
    assert error_of(r)["message"] == "Denied by policy: tool forbidden"
    stack.assert_not_received(ident)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"\\ud800delete_record"}}',
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"delete_record\\udfff"}}',
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"delete_record","arguments":{"x":"\\udc00"}}}',
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"delete\xffrecord"}}',
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"delete\xed\xa0\x80record"}}',
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"delete\xc0\xafrecord"}}',
    ],
    ids=["lone-high", "lone-low", "lone-in-argument", "invalid-byte", "encoded-surrogate", "overlong"],
)
def test_surrogates_and_invalid_utf8_are_not_json(stack: AdversarialStack, body: bytes) -> None:
    ident = next(_ids)
    r = stack.post(body % ident)
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == -32700
    stack.assert_not_received(ident)


def test_deep_nesting_is_refused(stack: AdversarialStack) -> None:
    ident = next(_ids)
    deep = b'{"a":' * 200 + b"1" + b"}" * 200
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","d":%s}}}' % (
        ident, deep)
    r = stack.post(body)
    assert r.status_code == 400
    assert error_of(r)["code"] == -32700
    stack.assert_not_received(ident)


# --- method and name games ---------------------------------------------------
# A name the policy does not deny is, for the server too, another tool: the
# server reads exactly the same string, does not know it, and runs nothing.


@pytest.mark.parametrize(
    "name",
    ["Delete_Record", "DELETE_RECORD", " delete_record", "delete_record ", "delete_record\t", "delete_record\u0000",
     "d\u0435lete_record", "delete_rec\u043erd", "\uff44elete_record", "delete\u200b_record", "delete_record\u00ad",
     "de\u0301lete_record"],
    ids=["title", "upper", "lead-space", "trail-space", "tab", "nul", "cyrillic-e", "cyrillic-o", "fullwidth",
         "zero-width", "soft-hyphen", "combining"],
)
def test_look_alike_tool_names_are_other_tools_for_the_server_too(stack: AdversarialStack, name: str) -> None:
    ident = next(_ids)
    r = stack.post(call(name, ident, {"id": 1}))
    assert r.status_code == 200, r.text
    answer = r.json()
    # Forwarded (the policy denies only the exact name), and the server
    # refused the unknown tool: no record was deleted.
    failed = "error" in answer or answer["result"].get("isError") is True
    assert failed, answer
    got = [m for m in stack.received() if m.get("id") == ident]
    assert len(got) == 1 and got[0]["name"] == name


@pytest.mark.parametrize("method", ["Tools/Call", "tools/call ", "tools/call\u0000", "tools/\u0441all"],
                         ids=["case", "space", "nul", "cyrillic"])
def test_method_variants_are_not_tool_calls_for_either(stack: AdversarialStack, method: str) -> None:
    ident = next(_ids)
    msg = call("delete_record", ident, {"id": 1})
    msg["method"] = method
    r = stack.post(msg)
    answer = r.json()
    assert answer["error"]["code"] == -32601, answer  # the server: method not found
    got = [m for m in stack.received() if m.get("id") == ident]
    assert len(got) == 1 and got[0]["method"] == method


def test_mcp_method_header_case_variant_is_a_mismatch(stack: AdversarialStack) -> None:
    ident = next(_ids)
    msg = call("delete_record", ident)
    msg["params"]["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    r = stack.http.post("/mcp", content=json.dumps(msg), headers=[
        ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "Tools/Call"), ("mcp-name", "delete_record")])
    assert r.status_code == 400
    assert error_of(r)["code"] == -32020
    stack.assert_not_received(ident)


def test_mcp_name_header_with_a_look_alike_is_a_mismatch(stack: AdversarialStack) -> None:
    # The header routes to one tool name, the body names another.
    import base64

    ident = next(_ids)
    msg = call("delete_record", ident)
    msg["params"]["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    lookalike = base64.b64encode("d\u0435lete_record".encode()).decode()
    r = stack.http.post("/mcp", content=json.dumps(msg), headers=[
        ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"),
        ("mcp-name", f"=?base64?{lookalike}?=")])
    assert r.status_code == 400
    assert error_of(r)["code"] == -32020
    stack.assert_not_received(ident)


# --- batches -------------------------------------------------------------------


def test_huge_batch_with_one_denied_element_forwards_nothing(stack: AdversarialStack) -> None:
    first = next(_ids)
    batch = [call("echo", first + i, {"text": "b"}) for i in range(500)]
    batch.append(call("delete_record", first + 500))
    for _ in range(500):
        next(_ids)
    body = json.dumps(batch)
    assert len(body) < MAX_BODY
    r = stack.post(body, [("mcp-protocol-version", "2025-03-26")])
    answers = r.json()
    assert len(answers) == 501
    assert all("error" in a for a in answers)
    assert [a["error"]["message"] for a in answers if a["id"] == first + 500] == ["Denied by policy: tool forbidden"]
    stack.sync()
    assert not (set(range(first, first + 501)) & stack.received_ids())


def test_mixed_batch_of_requests_and_responses_is_decided_per_element(stack: AdversarialStack) -> None:
    ident = next(_ids)
    batch = [call("echo", ident, {"text": "m"}), {"jsonrpc": "2.0", "id": "srv-1", "result": {}},
             {"jsonrpc": "2.0", "id": "srv-2", "error": {"code": -1, "message": "no"}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    stack.post(batch, [("mcp-protocol-version", "2025-03-26")])
    # All allowed: the body is forwarded whole (the SDK server itself does
    # not take batches).
    got = {m.get("id") for m in stack.received() if m.get("batch")}
    assert {ident, "srv-1", "srv-2"} <= got
