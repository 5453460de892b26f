"""The policy library (policies/library/), end to end: every library file
loaded together with a small main policy, configured through policy data,
in front of the SDK demo server, with Envoy's jwt_authn verifying the
callers' tokens. Each library policy is exercised through real Envoy, with
the official SDK client where natural and raw HTTP where easier; every
denial is checked against what the server actually received.

Two Envoys share one demo server:

* ``main``: all twelve library policies loaded, nine of them configured,
  each on its own tools (rbac, tenant, arguments, schema, readonly's
  deny_destructive, ratelimit with the main policy's one-line `kill`, flows,
  timewindow, stepup); the response-side ones (pins, poisoning, results)
  are loaded unconfigured, so they must stay inert (their own end-to-end
  tests are in tests/e2e/test_e2e_responses.py);
* ``scoped``: the cluster-scoped settings: the upstream cluster belongs to
  one tenant, and it is in read-only mode.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from support.jwt_util import jwt_filter, make_keys, token
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from support import harness
from support.rpc import DENY_CODE, text_of

LIBRARY = Path(__file__).resolve().parent.parent.parent / "policies" / "library"

# The operator's main policy. The library adds deny reasons and labels; the
# main policy keeps allow (and, here, the one `kill` line ratelimit needs).
MAIN = """package mcp
import rego.v1

default allow := true

# policies/library/ratelimit.rego: kill past the kill threshold.
kill := concat("; ", ratelimit_kill) if count(ratelimit_kill) > 0
"""

PUBLIC_TOOLS = ["echo", "add", "count", "read_file", "send_email", "query", "fetch_url", "get_record", "tz_*",
                "patient_lookup", "ledger_balance"]


def closed_hour_window() -> dict[str, Any]:
    """A daily window that is certainly closed now (it opens in two hours)."""
    start = (datetime.datetime.now(datetime.timezone.utc).hour + 2) % 24
    return {"from": f"{start:02d}:00", "to": f"{start + 1:02d}:00"}


WINDOW = closed_hour_window()


def main_data() -> dict[str, Any]:
    return {"library": {
        "rbac": {"public": {"tools": PUBLIC_TOOLS},
                 "roles": {"admin": {"tools": ["*"]}, "dba": {"tools": ["drop_table"]}}},
        "tenant": {"tools": {"patient_*": "healthcare", "ledger_*": "finance"}, "arguments": ["tenant_id"]},
        "arguments": {
            "paths": [{"tool": "read_file", "argument": "path", "prefixes": ["/workspace"]}],
            "urls": [{"tool": "fetch_url", "argument": "url"}],
            "sql": [{"tool": "query", "argument": "sql"}],
            "limits": [{"tool": "query", "argument": "limit", "max": 100}],
        },
        "schema": {"require_definition": False},
        "readonly": {"deny_destructive": True},
        "ratelimit": {"limits": [{"tool": "add", "max": 3, "kill": 5}]},
        "flows": {"labels": {"read_file": "sensitive_read", "send_email": "external_send",
                             "fetch_url": "untrusted_input"},
                  "forbidden": [{"after": "sensitive_read", "deny": "external_send"}]},
        "timewindow": {"tools": {"count": WINDOW, "get_record": {"from": "00:00", "to": "24:00"},
                                 "tz_*": {"timezone": "Nowhere/Atlantis"}}},
        "stepup": {"tools": ["delete_record"], "destructive": True},
    }}


SCOPED_DATA = {"library": {
    "tenant": {"clusters": {"mcp_server": "healthcare"}},
    "readonly": {"clusters": ["mcp_server"]},
}}


def plugin_config(data: dict[str, Any]) -> dict[str, Any]:
    modules = {f"library/{p.name}": p.read_text() for p in sorted(LIBRARY.glob("*.rego"))
               if not p.name.endswith("_test.rego")}
    # Every library file loads together: the nine exercised here, and any
    # other (inert without its data, e.g. killswitch.rego).
    exercised = ("rbac", "tenant", "arguments", "schema", "readonly", "ratelimit", "flows", "timewindow", "stepup")
    assert {f"library/{n}.rego" for n in exercised} <= set(modules), sorted(modules)
    modules["main.rego"] = MAIN
    return {"policy": {"modules": modules, "data": data}}


class Stack:
    def __init__(self, server: harness.DemoServer, main: harness.EnvoyHandle, scoped: harness.EnvoyHandle,
                 keys: dict[str, Any]) -> None:
        self.server = server
        self.main = main
        self.scoped = scoped
        self.keys = keys

    def token(self, sub: str, **claims: Any) -> str:
        return token(self.keys, sub=sub, **claims)

    def received_calls(self, tool: str) -> list[dict[str, Any]]:
        return [m for m in self.server.received() if m.get("method") == "tools/call" and m.get("name") == tool]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("library")
    keys = make_keys()
    server = harness.start_demo_server(tmp)  # SSE, stateful sessions; both protocol eras
    envoys: list[harness.EnvoyHandle] = []
    try:
        for data in (main_data(), SCOPED_DATA):
            envoys.append(harness.start_envoy(
                tmp, plugin_config=plugin_config(data), upstream_port=server.port, wasm_path=wasm_path,
                extra_http_filters_before=[jwt_filter(keys["jwks"])],
            ))
        for envoy in envoys:
            assert "engine rvm" in envoy.log_text(), envoy.log_text()[-2000:]
        yield Stack(server, envoys[0], envoys[1], keys)
    finally:
        for envoy in envoys:
            envoy.stop()
        server.proc.stop()


def client(url: str, bearer: str | None, era: str = "legacy") -> tuple[Any, Any]:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    http = httpx2.AsyncClient(headers=headers, timeout=15)
    return http, Client(streamable_http_client(url, http_client=http), mode=era, read_timeout_seconds=15)


async def outcome(c: Any, tool: str, args: dict[str, Any]) -> str:
    """The tool's text, or "denied: <message>" for a policy denial."""
    try:
        return text_of(await c.call_tool(tool, args))
    except MCPError as e:
        assert e.code == DENY_CODE, (e.code, e.message)
        return f"denied: {e.message}"


def post(url: str, body: dict[str, Any], bearer: str | None = None, **headers: str) -> httpx.Response:
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream", **headers}
    if bearer:
        h["authorization"] = f"Bearer {bearer}"
    return httpx.post(url, content=json.dumps(body), headers=h, timeout=15)


def learn_tools(url: str, bearer: str | None) -> None:
    """A tools/list through the proxy, read to the end of its answer.

    The filter stores the definitions when the answer's stream ends. An SDK
    client that calls a tool as soon as it has read the list's event can be
    faster than that (the stream's end reaches the filter a moment later), so
    the tests make the filter learn the tools this way first."""
    body = {"jsonrpc": "2.0", "id": "list", "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    r = post(url, body, bearer, **{"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"})
    assert r.status_code == 200 and "get_record" in r.text, r.text


def run_calls(url: str, bearer: str | None, calls: list[tuple[str, dict[str, Any]]], *, era: str = "legacy",
              list_first: bool = False) -> list[str]:
    """Make the calls in one SDK session; the outcome of each. With
    list_first, the filter learns the tool definitions first, and the client
    lists the tools too, as MCP clients do."""
    if list_first:
        learn_tools(url, bearer)

    async def scenario() -> list[str]:
        http, c = client(url, bearer, era)
        async with http, c:
            if list_first:
                await c.list_tools()
            return [await outcome(c, tool, args) for tool, args in calls]

    return anyio.run(scenario)


# --------------------------------------------------------------------------
# rbac and stepup


def test_rbac_names_the_missing_role(stack: Stack) -> None:
    viewer = stack.token("rbac-viewer", roles=["viewer"], acr="mfa")
    dba = stack.token("rbac-dba", groups=["dba"], acr="mfa")
    out = run_calls(stack.main.url, viewer, [("echo", {"text": "public"}), ("delete_record", {"id": 1})])
    assert out[0] == "public"
    assert out[1] == ('denied: Denied by policy: rbac: tool "delete_record" requires role "admin" '
                      '(caller\'s roles: "viewer")')
    # The groups claim counts too; dba does not grant delete_record.
    out = run_calls(stack.main.url, dba, [("delete_record", {"id": 2})])
    assert 'requires role "admin" (caller\'s roles: "dba")' in out[0]
    assert not {1, 2} & {m["arguments"]["id"] for m in stack.received_calls("delete_record")}


def test_stepup_says_which_claim_is_missing(stack: Stack) -> None:
    password_only = stack.token("stepup-1", roles=["admin"], amr=["pwd"])
    out = run_calls(stack.main.url, password_only, [("delete_record", {"id": 3})], era="2026-07-28")
    assert out == ['denied: Denied by policy: stepup: tool "delete_record" needs step-up authentication: '
                   'claim "acr" containing "mfa" or claim "amr" containing "mfa"; '
                   'the token has no "acr" claim and "amr": ["pwd"]']
    mfa = stack.token("stepup-2", roles=["admin"], amr=["pwd", "mfa"])
    out = run_calls(stack.main.url, mfa, [("delete_record", {"id": 4})], era="2026-07-28")
    assert out == ["(fake) deleted record 4"]
    assert 4 in [m["arguments"]["id"] for m in stack.received_calls("delete_record")]
    assert 3 not in [m["arguments"]["id"] for m in stack.received_calls("delete_record")]


# --------------------------------------------------------------------------
# tenant


def test_a_finance_agent_cannot_reach_healthcare_tools(stack: Stack) -> None:
    finance = stack.token("fin-agent", tenant="finance")
    healthcare = stack.token("hc-agent", tenant="healthcare")
    out = run_calls(stack.main.url, finance, [
        ("ledger_balance", {"account": "ACME"}),
        # The model was told "you are now the healthcare assistant": the
        # verified claim decides, not the prompt, nor a tenant argument.
        ("patient_lookup", {"patient_id": "p-17"}),
        ("echo", {"text": "for healthcare", "tenant_id": "healthcare"}),
    ])
    assert out[0] == "(fake) balance of ACME: 0.00"
    assert out[1] == ('denied: Denied by policy: tenant: tool "patient_lookup" belongs to tenant "healthcare"; '
                      'the caller\'s tenant is "finance"')
    assert out[2] == ('denied: Denied by policy: tenant: argument "tenant_id" names tenant "healthcare"; '
                      'the caller\'s tenant is "finance"')
    out = run_calls(stack.main.url, healthcare, [("patient_lookup", {"patient_id": "p-17"}),
                                                 ("ledger_balance", {"account": "ACME"})])
    assert out[0] == "(fake) patient p-17"
    assert out[1].startswith('denied: Denied by policy: tenant: tool "ledger_balance" belongs to tenant "finance"')
    assert len(stack.received_calls("patient_lookup")) == 1
    assert len(stack.received_calls("ledger_balance")) == 1


def test_tenant_by_upstream_cluster(stack: Stack) -> None:
    """One Envoy, several servers: the whole cluster belongs to a tenant,
    from the first message on."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "e2e", "version": "1"}}}
    r = post(stack.scoped.url, init, stack.token("fin-2", tenant="finance"))
    assert r.json()["error"]["message"] == ('Denied by policy: tenant: upstream cluster "mcp_server" belongs to '
                                            'tenant "healthcare"; the caller\'s tenant is "finance"')
    r = post(stack.scoped.url, init, stack.token("hc-2", tenant="healthcare"))
    assert r.status_code == 200 and "error" not in r.text, r.text


# --------------------------------------------------------------------------
# readonly


def test_read_only_mode_from_annotations(stack: Stack) -> None:
    hc = stack.token("ro-agent", tenant="healthcare")
    out = run_calls(stack.scoped.url, hc, [
        ("get_record", {"id": 5}),
        ("echo", {"text": "not annotated"}),
        ("no_such_tool", {}),
    ], list_first=True)
    assert json.loads(out[0]) == {"id": 5, "value": "record 5"}
    assert out[1] == ('denied: Denied by policy: readonly: tool "echo" is not annotated readOnlyHint: true, '
                      'and this server is in read-only mode')
    assert out[2] == ('denied: Denied by policy: readonly: tool "no_such_tool" has no known definition '
                      '(the proxy has not seen it in tools/list), and this server is in read-only mode')


def test_destructive_tools_are_denied(stack: Stack) -> None:
    dba = stack.token("dba-1", roles=["dba"], acr="mfa")
    out = run_calls(stack.main.url, dba, [("drop_table", {"name": "users"})], list_first=True)
    assert out == ['denied: Denied by policy: readonly: tool "drop_table" is destructive (destructiveHint: true)']
    # Without step-up, the stepup library gives its reason too (drop_table
    # is destructive), and rbac its own for a caller without the role.
    out = run_calls(stack.main.url, stack.token("dba-2", roles=["viewer"]), [("drop_table", {"name": "t"})],
                    list_first=True)
    assert 'readonly: tool "drop_table" is destructive' in out[0]
    assert 'stepup: tool "drop_table" is destructive and needs step-up authentication' in out[0]
    assert 'rbac: tool "drop_table" requires one of the roles "admin", "dba"' in out[0]
    assert not stack.received_calls("drop_table")


# --------------------------------------------------------------------------
# schema


def test_arguments_that_do_not_match_the_schema_never_reach_the_server(stack: Stack) -> None:
    bearer = stack.token("schema-agent")
    out = run_calls(stack.main.url, bearer, [
        ("get_record", {"id": "seven"}),
        ("get_record", {"id": 7, "extra": True}),
        ("query", {}),
        ("get_record", {"id": 8}),
    ], list_first=True, era="2026-07-28")
    assert out[0] == ('denied: Denied by policy: schema: arguments of "get_record" do not match its input '
                      'schema: id: expected integer, got string')
    # The SDK's schema allows extra properties: passed on.
    assert json.loads(out[1])["id"] == 7
    assert out[2] == ('denied: Denied by policy: schema: arguments of "query" do not match its input schema: '
                      'arguments: missing required property "sql"')
    assert json.loads(out[3])["id"] == 8
    ids = [m["arguments"]["id"] for m in stack.received_calls("get_record")]
    assert "seven" not in ids and 7 in ids and 8 in ids
    assert not [m for m in stack.received_calls("query") if "sql" not in m["arguments"]]


# --------------------------------------------------------------------------
# arguments


def test_argument_constraints(stack: Stack) -> None:
    bearer = stack.token("args-agent")
    out = run_calls(stack.main.url, bearer, [
        ("read_file", {"path": "/workspace/notes.txt"}),
        ("read_file", {"path": "/workspace/../etc/passwd"}),
        ("fetch_url", {"url": "https://example.com/page"}),
        ("fetch_url", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("fetch_url", {"url": "http://2130706433/"}),
        ("fetch_url", {"url": "http://[::1]:8000/"}),
        ("query", {"sql": "SELECT name FROM users WHERE id = 1", "limit": 50}),
        ("query", {"sql": "SELECT 1; DROP TABLE users"}),
        ("query", {"sql": "SELECT * FROM t", "limit": 5000}),
    ])
    assert out[0] == "(fake) contents of /workspace/notes.txt"
    assert out[1] == 'denied: Denied by policy: arguments: read_file.path "/workspace/../etc/passwd" contains a ".." segment'
    assert out[2] == "(fake) fetched https://example.com/page"
    assert out[3] == ("denied: Denied by policy: arguments: fetch_url.url host 169.254.169.254 is in a blocked "
                      "range (169.254.0.0/16)")
    assert out[4] == ('denied: Denied by policy: arguments: fetch_url.url host "2130706433" is an IPv4 address in '
                      'a non-canonical form (decimal, octal or hex)')
    assert out[5] == "denied: Denied by policy: arguments: fetch_url.url host [::1] is in a blocked range (::1/128)"
    assert out[6].startswith("(fake) 3 rows for: SELECT name")
    assert out[7] == "denied: Denied by policy: arguments: query.sql contains more than one statement (;)"
    assert out[8] == "denied: Denied by policy: arguments: query.limit must be an integer from 0 to 100 (got 5000)"
    assert [m["arguments"]["url"] for m in stack.received_calls("fetch_url")] == ["https://example.com/page"]
    assert len(stack.received_calls("read_file")) >= 1
    assert all(".." not in m["arguments"]["path"] for m in stack.received_calls("read_file"))
    assert all(";" not in m["arguments"].get("sql", "") for m in stack.received_calls("query"))


# --------------------------------------------------------------------------
# flows


def test_toxic_flow_within_a_session(stack: Stack) -> None:
    bearer = stack.token("flow-agent")
    out = run_calls(stack.main.url, bearer, [
        ("send_email", {"to": "a@example.com", "body": "before"}),
        ("read_file", {"path": "/workspace/secrets"}),
        ("send_email", {"to": "a@example.com", "body": "after"}),
    ])
    assert out[0].startswith("(fake) sent")
    assert out[2] == ('denied: Denied by policy: flows: "send_email" (external_send) is not allowed after '
                      'sensitive_read in this session')
    # A new session starts clean.
    assert run_calls(stack.main.url, bearer, [("send_email", {"to": "a@example.com", "body": "new"})])[0] \
        .startswith("(fake) sent")
    bodies = [m["arguments"]["body"] for m in stack.received_calls("send_email")]
    assert "after" not in bodies and {"before", "new"} <= set(bodies)


# --------------------------------------------------------------------------
# ratelimit and kill


def test_rate_limit_then_kill(stack: Stack) -> None:
    bot = stack.token("rate-bot")
    out = run_calls(stack.main.url, bot, [("add", {"a": i, "b": 1}) for i in range(7)] + [("echo", {"text": "x"})],
                    era="2026-07-28")
    assert out[:3] == ["1", "2", "3"], out
    limit = ('denied: Denied by policy: ratelimit: {n} calls of "add" by this identity in the current window '
             '(limit 3)')
    assert out[3] == limit.format(n=4) and out[4] == limit.format(n=5), out
    assert 'ratelimit: more than 5 calls of "add" by this identity in the current window' in out[5], out
    killed = ('denied: Denied by policy: session killed: ratelimit: more than 5 calls of "add" by this identity '
              'in the current window')
    assert out[6] == killed and out[7] == killed, json.dumps(out, indent=1)
    assert len([m for m in stack.received_calls("add") if m["arguments"]["b"] == 1]) == 3
    # Another identity is not affected.
    assert run_calls(stack.main.url, stack.token("rate-other"), [("add", {"a": 2, "b": 2})],
                     era="2026-07-28") == ["4"]


# --------------------------------------------------------------------------
# timewindow


def test_time_of_day_windows(stack: Stack) -> None:
    bearer = stack.token("time-agent")
    out = run_calls(stack.main.url, bearer, [("count", {"to": 1}), ("get_record", {"id": 9}),
                                             ("tz_probe", {})])
    assert out[0].startswith(f'denied: Denied by policy: timewindow: tool "count" may only be called every day '
                             f'{WINDOW["from"]}-{WINDOW["to"]} (UTC); it is now '), out
    assert json.loads(out[1])["id"] == 9
    # A time zone the engine does not know fails closed: a policy error that
    # names the library rule that tried it.
    assert out[2].startswith('denied: Denied by policy: policy evaluation failed: builtin error at '
                             'library/timewindow.rego:151:'), out[2]
    assert 'failed to parse timezone' in out[2], out[2]
    assert not stack.received_calls("count")
