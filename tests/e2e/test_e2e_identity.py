"""Identity in the policy input, end to end: Envoy's own `jwt_authn` filter
verifies a bearer token against a local JWKS and stores the payload in
dynamic metadata; the module reads the verified claims from there (never from
the token itself) and the policy decides on them. Also the route/cluster and
source address attributes.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import jwt

from support import harness
from support.jwt_util import AUDIENCE, ISSUER, token
from support.rpc import DENY_CODE, call
from support.stack import Stack, StackSpec


POLICY = """package mcp
import rego.v1

default allow := true

# Every tool call needs a verified caller.
deny contains "authentication required" if {
    input.mcp.method == "tools/call"
    not input.identity.subject
}

# delete_record is for the admin role only.
deny contains sprintf("delete_record needs role admin (%s has %v)", [input.identity.subject, roles]) if {
    input.mcp.tool.name == "delete_record"
    roles := object.get(input.identity.claims, "roles", [])
    not "admin" in roles
}

# A tool that reports what the policy saw, as its denial reason.
deny contains json.marshal({"identity": input.identity, "xds": input.xds, "has_source": is_string(input.source.address)}) if {
    input.mcp.tool.name == "whoami"
}
"""


STACK = StackSpec(plugin_config={"policy": {"modules": {"identity.rego": POLICY}}}, jwt=True, name="identity")


def post(envoy: harness.EnvoyHandle, body: dict[str, Any], bearer: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-11-25"}
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    return httpx.post(envoy.url, content=json.dumps(body), headers=headers, timeout=15)


def test_verified_claims_reach_the_policy(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    envoy = stack.envoy
    r = post(envoy, call("whoami", 1), token(jwt_keys, sub="alice", roles=["finance"], tenant={"id": "t1"}))
    seen = json.loads(r.json()["error"]["data"]["reasons"][0])
    assert seen["identity"]["subject"] == "alice"
    claims = seen["identity"]["claims"]
    assert claims["roles"] == ["finance"]
    assert claims["tenant"] == {"id": "t1"}
    assert claims["iss"] == ISSUER
    assert isinstance(claims["exp"], int)
    assert seen["xds"] == {"route_name": "mcp_route", "cluster_name": "mcp_server"} or \
        seen["xds"]["cluster_name"] == "mcp_server"
    assert seen["has_source"] is True


def test_allow_by_role_claim(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    server, envoy = stack.server, stack.envoy
    r = post(envoy, call("delete_record", 2, {"id": 1}), token(jwt_keys, sub="bob", roles=["finance"]))
    err = r.json()["error"]
    assert err["code"] == DENY_CODE
    assert "delete_record needs role admin (bob has" in err["message"]
    r = post(envoy, call("delete_record", 3, {"id": 1}), token(jwt_keys, sub="root", roles=["admin"]))
    assert "result" in r.json(), r.text
    ids = {m.get("id") for m in server.received()}
    assert 3 in ids and 2 not in ids


def test_no_token_means_no_identity(stack: Stack) -> None:
    envoy = stack.envoy
    r = post(envoy, call("echo", 4, {"text": "x"}))
    assert r.json()["error"]["message"] == "Denied by policy: authentication required"


def test_forged_token_never_reaches_the_policy(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    server, envoy = stack.server, stack.envoy
    # Signed by a key the JWKS does not hold: jwt_authn refuses it (401).
    forged = token(jwt_keys, key=jwt_keys["other"], sub="root", roles=["admin"])
    r = post(envoy, call("delete_record", 5, {"id": 1}), forged)
    assert r.status_code == 401
    # An unsigned token the module could decode is never trusted either:
    # claims come only from jwt_authn's verified metadata.
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "roles": ["admin"]}, key=None,
                          algorithm="none")
    r = post(envoy, call("delete_record", 6, {"id": 1}), unsigned)
    assert r.status_code == 401
    assert not ({5, 6} & {m.get("id") for m in server.received()})


def test_sdk_client_with_a_bearer_token(stack: Stack, jwt_keys: dict[str, Any]) -> None:
    """The official client, carrying a token on every request."""
    import httpx2
    from mcp import Client, MCPError
    from mcp.client.streamable_http import streamable_http_client

    envoy = stack.envoy

    async def run(bearer: str) -> tuple[str, int | None]:
        async with httpx2.AsyncClient(headers={"authorization": f"Bearer {bearer}"}, timeout=15) as http:
            async with Client(streamable_http_client(envoy.url, http_client=http), mode="2026-07-28",
                              read_timeout_seconds=15) as c:
                ok = await c.call_tool("echo", {"text": "hi"})
                try:
                    await c.call_tool("delete_record", {"id": 9})
                    code = None
                except MCPError as e:
                    code = e.code
                return ok.content[0].text, code

    assert anyio.run(run, token(jwt_keys, sub="carol", roles=["viewer"])) == ("hi", DENY_CODE)
    assert anyio.run(run, token(jwt_keys, sub="root", roles=["admin"]))[1] is None
