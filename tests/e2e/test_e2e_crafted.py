"""Crafted bodies (issue 17) through a real Envoy 1.40 with the module, in
front of the SDK demo server (stateful, so a session can be ended):

- a 66-byte body whose number (`0e20000000`) regorus would build exactly
  (10^20000000, seconds of one worker) is refused at once, and the worker
  serves the next request;
- nesting and lone surrogates are checked in every member, also in members
  the filter does not model (an unknown top-level member);
- a DELETE or GET is decided as what it is: with a body it is refused, never
  decided as the message it carries (a `ping` body used to get a DELETE the
  policy denies forwarded, ending the session).

Envoy runs one worker (concurrency 1), so "the next request is served" means
the worker that read the crafted body is free again. Requests are bounded by
a client timeout; no test asserts a timing.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from support import http2
from support.rpc import JSON_HEADERS, LEGACY, call, error_of, no_upstream
from support.stack import Stack, StackSpec

# Every message allowed; every transport request (GET stream, DELETE) denied.
POLICY = """package mcp
import rego.v1

default allow := false

allow if input.mcp

deny contains "tool forbidden" if input.mcp.tool.name == "delete_record"
"""

_ids = itertools.count(50_000)


class CraftedStack(Stack):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.session = self.open_session()

    def post(self, body: bytes | dict[str, Any], session: str | None = None, path: str = "/mcp") -> httpx.Response:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = dict(JSON_HEADERS, **{"mcp-protocol-version": LEGACY})
        if session:
            headers["mcp-session-id"] = session
        return self.http.post(path, content=body, headers=headers)

    def open_session(self) -> str:
        r = self.post({"jsonrpc": "2.0", "id": next(_ids), "method": "initialize",
                       "params": {"protocolVersion": LEGACY, "capabilities": {},
                                  "clientInfo": {"name": "crafted", "version": "1"}}})
        assert r.status_code == 200, r.text
        session = r.headers["mcp-session-id"]
        r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        assert r.status_code == 202, r.text
        return session

    def echo(self, session: str, text: str = "hi") -> httpx.Response:
        return self.post(call("echo", next(_ids), {"text": text}), session)

    def assert_not_received(self, ident: int) -> None:
        # An allowed call answered after it: anything sent before has arrived.
        r = self.echo(self.session, "sync")
        assert r.status_code == 200 and "result" in r.json(), r.text
        assert ident not in self.received_ids(), f"refused call {ident} reached the upstream"


STACK = StackSpec(
    plugin_config={"policy": {"modules": {"crafted.rego": POLICY}}, "max_body_bytes": 65536},
    server="json", envoy={"concurrency": 1},
    # A few seconds: the unfixed module takes about 10 s on the 66-byte body.
    cls=CraftedStack, timeout=5, name="crafted",
)


# --- numbers whose exact form is too costly ----------------------------------


def test_the_66_byte_body_is_refused_and_the_worker_serves_the_next_request(stack: CraftedStack) -> None:
    body = b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":0e20000000}}'
    assert len(body) == 66
    r = stack.post(body, stack.session)
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == -32700
    assert error["message"] == (
        "request body is not valid JSON: the number 0e20000000 is out of range (its exponent is beyond ±1000)")
    r = stack.echo(stack.session, "next")
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "next", r.text


@pytest.mark.parametrize(
    "member",
    [b'"extra":0e20000000', b'"extra":[-0.0E+1001]', b'"extra":{"k":1e-99999999999999999999}',
     b'"params":{"name":"echo","arguments":{"text":"x"},"_meta":{"n":0e5000}}'],
    ids=["unknown-member", "unknown-array", "huge-exponent-digits", "meta"],
)
def test_costly_exponents_are_refused_in_every_member(stack: CraftedStack, member: bytes) -> None:
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call",%s' % (ident, member)
    if not member.startswith(b'"params"'):
        body += b',"params":{"name":"echo","arguments":{"text":"x"}}'
    r = stack.post(body + b"}", stack.session)
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == -32700
    assert "exponent" in error_of(r)["message"]
    stack.assert_not_received(ident)


def test_ordinary_numbers_reach_the_server(stack: CraftedStack) -> None:
    ident = next(_ids)
    body = (b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2},'
            b'"_meta":{"n":[1e-5,1.5E+3,-0.0,12345678901234567890,5e-324,1.7976931348623157e308]}}}' % ident)
    r = stack.post(body, stack.session)
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "3", r.text


# --- every member gets the same checks --------------------------------------


def test_deep_nesting_in_an_unknown_member_is_refused(stack: CraftedStack) -> None:
    ident = next(_ids)
    body = json.dumps(call("echo", ident, {"text": "x"}))[:-1] + ',"extra":' + "[" * 200 + "]" * 200 + "}"
    r = stack.post(body.encode(), stack.session)
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == -32700
    assert "nested more than 127 deep" in error["message"]
    stack.assert_not_received(ident)


def test_nesting_at_the_limit_is_accepted_by_the_filter_and_the_server(stack: CraftedStack) -> None:
    # 127 levels, the message object included: the deepest accepted.
    ident = next(_ids)
    body = json.dumps(call("echo", ident, {"text": "deep"}))[:-1] + ',"extra":' + "[" * 126 + "]" * 126 + "}"
    r = stack.post(body.encode(), stack.session)
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "deep", r.text


@pytest.mark.parametrize(
    "member",
    [b'"extra":"\\ud800"', b'"extra":{"\\udfff":1}', b'"extra":["\\ud83d x"]'],
    ids=["value", "key", "high-without-low"],
)
def test_a_lone_surrogate_in_an_unknown_member_is_refused(stack: CraftedStack, member: bytes) -> None:
    ident = next(_ids)
    body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}},%s}' % (
        ident, member)
    path = f"/mcp?case=surrogate-{ident}"
    r = stack.post(body, stack.session, path)
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == -32700
    assert "lone surrogate" in error["message"]
    # Refused by the filter, not by the server's own parser.
    assert no_upstream(stack.access_entry(path))
    stack.assert_not_received(ident)


# --- a DELETE or GET is decided as what it is --------------------------------


def test_a_delete_with_a_ping_body_is_refused_and_the_session_lives(stack: CraftedStack) -> None:
    session = stack.open_session()
    path = f"/mcp?case=delete-body-{next(_ids)}"
    ping = json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": "ping"})
    r = stack.http.request("DELETE", path, content=ping,
                           headers=dict(JSON_HEADERS, **{"mcp-session-id": session, "mcp-protocol-version": LEGACY}))
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == -32600
    assert error["message"] == (
        "a DELETE request cannot carry a body: MCP messages are sent with POST; the request was not forwarded")
    assert no_upstream(stack.access_entry(path))
    # The session was not ended: a call on it still works.
    r = stack.echo(session, "alive")
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "alive", r.text


def test_a_delete_without_a_body_is_decided_as_a_delete(stack: CraftedStack) -> None:
    path = f"/mcp?case=delete-{next(_ids)}"
    r = stack.http.request("DELETE", path, headers={"mcp-session-id": stack.session, "mcp-protocol-version": LEGACY})
    assert r.status_code == 403, r.text
    assert error_of(r)["message"] == "Denied by policy: no policy rule allows this message"
    assert no_upstream(stack.access_entry(path))


def test_a_get_with_a_body_is_refused(stack: CraftedStack) -> None:
    path = f"/mcp?case=get-body-{next(_ids)}"
    ping = json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": "ping"})
    r = stack.http.request("GET", path, content=ping, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text
    assert error_of(r)["message"] == (
        "a GET request cannot carry a body: MCP messages are sent with POST; the request was not forwarded")
    assert no_upstream(stack.access_entry(path))


def test_an_h2_delete_with_a_body_of_unknown_length_is_refused(stack: CraftedStack) -> None:
    # No content-length: the filter learns of the body from the DATA frames.
    session = stack.open_session()
    path = f"/mcp?case=h2-delete-body-{next(_ids)}"
    ping = json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": "ping"}).encode()
    r = http2.request(stack.host, stack.port, path=path, method="DELETE", chunks=[ping[:10], ping[10:]],
                    headers=[("content-type", "application/json"), ("mcp-session-id", session),
                             ("mcp-protocol-version", LEGACY)])
    assert r.status == 400, r
    assert error_of(r.body)["message"].startswith("a DELETE request cannot carry a body")
    assert no_upstream(stack.access_entry(path))
    r2 = stack.echo(session, "still")
    assert r2.status_code == 200 and r2.json()["result"]["content"][0]["text"] == "still", r2.text


def test_an_h2_delete_with_an_empty_body_is_decided_as_a_delete(stack: CraftedStack) -> None:
    # END_STREAM on an empty DATA frame: still a transport request.
    path = f"/mcp?case=h2-delete-empty-{next(_ids)}"
    r = http2.request(stack.host, stack.port, path=path, method="DELETE", chunks=[b""],
                    headers=[("mcp-session-id", stack.session), ("mcp-protocol-version", LEGACY)])
    assert r.status == 403, r
    assert error_of(r.body)["message"] == "Denied by policy: no policy rule allows this message"
    assert no_upstream(stack.access_entry(path))
