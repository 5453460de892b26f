#!/usr/bin/env python3
"""Summarise a V8 CPU profile (`node --cpu-prof`, `make profile-wasm`).

    python3 bench/cpuprofile.py FILE.cpuprofile [--top N] [--match REGEX]

Prints the functions with the most samples of their own (self time) and,
for the functions matching REGEX (default: the mcp_policy crate), the share
of samples they or their callees took (inclusive time). Wasm function names
are the Rust symbols of the module's name section.
"""
from __future__ import annotations

import argparse
import collections
import json
import re


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--match", default=r"mcp_policy")
    args = ap.parse_args()

    with open(args.profile, encoding="utf-8") as f:
        prof = json.load(f)
    nodes = {n["id"]: n for n in prof["nodes"]}
    parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", [])}
    samples = collections.Counter(prof["samples"])
    total = sum(samples.values()) or 1

    def name(node_id: int) -> str:
        return nodes[node_id]["callFrame"]["functionName"] or "(anonymous)"

    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for node_id, count in samples.items():
        own[name(node_id)] += count
        seen: set[str] = set()
        at: int | None = node_id
        while at is not None:
            n = name(at)
            if n not in seen:
                inclusive[n] += count
                seen.add(n)
            at = parent.get(at)

    print(f"{total} samples")
    print("self time:")
    for n, c in own.most_common(args.top):
        print(f"  {100 * c / total:5.1f}%  {n[:140]}")
    print(f"inclusive time, functions matching {args.match!r}:")
    pattern = re.compile(args.match)
    shown = 0
    for n, c in inclusive.most_common():
        if pattern.search(n) and shown < args.top:
            print(f"  {100 * c / total:5.1f}%  {n[:140]}")
            shown += 1


if __name__ == "__main__":
    main()
