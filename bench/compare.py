#!/usr/bin/env python3
"""`make bench-compare BASE=a.wasm NEW=b.wasm`: two builds of the module,
measured in alternating runs of bench/run.py.

On a shared or drifting machine one `make bench` per build is not enough to
see a change of 10 %: the host's speed can move more than that between two
runs minutes apart (bench/RESULTS.md, 2026-12-07). This runs the end-to-end
part of bench/run.py for BASE, then NEW, then BASE again… (`BENCH_ROUNDS`
rounds, default 3; scenarios `BENCH_SCENARIOS`, default `b`), and reports
the CPU per request of the Envoy under test for every phase, every round,
and the change of the medians. Other BENCH_* variables pass through to
bench/run.py (phase lengths, body sizes…).

Output: bench/compare.md (or BENCH_COMPARE_MD) and the runs' reports in the
work directory. Standard library only.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = ("single", "fixed", "max")
WORKLOADS = ("tools_call", "tools_list")


def run(module: Path, work: Path, tag: str) -> dict:
    """One run of bench/run.py's end-to-end part for `module`."""
    env = dict(os.environ)
    env.setdefault("BENCH_SCENARIOS", "b")
    env.setdefault("BENCH_BODY_SIZES", "")
    env.update({
        "BENCH_MODULE": str(module),
        "BENCH_MICRO": "0",
        "BENCH_MEMORY": "0",
        "BENCH_STARTUP_RUNS": "1",
        "BENCH_WORK": str(work / tag),
        "BENCH_REPORT_JSON": str(work / f"{tag}.json"),
        "BENCH_REPORT_MD": str(work / f"{tag}.md"),
    })
    with open(work / f"{tag}.log", "w") as log:
        subprocess.run([sys.executable, str(REPO / "bench/run.py")], env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=1800)
    return json.loads((work / f"{tag}.json").read_text())


def cpu(report: dict) -> dict[tuple[str, str, str], float]:
    """CPU µs per request by (scenario, workload, phase)."""
    out = {}
    for name, sc in report["e2e"]["scenarios"].items():
        for wl in WORKLOADS:
            for ph in PHASES:
                v = sc.get(wl, {}).get(ph, {}).get("cpu_us_per_request")
                if v is not None:
                    out[(name, wl, ph)] = float(v)
    return out


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py BASE.wasm NEW.wasm")
    base, new = (Path(a).resolve() for a in sys.argv[1:])
    for m in (base, new):
        if not m.is_file():
            sys.exit(f"no module at {m}")
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    work = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="mcp-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"base": [], "new": []}
    for r in range(1, rounds + 1):
        for label, module in (("base", base), ("new", new)):
            print(f"[compare] round {r}/{rounds}: {label} ({module.name})", flush=True)
            runs[label].append(cpu(run(module, work, f"{label}-{r}")))
    keys = sorted(set(runs["base"][0]) & set(runs["new"][0]),
                  key=lambda k: (k[0], WORKLOADS.index(k[1]), PHASES.index(k[2])))
    lines = [
        "# Two builds in alternating runs",
        "",
        f"BASE `{base}` ({base.stat().st_size:,} bytes), NEW `{new}` ({new.stat().st_size:,} bytes); "
        f"{rounds} round(s), each BASE then NEW; CPU µs per request of the Envoy under test "
        "(user + system, per phase; bench/README.md). Runs in " + str(work) + ".",
        "",
        "| scenario | workload | phase | BASE per round | NEW per round | median BASE → NEW | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        b = [run_[k] for run_ in runs["base"]]
        n = [run_[k] for run_ in runs["new"]]
        mb, mn = statistics.median(b), statistics.median(n)
        change = f"{(mn - mb) / mb:+.0%}" if mb else "-"
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {' / '.join(f'{x:.0f}' for x in b)} | "
                     f"{' / '.join(f'{x:.0f}' for x in n)} | {mb:.0f} → {mn:.0f} | {change} |")
    out = Path(os.environ.get("BENCH_COMPARE_MD", REPO / "bench/compare.md"))
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"[compare] wrote {out}")


if __name__ == "__main__":
    main()
