#!/usr/bin/env python3
"""The playground's one-click examples (docs/playground.md): playground/pkg/examples.json.

policies: policies/default.rego alone, then each library policy of
policies/library/ next to it (tests left out, as the filter never loads them);
messages: the recorded messages of tests/fixtures/messages/ (the files
`mcp-policy eval` reads), as text.
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "playground/pkg/examples.json"
default = (root / "policies/default.rego").read_text()
policies = {"default": {"modules": {"default.rego": default}, "data": {}}}
for p in sorted((root / "policies/library").glob("*.rego")):
    if p.name.endswith("_test.rego"):
        continue
    policies[f"library/{p.stem}"] = {
        "modules": {"default.rego": default, f"library/{p.name}": p.read_text()},
        "data": {},
    }
messages = {p.name: p.read_text() for p in sorted((root / "tests/fixtures/messages").glob("*.json"))}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"policies": policies, "messages": messages}, indent=1) + "\n")
print(f"wrote {out.relative_to(root)}: {len(policies)} policies, {len(messages)} messages")
