"""envoy/ingress-jwt.yaml end to end: Envoy in front of an MCP server, TLS 1.3
with X25519MLKEM768 preferred, `jwt_authn` verifying bearer tokens against a
local JWKS, then the module with envoy/policies/ingress-jwt/.

The configuration is rendered by the same tools/mesh_config.py function as
the shipped file, with free ports, absolute paths, and the JWKS of freshly
generated keys inline (the shipped file reads the JWKS from
build/mesh/certs/jwks.json).
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import mesh as mh
from support.rpc import DENY_CODE, call
from support.stack import Stack, StackSpec


class IngressStack(Stack):
    def __init__(self, *args: Any, **kw: Any) -> None:
        self.certs = mh.gen_certs.generate(kw["tmp"] / "certs", force=False)  # written by bootstrap()
        super().__init__(*args, **kw)

    def client(self, timeout: float) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.certs["ca"]))
        return httpx.Client(base_url=f"https://127.0.0.1:{self.envoy.port}", verify=context, timeout=timeout)

    def token(self, **claims: Any) -> str:  # type: ignore[override]
        return mh.gen_certs.mint_jwt(self.certs["jwt-signing-key"], claims)

    def post(self, body: dict[str, Any], token: str | None) -> httpx.Response:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2025-11-25"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return self.http.post("/mcp", content=json.dumps(body), headers=headers)


def bootstrap(tmp: Path, upstream_port: int, wasm_path: Path) -> dict[str, Any]:
    certs = mh.gen_certs.generate(tmp / "certs")
    return mh.mesh_config.ingress_jwt(
        plugin_config=mh.mesh_config.plugin_config_for("ingress-jwt"), wasm_path=wasm_path,
        certs_dir=tmp / "certs", upstream_port=upstream_port,
        jwks_inline=certs["jwks"].read_text(encoding="utf-8"), json_log=True,
    )


STACK = StackSpec(bootstrap=bootstrap, cls=IngressStack, name="ingress")


@pytest.fixture(scope="module")
def input_fields(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> set[str]:
    return mh.probe_input_fields(tmp_path_factory.mktemp("probe"), wasm_path)


needs = mh.require_fields


def test_valid_token_is_forwarded_over_classic_tls(stack: IngressStack, input_fields: set[str]) -> None:
    # Python's ssl here is OpenSSL 3.0 (no ML-KEM): the listener falls back to X25519.
    needs(input_fields, "identity.claims", "connection.tls_version")
    r = stack.post(call("echo", 1, {"text": "hello"}), stack.token(sub="alice", roles=["viewer"]))
    assert r.status_code == 200, r.text
    assert r.json()["result"]["content"][0]["text"] == "hello"
    assert 1 in stack.received_ids()


def test_jwt_authn_refuses_before_the_policy(stack: IngressStack) -> None:
    """No token, a token from another key, an expired token, the wrong audience: Envoy answers, the
    module and the server never see the request."""
    other = mh.gen_certs.generate(stack.certs["ca"].parent.parent / "other-certs")
    cases = {
        10: (None, 401),
        11: (mh.gen_certs.mint_jwt(other["jwt-signing-key"], {"sub": "mallory", "roles": ["admin"]}), 401),
        12: (stack.token(sub="alice", exp=int(time.time()) - 3600), 401),
        13: (stack.token(sub="alice", aud="some-other-service"), 403),
    }
    for id_, (token, status) in cases.items():
        r = stack.post(call("echo", id_, {"text": "x"}), token)
        assert r.status_code == status, (id_, r.status_code, r.text)
        assert "jsonrpc" not in r.text  # jwt_authn's own answer, not the module's
    assert "www-authenticate" in {k.lower() for k in stack.post(call("echo", 14), None).headers}
    assert not ({10, 11, 12, 13, 14} & stack.received_ids())


def test_admin_tool_needs_the_admin_role_claim(stack: IngressStack, input_fields: set[str]) -> None:
    needs(input_fields, "identity.claims", "identity.subject")
    r = stack.post(call("delete_record", 20, {"id": 1}), stack.token(sub="bob", roles=["viewer"]))
    err = r.json()["error"]
    assert err["code"] == DENY_CODE
    assert 'tool "delete_record" needs role admin (bob has roles ["viewer"])' in err["message"]
    r = stack.post(call("delete_record", 21, {"id": 1}), stack.token(sub="root", roles=["admin"]))
    assert "result" in r.json(), r.text
    ids = stack.received_ids()
    assert 21 in ids and 20 not in ids


def test_post_quantum_client_negotiates_x25519mlkem768(stack: IngressStack, input_fields: set[str]) -> None:
    needs(input_fields, "identity.claims", "connection.tls_version")
    report = mh.pq_client(
        stack.envoy.port, stack.certs["ca"], post="/mcp", body=call("echo", 30, {"text": "pq"}),
        headers=[f"Authorization: Bearer {stack.token(sub='alice')}", "MCP-Protocol-Version: 2025-11-25"],
        groups=["X25519MLKEM768", "X25519"],
    )
    assert report["ok"], report
    assert (report["protocol"], report["group"]) == ("TLSv1_3", "X25519MLKEM768")
    assert report["http_status"] == 200 and '"pq"' in report["http_body"], report
    # Envoy counts the negotiated groups per listener: this one saw both kinds of client.
    stats = stack.envoy.stats(filter=r"ssl\.curves\.")
    curves = {name.rsplit(".", 1)[1]: value for name, value in stats.items() if name.startswith("listener.")}
    assert curves.get("X25519MLKEM768", 0) >= 1, stats
    assert curves.get("X25519", 0) >= 1, stats


def test_tls12_client_is_refused(stack: IngressStack) -> None:
    report = mh.pq_client(stack.envoy.port, stack.certs["ca"], tls_versions="1.2",
                          groups=["X25519MLKEM768", "X25519"])
    assert not report["ok"] and report["stage"] == "handshake", report
