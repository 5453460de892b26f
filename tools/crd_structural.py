#!/usr/bin/env python3
"""Write the structural schema of a CRD kind as test data: types, required fields and enums only.

The manifests in deploy/ are validated on every machine (tests/mesh/test_mesh_manifests.py).
Istio's WasmPlugin and EnvoyFilter are covered by a registry package (PyPI
cloudcoil-models-istio); Istio's TrafficExtension and Envoy Gateway's EnvoyExtensionPolicy are
not covered by any package, so their shape is kept in tests/fixtures/crds/ as a structural schema
extracted from the upstream CRD by this script, with its source recorded.

    python3 tools/crd_structural.py CRD.yaml API_VERSION KIND SOURCE > tests/fixtures/crds/NAME.json

SOURCE is a free-text record of where the CRD file came from (repository and commit). Kept:
``type``, ``properties``, ``items``, ``required``, ``enum``, ``additionalProperties``,
``nullable`` and ``x-kubernetes-preserve-unknown-fields``; dropped: descriptions, patterns,
formats, bounds and the CEL rules (those are checked against the full CRD when ../shared is
present). tests/mesh/test_mesh_manifests.py regenerates the files from ../shared/schemas when it
is there and fails if they drifted.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

KEEP_SCALAR = ("type", "enum", "required", "nullable", "x-kubernetes-preserve-unknown-fields")


def structural(schema: Any) -> Any:
    """``schema`` reduced to its structure (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {k: schema[k] for k in KEEP_SCALAR if k in schema}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: structural(v) for k, v in sorted(schema["properties"].items())}
    if isinstance(schema.get("items"), dict):
        out["items"] = structural(schema["items"])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = structural(extra)
    elif isinstance(extra, bool):
        out["additionalProperties"] = extra
    return out


def extract(crd_file: Path, api_version: str, kind: str, source: str) -> dict[str, Any]:
    """The structural schema of ``kind`` at ``api_version`` in ``crd_file``, with its provenance."""
    text = crd_file.read_bytes()
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        if spec["names"]["kind"] != kind:
            continue
        for version in spec["versions"]:
            if f"{spec['group']}/{version['name']}" == api_version:
                return {
                    "source": {
                        "crd": doc["metadata"]["name"],
                        "file": crd_file.name,
                        "file_sha256": hashlib.sha256(text).hexdigest(),
                        "from": source,
                        "generator": "tools/crd_structural.py",
                    },
                    "apiVersion": api_version,
                    "kind": kind,
                    "schema": structural(version["schema"]["openAPIV3Schema"]),
                }
    raise SystemExit(f"{crd_file}: no {kind} at {api_version}")


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    out = extract(Path(argv[1]), argv[2], argv[3], argv[4])
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
