"""tools/build_oci.py: the module as an OCI image in the format Istio pulls with `oci://`.

The image layout is checked the way an OCI client reads it (every digest and
size right, index -> manifest -> config and layer), the layer the way
Istio's image fetcher reads the Wasm image spec's *compat* variant (one
`application/vnd.oci.image.layer.v1.tar+gzip` layer, a tar.gz holding
`plugin.wasm`, which must be the module byte for byte), and the build is
reproducible. With skopeo and docker-registry installed (Debian packages; not
required), the image is also pushed to a registry on loopback and read back.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from support import harness
from support import mesh as mh

sys.path.insert(0, str(mh.TOOLS))
import build_oci  # noqa: E402


def blob(layout: Path, digest: str) -> bytes:
    algo, hexdigest = digest.split(":", 1)
    assert algo == "sha256"
    data = (layout / "blobs" / "sha256" / hexdigest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexdigest, digest
    return data


def read_descriptor(layout: Path, desc: dict[str, Any]) -> bytes:
    data = blob(layout, desc["digest"])
    assert len(data) == desc["size"], desc
    return data


def wasm_from_compat_image(layout: Path, tag: str) -> bytes:
    """What Istio's fetcher does with a compat-variant image, re-stated: a single
    tar+gzip layer whose archive holds plugin.wasm."""
    index = json.loads((layout / "index.json").read_text())
    (mdesc,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    manifest = json.loads(read_descriptor(layout, mdesc))
    assert manifest.get("mediaType") != "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest["layers"]) == 1
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(read_descriptor(layout, layer)))) as tar:
        for member in tar.getmembers():
            if Path(member.name).name == "plugin.wasm":
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
    raise AssertionError("plugin.wasm not in the layer")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> tuple[Path, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("oci")
    result = build_oci.build(wasm_path, tmp / "layout", tag="0.1.0", archive=tmp / "image.tar")
    return tmp / "layout", result, tmp / "image.tar"


def test_layout_is_a_valid_oci_image(image: Any) -> None:
    layout, result, _ = image
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (mdesc,) = index["manifests"]
    assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert mdesc["digest"] == result["manifest"]["digest"]
    manifest = json.loads(read_descriptor(layout, mdesc))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == mdesc["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(read_descriptor(layout, manifest["config"]))
    assert (config["architecture"], config["os"]) == ("wasm", "wasip1")
    # diff_ids: digests of the uncompressed layers.
    (layer,) = manifest["layers"]
    uncompressed = gzip.decompress(read_descriptor(layout, layer))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]}
    # Nothing else in the layout.
    referenced = {d["digest"].split(":")[1] for d in (mdesc, manifest["config"], layer)}
    assert {p.name for p in (layout / "blobs" / "sha256").iterdir()} == referenced


def test_istio_compat_variant_yields_the_module(image: Any, wasm_path: Path) -> None:
    layout, result, _ = image
    assert wasm_from_compat_image(layout, "0.1.0") == wasm_path.read_bytes()
    assert result["wasm_sha256"] == hashlib.sha256(wasm_path.read_bytes()).hexdigest()


def test_build_is_reproducible(image: Any, tmp_path: Path, wasm_path: Path) -> None:
    layout, result, archive = image
    again = build_oci.build(wasm_path, tmp_path / "again", tag="0.1.0", archive=tmp_path / "again.tar")
    assert again["manifest"]["digest"] == result["manifest"]["digest"]
    assert (tmp_path / "again.tar").read_bytes() == archive.read_bytes()


def test_archive_holds_the_layout(image: Any) -> None:
    layout, _, archive = image
    with tarfile.open(archive) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file()}


def test_cli_prints_the_digest_istio_checks(tmp_path: Path, wasm_path: Path) -> None:
    r = subprocess.run([sys.executable, str(mh.TOOLS / "build_oci.py"), "--wasm", str(wasm_path),
                        "--out", str(tmp_path / "cli"), "--tag", "9.9.9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    digest = json.loads((tmp_path / "cli" / "index.json").read_text())["manifests"][0]["digest"]
    assert f"sha256: {digest.split(':')[1]}" in r.stdout


def test_refuses_a_file_that_is_not_wasm(tmp_path: Path) -> None:
    bogus = tmp_path / "x.wasm"
    bogus.write_bytes(b"not wasm")
    with pytest.raises(ValueError):
        build_oci.build(bogus, tmp_path / "out")


@pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("docker-registry")),
                    reason="needs skopeo and docker-registry (Debian packages) to push to a loopback registry")
def test_pushes_to_a_registry_and_keeps_its_digest(image: Any, tmp_path: Path) -> None:
    layout, result, _ = image
    port = harness.free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n", encoding="utf-8")
    with harness.Process([shutil.which("docker-registry"), "serve", str(cfg)], name="registry",
                         log_dir=tmp_path) as registry:
        ref = f"docker://127.0.0.1:{port}/mcp-policy:0.1.0"
        for _ in range(50):
            push = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:0.1.0", ref],
                                  capture_output=True, text=True, timeout=60)
            if push.returncode == 0 or "connection refused" not in push.stderr:
                break
            registry.check_running("while waiting for it")
            registry.wait_exit(0.1)
        assert push.returncode == 0, push.stderr
        seen = subprocess.run(["skopeo", "inspect", "--tls-verify=false", ref], capture_output=True, text=True,
                              timeout=60)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)["Digest"] == result["manifest"]["digest"]
