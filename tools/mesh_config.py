#!/usr/bin/env python3
"""Render the mesh configurations in envoy/: ingress with JWT, egress, mTLS client and server.

Each configuration is a complete Envoy bootstrap that runs the mcp-policy
module with a policy from ``envoy/policies/<name>/`` (every ``*.rego`` except
``*_test.rego``, plus ``data.json``), like ``tools/envoy_config.py`` does for
``envoy/envoy.yaml``. The shipped files are generated with fixed ports and
paths relative to the repository root; the tests render the same functions
with free ports and absolute paths and run them end to end.

    python tools/mesh_config.py                  # (re)write envoy/ingress-jwt.yaml ... mtls-server.yaml
    python tools/mesh_config.py --check          # exit 1 if any shipped file is stale
    python tools/mesh_config.py --print egress   # one configuration on stdout

=====================  ===========================================================================
``ingress-jwt``        Envoy in front of an MCP server. TLS listener (TLS 1.3, X25519MLKEM768
                       preferred, classic X25519/P-256 still accepted), ``jwt_authn`` with a local
                       JWKS and ``payload_in_metadata: jwt_payload`` (the module reads the verified
                       claims from there), then the module, then the router.
``egress``             Envoy beside an agent: one plain-HTTP listener on loopback, one route per
                       upstream MCP server by path prefix (``/github/`` -> cluster
                       ``github_mcp``, ``/files/`` -> ``files_mcp``, prefix rewritten to ``/``),
                       one module whose policy is keyed by ``input.xds.route_name``.
``mtls-client``        the agent-side Envoy: plain HTTP on loopback for the agent, mutual TLS to
                       the server-side Envoy with the agent's SPIFFE certificate, TLS 1.3 and
                       X25519MLKEM768 only, the server's SPIFFE ID checked.
``mtls-server``        the server-side Envoy: requires a client certificate from the mesh CA with
                       a ``spiffe://example.org/ns/agents/`` URI SAN, TLS 1.3 and X25519MLKEM768
                       only; the module decides by the peer's SPIFFE ID
                       (``input.source.principal``).
``ratelimit-local``    jwt_authn, then the module with ``envoy/policies/ratelimit/`` (its
                       ``rate_limit`` output: a descriptor per principal and tool, with a cost),
                       then Envoy's ``local_ratelimit`` counting those descriptors per instance.
``ratelimit-global``   the same, counted mesh-wide by the global rate-limit service
                       (envoyproxy/ratelimit, gRPC, ``failure_mode_deny``); its limits are in
                       ``deploy/ratelimit/config.yaml``.
``replicas-front``     a front Envoy spreading traffic over module-carrying replicas with
                       ring-hash load balancing on ``Mcp-Session-Id`` (then ``Authorization``,
                       then the caller's address), so each session sticks to one replica.
=====================  ===========================================================================

Certificates and the JWKS are made by ``tools/gen_certs.py`` into
``build/mesh/certs/`` (the ``certs_dir`` parameter). Standard library only
(it reuses ``envoy_config``'s YAML emitter and Wasm filter).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import envoy_config  # noqa: E402
from envoy_config import ACCESS_LOG_FORMAT, dump_yaml, plugin_config_from_dir, wasm_filter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WASM = "target/wasm32-wasip1/release/mcp_policy.wasm"
DEFAULT_CERTS = "build/mesh/certs"
POLICY_ROOT = "envoy/policies"

#: The post-quantum hybrid group (ML-KEM-768 + X25519) as Envoy's BoringSSL
#: names it; rustls and OpenSSL 3.5 use the same name (IANA code point 0x11EC).
PQ_GROUP = "X25519MLKEM768"
#: Hybrid first, classic groups as fallback for clients without ML-KEM.
PQ_PREFERRED = [PQ_GROUP, "X25519", "P-256"]
#: Hybrid only: a client that cannot do ML-KEM cannot connect.
PQ_ONLY = [PQ_GROUP]

TRUST_DOMAIN = "example.org"
AGENTS_PREFIX = f"spiffe://{TRUST_DOMAIN}/ns/agents/"
SERVER_SPIFFE_ID = f"spiffe://{TRUST_DOMAIN}/ns/mcp/sa/mcp-server"
SERVER_SNI = "mcp-server.example.org"

JWT_PROVIDER = "mcp_idp"
JWT_ISSUER = "https://idp.example.org"
JWT_AUDIENCE = "mcp-server"

#: Upstream MCP servers of the egress configuration: route name -> (cluster, path prefix, default port).
EGRESS_UPSTREAMS: dict[str, tuple[str, str, int]] = {
    "github": ("github_mcp", "/github/", 8001),
    "files": ("files_mcp", "/files/", 8002),
}

__all__ = [
    "CONFIGS",
    "PQ_GROUP",
    "PQ_ONLY",
    "PQ_PREFERRED",
    "egress",
    "ingress_jwt",
    "mtls_client",
    "mtls_server",
    "render",
]


# --------------------------------------------------------------------------- #
# Pieces
# --------------------------------------------------------------------------- #


def _addr(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _p(certs_dir: str | os.PathLike[str], name: str) -> str:
    return os.path.join(os.fspath(certs_dir), name)


def _stdout_access_log() -> list[dict[str, Any]]:
    return [{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": dict(envoy_config.ACCESS_LOG_JSON_FORMAT)},
        },
    }]


def _text_access_log() -> list[dict[str, Any]]:
    return [{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
        },
    }]


def _router() -> dict[str, Any]:
    return {
        "name": envoy_config.ROUTER_FILTER_NAME,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }


def _hcm(stat_prefix: str, routes: list[dict[str, Any]], http_filters: list[dict[str, Any]],
         json_log: bool, **extra: Any) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "access_log": _stdout_access_log() if json_log else _text_access_log(),
    }
    hcm.update(extra)
    hcm["route_config"] = {
        "name": f"{stat_prefix}_routes",
        "virtual_hosts": [{"name": stat_prefix, "domains": ["*"], "routes": routes}],
    }
    hcm["http_filters"] = http_filters + [_router()]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


def _route(name: str, prefix: str, cluster: str, rewrite: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": cluster, "timeout": "0s"}  # 0s: SSE streams are long-lived
    if rewrite is not None:
        action["prefix_rewrite"] = rewrite
    return {"name": name, "match": {"prefix": prefix}, "route": action}


def _cluster(name: str, host: str, port: int, transport_socket: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(host, port)}}]}],
        },
    }
    if transport_socket is not None:
        cluster["transport_socket"] = transport_socket
    return cluster


def tls_params(curves: list[str]) -> dict[str, Any]:
    """TLS 1.3 only, with the given key-exchange groups in preference order."""
    return {
        "tls_minimum_protocol_version": "TLSv1_3",
        "tls_maximum_protocol_version": "TLSv1_3",
        "ecdh_curves": list(curves),
    }


def _downstream_tls(certs_dir: str | os.PathLike[str], curves: list[str], *,
                    client_san_prefix: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "tls_params": tls_params(curves),
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_certificates": [{
            "certificate_chain": {"filename": _p(certs_dir, "server.pem")},
            "private_key": {"filename": _p(certs_dir, "server-key.pem")},
        }],
    }
    tls: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": context,
    }
    if client_san_prefix is not None:
        context["validation_context"] = {
            "trusted_ca": {"filename": _p(certs_dir, "ca.pem")},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": client_san_prefix}}],
        }
        tls["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": tls}


def _bootstrap(admin_port: int, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "admin": {"address": _addr("127.0.0.1", admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def _wasm(wasm_path: str | os.PathLike[str], plugin_config: Mapping[str, Any] | str,
          hold_headers_stop: bool = True) -> dict[str, Any]:
    return wasm_filter(wasm_path=wasm_path, plugin_config=plugin_config, pretty=True,
                       allow_on_headers_stop_iteration=hold_headers_stop)


def _jwt(certs_dir: str | os.PathLike[str], jwks_inline: str | None) -> dict[str, Any]:
    """jwt_authn with ``<certs_dir>/jwks.json``, or the inline JWKS when given."""
    return jwt_authn_filter(
        jwks_filename=None if jwks_inline is not None else _p(certs_dir, "jwks.json"),
        jwks_inline=jwks_inline,
    )


def jwt_authn_filter(*, jwks_filename: str | None = None, jwks_inline: str | None = None,
                     protected_prefix: str = "/mcp") -> dict[str, Any]:
    """``envoy.filters.http.jwt_authn`` with one provider and a local JWKS (a file or inline).

    Requests under ``protected_prefix`` need a valid token; the verified
    payload is stored in dynamic metadata (``envoy.filters.http.jwt_authn`` ->
    ``jwt_payload``), where the module reads it. The token is removed before
    the request goes upstream (``forward: false``) and no payload header is
    written, so neither the server nor the policy sees an unverified copy.
    """
    if (jwks_filename is None) == (jwks_inline is None):
        raise ValueError("give exactly one of jwks_filename and jwks_inline")
    jwks = {"filename": jwks_filename} if jwks_filename is not None else {"inline_string": jwks_inline}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                JWT_PROVIDER: {
                    "issuer": JWT_ISSUER,
                    "audiences": [JWT_AUDIENCE],
                    "local_jwks": jwks,
                    "forward": False,
                    "payload_in_metadata": "jwt_payload",
                }
            },
            "rules": [{"match": {"prefix": protected_prefix}, "requires": {"provider_name": JWT_PROVIDER}}],
        },
    }


# --------------------------------------------------------------------------- #
# The configurations
# --------------------------------------------------------------------------- #


def ingress_jwt(
    *,
    plugin_config: Mapping[str, Any] | str,
    wasm_path: str | os.PathLike[str] = DEFAULT_WASM,
    certs_dir: str | os.PathLike[str] = DEFAULT_CERTS,
    listen_port: int = 10443,
    upstream_port: int = 8000,
    admin_port: int = 9902,
    jwks_inline: str | None = None,
    json_log: bool = False,
) -> dict[str, Any]:
    """Ingress: TLS (PQ preferred) -> jwt_authn -> mcp-policy -> the MCP server.

    The JWKS is ``<certs_dir>/jwks.json`` unless ``jwks_inline`` (the JWKS
    document as a string) is given.
    """
    jwt = _jwt(certs_dir, jwks_inline)
    hcm = _hcm("mcp_ingress", [_route("mcp", "/", "mcp_server")], [jwt, _wasm(wasm_path, plugin_config)], json_log)
    listener = {
        "name": "mcp_ingress",
        "address": _addr("127.0.0.1", listen_port),
        "filter_chains": [{"transport_socket": _downstream_tls(certs_dir, PQ_PREFERRED), "filters": [hcm]}],
    }
    return _bootstrap(admin_port, [listener], [_cluster("mcp_server", "127.0.0.1", upstream_port)])


def egress(
    *,
    plugin_config: Mapping[str, Any] | str,
    wasm_path: str | os.PathLike[str] = DEFAULT_WASM,
    listen_port: int = 15001,
    admin_port: int = 9903,
    upstream_ports: Mapping[str, int] | None = None,
    json_log: bool = False,
) -> dict[str, Any]:
    """Egress: the agent calls ``http://127.0.0.1:15001/<server>/mcp``; one policy for every server.

    ``upstream_ports`` maps a route name of :data:`EGRESS_UPSTREAMS` to the
    port of that MCP server on 127.0.0.1.
    """
    ports = {name: default for name, (_, _, default) in EGRESS_UPSTREAMS.items()}
    ports.update(upstream_ports or {})
    routes = [_route(name, prefix, cluster, rewrite="/") for name, (cluster, prefix, _) in EGRESS_UPSTREAMS.items()]
    hcm = _hcm("mcp_egress", routes, [_wasm(wasm_path, plugin_config)], json_log)
    listener = {"name": "mcp_egress", "address": _addr("127.0.0.1", listen_port), "filter_chains": [{"filters": [hcm]}]}
    clusters = [_cluster(cluster, "127.0.0.1", ports[name]) for name, (cluster, _, _) in EGRESS_UPSTREAMS.items()]
    return _bootstrap(admin_port, [listener], clusters)


def mtls_client(
    *,
    certs_dir: str | os.PathLike[str] = DEFAULT_CERTS,
    agent: str = "finance-agent",
    listen_port: int = 10002,
    server_host: str = "127.0.0.1",
    server_port: int = 10444,
    admin_port: int = 9904,
    json_log: bool = False,
) -> dict[str, Any]:
    """Agent side: plain HTTP from the agent on loopback, mutual TLS (PQ only) to the server-side Envoy."""
    upstream_tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": SERVER_SNI,
            "common_tls_context": {
                "tls_params": tls_params(PQ_ONLY),
                "tls_certificates": [{
                    "certificate_chain": {"filename": _p(certs_dir, f"{agent}.pem")},
                    "private_key": {"filename": _p(certs_dir, f"{agent}-key.pem")},
                }],
                "validation_context": {
                    "trusted_ca": {"filename": _p(certs_dir, "ca.pem")},
                    "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": SERVER_SPIFFE_ID}}],
                },
            },
        },
    }
    hcm = _hcm("agent_outbound", [_route("mcp_server", "/", "mcp_server_mtls")], [], json_log)
    listener = {"name": "agent_outbound", "address": _addr("127.0.0.1", listen_port),
                "filter_chains": [{"filters": [hcm]}]}
    return _bootstrap(admin_port, [listener], [_cluster("mcp_server_mtls", server_host, server_port, upstream_tls)])


def mtls_server(
    *,
    plugin_config: Mapping[str, Any] | str,
    wasm_path: str | os.PathLike[str] = DEFAULT_WASM,
    certs_dir: str | os.PathLike[str] = DEFAULT_CERTS,
    listen_port: int = 10444,
    upstream_port: int = 8000,
    admin_port: int = 9905,
    json_log: bool = False,
) -> dict[str, Any]:
    """Server side: mutual TLS (PQ only, client SPIFFE ID under the agents namespace) -> mcp-policy -> server.

    The HTTP connection manager also sets ``x-forwarded-client-cert`` with
    the peer's URI SAN and drops any copy the client sent
    (``SANITIZE_SET``), so the MCP server behind it can see who called.
    """
    hcm = _hcm(
        "mcp_mtls", [_route("mcp", "/", "mcp_server")], [_wasm(wasm_path, plugin_config)], json_log,
        forward_client_cert_details="SANITIZE_SET",
        set_current_client_cert_details={"uri": True},
    )
    listener = {
        "name": "mcp_mtls",
        "address": _addr("127.0.0.1", listen_port),
        "filter_chains": [{
            "transport_socket": _downstream_tls(certs_dir, PQ_ONLY, client_san_prefix=AGENTS_PREFIX),
            "filters": [hcm],
        }],
    }
    return _bootstrap(admin_port, [listener], [_cluster("mcp_server", "127.0.0.1", upstream_port)])


# --------------------------------------------------------------------------- #
# Rate limits through Envoy's own filters (docs/replicas.md)
# --------------------------------------------------------------------------- #

#: The rate-limit descriptors the shipped configurations build from the
#: headers the module sets for the policy's ``rate_limit`` output
#: (``x-mcp-ratelimit-<entry>``, ``x-mcp-ratelimit-cost``): one per
#: principal and tool, one per principal.
RATE_LIMIT_DESCRIPTORS: list[list[str]] = [["principal", "tool"], ["principal"]]
RATE_LIMIT_HEADER_PREFIX = "x-mcp-ratelimit-"
RATE_LIMIT_DOMAIN = "mcp"


def rate_limit_actions(descriptors: list[list[str]] = RATE_LIMIT_DESCRIPTORS) -> list[dict[str, Any]]:
    """``rate_limits`` entries: each descriptor from the module's headers, costing ``x-mcp-ratelimit-cost`` hits.

    A message for which the policy gives no ``rate_limit`` has none of the
    headers, so no descriptor is built and no limit applies to it.
    """
    return [
        {
            "actions": [
                {"request_headers": {"header_name": RATE_LIMIT_HEADER_PREFIX + key, "descriptor_key": key}}
                for key in keys
            ],
            "hits_addend": {"format": f"%REQ({RATE_LIMIT_HEADER_PREFIX}cost)%"},
        }
        for keys in descriptors
    ]


def _bucket(tokens: int, interval: str) -> dict[str, Any]:
    return {"max_tokens": tokens, "tokens_per_fill": tokens, "fill_interval": interval}


def local_ratelimit_filter(*, per_tool: int = 60, per_principal: int = 600, interval: str = "60s",
                           descriptors: list[list[str]] = RATE_LIMIT_DESCRIPTORS) -> dict[str, Any]:
    """``envoy.filters.http.local_ratelimit`` counting the policy's descriptors, per Envoy instance.

    Entries without a value are wildcards: every distinct principal (and
    tool) gets its own bucket. Placed after the module, which sets the
    headers, and before the router. Messages without a descriptor use the
    filter's default bucket, which is large enough never to matter.
    """
    limits = {("principal", "tool"): per_tool, ("principal",): per_principal}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "mcp_ratelimit",
            "token_bucket": _bucket(1_000_000, "1s"),
            "filter_enabled": {"runtime_key": "mcp_ratelimit.enabled",
                               "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "mcp_ratelimit.enforced",
                                "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "descriptors": [
                {"entries": [{"key": k} for k in keys], "token_bucket": _bucket(limits.get(tuple(keys), per_tool), interval)}
                for keys in descriptors
            ],
            "rate_limits": rate_limit_actions(descriptors),
            "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                         "header": {"key": "x-mcp-rate-limited", "value": "local"}}],
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        },
    }


def global_ratelimit_filter(*, cluster: str = "ratelimit", timeout: str = "0.1s") -> dict[str, Any]:
    """``envoy.filters.http.ratelimit``: the global rate-limit service (envoyproxy/ratelimit), mesh-wide.

    Fails closed: when the service cannot be reached in ``timeout``, the
    request is refused (``failure_mode_deny``). The descriptors are the
    route's ``rate_limits`` (see :func:`ratelimit_global`).
    """
    return {
        "name": "envoy.filters.http.ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": RATE_LIMIT_DOMAIN,
            "stage": 0,
            "timeout": timeout,
            "failure_mode_deny": True,
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            "rate_limit_service": {
                "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
                "transport_api_version": "V3",
            },
        },
    }


def _grpc_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    cluster = _cluster(name, host, port)
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return cluster


def ratelimit_local(
    *,
    plugin_config: Mapping[str, Any] | str,
    wasm_path: str | os.PathLike[str] = DEFAULT_WASM,
    certs_dir: str | os.PathLike[str] = DEFAULT_CERTS,
    listen_port: int = 10003,
    upstream_port: int = 8000,
    admin_port: int = 9906,
    jwks_inline: str | None = None,
    per_tool: int = 60,
    per_principal: int = 600,
    interval: str = "60s",
    json_log: bool = False,
) -> dict[str, Any]:
    """jwt_authn -> mcp-policy (its ``rate_limit`` output) -> local_ratelimit -> the MCP server.

    Limits per Envoy instance: with N replicas a caller gets up to N times
    the budget unless a session sticks to one replica (docs/replicas.md).
    """
    jwt = _jwt(certs_dir, jwks_inline)
    limiter = local_ratelimit_filter(per_tool=per_tool, per_principal=per_principal, interval=interval)
    hcm = _hcm("mcp_ratelimit", [_route("mcp", "/", "mcp_server")], [jwt, _wasm(wasm_path, plugin_config), limiter],
               json_log)
    listener = {"name": "mcp_ratelimit", "address": _addr("127.0.0.1", listen_port), "filter_chains": [{"filters": [hcm]}]}
    return _bootstrap(admin_port, [listener], [_cluster("mcp_server", "127.0.0.1", upstream_port)])


def ratelimit_global(
    *,
    plugin_config: Mapping[str, Any] | str,
    wasm_path: str | os.PathLike[str] = DEFAULT_WASM,
    certs_dir: str | os.PathLike[str] = DEFAULT_CERTS,
    listen_port: int = 10004,
    upstream_port: int = 8000,
    ratelimit_host: str = "127.0.0.1",
    ratelimit_port: int = 8081,
    admin_port: int = 9907,
    jwks_inline: str | None = None,
    json_log: bool = False,
) -> dict[str, Any]:
    """jwt_authn -> mcp-policy -> ratelimit (gRPC to the rate-limit service, domain ``mcp``) -> the MCP server.

    The service (envoyproxy/ratelimit, backed by Redis) counts every replica's
    traffic in one place: deploy/ratelimit/config.yaml holds its limits.
    """
    jwt = _jwt(certs_dir, jwks_inline)
    route = _route("mcp", "/", "mcp_server")
    route["route"]["rate_limits"] = rate_limit_actions()
    hcm = _hcm("mcp_ratelimit_global", [route], [jwt, _wasm(wasm_path, plugin_config), global_ratelimit_filter()],
               json_log)
    listener = {"name": "mcp_ratelimit_global", "address": _addr("127.0.0.1", listen_port),
                "filter_chains": [{"filters": [hcm]}]}
    return _bootstrap(admin_port, [listener], [
        _cluster("mcp_server", "127.0.0.1", upstream_port),
        _grpc_cluster("ratelimit", ratelimit_host, ratelimit_port),
    ])


# --------------------------------------------------------------------------- #
# Replicated gateways: a hashing front proxy (docs/replicas.md)
# --------------------------------------------------------------------------- #


def replicas_front(
    *,
    replicas: list[tuple[str, int]] | None = None,
    listen_port: int = 10080,
    admin_port: int = 9908,
    lb_policy: str = "RING_HASH",
    json_log: bool = False,
) -> dict[str, Any]:
    """A front Envoy spreading MCP traffic over module-carrying replicas, one session per replica.

    The route hashes on ``Mcp-Session-Id`` (terminal) and otherwise on the
    caller's ``Authorization`` header and then its address, and the cluster
    uses ring-hash load balancing: every message of a session reaches the same
    replica, so its history, binding and rate counters are all in one place.
    The ``initialize`` that creates a session has no session id yet; it is
    hashed by the caller, so it may land on another replica (which then
    only sees the initialize). ``lb_policy="MAGLEV"`` works the same way.
    """
    replicas = replicas or [("127.0.0.1", 10001), ("127.0.0.1", 10002)]
    route = _route("mcp", "/", "mcp_replicas")
    route["route"]["hash_policy"] = [
        {"header": {"header_name": "mcp-session-id"}, "terminal": True},
        {"header": {"header_name": "authorization"}, "terminal": True},
        {"connection_properties": {"source_ip": True}},
    ]
    hcm = _hcm("mcp_front", [route], [], json_log)
    listener = {"name": "mcp_front", "address": _addr("127.0.0.1", listen_port), "filter_chains": [{"filters": [hcm]}]}
    cluster: dict[str, Any] = {
        "name": "mcp_replicas",
        "type": "STATIC",
        "connect_timeout": "5s",
        "lb_policy": lb_policy,
        "load_assignment": {
            "cluster_name": "mcp_replicas",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(h, p)}} for h, p in replicas]}],
        },
    }
    if lb_policy == "RING_HASH":
        cluster["ring_hash_lb_config"] = {"minimum_ring_size": 1024}
    return _bootstrap(admin_port, [listener], [cluster])


# --------------------------------------------------------------------------- #
# Shipped files
# --------------------------------------------------------------------------- #


#: Shipped file name -> (builder, policy directory name or None).
CONFIGS: dict[str, tuple[Callable[..., dict[str, Any]], str | None]] = {
    "ingress-jwt": (ingress_jwt, "ingress-jwt"),
    "egress": (egress, "egress"),
    "mtls-client": (mtls_client, None),
    "mtls-server": (mtls_server, "mtls-server"),
    "ratelimit-local": (ratelimit_local, "ratelimit"),
    "ratelimit-global": (ratelimit_global, "ratelimit"),
    "replicas-front": (replicas_front, None),
}


def plugin_config_for(name: str, repo: Path = REPO) -> dict[str, Any] | None:
    """The plugin configuration the shipped ``envoy/<name>.yaml`` embeds."""
    policy_dir = CONFIGS[name][1]
    if policy_dir is None:
        return None
    root = repo / POLICY_ROOT / policy_dir
    config = plugin_config_from_dir(root)
    # `library.txt`: policy-library modules (policies/library/<name>.rego) loaded beside the directory's own.
    listing = root / "library.txt"
    if listing.is_file():
        for name_ in listing.read_text(encoding="utf-8").split():
            config["policy"]["modules"][f"library/{name_}.rego"] = (
                repo / "policies" / "library" / f"{name_}.rego").read_text(encoding="utf-8")
    return config


def render(name: str, repo: Path = REPO, **overrides: Any) -> str:
    """YAML of configuration ``name``: the shipped file without ``overrides``."""
    builder, policy_dir = CONFIGS[name]
    kwargs = dict(overrides)
    if policy_dir is not None:
        kwargs.setdefault("plugin_config", plugin_config_for(name, repo))
    header = (
        f"# Generated by tools/mesh_config.py from {POLICY_ROOT}/{policy_dir}/ -- do not edit; run `make mesh-config`.\n"
        if policy_dir is not None else
        "# Generated by tools/mesh_config.py -- do not edit; run `make mesh-config`.\n"
    )
    header += f"# Certificates: {DEFAULT_CERTS}/ (python tools/gen_certs.py). See docs/deployment-mesh.md.\n"
    return header + dump_yaml(builder(**kwargs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the mesh configurations in envoy/.")
    parser.add_argument("--out-dir", default=str(REPO / "envoy"), help="where the files go (default: envoy/)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    parser.add_argument("--print", dest="print_name", choices=sorted(CONFIGS), help="print one configuration")
    args = parser.parse_args(argv)

    if args.print_name:
        sys.stdout.write(render(args.print_name))
        return 0
    out_dir = Path(args.out_dir)
    stale = []
    for name in CONFIGS:
        path = out_dir / f"{name}.yaml"
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        sys.stderr.write("stale (run `make mesh-config`): " + ", ".join(stale) + "\n")
        return 1
    if args.check:
        print("mesh configurations are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
