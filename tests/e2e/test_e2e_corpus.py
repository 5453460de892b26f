"""The shared corpus (crates/web/tests/corpus/README.md) through the proxy-wasm module.

expected.json is what the native CLI answers for every recorded message of
tests/fixtures/messages/ and for one session; crates/cli/tests/web_corpus.rs
keeps it true natively and crates/web/tests/corpus.rs in the web build. Here
each case goes through a real Envoy with the built module
(target/wasm32-wasip1/release/mcp_policy.wasm), configured with the corpus'
policy and settings: ``{"policy": {"modules": {"default.rego": <policies/
default.rego>}}}``, every other setting at its default, as the CLI runs it.

The single cases go through one Envoy (the module's stack, STACK), the
session's four messages in order through a second one. The CLI decides each
file with a fresh session store; the Envoy keeps one across the cases, so the
case that ends a session (the DELETE, legacy_delete_session.json) goes last.
State left by an earlier case could only make a later one differ from the
CLI's answer and fail, never pass. The
request sent is the one the CLI builds from the file (crates/core/src/replay/
message.rs): a capture's method, path, authority (as Host) and headers, its
body byte for byte; a bare body as ``POST /mcp`` with ``content-type:
application/json`` and, for a single 2026-07-28 message, the routing headers a
conforming client sends. The upstream is the demo MCP server.

"The same result" means, for every case:

- forwarded or not: the module let the request through to the upstream
  (access log ``upstream_host`` set, ``response_code_details`` ``via_upstream``)
  exactly when expected ``forwarded`` is true; a forwarded request reaches the
  upstream unchanged (expected ``forward.body`` and ``forward.request_headers``
  are empty: no ``x-mcp-*`` header added), and the answer carries the
  ``x-mcp-decision-id`` header (``forward.response_headers``);
- a reply: the client gets exactly expected ``reply``: the HTTP status, the
  body byte for byte (``body_text``), and each of its headers with the same
  value (``x-mcp-decision-id``: 32 hex digits, the audit event's id);
- per message, the module's audit event: ``decision`` and ``reasons``
  (expected ``messages[i]``; a transport request has no reasons in the CLI's
  answer, none in the event), ``kind`` (the CLI's rejected request, ``kind:
  message, method: rejected``, is the event's ``kind: rejected``), ``method``
  (a header mismatch is a ``request`` in the CLI's answer and, like every
  refusal before the policy runs, a ``rejected`` event: docs/audit.md "Kinds"),
  ``method`` (a client's response has none in the CLI's answer and ``response`` in the
  event; an invalid batch element or a rejection has none in either), the tool or resource (``name``), one event per batch element with
  the id ``<request id>-<index>``, and ``policy_revision`` (expected
  ``policy.revision``). A request refused before parsing (Content-Encoding) has
  no message in the CLI's answer and one ``rejected`` event here, whose reason
  is the reply's message;
- the session: each earlier message's decision equals the CLI's session
  summary, and the last message is compared as a single case.

What has no equivalent through Envoy and is not compared: the input document
(``messages[i].input``), the rules that fired and their values (``rules``,
``values``, ``result``), which only the CLI and the web build show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import REPO, harness
from support.stack import Stack, StackSpec

CORPUS = REPO / "crates" / "web" / "tests" / "corpus" / "expected.json"
MESSAGES = REPO / "tests" / "fixtures" / "messages"
POLICY = (REPO / "policies" / "default.rego").read_text(encoding="utf-8")
CONFIG = {"policy": {"modules": {"default.rego": POLICY}}}
EXPECTED: dict[str, Any] = json.loads(CORPUS.read_text(encoding="utf-8"))
SESSION = [
    "legacy_initialize.json",
    "legacy_notification_initialized.json",
    "legacy_tools_call_echo.json",
    "legacy_read_file_outside_workspace.json",
]
# The versions before 2026-07-28 (crates/core/src/mcp/routing.rs HANDSHAKE_VERSIONS).
HANDSHAKE_VERSIONS = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}
# Methods whose 2026-07-28 requests carry Mcp-Name, and the member it names.
ROUTING_NAME = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
META_VERSION = "io.modelcontextprotocol/protocolVersion"
# The JSON-RPC code of a routing-header mismatch (docs/decision.md).
HEADER_MISMATCH = -32020
DECISION_ID = re.compile(r"^[0-9a-f]{32}$")


class Sent:
    """A request as the CLI builds it from a message file."""

    def __init__(self, method: str, path: str, host: str, headers: list[tuple[str, str]], body: bytes | None):
        self.method, self.path, self.host, self.headers, self.body = method, path, host, headers, body


def encode_header_value(v: str) -> str:
    """As crates/core/src/replay/message.rs encode_header_value."""
    import base64

    plain = all(0x20 <= ord(c) <= 0x7E for c in v) and not v.startswith(" ") and not v.endswith(" ") \
        and not v.startswith("=?base64?")
    return v if plain else "=?base64?" + base64.b64encode(v.encode("utf-8")).decode("ascii") + "?="


def routing_headers(body: bytes) -> list[tuple[str, str]]:
    try:
        m = json.loads(body)
    except ValueError:
        return []
    if not isinstance(m, dict) or not isinstance(m.get("method"), str):
        return []
    params = m.get("params") if isinstance(m.get("params"), dict) else {}
    meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
    version = meta.get(META_VERSION)
    if not isinstance(version, str) or version in HANDSHAKE_VERSIONS:
        return []
    out = [("mcp-protocol-version", version), ("mcp-method", m["method"])]
    member = ROUTING_NAME.get(m["method"])
    if member and isinstance(params.get(member), str):
        out.append(("mcp-name", encode_header_value(params[member])))
    return out


def request_of(name: str) -> Sent:
    raw = (MESSAGES / name).read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not (isinstance(doc, dict) and "jsonrpc" not in doc and {"headers", "body", "body_text"} & doc.keys()):
        headers = [("content-type", "application/json"), *routing_headers(raw)]
        return Sent("POST", "/mcp", "localhost", headers, raw)
    assert set(doc) <= {"method", "path", "authority", "headers", "body", "body_text"}, name
    if "body" in doc:
        body: bytes | None = json.dumps(doc["body"], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        # The CLI sends the member's text byte for byte: the compact form must be that text.
        assert body in raw, f"{name}: the body is not written compactly"
    elif "body_text" in doc:
        body = doc["body_text"].encode("utf-8")
    else:
        body = None
    headers = list(doc.get("headers", {}).items())
    assert all(isinstance(v, str) and k == k.lower() and k != "host" for k, v in headers), name
    return Sent(doc.get("method", "POST"), doc.get("path", "/mcp"), doc.get("authority", "localhost"), headers, body)


STACK = StackSpec(plugin_config=CONFIG, server="json-stateless", name="corpus")


def send(envoy: harness.EnvoyHandle, client: httpx.Client, sent: Sent) -> tuple[httpx.Response, dict[str, Any]]:
    """Send one request; its response and its access-log entry (written when the stream ends)."""
    start = len(envoy.proc.stdout_lines())
    headers = [("host", sent.host), *sent.headers]
    r = client.request(sent.method, envoy.base_url + sent.path, headers=headers, content=sent.body)
    entry = envoy.wait_for_access_log(lambda e: e.get("method") == sent.method, start=start)
    return r, entry


def events_for(envoy: harness.EnvoyHandle, decision_id: str, count: int) -> list[dict[str, Any]]:
    """The audit events of one request: ``count`` of them, in element order."""

    def mine() -> list[dict[str, Any]]:
        return [e for e in envoy.audit_events() if e["decision_id"].split("-")[0] == decision_id]

    events = harness.poll(mine, lambda es: len(es) >= count, timeout=10)
    assert len(events) == count, events
    return events


def check(name: str, want: dict[str, Any], envoy: harness.EnvoyHandle, upstream: harness.DemoServer,
          r: httpx.Response, entry: dict[str, Any]) -> None:
    decision_id = r.headers.get("x-mcp-decision-id", "")
    assert DECISION_ID.match(decision_id), (name, dict(r.headers))
    via_upstream = entry["response_code_details"] == "via_upstream" and entry["upstream_host"] not in ("", "-", None)
    assert via_upstream == want["forwarded"], (name, entry)
    if want["forwarded"]:
        fwd = want["forward"]
        assert fwd["body"] is None and fwd["request_headers"] == [], name
        assert [h for h, _ in fwd["response_headers"]] == ["x-mcp-decision-id"], name
        assert want["reply"] is None, name
    else:
        reply = want["reply"]
        assert r.status_code == reply["status"], (name, r.status_code, r.text)
        assert r.content == reply["body_text"].encode("utf-8"), name
        assert json.loads(r.content) == reply["body"], name
        for h, v in reply["headers"]:
            assert r.headers.get(h) == (decision_id if v == "<id>" else v), (name, h, dict(r.headers))

    messages = want["messages"]
    events = events_for(envoy, decision_id, max(1, len(messages)))
    if len(messages) > 1:
        assert [e["decision_id"] for e in events] == [f"{decision_id}-{i}" for i in range(len(messages))], name
    for e in events:
        assert e["policy_revision"] == want["policy"]["revision"], name
        assert e["direction"] == "request" and e["mode"] == "enforce", name
        if not want["forwarded"]:
            assert e.get("http_status") == want["reply"]["status"], (name, e)
    if not messages:
        # Refused before any message was read: one rejection, the reply's reason.
        (e,) = events
        assert (e["kind"], e["decision"]) == ("rejected", "deny"), (name, e)
        assert e["reasons"] == [want["reply"]["body"]["error"]["message"]], (name, e)
        return
    by_index = sorted(events, key=lambda e: int(e["decision_id"].split("-")[1]) if "-" in e["decision_id"] else 0)
    for m, e in zip(messages, by_index, strict=True):
        assert e["decision"] == m["decision"], (name, m, e)
        assert e["reasons"] == m.get("reasons", []), (name, m, e)
        if m["kind"] == "message" and m["method"] == "rejected" or rejected_after_parsing(want):
            assert (e["kind"], e.get("method") or None) == ("rejected", None), (name, e)
            continue
        assert e["kind"] == m["kind"], (name, m, e)
        want_method = m.get("method") or ("response" if m["kind"] == "response" else None)
        assert (e.get("method") or None) == want_method, (name, m, e)
        if m["kind"] == "transport":
            continue
        subject = e.get("tool") or e.get("resource") or e.get("prompt")
        assert subject == m.get("name"), (name, m, e)

    if want["forwarded"] and sent_body_is_message(name):
        m = messages[0]
        got = [x for x in upstream.received() if (x.get("id"), x.get("method")) == (m.get("id"), m.get("method"))]
        assert got, (name, "the upstream did not log the message")


def rejected_after_parsing(want: dict[str, Any]) -> bool:
    """A header mismatch: the CLI describes the message it parsed, the audit event is a ``rejected`` one."""
    reply = want["reply"]
    body = reply["body"] if reply is not None else None
    return isinstance(body, dict) and body.get("error", {}).get("code") == HEADER_MISMATCH


def sent_body_is_message(name: str) -> bool:
    return request_of(name).method == "POST"


ENDS_SESSION = "legacy_delete_session.json"
CASES = sorted(k for k in EXPECTED if k not in ("session", ENDS_SESSION)) + [ENDS_SESSION]


def test_the_corpus_names_every_recorded_message() -> None:
    assert sorted(CASES) == sorted(p.name for p in MESSAGES.glob("*.json"))
    assert EXPECTED["session"]["session"] and SESSION[-1] in CASES


@pytest.mark.parametrize("name", CASES)
def test_each_recorded_message_is_decided_as_the_cli_decides_it(name: str, stack: Stack) -> None:
    r, entry = send(stack.envoy, stack.http, request_of(name))
    check(name, EXPECTED[name], stack.envoy, stack.server, r, entry)


def test_a_recorded_session_is_decided_as_the_cli_decides_it(stack: Stack, envoy_factory: Any) -> None:
    want = dict(EXPECTED["session"])
    summaries = want.pop("session")
    upstream = stack.server
    envoy = envoy_factory(CONFIG, upstream_port=upstream.port)
    with httpx.Client(timeout=15) as client:
        for name, summary in zip(SESSION[:-1], summaries, strict=True):
            r, _ = send(envoy, client, request_of(name))
            (e,) = events_for(envoy, r.headers.get("x-mcp-decision-id", ""), 1)
            assert e["decision"] == summary["decision"], (name, summary, e)
        r, entry = send(envoy, client, request_of(SESSION[-1]))
    check("session", want, envoy, upstream, r, entry)
