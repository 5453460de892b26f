#!/usr/bin/env python3
"""Render the Envoy bootstrap config that puts the mcp-policy wasm filter in front of an MCP server.

Library use (the test harness imports this file)::

    from envoy_config import render, plugin_config_from_dir
    text = render(listen_port=10000, upstream_port=8000, admin_port=9901,
                  wasm_path="target/wasm32-wasip1/release/mcp_policy.wasm",
                  plugin_config=plugin_config_from_dir("policies"))

Command line::

    python tools/envoy_config.py --policy-dir policies \
        --wasm target/wasm32-wasip1/release/mcp_policy.wasm \
        --listen-port 10000 --upstream-port 8000 --admin-port 9901 -o envoy/envoy.yaml

Layout of the generated bootstrap:

* one static listener (listen_host:listen_port) with an HTTP connection manager
  (codec AUTO: HTTP/1.1 and prior-knowledge h2c both work, stat_prefix ``mcp``),
  an access log, and a single route ``prefix: /`` to the STATIC cluster
  ``mcp_server`` (upstream_host:upstream_port) with ``timeout: 0s`` so that
  long-lived SSE responses are not cut by the route timeout;
* http_filters: ``extra_http_filters_before`` ..., ``envoy.filters.http.wasm``
  (the mcp_policy plugin, FAIL_CLOSED), ``envoy.filters.http.router``;
* the admin interface on 127.0.0.1:admin_port.

Port 0 is accepted for the listener and the admin interface (the kernel picks a
free port; read the real one from the admin API / ``--admin-address-path``).

The YAML is produced by a small built-in emitter (no PyYAML dependency); pass
``fmt="json"`` / ``--format json`` for JSON instead.  Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ACCESS_LOG_FORMAT",
    "ACCESS_LOG_JSON_FORMAT",
    "build",
    "dump_yaml",
    "plugin_config_from_dir",
    "render",
]

WASM_FILTER_NAME = "envoy.filters.http.wasm"
ROUTER_FILTER_NAME = "envoy.filters.http.router"
CLUSTER_NAME = "mcp_server"
PLUGIN_NAME = "mcp_policy"

#: Text access-log line. RESPONSE_CODE_DETAILS says *who* produced the response
#: (``via_upstream`` vs. a local reply from the filter), RESPONSE_FLAGS why
#: Envoy itself failed a stream.
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION%ms "
    'session="%REQ(MCP-SESSION-ID)%" upstream="%UPSTREAM_HOST%" '
    'mcp_decision="%FILTER_STATE(wasm.mcp_policy.decision:PLAIN)%" '
    'mcp_decision_id="%FILTER_STATE(wasm.mcp_policy.decision_id:PLAIN)%" '
    'mcp_reasons="%FILTER_STATE(wasm.mcp_policy.reasons:PLAIN)%"\n'
)

#: The same fields as one JSON object per line (``access_log_json=True``);
#: handy for tests that want to parse the log.
ACCESS_LOG_JSON_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "response_flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "session_id": "%REQ(MCP-SESSION-ID)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "mcp_decision": "%FILTER_STATE(wasm.mcp_policy.decision:PLAIN)%",
    "mcp_decision_id": "%FILTER_STATE(wasm.mcp_policy.decision_id:PLAIN)%",
    "mcp_reasons": "%FILTER_STATE(wasm.mcp_policy.reasons:PLAIN)%",
    "mcp_audit": "%FILTER_STATE(wasm.mcp_policy.audit:PLAIN)%",
}


# --------------------------------------------------------------------------- #
# Plugin configuration
# --------------------------------------------------------------------------- #


def plugin_config_from_dir(
    policy_dir: str | os.PathLike[str],
    *,
    max_body_bytes: int | None = None,
    data_file: str | os.PathLike[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the plugin configuration object from a directory of Rego files.

    Returns ``{"policy": {"modules": {"<file name>.rego": "<source>", ...},
    "data": {...}}, "max_body_bytes": ..., **extra}``.

    * every ``*.rego`` file directly in ``policy_dir`` except ``*_test.rego``,
      keyed by its file name, in sorted order;
    * ``data``: the JSON document in ``data_file`` if given, else
      ``<policy_dir>/data.json`` if that exists;
    * keys whose value is None (``data`` when there is no data file,
      ``max_body_bytes``, any ``extra``) are omitted.
    """
    root = Path(policy_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"policy directory not found: {root}")
    modules: dict[str, str] = {}
    for path in sorted(root.glob("*.rego")):
        if path.name.endswith("_test.rego") or not path.is_file():
            continue
        modules[path.name] = path.read_text(encoding="utf-8")
    if not modules:
        raise ValueError(f"no *.rego policy modules (other than *_test.rego) in {root}")

    data_path = Path(data_file) if data_file is not None else root / "data.json"
    data = None
    if data_file is not None or data_path.is_file():
        with open(data_path, encoding="utf-8") as fh:
            data = json.load(fh)

    policy: dict[str, Any] = {"modules": modules}
    if data is not None:
        policy["data"] = data
    config: dict[str, Any] = {"policy": policy}
    if max_body_bytes is not None:
        config["max_body_bytes"] = max_body_bytes
    for key, value in extra.items():
        if value is not None:
            config[key] = value
    return config


# --------------------------------------------------------------------------- #
# Bootstrap
# --------------------------------------------------------------------------- #


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": int(port)}}


def _access_log(path: str | os.PathLike[str] | None, as_json: bool) -> dict[str, Any]:
    if as_json:
        log_format: dict[str, Any] = {"json_format": dict(ACCESS_LOG_JSON_FORMAT)}
    else:
        log_format = {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}}
    if path is None:
        return {
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": log_format,
            },
        }
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": os.fspath(path),
            "log_format": log_format,
        },
    }


def wasm_filter(
    *,
    wasm_path: str | os.PathLike[str],
    plugin_config: Mapping[str, Any] | str,
    runtime: str = "envoy.wasm.runtime.v8",
    allow_on_headers_stop_iteration: bool = True,
    failure_policy: str = "FAIL_CLOSED",
    pretty: bool = False,
) -> dict[str, Any]:
    """The ``envoy.filters.http.wasm`` entry for the mcp_policy plugin.

    ``plugin_config`` is JSON-encoded into a google.protobuf.StringValue (a
    ready-made JSON string is passed through unchanged); the plugin reads it in
    ``on_configure``.
    """
    if isinstance(plugin_config, str):
        value = plugin_config
    else:
        value = json.dumps(plugin_config, indent=2 if pretty else None, ensure_ascii=True)
    return {
        "name": WASM_FILTER_NAME,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": PLUGIN_NAME,
                "root_id": PLUGIN_NAME,
                "vm_config": {
                    "vm_id": PLUGIN_NAME,
                    "runtime": runtime,
                    "code": {"local": {"filename": os.fspath(wasm_path)}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": value,
                },
                "failure_policy": failure_policy,
                "allow_on_headers_stop_iteration": bool(allow_on_headers_stop_iteration),
            },
        },
    }


#: Envoy tag extraction for the module's metrics (docs/metrics.md): the
#: `.<label>.<value>` segments of `wasmcustom.mcp_policy_*` names become
#: Prometheus labels.
MCP_STATS_TAGS: list[dict[str, str]] = [
    {"tag_name": "mcp_method", "regex": r"^wasmcustom\.mcp_policy_decisions(\.method\.([^.]+))"},
    {"tag_name": "mcp_tool", "regex": r"^wasmcustom\.mcp_policy_decisions\.method\.[^.]+(\.tool\.([^.]+))"},
    {"tag_name": "mcp_outcome",
     "regex": r"^wasmcustom\.mcp_policy_decisions\.method\.[^.]+\.tool\.[^.]+(\.outcome\.([^.]+))$"},
    {"tag_name": "mcp_principal", "regex": r"^wasmcustom\.mcp_policy_denials(\.principal\.([^.]+))$"},
    {"tag_name": "mcp_reason", "regex": r"^wasmcustom\.mcp_policy_rejections(\.reason\.([^.]+))$"},
    {"tag_name": "mcp_error_kind", "regex": r"^wasmcustom\.mcp_policy_errors(\.kind\.([^.]+))$"},
    {"tag_name": "mcp_revision", "regex": r"^wasmcustom\.mcp_policy_bundle_active(\.revision\.([^.]+))$"},
    {"tag_name": "mcp_approval_status", "regex": r"^wasmcustom\.mcp_policy_approvals(\.status\.([^.]+))$"},
]


def stats_config() -> dict[str, Any]:
    return {"stats_tags": [dict(t) for t in MCP_STATS_TAGS]}


def build(
    *,
    listen_port: int,
    upstream_port: int,
    admin_port: int,
    wasm_path: str | os.PathLike[str] | None,
    plugin_config: Mapping[str, Any] | str | None,
    access_log_path: str | os.PathLike[str] | None = None,
    listen_host: str = "127.0.0.1",
    upstream_host: str = "127.0.0.1",
    allow_on_headers_stop_iteration: bool = True,
    extra_http_filters_before: Iterable[Mapping[str, Any]] = (),
    extra_http_filters_after: Iterable[Mapping[str, Any]] = (),
    extra_clusters: Iterable[Mapping[str, Any]] = (),
    runtime: str = "envoy.wasm.runtime.v8",
    wasm: bool = True,
    access_log_json: bool = False,
    failure_policy: str = "FAIL_CLOSED",
    pretty_plugin_config: bool = False,
) -> dict[str, Any]:
    """The bootstrap as a plain dict (see :func:`render` for the parameters)."""
    http_filters: list[dict[str, Any]] = [dict(f) for f in extra_http_filters_before]
    if wasm:
        if wasm_path is None or plugin_config is None:
            raise ValueError("wasm_path and plugin_config are required unless wasm=False")
        http_filters.append(
            wasm_filter(
                wasm_path=wasm_path,
                plugin_config=plugin_config,
                runtime=runtime,
                allow_on_headers_stop_iteration=allow_on_headers_stop_iteration,
                failure_policy=failure_policy,
                pretty=pretty_plugin_config,
            )
        )
    http_filters.extend(dict(f) for f in extra_http_filters_after)
    http_filters.append(
        {
            "name": ROUTER_FILTER_NAME,
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }
    )

    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mcp",
        "codec_type": "AUTO",
        "access_log": [_access_log(access_log_path, access_log_json)],
        "route_config": {
            "name": "mcp_route",
            "virtual_hosts": [
                {
                    "name": "mcp",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            # 0s disables the whole-response timeout (default 15 s),
                            # which would otherwise cut long-lived SSE streams.
                            "route": {"cluster": CLUSTER_NAME, "timeout": "0s"},
                        }
                    ],
                }
            ],
        },
        "http_filters": http_filters,
    }

    return {
        "admin": {"address": _socket_address("127.0.0.1", admin_port)},
        "stats_config": stats_config(),
        "static_resources": {
            "listeners": [
                {
                    "name": "mcp_listener",
                    "address": _socket_address(listen_host, listen_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": CLUSTER_NAME,
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "load_assignment": {
                        "cluster_name": CLUSTER_NAME,
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": _socket_address(upstream_host, upstream_port)}}]}
                        ],
                    },
                },
                *[dict(c) for c in extra_clusters],
            ],
        },
    }


def static_cluster(name: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """A plain STATIC cluster (for an audit collector, a second upstream...)."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}],
        },
    }


def render(
    *,
    listen_port: int,
    upstream_port: int,
    admin_port: int,
    wasm_path: str | os.PathLike[str] | None,
    plugin_config: Mapping[str, Any] | str | None,
    access_log_path: str | os.PathLike[str] | None = None,
    listen_host: str = "127.0.0.1",
    upstream_host: str = "127.0.0.1",
    allow_on_headers_stop_iteration: bool = True,
    extra_http_filters_before: Iterable[Mapping[str, Any]] = (),
    extra_http_filters_after: Iterable[Mapping[str, Any]] = (),
    extra_clusters: Iterable[Mapping[str, Any]] = (),
    runtime: str = "envoy.wasm.runtime.v8",
    wasm: bool = True,
    access_log_json: bool = False,
    failure_policy: str = "FAIL_CLOSED",
    transform: Callable[[dict[str, Any]], None] | None = None,
    fmt: str = "yaml",
) -> str:
    """Render the Envoy bootstrap as YAML (default) or JSON (``fmt="json"``) text.

    * ``plugin_config``: dict (JSON-encoded into the filter's StringValue
      ``configuration``) or an already-encoded JSON string.
    * ``access_log_path``: file for the HCM access log; None logs to stdout.
    * ``extra_http_filters_before``: HCM http_filters entries (dicts in Envoy's
      schema) placed before the wasm filter; ``extra_http_filters_after``
      between the wasm filter and the router (e.g. ``local_ratelimit``, which
      reads the headers the module sets).
    * ``transform``: called with the bootstrap dict before it is rendered, to
      change what the parameters do not cover (route hash policies, cluster
      load balancing...).
    * ``wasm=False`` omits the wasm filter (baseline: plain proxy); then
      ``wasm_path`` / ``plugin_config`` may be None.
    * ``access_log_json=True`` writes the access log as JSON lines with the keys
      of :data:`ACCESS_LOG_JSON_FORMAT`.
    """
    if fmt not in ("yaml", "json"):
        raise ValueError(f"fmt must be 'yaml' or 'json', not {fmt!r}")
    config = build(
        listen_port=listen_port,
        upstream_port=upstream_port,
        admin_port=admin_port,
        wasm_path=wasm_path,
        plugin_config=plugin_config,
        access_log_path=access_log_path,
        listen_host=listen_host,
        upstream_host=upstream_host,
        allow_on_headers_stop_iteration=allow_on_headers_stop_iteration,
        extra_http_filters_before=extra_http_filters_before,
        extra_http_filters_after=extra_http_filters_after,
        extra_clusters=extra_clusters,
        runtime=runtime,
        wasm=wasm,
        access_log_json=access_log_json,
        failure_policy=failure_policy,
        pretty_plugin_config=(fmt == "yaml"),
    )
    if transform is not None:
        transform(config)
    if fmt == "json":
        return json.dumps(config, indent=2) + "\n"
    return dump_yaml(config)


# --------------------------------------------------------------------------- #
# Minimal YAML emitter (block style; covers dict/list/str/int/float/bool/None)
# --------------------------------------------------------------------------- #

_PLAIN_RE = re.compile(r"[A-Za-z_/.][A-Za-z0-9_./:@*+-]*\Z")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ".inf", ".nan"}


def _printable(ch: str) -> bool:
    o = ord(ch)
    if 0x20 <= o <= 0x7E:
        return True
    if o in (0x85, 0x2028, 0x2029, 0xFEFF) or 0xD800 <= o <= 0xDFFF:
        return False
    return o >= 0xA0 and o not in (0xFFFE, 0xFFFF)


def _quote(s: str) -> str:
    """YAML double-quoted scalar, escaping everything not printable."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif _printable(ch):
            out.append(ch)
        elif o <= 0xFF:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN/Infinity cannot be represented")
        return repr(value)
    if isinstance(value, str):
        if _PLAIN_RE.match(value) and value.lower() not in _RESERVED and not value.endswith(":"):
            return value
        return _quote(value)
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _block_ok(s: str) -> bool:
    """Whether ``s`` can be a literal block scalar (``|`` / ``|-``) verbatim."""
    if "\n" not in s or s.endswith("\n\n") or s[:1] in (" ", "\n"):
        return False
    return all(_printable(ch) or ch == "\n" for ch in s)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            out[-1] += " {}"
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("mapping keys must be strings")
            _emit_item(f"{pad}{_scalar(key)}:", item, indent, out)
    elif isinstance(value, (list, tuple)):
        if not value:
            out[-1] += " []"
            return
        for item in value:
            _emit_item(f"{pad}-", item, indent, out, in_list=True)
    else:
        raise TypeError(value)


def _emit_item(head: str, item: Any, indent: int, out: list[str], in_list: bool = False) -> None:
    pad = "  " * (indent + 1)
    if isinstance(item, Mapping) and item and in_list:
        # "- key: value" with the rest of the mapping aligned under "key".
        sub: list[str] = [""]
        _emit(item, indent + 1, sub)
        first = sub[1]
        out.append(f"{head} {first[len(pad):]}")
        out.extend(sub[2:])
    elif isinstance(item, (Mapping, list, tuple)):
        out.append(head)
        _emit(item, indent + 1, out)
    elif isinstance(item, str) and _block_ok(item):
        body = item[:-1] if item.endswith("\n") else item
        out.append(f"{head} {'|' if item.endswith(chr(10)) else '|-'}")
        out.extend(f"{pad}{line}" if line else "" for line in body.split("\n"))
    else:
        out.append(f"{head} {_scalar(item)}")


def dump_yaml(value: Mapping[str, Any]) -> str:
    """Block-style YAML for a JSON-like mapping (strings quoted whenever in doubt)."""
    out: list[str] = [""]
    _emit(value, 0, out)
    return "\n".join(out[1:]) + "\n"


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def check_policy(cli: str, policy_dir: str, data_file: str | None) -> int:
    """Run ``cli check`` on what the configuration embeds: the ``*.rego``
    files directly in ``policy_dir`` (its ``*_test.rego`` tests too) and the
    data document. Its report goes to standard error; returns its exit
    status (docs/cli.md: 1 on errors and on undocumented input paths)."""
    root = Path(policy_dir)
    paths = [str(p) for p in sorted(root.glob("*.rego")) if p.is_file()]
    data = Path(data_file) if data_file else root / "data.json"
    if data.is_file():
        paths.append(str(data))
    result = subprocess.run([cli, "check", *paths], capture_output=True, text=True, timeout=120)
    sys.stderr.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the Envoy bootstrap config for the mcp-policy filter.")
    parser.add_argument("--policy-dir", help="directory of *.rego modules (+ optional data.json)")
    parser.add_argument("--data-file", help="JSON data document (default: <policy-dir>/data.json if present)")
    parser.add_argument("--max-body-bytes", type=int, help="plugin option max_body_bytes")
    parser.add_argument(
        "--plugin-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra top-level plugin option, value parsed as JSON (falls back to a string); repeatable",
    )
    parser.add_argument("--wasm", help="path of the mcp_policy.wasm module (stored as given: use an absolute path if "
                        "Envoy will not run from the repo root)")
    parser.add_argument("--no-wasm", action="store_true", help="omit the wasm filter (plain proxy baseline)")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=10000)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, default=8000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--access-log", help="access log file (default: stdout)")
    parser.add_argument("--access-log-json", action="store_true", help="access log as JSON lines")
    parser.add_argument("--runtime", default="envoy.wasm.runtime.v8")
    parser.add_argument(
        "--no-allow-on-headers-stop-iteration",
        dest="allow_on_headers_stop_iteration",
        action="store_false",
        help="set allow_on_headers_stop_iteration: false",
    )
    parser.add_argument("--format", choices=("yaml", "json"), help="output format (default: from -o suffix, else yaml)")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    parser.add_argument("--mcp-policy", metavar="CLI",
                        help="run `CLI check` on the policy directory's modules (and its tests and data) first, "
                             "and write nothing when it fails (make envoy-config passes target/release/mcp-policy)")
    parser.add_argument("--check", metavar="FILE",
                        help="do not write: exit 1 if FILE differs from what would be rendered (stale config)")
    args = parser.parse_args(argv)

    plugin_config = None
    if not args.no_wasm:
        if not args.policy_dir or not args.wasm:
            parser.error("--policy-dir and --wasm are required unless --no-wasm")
        extra: dict[str, Any] = {}
        for option in args.plugin_option:
            key, sep, raw = option.partition("=")
            if not sep or not key:
                parser.error(f"--plugin-option expects KEY=JSON, got {option!r}")
            try:
                extra[key] = json.loads(raw)
            except json.JSONDecodeError:
                extra[key] = raw
        plugin_config = plugin_config_from_dir(
            args.policy_dir, max_body_bytes=args.max_body_bytes, data_file=args.data_file, **extra
        )
        if args.mcp_policy and check_policy(args.mcp_policy, args.policy_dir, args.data_file) != 0:
            sys.stderr.write("mcp-policy check failed: nothing written\n")
            return 1

    fmt = args.format
    target = args.check or args.output
    if fmt is None:
        fmt = "json" if target and target.endswith(".json") else "yaml"
    text = render(
        listen_port=args.listen_port,
        upstream_port=args.upstream_port,
        admin_port=args.admin_port,
        wasm_path=args.wasm,
        plugin_config=plugin_config,
        access_log_path=args.access_log,
        listen_host=args.listen_host,
        upstream_host=args.upstream_host,
        allow_on_headers_stop_iteration=args.allow_on_headers_stop_iteration,
        runtime=args.runtime,
        wasm=not args.no_wasm,
        access_log_json=args.access_log_json,
        fmt=fmt,
    )
    if args.check:
        current = Path(args.check).read_text(encoding="utf-8") if Path(args.check).is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.check} is stale: it does not match policies/ and the generator; run `make envoy-config`\n")
            return 1
        print(f"{args.check} is up to date")
        return 0
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        if plugin_config is not None:
            modules = sorted(plugin_config["policy"]["modules"])
            data = " and data.json" if "data" in plugin_config["policy"] else ""
            print(f"wrote {out}: the module {args.wasm}, {len(modules)} policy module(s) from {args.policy_dir} "
                  f"({', '.join(modules)}){data}", file=sys.stderr)
        else:
            print(f"wrote {out} (no wasm filter)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
