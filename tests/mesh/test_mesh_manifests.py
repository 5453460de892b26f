"""The Kubernetes manifests in deploy/: Istio (EnvoyFilter, WasmPlugin,
TrafficExtension) and Envoy Gateway (EnvoyExtensionPolicy).

* Each is valid on every machine, with only the registries: WasmPlugin and
  EnvoyFilter against the typed models of PyPI's cloudcoil-models-istio
  (types, enums, unknown fields refused as `kubectl apply --validate=strict`
  would); TrafficExtension and EnvoyExtensionPolicy, which no package covers,
  against structural schemas kept in tests/fixtures/crds/ (types, required
  fields, enums), written by tools/crd_structural.py from the upstream CRDs.
* Where the upstream CRDs are present (../shared/schemas beside the
  repository, or MCP_POLICY_SCHEMAS), each is also valid against its full CRD
  (OpenAPI patterns and the CEL rules the manifests meet, see
  support.mesh.crd_validator), and the structural schemas must not have
  drifted from them.
* What each hands to the module is a configuration the module accepts: the
  EnvoyFilter's Wasm filter goes through `envoy --mode validate`; the
  WasmPlugin's pluginConfig is run end to end the way Istio delivers it
  (serialised to JSON, no allow_on_headers_stop_iteration, fail closed).
* The four carry the same policy, so they cannot drift apart.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import envoy_config
import pytest

from support import harness, rpc
from support.rpc import DENY_CODE
from support import mesh as mh

ISTIO_CRDS = mh.SCHEMAS / "istio" / "customresourcedefinitions.gen.yaml"
EG_CRDS = mh.SCHEMAS / "envoy-gateway" / "gateway.envoyproxy.io_envoyextensionpolicies.yaml"
STRUCTURAL = mh.REPO / "tests" / "fixtures" / "crds"
DEPLOY = mh.REPO / "deploy"
#: manifest -> (how it is validated on every machine, the full upstream CRD file).
MANIFESTS = {
    "istio/envoyfilter.yaml": ("model:EnvoyFilter", ISTIO_CRDS),
    "istio/wasmplugin.yaml": ("model:WasmPlugin", ISTIO_CRDS),
    "istio/trafficextension.yaml": ("structural:istio-trafficextension.json", ISTIO_CRDS),
    "envoy-gateway/extension-policy.yaml": ("structural:envoy-gateway-envoyextensionpolicy.json", EG_CRDS),
}
#: The structural schemas: file -> (upstream CRD file, apiVersion, kind).
STRUCTURAL_SOURCES = {
    "istio-trafficextension.json": (ISTIO_CRDS, "extensions.istio.io/v1alpha1", "TrafficExtension"),
    "envoy-gateway-envoyextensionpolicy.json": (EG_CRDS, "gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"),
}
#: YAML under deploy/ that is not a Kubernetes manifest, and the test that checks it.
OTHER_YAML = {
    "ratelimit/config.yaml": "tests/mesh/test_mesh_ratelimit.py (envoyproxy/ratelimit service limits)",
}


def doc(rel: str) -> dict[str, Any]:
    docs = mh.load_yaml_documents(DEPLOY / rel)
    assert len(docs) == 1, rel
    return docs[0]


def registry_validator(rel: str) -> Any:
    """The validator every machine has for ``rel``: a registry package's model or a structural schema."""
    how, _, what = MANIFESTS[rel][0].partition(":")
    if how == "model":
        from cloudcoil.models.istio.extensions import v1alpha1 as extensions
        from cloudcoil.models.istio.networking import v1alpha3 as networking

        return mh.model_validator({"WasmPlugin": extensions.WasmPlugin, "EnvoyFilter": networking.EnvoyFilter}[what])
    return mh.structural_validator(STRUCTURAL / what)


def crd_validator(crd_file: Path) -> Any:
    if not crd_file.is_file():
        pytest.skip(f"the full upstream CRDs are not here ({crd_file}): ../shared/schemas beside the "
                    "repository or MCP_POLICY_SCHEMAS; every machine still checks the manifests against "
                    "cloudcoil-models-istio and tests/fixtures/crds/")
    return mh.crd_validator(crd_file)


def test_every_manifest_is_covered() -> None:
    assert sorted(str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml")) == sorted([*MANIFESTS, *OTHER_YAML])


@pytest.mark.parametrize("rel", sorted(MANIFESTS))
def test_manifest_matches_its_registry_schema(rel: str) -> None:
    assert registry_validator(rel)(doc(rel)) == []


@pytest.mark.parametrize("rel", sorted(MANIFESTS))
def test_manifest_matches_its_full_crd(rel: str) -> None:
    assert crd_validator(MANIFESTS[rel][1])(doc(rel)) == []


@pytest.mark.parametrize("name", sorted(STRUCTURAL_SOURCES))
def test_structural_schema_is_what_the_upstream_crd_gives(name: str) -> None:
    import crd_structural  # tools/

    crd_file, api_version, kind = STRUCTURAL_SOURCES[name]
    kept = json.loads((STRUCTURAL / name).read_text(encoding="utf-8"))
    assert (kept["apiVersion"], kept["kind"]) == (api_version, kind)
    crd_validator(crd_file)  # skips when the upstream CRDs are not here
    fresh = crd_structural.extract(crd_file, api_version, kind, kept["source"]["from"])
    assert fresh == kept, f"tests/fixtures/crds/{name} drifted from {crd_file}: regenerate it with tools/crd_structural.py"


#: (manifest, mutation, expected error, caught on every machine or only by the full CRD's CEL rules).
MISTAKES = [
    # WasmPlugin has no way to ask for allow_on_headers_stop_iteration.
    ("istio/wasmplugin.yaml", lambda d: d["spec"].update(allowOnHeadersStopIteration=True),
     "Additional properties are not allowed", "everywhere"),
    ("istio/wasmplugin.yaml", lambda d: d["spec"].update(failStrategy="FAIL_CLOSED"), None, "everywhere"),
    ("istio/wasmplugin.yaml", lambda d: d["spec"].update(targetRefs=[{"kind": "Gateway", "name": "gw"}]),
     "only one of targetRefs or selector can be set", "cel"),
    ("istio/wasmplugin.yaml", lambda d: d["spec"].update(url="ftp://registry.example.org/x"),
     "url must have schema one of", "cel"),
    ("istio/trafficextension.yaml", lambda d: d["spec"].update(lua={"inlineCode": "x"}),
     "exactly one of wasm or lua must be set", "cel"),
    ("istio/trafficextension.yaml", lambda d: d["spec"]["wasm"].update(failStrategy="FAIL_CLOSED"),
     "is not one of", "everywhere"),
    ("istio/trafficextension.yaml", lambda d: d["spec"]["wasm"].update(allowOnHeadersStopIteration=True),
     "Additional properties are not allowed", "everywhere"),
    ("istio/envoyfilter.yaml", lambda d: d["spec"]["configPatches"][1]["patch"].update(operation="PREPEND"),
     None, "everywhere"),
    ("envoy-gateway/extension-policy.yaml",
     lambda d: d["spec"]["wasm"][0]["code"].update(http={"url": "https://example.org/m.wasm"}),
     "If type is HTTP, http field needs to be set", "cel"),  # http given while type is Image
    ("envoy-gateway/extension-policy.yaml", lambda d: d["spec"]["wasm"][0].update(failOpen="no"),
     "is not of type 'boolean'", "everywhere"),
    ("envoy-gateway/extension-policy.yaml", lambda d: d["spec"]["wasm"][0]["code"].update(image="registry/m:1"),
     "is not of type 'object'", "everywhere"),
]


@pytest.mark.parametrize("rel, mutate, expected, where", MISTAKES)
def test_the_validators_catch_mistakes(rel: str, mutate: Any, expected: str | None, where: str) -> None:
    bad = copy.deepcopy(doc(rel))
    mutate(bad)
    if where == "everywhere":
        errors = registry_validator(rel)(bad)
        # The models word an enum error their own way ("Input should be ..."): any error will do.
        assert errors and (expected is None or any(expected in e for e in errors)), errors
    errors = crd_validator(MANIFESTS[rel][1])(bad)
    if expected is None:
        assert errors
    else:
        assert any(expected in e for e in errors), errors


# --------------------------------------------------------------------------- #
# What the module receives
# --------------------------------------------------------------------------- #


def plugin_configs() -> dict[str, dict[str, Any]]:
    envoyfilter = doc("istio/envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"]
    return {
        "envoyfilter": json.loads(envoyfilter["typed_config"]["config"]["configuration"]["value"]),
        "wasmplugin": doc("istio/wasmplugin.yaml")["spec"]["pluginConfig"],
        "trafficextension": doc("istio/trafficextension.yaml")["spec"]["wasm"]["pluginConfig"],
        "envoy-gateway": doc("envoy-gateway/extension-policy.yaml")["spec"]["wasm"][0]["config"],
    }


def test_all_manifests_carry_the_same_policy() -> None:
    configs = plugin_configs()
    # Only the EnvoyFilter can let the module hold the headers.
    assert "hold_headers" not in configs["envoyfilter"]
    for name in ("wasmplugin", "trafficextension", "envoy-gateway"):
        assert configs[name]["hold_headers"] is False, name
        assert {k: v for k, v in configs[name].items() if k != "hold_headers"} == configs["envoyfilter"], name


def test_all_manifests_fail_closed() -> None:
    ef = doc("istio/envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]
    assert ef["failure_policy"] == "FAIL_CLOSED" and ef["allow_on_headers_stop_iteration"] is True
    assert doc("istio/wasmplugin.yaml")["spec"]["failStrategy"] == "FAIL_CLOSE"
    assert doc("istio/trafficextension.yaml")["spec"]["wasm"]["failStrategy"] == "FAIL_CLOSE"
    assert doc("envoy-gateway/extension-policy.yaml")["spec"]["wasm"][0]["failOpen"] is False


def test_envoyfilter_wasm_filter_loads_in_envoy(tmp_path: Path, wasm_path: Path) -> None:
    """The EnvoyFilter's Wasm filter configuration, with istio-agent's download replaced by the local
    module, in a bootstrap that `envoy --mode validate` accepts (module configured, policy compiled)."""
    value = copy.deepcopy(doc("istio/envoyfilter.yaml")["spec"]["configPatches"][0]["patch"]["value"])
    value["typed_config"]["config"]["vm_config"]["code"] = {"local": {"filename": str(wasm_path)}}
    config = envoy_config.build(listen_port=0, upstream_port=8000, admin_port=0, wasm_path=None,
                                   plugin_config=None, wasm=False, extra_http_filters_before=[
                                       {"name": "envoy.filters.http.wasm", "typed_config": value["typed_config"]}])
    path = tmp_path / "envoyfilter-bootstrap.yaml"
    path.write_text(envoy_config.dump_yaml(config), encoding="utf-8")
    r = mh.validate_bootstrap(path, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mcp-policy: configured" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def istio_like(tmp_path_factory: pytest.TempPathFactory,
               wasm_path: Path) -> Iterator[tuple[harness.DemoServer, harness.EnvoyHandle]]:
    """Envoy configured the way Istio configures a WasmPlugin: pluginConfig serialised to JSON in a
    StringValue, failStrategy FAIL_CLOSE -> failure_policy FAIL_CLOSED, and no
    allow_on_headers_stop_iteration (WasmPlugin cannot set it)."""
    tmp = tmp_path_factory.mktemp("istio-like")
    spec = doc("istio/wasmplugin.yaml")["spec"]
    assert spec["failStrategy"] == "FAIL_CLOSE"
    server = harness.start_demo_server(tmp, json_response=True, stateless=True)
    try:
        envoy = harness.start_envoy(tmp, plugin_config=json.dumps(spec["pluginConfig"]), upstream_port=server.port,
                                    wasm_path=wasm_path, allow_on_headers_stop_iteration=False,
                                    failure_policy="FAIL_CLOSED")
        try:
            yield server, envoy
        finally:
            envoy.stop()
    finally:
        server.proc.stop()


def test_wasmplugin_config_works_without_holding_headers(istio_like: Any) -> None:
    server, envoy = istio_like
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}

    def call(tool: str, id_: int, args: dict[str, Any]) -> httpx.Response:
        body = rpc.call(tool, id_, args)
        return httpx.post(envoy.url, json=body, headers=headers, timeout=10)

    r = call("echo", 1, {"text": "through"})
    assert r.json()["result"]["content"][0]["text"] == "through"
    r = call("delete_record", 2, {"id": 7})
    assert r.json()["error"]["code"] == DENY_CODE
    assert 'tool "delete_record" is blocked' in r.json()["error"]["message"]
    r = call("send_email", 3, {"to": "a@example.com", "body": "b"})
    assert r.json()["error"]["code"] == DENY_CODE
    assert ('tool "send_email" is only for spiffe://cluster.local/ns/agents/sa/finance-agent (caller: "")'
            in r.json()["error"]["message"])
    ids = {m.get("id") for m in server.received()}
    assert 1 in ids and not ({2, 3} & ids)
