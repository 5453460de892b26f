"""Helpers for the mesh tests (tests/mesh/), on top of support/harness.py.

* The mesh configurations (several listeners, TLS) are rendered by
  ``tools/mesh_config.py`` and started with ``harness.start_envoy_bootstrap``
  (port 0 everywhere, the real ports read back by listener name).
* ``envoy --mode validate`` of a shipped file exactly as shipped
  (``validate_shipped``): in a scratch directory laid out like the repository
  (the module at its relative path, certificates from ``tools/gen_certs.py``
  in ``build/mesh/certs/``).
* ``pq_client``: the rustls client in ``tools/pq-client`` (built on first use
  if ``make pq-client`` has not built it) that reports the negotiated TLS
  version and key-exchange group.
* ``probe_input_fields``: which identity/connection/route fields the built
  module puts into the policy input (a feature probe through a real Envoy).
* Kubernetes manifests against CRD schemas (``crd_validator``): a
  ``jsonschema`` validator built from a CRD's OpenAPI v3 schema, with
  Kubernetes' structural-schema rules made explicit (unknown fields are
  errors, as with ``kubectl apply --validate=strict``) and the CEL rules
  (``x-kubernetes-validations``) the manifests meet checked by Python
  equivalents; a CEL rule without an equivalent fails the validation instead
  of being skipped.

Needs PyYAML and jsonschema (requirements-test.txt) and, for the mTLS and PQ
tests, cargo (tools/pq-client).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from support import REPO, TOOLS, harness

SCHEMAS = Path(os.environ.get("MCP_POLICY_SCHEMAS") or REPO.parent / "shared" / "schemas")
PQ_CLIENT_DIR = TOOLS / "pq-client"
PQ_CLIENT_TARGET = REPO / "target" / "pq-client"
PQ_CLIENT = PQ_CLIENT_TARGET / "release" / "pq-client"

import gen_certs  # noqa: E402  (tools/; support/__init__ puts it on sys.path)
import mesh_config  # noqa: E402

__all__ = [
    "REPO",
    "SCHEMAS",
    "crd_validator",
    "model_validator",
    "structural_validator",
    "gen_certs",
    "load_yaml_documents",
    "mesh_config",
    "pq_client",
    "probe_input_fields",
    "validate_bootstrap",
    "validate_shipped",
]


# --------------------------------------------------------------------------- #
# envoy --mode validate
# --------------------------------------------------------------------------- #


def validate_bootstrap(config_path: str | os.PathLike[str], cwd: str | os.PathLike[str],
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate -c config_path`` in ``cwd`` (which runs the module's on_configure)."""
    return subprocess.run(
        [harness.find_envoy(), "--mode", "validate", "-c", os.fspath(config_path), "--disable-hot-restart",
         "--log-level", "info", "--component-log-level", "wasm:info"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


def shipped_tree(root: Path, wasm_path: Path) -> Path:
    """A scratch directory laid out like the repository for the shipped relative paths:
    ``target/wasm32-wasip1/release/mcp_policy.wasm`` (a link to the built module) and
    ``build/mesh/certs/`` (a fresh set from tools/gen_certs.py)."""
    wasm_link = root / mesh_config.DEFAULT_WASM
    if not wasm_link.exists():
        wasm_link.parent.mkdir(parents=True, exist_ok=True)
        wasm_link.symlink_to(wasm_path)
    gen_certs.generate(root / mesh_config.DEFAULT_CERTS, force=False)
    return root


def validate_shipped(path: Path, tree: Path) -> subprocess.CompletedProcess[str]:
    """Validate a shipped file byte for byte, with its relative paths resolved in ``tree``."""
    return validate_bootstrap(path.resolve(), cwd=tree)


# --------------------------------------------------------------------------- #
# pq-client
# --------------------------------------------------------------------------- #


def build_pq_client() -> Path:
    """Build tools/pq-client (a no-op when up to date; about 1.5 min from scratch, for aws-lc)."""
    r = subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(PQ_CLIENT_DIR / "Cargo.toml"),
         "--target-dir", str(PQ_CLIENT_TARGET)],
        capture_output=True, text=True, timeout=900,
    )
    if r.returncode != 0 or not PQ_CLIENT.is_file():
        raise RuntimeError(f"building tools/pq-client failed:\n{r.stdout}\n{r.stderr}")
    return PQ_CLIENT


def pq_client(port: int, ca: Path, *, cert: Path | None = None, key: Path | None = None,
              groups: Iterable[str] = (mesh_config.PQ_GROUP,), tls_versions: str = "1.3",
              post: str | None = None, body: Any = None, headers: Iterable[str] = (),
              server_name: str = "localhost", timeout: float = 10.0) -> dict[str, Any]:
    """Run the rustls client once against 127.0.0.1:port; its JSON report (see tools/pq-client)."""
    exe = PQ_CLIENT if PQ_CLIENT.is_file() else build_pq_client()
    argv = [str(exe), "--connect", f"127.0.0.1:{port}", "--ca", str(ca), "--server-name", server_name,
            "--groups", ",".join(groups), "--tls-versions", tls_versions, "--timeout", str(timeout)]
    if cert is not None:
        argv += ["--cert", str(cert), "--key", str(key)]
    if post is not None:
        argv += ["--post", post, "--body", body if isinstance(body, str) else json.dumps(body)]
    for h in headers:
        argv += ["--header", h]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"pq-client failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- #
# Feature probe: which attributes the built module gives the policy
# --------------------------------------------------------------------------- #

PROBE_POLICY = """package mcp
import rego.v1
default allow := true
deny contains json.marshal({k: v | some k in ["identity", "source", "connection", "xds"]; v := input[k]})
"""


def _paths(value: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{prefix}.{k}" if prefix else k
            out.add(p)
            out |= _paths(v, p)
    return out


def probe_input_fields(tmp_path: Path, wasm_path: Path) -> set[str]:
    """Dotted input paths the module fills, seen through a real Envoy with mTLS and jwt_authn.

    One Envoy (the ingress configuration, but requiring client certificates)
    and one request from pq-client with a client certificate and a valid
    token; the policy denies with a JSON dump of ``input.identity``,
    ``.source``, ``.connection`` and ``.xds`` as its reason. Returns e.g.
    ``{"identity.claims", "identity.subject", "source.principal", ...}``;
    an empty set from a module without these fields.

    ``MCP_POLICY_INPUT_FIELDS`` overrides the probe: a comma-separated list of
    paths, or ``all``.
    """
    forced = os.environ.get("MCP_POLICY_INPUT_FIELDS")
    if forced:
        return {"*"} if forced.strip() == "all" else {f.strip() for f in forced.split(",") if f.strip()}
    return _paths(probe_input(tmp_path, wasm_path))


_PROBED: dict[Path, dict[str, Any]] = {}


def probe_input(tmp_path: Path, wasm_path: Path) -> dict[str, Any]:
    """The probe's raw result: ``{"identity": ..., "source": ..., "connection": ..., "xds": ...}``
    as the policy saw them (members the module does not fill are absent). Cached per module."""
    key = Path(wasm_path).resolve()
    if key not in _PROBED:
        _PROBED[key] = _probe(Path(tmp_path), key)
    return _PROBED[key]


def _probe(tmp_path: Path, wasm_path: Path) -> dict[str, Any]:
    certs = gen_certs.generate(tmp_path / "certs")
    config = mesh_config.ingress_jwt(
        plugin_config={"policy": {"modules": {"probe.rego": PROBE_POLICY}}},
        wasm_path=wasm_path, certs_dir=tmp_path / "certs",
        jwks_inline=certs["jwks"].read_text(encoding="utf-8"),
    )
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    tls = chain["transport_socket"]["typed_config"]
    tls["require_client_certificate"] = True
    tls["common_tls_context"]["validation_context"] = {"trusted_ca": {"filename": str(certs["ca"])}}
    envoy = harness.start_envoy_bootstrap(tmp_path, config, name="probe")
    try:
        token = gen_certs.mint_jwt(certs["jwt-signing-key"], {"sub": "probe", "roles": ["x"]})
        report = pq_client(
            envoy.port, certs["ca"], cert=certs["finance-agent"], key=certs["finance-agent-key"],
            post="/mcp", body={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers=[f"Authorization: Bearer {token}", "MCP-Protocol-Version: 2025-11-25"],
            groups=mesh_config.PQ_PREFERRED,
        )
    finally:
        envoy.stop()
    if not report.get("ok") or report.get("http_status") != 200:
        raise RuntimeError(f"input probe failed: {report}")
    reasons = json.loads(report["http_body"]).get("error", {}).get("data", {}).get("reasons", [])
    for reason in reasons:
        try:
            return dict(json.loads(reason))
        except (json.JSONDecodeError, TypeError, ValueError):
            continue
    return {}


def has_fields(fields: set[str], *needed: str) -> bool:
    return "*" in fields or all(n in fields for n in needed)


def require_fields(fields: set[str], *needed: str) -> None:
    """Skip the calling test unless the probe found every dotted input path in ``needed``."""
    if not has_fields(fields, *needed):
        import pytest

        pytest.skip(f"the built module does not fill input.{', input.'.join(needed)} yet "
                    "(probe: support.mesh.probe_input_fields; force with MCP_POLICY_INPUT_FIELDS=all)")


# --------------------------------------------------------------------------- #
# Kubernetes manifests against CRD schemas
# --------------------------------------------------------------------------- #


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    import yaml  # PyYAML: requirements-test.txt

    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


_CRD_CACHE: dict[Path, dict[tuple[str, str], dict[str, Any]]] = {}


def crds(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): openAPIV3Schema} of every served version of every CRD in ``path``."""
    path = path.resolve()
    if path not in _CRD_CACHE:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for doc in load_yaml_documents(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = \
                        version["schema"]["openAPIV3Schema"]
        _CRD_CACHE[path] = found
    return _CRD_CACHE[path]


#: Python equivalents of the CEL rules (x-kubernetes-validations) in the Istio and
#: Envoy Gateway CRDs that the shipped manifests reach. Key: the rule text with
#: whitespace collapsed. A rule at a path the manifest reaches that is not here
#: makes the validation fail (so a new field cannot slip past a rule unchecked).
def _has(o: Any, k: str) -> bool:
    return isinstance(o, dict) and k in o


def _url_scheme_ok(url: str) -> bool:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return (m.group(1).lower() if m else "") in ("", "http", "https", "file", "oci")


_EG_KINDS = ["Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute"]
_EG_ROUTE_KINDS = ["HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute"]

CEL_EQUIVALENTS: dict[str, Callable[[Any], bool]] = {
    # Istio
    '!self.contains("*")': lambda s: "*" not in s,
    'self.all(key, !key.contains("*"))': lambda s: all("*" not in k for k in s),
    "self.all(key, key.size() != 0)": lambda s: all(len(k) != 0 for k in s),
    "self.size() == 0": lambda s: len(s) == 0,
    '(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1':
        lambda s: _has(s, "selector") + _has(s, "targetRef") + _has(s, "targetRefs") <= 1,
    '(has(self.selector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1':
        lambda s: _has(s, "selector") + _has(s, "targetRefs") <= 1,
    '(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1':
        lambda s: _has(s, "workloadSelector") + _has(s, "targetRefs") <= 1,
    "has(self.wasm) != has(self.lua)": lambda s: _has(s, "wasm") != _has(s, "lua"),
    # (TrafficExtension and WasmPlugin list the schemes in different orders.)
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "file", "oci"]) : (isURL("http://" + self) && '
    'url("http://" + self).getScheme() in ["", "http", "https", "file", "oci"])': _url_scheme_ok,
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && '
    'url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])': _url_scheme_ok,
    'has(self.context) ? ((self.context == "WAYPOINT") ? has(self.waypoint) : !has(self.waypoint)) : '
    '!has(self.waypoint)':
        lambda s: (_has(s, "waypoint") if s.get("context") == "WAYPOINT" else not _has(s, "waypoint")),
    # Envoy Gateway (EnvoyExtensionPolicy spec)
    "(has(self.targetRef) && !has(self.targetRefs)) || (!has(self.targetRef) && has(self.targetRefs)) || "
    "(has(self.targetSelectors) && self.targetSelectors.size() > 0)":
        lambda s: (_has(s, "targetRef") and not _has(s, "targetRefs"))
        or (not _has(s, "targetRef") and _has(s, "targetRefs"))
        or (_has(s, "targetSelectors") and len(s["targetSelectors"]) > 0),
    "has(self.targetRef) ? self.targetRef.group == 'gateway.networking.k8s.io' : true":
        lambda s: not _has(s, "targetRef") or s["targetRef"].get("group") == "gateway.networking.k8s.io",
    "has(self.targetRef) ? self.targetRef.kind in ['Gateway', 'ListenerSet', 'HTTPRoute', 'GRPCRoute', "
    "'UDPRoute', 'TCPRoute', 'TLSRoute'] : true":
        lambda s: not _has(s, "targetRef") or s["targetRef"].get("kind") in _EG_KINDS,
    "has(self.targetRefs) ? self.targetRefs.all(ref, ref.group == 'gateway.networking.k8s.io') : true":
        lambda s: all(r.get("group") == "gateway.networking.k8s.io" for r in s.get("targetRefs", [])),
    "has(self.targetRefs) ? self.targetRefs.all(ref, ref.kind in ['Gateway', 'ListenerSet', 'HTTPRoute', "
    "'GRPCRoute', 'UDPRoute', 'TCPRoute', 'TLSRoute']) : true":
        lambda s: all(r.get("kind") in _EG_KINDS for r in s.get("targetRefs", [])),
    "!has(self.mergeType) || ((!has(self.targetRef) || self.targetRef.kind in ['HTTPRoute', 'GRPCRoute', "
    "'UDPRoute', 'TCPRoute', 'TLSRoute']) && (!has(self.targetRefs) || self.targetRefs.all(ref, ref.kind in "
    "['HTTPRoute', 'GRPCRoute', 'UDPRoute', 'TCPRoute', 'TLSRoute'])) && (!has(self.targetSelectors) || "
    "self.targetSelectors.all(sel, sel.kind in ['HTTPRoute', 'GRPCRoute', 'UDPRoute', 'TCPRoute', 'TLSRoute'])))":
        lambda s: not _has(s, "mergeType") or all(
            r.get("kind") in _EG_ROUTE_KINDS
            for r in ([s["targetRef"]] if _has(s, "targetRef") else []) + s.get("targetRefs", [])
            + s.get("targetSelectors", [])),
    "self.type == 'HTTP' ? has(self.http) : !has(self.http)":
        lambda s: _has(s, "http") if s.get("type") == "HTTP" else not _has(s, "http"),
    "self.type == 'Image' ? has(self.image) : !has(self.image)":
        lambda s: _has(s, "image") if s.get("type") == "Image" else not _has(s, "image"),
    "self.kind == 'Secret'": lambda s: s.get("kind", "Secret") == "Secret",
}


def _cel_key(rule: str) -> str:
    return " ".join(rule.split())


def _strict(schema: Any) -> Any:
    """The CRD schema as plain JSON Schema with Kubernetes' structural rules made explicit.

    * objects with ``properties`` and no ``additionalProperties`` get
      ``additionalProperties: false`` unless ``x-kubernetes-preserve-unknown-fields``
      (the API server would prune unknown fields; strict validation refuses them);
    * ``nullable: true`` admits null;
    * ``format: int32/int64`` and other formats are left to jsonschema (not asserted);
    * ``x-kubernetes-*`` keys are annotations for jsonschema and are ignored by it.
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    return out


def _cel_check(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    """Evaluate the x-kubernetes-validations met along ``value`` (by walking the schema with it)."""
    for item in schema.get("x-kubernetes-validations", []):
        check = CEL_EQUIVALENTS.get(_cel_key(item["rule"]))
        if check is None:
            errors.append(f"{path or '<root>'}: CEL rule without a Python equivalent in support/mesh.py: {item['rule']!r}")
        elif not check(value):
            errors.append(f"{path or '<root>'}: {item.get('message', 'CEL rule failed')} ({item['rule']!r})")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                _cel_check(sub, v, f"{path}.{k}", errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            _cel_check(schema["items"], v, f"{path}[{i}]", errors)


_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                 "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _schema_errors(raw: dict[str, Any], key: tuple[str, str], doc: dict[str, Any]) -> list[str]:
    """``doc`` checked against the OpenAPI schema ``raw`` of ``key`` (types, enums, unknown fields)."""
    import jsonschema  # requirements-test.txt

    schema = _strict(raw)
    schema.setdefault("properties", {})
    schema["properties"].update({
        "apiVersion": {"const": key[0]}, "kind": {"const": key[1]}, "metadata": _OBJECT_META,
    })
    schema["additionalProperties"] = False
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator_cls(schema).iter_errors(doc)
    ]


def crd_validator(crd_file: Path) -> Callable[[dict[str, Any]], list[str]]:
    """A function that validates one manifest against the CRDs in ``crd_file`` (the full
    upstream file, CEL rules included); it returns the errors."""
    schemas = crds(crd_file)

    def validate(doc: dict[str, Any]) -> list[str]:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key not in schemas:
            return [f"no served CRD version for {key} in {crd_file.name} (have {sorted(schemas)})"]
        errors = _schema_errors(schemas[key], key, doc)
        _cel_check(schemas[key], doc, "", errors)
        return errors

    return validate


def structural_validator(schema_file: Path) -> Callable[[dict[str, Any]], list[str]]:
    """A function that validates one manifest against a structural schema kept in the repository
    (tests/fixtures/crds/, written by tools/crd_structural.py): types, required fields, enums and
    unknown fields; it returns the errors."""
    data = json.loads(schema_file.read_text(encoding="utf-8"))
    key = (data["apiVersion"], data["kind"])

    def validate(doc: dict[str, Any]) -> list[str]:
        if (doc.get("apiVersion", ""), doc.get("kind", "")) != key:
            return [f"{schema_file.name} describes {key}, not {(doc.get('apiVersion'), doc.get('kind'))}"]
        return _schema_errors(data["schema"], key, doc)

    return validate


def _unknown_fields(given: Any, kept: Any, path: str) -> list[str]:
    """Members of ``given`` that a model round trip (``kept``) dropped: fields the model does not know."""
    if isinstance(given, dict) and isinstance(kept, dict):
        out = []
        for k, v in given.items():
            here = f"{path}.{k}" if path else k
            if k not in kept:
                out.append(f"{here}: Additional properties are not allowed ({k!r} is not a field of the model)")
            else:
                out.extend(_unknown_fields(v, kept[k], here))
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [e for i, (g, k) in enumerate(zip(given, kept)) for e in _unknown_fields(g, k, f"{path}[{i}]")]
    return []


def model_validator(model: Any) -> Callable[[dict[str, Any]], list[str]]:
    """A function that validates one manifest with a typed model from a registry package (PyPI
    cloudcoil-models-istio: pydantic models generated from Istio's CRDs): types and enums by the
    model, unknown fields by a round trip (the models keep unknown members silently, so a member
    the round trip drops is one the API does not have); it returns the errors."""
    import pydantic

    def validate(doc: dict[str, Any]) -> list[str]:
        try:
            obj = model.model_validate(doc)
        except pydantic.ValidationError as e:
            return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()]
        kept = obj.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return _unknown_fields(doc, kept, "")

    return validate
