"""``make bench``: run every benchmark in its own process, then print all figures in one table.

Each benchmark prints its own table as it finishes and saves its rows to bench/.results/; the
summary at the end repeats every figure with its same-run baseline and ratio, and writes it as
Markdown to bench/.results/summary.md (what bench/README.md's "Latest figures" are copied from).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.common import REPO, fmt, machine

BENCHMARKS = [
    ("bench_polling", "#2 polling economy"),
    ("bench_parse", "#4 parse cost"),
    ("bench_ratelimit", "#3 rate-limit safety"),
    ("bench_scaling", "scaling check (docs/scaling.md)"),
    ("bench_download", "#5 downloads"),
    ("bench_triggerer", "#1 triggerer density"),
]
RESULTS = REPO / "bench" / ".results"


def summary(durations: dict[str, float], total: float) -> str:
    info = machine()
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
        f"Linux {info['kernel']}. `make bench` took {total / 60:.1f} min.",
        "",
        "| benchmark | metric | value | baseline (same run) | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for module, title in BENCHMARKS:
        path = RESULTS / f"{module.removeprefix('bench_')}.json"
        if not path.exists():
            lines.append(f"| {title} | (did not finish) | | | | | |")
            continue
        data: dict[str, Any] = json.loads(path.read_text())
        for row in data["rows"]:
            baseline = "-"
            if row["baseline"] is not None:
                baseline = fmt(row["baseline"], row["unit"]) + (
                    f" ({row['baseline_name']})" if row["baseline_name"] else ""
                )
            ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
            met = {True: "yes", False: "**no**", None: ""}[row["met"]]
            metric = row["metric"].strip()
            lines.append(
                f"| {title} ({durations.get(module, 0):.0f} s) | {metric} | {fmt(row['value'], row['unit'])} | "
                f"{baseline} | {ratio} | {row['target'] or ''} | {met} |"
            )
            title = ""
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args()
    if RESULTS.exists():
        shutil.rmtree(RESULTS)
    RESULTS.mkdir()
    durations: dict[str, float] = {}
    failed = []
    start = time.monotonic()
    for module, title in BENCHMARKS:
        if args.only and module not in args.only:
            continue
        print(f"\n>>> {title} (bench/{module}.py)", flush=True)
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", f"bench.{module}"], cwd=REPO, check=False)
        durations[module] = time.monotonic() - began
        print(f"<<< {title}: {durations[module]:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(module)
    total = time.monotonic() - start
    text = summary(durations, total)
    (RESULTS / "summary.md").write_text(text)
    print("\n== Summary (also in bench/.results/summary.md)\n")
    print(text)
    if failed:
        print(f"FAILED to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
