"""The shipped mesh configurations in envoy/ (ingress-jwt, egress, mtls-client,
mtls-server): each is what tools/mesh_config.py renders from
envoy/policies/, each loads in a real Envoy 1.40 exactly as shipped
(`envoy --mode validate` also runs the module's on_configure, so the embedded
policy must compile), and each that runs the module fails closed and holds
the headers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import mesh as mh

SHIPPED = sorted(mh.mesh_config.CONFIGS)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Path:
    return mh.shipped_tree(tmp_path_factory.mktemp("shipped"), wasm_path)


def test_mesh_configs_are_up_to_date() -> None:
    r = subprocess.run([sys.executable, str(mh.TOOLS / "mesh_config.py"), "--check"],
                       cwd=mh.REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mesh_config_validates(name: str, tree: Path) -> None:
    path = mh.REPO / "envoy" / f"{name}.yaml"
    r = mh.validate_shipped(path, tree)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "OK" in r.stdout, out
    plugin = mh.mesh_config.plugin_config_for(name)
    if plugin is not None:
        assert "mcp-policy: configured" in out, out
        for module in plugin["policy"]["modules"]:
            assert module in out, (module, out)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mesh_config_fails_closed(name: str) -> None:
    import yaml

    config = yaml.safe_load((mh.REPO / "envoy" / f"{name}.yaml").read_text(encoding="utf-8"))
    wasm = []
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"][0]["typed_config"]["http_filters"]:
                if f["name"] == "envoy.filters.http.wasm":
                    wasm.append(f["typed_config"]["config"])
    if mh.mesh_config.CONFIGS[name][1] is None:
        assert wasm == []  # mtls-client: policy runs on the server side
        return
    assert wasm, "no mcp-policy filter"
    for cfg in wasm:
        assert cfg["failure_policy"] == "FAIL_CLOSED"
        assert cfg["allow_on_headers_stop_iteration"] is True


@pytest.mark.parametrize("name", ["ingress-jwt", "mtls-server", "mtls-client"])
def test_tls_listeners_and_clusters_are_tls13_with_ml_kem(name: str) -> None:
    import yaml

    config = yaml.safe_load((mh.REPO / "envoy" / f"{name}.yaml").read_text(encoding="utf-8"))
    contexts = [chain["transport_socket"]["typed_config"]["common_tls_context"]
                for listener in config["static_resources"]["listeners"]
                for chain in listener["filter_chains"] if "transport_socket" in chain]
    contexts += [c["transport_socket"]["typed_config"]["common_tls_context"]
                 for c in config["static_resources"]["clusters"] if "transport_socket" in c]
    assert contexts
    for ctx in contexts:
        params = ctx["tls_params"]
        assert params["tls_minimum_protocol_version"] == "TLSv1_3"
        assert params["ecdh_curves"][0] == "X25519MLKEM768"


def test_the_repository_ships_no_private_key() -> None:
    marker = b"PRIVATE" + b" KEY-----"
    tracked = subprocess.run(["git", "ls-files"], cwd=mh.REPO, capture_output=True, text=True, timeout=30)
    files = {mh.REPO / rel for rel in tracked.stdout.split()}
    for top in ("envoy", "deploy", "tools", "tests", "docs"):
        # Build output, installed third-party packages (tests/ts/node_modules,
        # from npm ci) and Python's bytecode caches (this very test's holds the
        # marker, which the compiler folds into one constant) are not ours to ship.
        files |= {p for p in (mh.REPO / top).rglob("*")
                  if not {"target", "node_modules", "__pycache__"} & set(p.parts)}
    offenders = [str(p.relative_to(mh.REPO)) for p in sorted(files)
                 if p.is_file() and p.stat().st_size < 5_000_000 and marker in p.read_bytes()]
    assert offenders == []
