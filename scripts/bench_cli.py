#!/usr/bin/env python3
"""Benchmark `planfleet plan show --json` against the cost of importing yaml + jsonschema.

Generates planfleet-format plans of 50, 500 and 2,000 tasks (10 tasks a phase, random
dependencies on earlier tasks, files and verify commands), runs the command several times
each, and prints median wall times and their ratio to `python3 -c 'import yaml, jsonschema'`
measured in the same run. Usage: scripts/bench_cli.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (50, 500, 2000)


def make_plan(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = ["planfleet: 1", f"name: bench-{n}", f"title: Benchmark plan with {n} tasks", "phases:"]
    per_phase = 10
    for p in range(0, n, per_phase):
        pid = f"p{p // per_phase}"
        lines += [
            f"  - id: {pid}",
            f"    title: Phase {pid}",
            "    acceptance: [tests pass]",
            "    blast_radius: tests",
            "    tasks:",
        ]
        if p:
            lines.insert(len(lines) - 4, f"    depends_on: [p{p // per_phase - 1}]")
        for i in range(p, min(n, p + per_phase)):
            deps = (
                sorted({f"t{j}" for j in rng.sample(range(p, i), min(2, i - p))}) if i > p else []
            )
            lines += [
                f"      - id: t{i}",
                f"        title: Task number {i}",
                f"        depends_on: [{', '.join(deps)}]",
                f"        files: {{create: [src/m{i}.py], modify: [src/common{i % 7}.py]}}",
                f"        verify: ['python -m pytest tests/test_m{i}.py']",
                f"        estimate: {rng.randint(1, 5)}",
            ]
    return "\n".join(lines) + "\n"


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(argv: list[str], cwd: Path, runs: int) -> float:
    timed(argv, cwd)  # warm the page cache
    return statistics.median(timed(argv, cwd) for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--json", action="store_true", help="print only the JSON result line")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        baseline = median_of([py, "-c", "import yaml, jsonschema"], repo, args.runs)
        rows = []
        for n in SIZES:
            (repo / f"bench{n}.plan.yaml").write_text(make_plan(n))
            t = median_of(
                [py, "-m", "planfleet", "plan", "show", f"bench{n}.plan.yaml", "--json"],
                repo,
                args.runs,
            )
            rows.append({"tasks": n, "median_s": round(t, 4), "ratio": round(t / baseline, 2)})
        (repo / "shim.plan.yaml").write_text(make_plan(500))
        shim = median_of(
            [str(ROOT / "bin" / "planfleet"), "plan", "show", "shim.plan.yaml", "--json"],
            repo,
            args.runs,
        )
    per_task_ms = [
        (r["median_s"] - rows[0]["median_s"]) / (r["tasks"] - 50) * 1000 for r in rows[1:]
    ]
    result = {
        "baseline_import_yaml_jsonschema_s": round(baseline, 4),
        "runs": args.runs,
        "sizes": rows,
        "bin_planfleet_500_s": round(shim, 4),
        "bin_planfleet_500_ratio": round(shim / baseline, 2),
        "marginal_ms_per_task": [round(x, 3) for x in per_task_ms],
    }
    if not args.json:
        print(
            f"baseline `python -c 'import yaml, jsonschema'`: {baseline * 1000:.1f} ms "
            f"(median of {args.runs})"
        )
        print(f"{'tasks':>6}  {'median ms':>10}  {'ratio':>6}")
        for r in rows:
            print(f"{r['tasks']:>6}  {r['median_s'] * 1000:>10.1f}  {r['ratio']:>6.2f}")
        print(f"bin/planfleet at 500 tasks: {shim * 1000:.1f} ms (ratio {shim / baseline:.2f})")
        print(
            "marginal ms per task (500, 2000 vs 50): " + ", ".join(f"{x:.3f}" for x in per_task_ms)
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
