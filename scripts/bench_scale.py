#!/usr/bin/env python3
"""Benchmark big plans through the real CLI: wall time, cost per task, growth to 10,000 tasks.

    python scripts/bench_scale.py [--sizes 1000,2000,5000,10000] [--formats planfleet,plan-dir]
                                  [--repeat 3] [--json]

For each size it writes a generated plan into a fresh git repository and runs
`bin/planfleet plan show PLAN --json` and `bin/planfleet run PLAN --dry-run --json --runner
shell` as real subprocesses (the interpreter's start included). The native YAML plan has
phases of 10 tasks, each task depending on the one before it, every phase's first task on
the last task of the phase before, and every 7th task on a task three phases back; the
plan-dir plan is the Markdown task_plan.md of scripts/bench_formats.py.

It prints the best wall time of --repeat runs, the cost per task (wall time less the
start-up of `planfleet --version`, divided by the tasks) and the growth ratio: cost per task
at the largest size / at the smallest. About 1.0 is linear; quadratic work shows about 10
for 1k -> 10k. Exit 1 when a ratio is above --max-ratio (default 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_formats import PER_PHASE, Files, make_repo, plan_dir, selection  # noqa: E402

LAUNCHER = ROOT / "bin" / "planfleet"


def native(n: int) -> tuple[str, Files]:
    """A native plan with dependencies inside phases, between phases, and across phases."""
    lines = ["planfleet: 1", f"name: scale-{n}", "defaults: {max_attempts: 2}", "phases:"]
    for k, start in enumerate(range(0, n, PER_PHASE)):
        lines += [f"  - id: p{k}", f"    title: Phase {k}", "    blast_radius: tests", "    tasks:"]
        for i in range(start, min(n, start + PER_PHASE)):
            deps = [f"t{i - 1}"] if i else []
            if i % 7 == 0 and i >= 3 * PER_PHASE:
                deps.append(f"t{i - 3 * PER_PHASE}")
            lines += [
                f"      - id: t{i}",
                f"        title: Task {i}",
                f"        files: {{create: [src/m{i}.py], modify: [src/pkg{k % 50}.py]}}",
                f"        verify: ['test -f src/m{i}.py']",
                f"        commands: ['touch src/m{i}.py']",
                "        acceptance: [module exists, imports cleanly]",
            ]
            if deps:
                lines.append(f"        depends_on: [{', '.join(deps)}]")
    rel = "plans/scale.plan.yaml"
    return rel, {rel: "\n".join(lines) + "\n"}


GENERATORS = {"planfleet": native, "plan-dir": plan_dir}
OPS = {
    "show": ["plan", "show", "{plan}", "--json"],
    "dry-run": ["run", "{plan}", "--dry-run", "--json", "--runner", "shell"],
}


def wall(repo: Path, argv: list[str], repeat: int) -> float:
    """Best wall-clock seconds of ``bin/planfleet ARGV`` in ``repo`` over ``repeat`` runs."""
    env = {**os.environ, "PLANFLEET_PYTHON": sys.executable}
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [str(LAUNCHER), *argv], cwd=repo, env=env, capture_output=True, check=False
        )
        best = min(best, time.perf_counter() - start)
        if done.returncode not in (0, 1):
            sys.exit(f"{argv} in {repo}: exit {done.returncode}\n{done.stderr.decode()[-2000:]}")
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,2000,5000,10000", help="task counts")
    ap.add_argument("--formats", default=",".join(GENERATORS), help="planfleet and/or plan-dir")
    ap.add_argument("--ops", default=",".join(OPS), help="show and/or dry-run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    ap.add_argument("--max-ratio", type=float, default=1.2, help="exit 1 above this growth")
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    ns = ap.parse_args()
    sizes, names, ops = selection(ap, ns, GENERATORS, OPS)
    rows: list[dict[str, object]] = []
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="planfleet-scale-") as tmp:
        make_repo(Path(tmp) / "empty", {"README.md": "x\n"})
        startup = wall(Path(tmp) / "empty", ["--version"], ns.repeat)
        print(f"start-up (planfleet --version): {startup:.3f} s")
        head = "".join(f"{f'{n} s':>9}{'ms/task':>9}" for n in sizes)
        print(f"{'format':<10} {'op':<8}{head}{'ratio':>8}")
        for name in names:
            repos = {}
            for n in sizes:
                plan, files = GENERATORS[name](n)
                repos[n] = (Path(tmp) / f"{name}-{n}", plan)
                make_repo(repos[n][0], files)
            for op in ops:
                secs, per_task = {}, {}
                for n in sizes:
                    repo, plan = repos[n]
                    secs[n] = wall(repo, [a.format(plan=plan) for a in OPS[op]], ns.repeat)
                    per_task[n] = max(secs[n] - startup, 1e-9) / n
                ratio = per_task[sizes[-1]] / per_task[sizes[0]]
                worst = max(worst, ratio)
                cells = "".join(f"{secs[n]:>9.3f}{per_task[n] * 1000:>9.3f}" for n in sizes)
                print(f"{name:<10} {op:<8}{cells}{ratio:>8.2f}", flush=True)
                rows.append({"format": name, "op": op, "seconds": secs, "ratio": ratio})
    print("ratio = cost per task (wall less start-up) at the largest size / at the smallest")
    if ns.json:
        print(json.dumps({"startup_s": startup, "rows": rows, "worst_ratio": round(worst, 2)}))
    return 0 if worst <= ns.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
