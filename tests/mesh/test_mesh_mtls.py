"""envoy/mtls-client.yaml + envoy/mtls-server.yaml end to end, and the
post-quantum key exchange on them.

agent --HTTP--> agent-side Envoy --mTLS, TLS 1.3, X25519MLKEM768--> server-side Envoy
(module, envoy/policies/mtls-server/) --> MCP server.

* The agent-side Envoy presents the finance agent's SPIFFE certificate; the
  policy on the server side decides by that SPIFFE ID (input.source.principal).
* tools/pq-client (rustls + aws-lc-rs) talks to the server-side listener
  directly, with other identities, other key-exchange groups and TLS 1.2, and
  reports what it negotiated.
* Both Envoys' own counters show the Envoy-to-Envoy hop used X25519MLKEM768.

Certificates come from tools/gen_certs.py, made for each run.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import harness
from support.rpc import DENY_CODE, JSON_HEADERS, call
from support import mesh as mh

FINANCE = "spiffe://example.org/ns/agents/sa/finance-agent"
HEADERS = dict(JSON_HEADERS, **{"mcp-protocol-version": "2025-11-25"})


class Mesh:
    def __init__(self, certs: dict[str, Path], server: harness.DemoServer, side_server: harness.EnvoyHandle,
                 side_client: harness.EnvoyHandle) -> None:
        self.certs = certs
        self.server = server
        self.side_server = side_server
        self.side_client = side_client

    def via_agent_envoy(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.side_client.base_url}/mcp", content=json.dumps(body), headers=HEADERS, timeout=15)

    def direct(self, agent: str | None, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        cert = key = None
        if agent is not None:
            cert, key = self.certs[agent], self.certs[f"{agent}-key"]
        return mh.pq_client(
            self.side_server.port, self.certs["ca"], cert=cert, key=key, server_name="mcp-server.example.org",
            post="/mcp" if body is not None else None, body=body,
            headers=["MCP-Protocol-Version: 2025-11-25"], **kw,
        )

    def received_ids(self) -> set[Any]:
        return {m.get("id") for m in self.server.received()}


@pytest.fixture(scope="module")
def input_fields(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> set[str]:
    return mh.probe_input_fields(tmp_path_factory.mktemp("probe"), wasm_path)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("mtls")
    certs = mh.gen_certs.generate(tmp / "certs")
    server = harness.start_demo_server(tmp, json_response=True, stateless=True)
    started: list[harness.EnvoyHandle] = []
    try:
        side_server = harness.start_envoy_bootstrap(tmp, mh.mesh_config.mtls_server(
            plugin_config=mh.mesh_config.plugin_config_for("mtls-server"), wasm_path=wasm_path,
            certs_dir=tmp / "certs", upstream_port=server.port, json_log=True,
        ), name="mtls-server")
        started.append(side_server)
        side_client = harness.start_envoy_bootstrap(tmp, mh.mesh_config.mtls_client(
            certs_dir=tmp / "certs", agent="finance-agent", server_port=side_server.port, json_log=True,
        ), name="mtls-client")
        started.append(side_client)
        yield Mesh(certs, server, side_server, side_client)
    finally:
        for e in started:
            e.stop()
        server.proc.stop()


def test_agent_envoy_to_server_envoy_is_mtls_with_x25519mlkem768(mesh: Mesh) -> None:
    r = mesh.via_agent_envoy({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 200, r.text
    assert r.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    client = mesh.side_client.stats(filter=r"^cluster\.mcp_server_mtls\.ssl\.")
    server = mesh.side_server.stats(filter=r"^listener\..*\.ssl\.")

    def count(stats: dict[str, int], suffix: str) -> int:
        return sum(v for k, v in stats.items() if k.endswith(suffix))

    assert count(client, ".ssl.curves.X25519MLKEM768") >= 1, client
    assert count(client, ".ssl.versions.TLSv1.3") >= 1, client
    assert count(server, ".ssl.curves.X25519MLKEM768") >= 1, server
    assert count(server, ".ssl.handshake") >= 1 and count(server, ".ssl.no_certificate") == 0, server


def test_policy_decides_by_the_agents_spiffe_id(mesh: Mesh, input_fields: set[str]) -> None:
    mh.require_fields(input_fields, "source.principal", "connection.mtls", "connection.tls_version")
    # Through the agent-side Envoy: the finance agent's certificate.
    r = mesh.via_agent_envoy(call("send_email", 10, {"to": "cfo@example.com", "body": "q3"}))
    assert "result" in r.json(), r.text
    r = mesh.via_agent_envoy(call("read_file", 11, {"path": "/workspace/x"}))
    err = r.json()["error"]
    assert err["code"] == DENY_CODE and 'finance-agent may not call tool "read_file"' in err["message"], err
    # Directly with the health agent's certificate: the opposite.
    report = mesh.direct("health-agent", call("read_file", 12, {"path": "/workspace/x"}))
    assert report["ok"] and report["http_status"] == 200 and '"result"' in report["http_body"], report
    report = mesh.direct("health-agent", call("send_email", 13, {"to": "x@example.com", "body": "y"}))
    assert 'health-agent may not call tool \\"send_email\\"' in report["http_body"], report
    ids = mesh.received_ids()
    assert {10, 12} <= ids and not ({11, 13} & ids)


def test_policy_sees_the_peer_identity_and_tls(input_fields: set[str], wasm_path: Path, tmp_path: Path) -> None:
    """What input.source / input.connection hold behind a listener that requires client certificates
    (the feature probe's listener, which is configured like mtls-server's, with the finance agent's
    certificate)."""
    mh.require_fields(input_fields, "source.principal", "connection.mtls", "connection.tls_version")
    seen = mh.probe_input(tmp_path, wasm_path)
    assert seen["source"]["principal"] == FINANCE
    assert seen["source"]["address"].startswith("127.0.0.1:")
    assert seen["connection"] == {"mtls": True, "tls_version": "TLSv1.3"}


@pytest.mark.parametrize("case", ["no client certificate", "certificate from another CA"])
def test_server_side_refuses_unauthenticated_peers(mesh: Mesh, case: str) -> None:
    agent = None if case == "no client certificate" else "untrusted-agent"
    report = mesh.direct(agent, call("echo", 20, {"text": "x"}))
    # TLS 1.3: the client finishes its side of the handshake before the server
    # checks its certificate, so the refusal can surface on the first read.
    assert not report["ok"], report
    assert report["stage"] in ("handshake", "request", "response"), report
    assert 20 not in mesh.received_ids()


def test_pq_only_listener_negotiates_x25519mlkem768_and_refuses_classic_groups(mesh: Mesh) -> None:
    report = mesh.direct("finance-agent", groups=["X25519MLKEM768"])
    assert report["ok"], report
    assert (report["protocol"], report["group"]) == ("TLSv1_3", "X25519MLKEM768"), report
    # Offering X25519 first still ends in the hybrid group (HelloRetryRequest).
    report = mesh.direct("finance-agent", groups=["X25519", "X25519MLKEM768"])
    assert report["ok"] and report["group"] == "X25519MLKEM768", report
    # Classic groups only: no common group, the server aborts the handshake.
    report = mesh.direct("finance-agent", groups=["X25519", "SECP256R1", "SECP384R1"])
    assert not report["ok"] and report["stage"] == "handshake" and "HandshakeFailure" in report["error"], report
    # TLS 1.2 is not offered at all.
    report = mesh.direct("finance-agent", groups=["X25519MLKEM768", "X25519"], tls_versions="1.2")
    assert not report["ok"] and "ProtocolVersion" in report["error"], report


def test_a_classic_openssl_client_cannot_connect(mesh: Mesh) -> None:
    """Python's ssl (OpenSSL 3.0 here, no ML-KEM) is refused by the PQ-only listener."""
    if "ML-KEM" in ssl.OPENSSL_VERSION or ssl.OPENSSL_VERSION_INFO >= (3, 5):
        pytest.skip(f"{ssl.OPENSSL_VERSION} may support X25519MLKEM768")
    context = ssl.create_default_context(cafile=str(mesh.certs["ca"]))
    context.load_cert_chain(mesh.certs["finance-agent"], mesh.certs["finance-agent-key"])
    with socket.create_connection(("127.0.0.1", mesh.side_server.port), timeout=10) as sock:
        with pytest.raises(ssl.SSLError) as info:
            with context.wrap_socket(sock, server_hostname="mcp-server.example.org"):
                pass
    assert "HANDSHAKE_FAILURE" in str(info.value).upper(), info.value
