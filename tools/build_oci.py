#!/usr/bin/env python3
"""Package the module as an OCI image that Istio (and Envoy Gateway) can pull with ``oci://``.

    python tools/build_oci.py --wasm target/wasm32-wasip1/release/mcp_policy.wasm \\
        --out build/oci/mcp-policy --tag 0.1.0 [--archive build/oci/mcp-policy.tar]

No Docker, no registry client: the result is an OCI image layout directory
(``oci-layout``, ``index.json``, ``blobs/sha256/...``) and, with
``--archive``, the same layout as one tar file (an "oci-archive"). Push it
with any OCI tool, for example::

    skopeo copy oci:build/oci/mcp-policy:0.1.0 docker://registry.example.org/mcp-policy:0.1.0
    crane push build/oci/mcp-policy registry.example.org/mcp-policy:0.1.0
    oras cp --from-oci-layout build/oci/mcp-policy:0.1.0 registry.example.org/mcp-policy:0.1.0

The format is the *compat* variant of the Wasm image specification that
Istio's image fetcher reads first: an ordinary OCI image whose single layer
(``application/vnd.oci.image.layer.v1.tar+gzip``) is a tar.gz holding one
file, ``plugin.wasm``. Because it is an ordinary image, every registry and
image tool handles it. (Istio also reads the *oci* variant, with
``application/vnd.module.wasm.content.layer.v1+wasm`` layers, but only with
exactly two layers; it does not read a lone raw-Wasm layer, nor the
``application/wasm`` artifact layout of newer Wasm tooling.)

The build is reproducible: fixed timestamps, owners and modes in the tar,
no timestamp in the gzip header, no ``created`` in the config. The same
module always gives the same manifest digest, which the script prints: that
digest is what Istio's ``sha256`` field (and ``oci://...@sha256:<digest>``)
checks for an OCI image. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
WASM_MAGIC = b"\0asm"

__all__ = ["build", "layer_bytes"]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def layer_bytes(wasm: bytes) -> tuple[bytes, bytes]:
    """(uncompressed tar, tar.gz) with ``plugin.wasm`` alone, byte for byte reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(tar_bytes)
    return tar_bytes, packed.getvalue()


def _write_blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = _digest(data)
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def build(wasm_path: str | os.PathLike[str], out: str | os.PathLike[str], *, tag: str = "latest",
          archive: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write the OCI layout into ``out`` (replacing it); return the descriptors and digests."""
    wasm = Path(wasm_path).read_bytes()
    if not wasm.startswith(WASM_MAGIC):
        raise ValueError(f"{wasm_path} is not a WebAssembly module")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    tar_bytes, layer = layer_bytes(wasm)
    layer_desc = {"mediaType": MEDIA_LAYER, **_write_blob(blobs, layer),
                  "annotations": {"org.opencontainers.image.title": PLUGIN_FILE}}
    config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
    }
    config_desc = {"mediaType": MEDIA_CONFIG, **_write_blob(blobs, _json(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
        "annotations": {
            "org.opencontainers.image.title": "mcp-policy",
            "org.opencontainers.image.description": "mcp-policy proxy-wasm module (Wasm image spec, compat variant)",
            "org.opencontainers.image.version": tag,
        },
    }
    manifest_desc = {"mediaType": MEDIA_MANIFEST, **_write_blob(blobs, _json(manifest)),
                     "annotations": {"org.opencontainers.image.ref.name": tag}}
    (out / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                            "manifests": [manifest_desc]}))
    if archive is not None:
        _archive(out, Path(archive))
    return {
        "manifest": manifest_desc,
        "config": config_desc,
        "layer": layer_desc,
        "wasm_sha256": hashlib.sha256(wasm).hexdigest(),
    }


def _archive(layout: Path, archive: Path) -> None:
    """The layout as a reproducible tar (an oci-archive)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Package mcp_policy.wasm as an OCI image layout (Istio oci://).")
    parser.add_argument("--wasm", default="target/wasm32-wasip1/release/mcp_policy.wasm")
    parser.add_argument("--out", default="build/oci/mcp-policy", help="OCI layout directory (replaced)")
    parser.add_argument("--tag", default="latest", help="tag recorded in index.json (org.opencontainers.image.ref.name)")
    parser.add_argument("--archive", help="also write the layout as one tar file (oci-archive)")
    args = parser.parse_args(argv)
    result = build(args.wasm, args.out, tag=args.tag, archive=args.archive)
    digest = result["manifest"]["digest"]
    print(f"OCI image layout {args.out} (tag {args.tag}): manifest {digest}, "
          f"layer {result['layer']['digest']} ({result['layer']['size']} bytes)")
    print(f"Istio: url: oci://<registry>/mcp-policy:{args.tag}  sha256: {digest.split(':', 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
