#!/usr/bin/env python3
"""Benchmark what the gates cost per task: this checkout against an earlier revision.

Generates a Python package with a pytest suite and a plan of tasks that each add a module
and its test (a real red/green test), runs it with the shell runner through
``python -m planfleet`` from this checkout and from a temporary worktree of ``--before REV``
(the same interpreter and libraries, only the engine's code differs), and prints per side
the wall time per task and the median time from dispatch to verified (the agent's commands
plus every gate), with the difference. Usage:

    python scripts/bench_gates.py --before REV [--tasks N] [--parallel N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_taskpath import _ts, git  # a script beside this one

ROOT = Path(__file__).resolve().parents[1]
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"
TEST = (
    "import unittest\n\nfrom calc.m{i} import f{i}\n\n\nclass T(unittest.TestCase):\n"
    "    def test_f{i}(self):\n        self.assertEqual(f{i}(2), {double})\n"
)


def make_repo(where: Path, tasks: int) -> Path:
    repo = where / "repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "calc" / "base.py").write_text("def one():\n    return 1\n")
    (repo / "tests" / "test_base.py").write_text(
        "import unittest\n\nfrom calc.base import one\n\n\nclass B(unittest.TestCase):\n"
        "    def test_one(self):\n        self.assertEqual(one(), 1)\n"
    )
    lines = [
        "planfleet: 1",
        "name: p",
        f"defaults: {{test_command: {json.dumps(PYTEST)}}}",
        "phases:",
        "  - id: one",
        "    tasks:",
    ]
    for i in range(tasks):
        module = f"def f{i}(x):\\n    return 2 * x\\n"
        test = TEST.format(i=i, double=4).replace("\n", "\\n")
        lines += [
            f"      - id: t{i:02}",
            f"        title: task {i}",
            f"        files: {{create: [calc/m{i}.py, tests/test_m{i}.py]}}",
            "        commands:",
            f"          - printf '{module}' > calc/m{i}.py",
            f"          - printf '{test}' > tests/test_m{i}.py",
        ]
    (repo / "plans").mkdir()
    (repo / "plans" / "p.plan.yaml").write_text("\n".join(lines) + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "start")
    return repo


def run_side(src: Path, where: Path, tasks: int, parallel: int) -> dict[str, float]:
    repo = make_repo(where, tasks)
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, "-m", "planfleet", "-C", str(repo), "run", "plans/p.plan.yaml"]
    argv += ["--runner", "shell", "--max-parallel", str(parallel), "--no-projections", "--json"]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"the run from {src} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    state = json.loads((repo / ".planfleet" / "state" / "p.json").read_text())
    first: dict[tuple[str, str], float] = {}
    for e in state["events"]:
        first.setdefault((e["event"], e["task"]), _ts(e["ts"]))
    ids = [t for t in state["tasks"] if not t.endswith(":gate")]
    judged = [first[("verified", t)] - first[("dispatched", t)] for t in ids]
    return {
        "wall_per_task_ms": wall / tasks * 1000,
        "dispatch_to_verified_ms": statistics.median(judged) * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, metavar="REV")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="runs per side (the median is shown)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="planfleet-bench-gates-") as tmp:
        old = Path(tmp) / "before"
        git(ROOT, "worktree", "add", "-q", "--detach", str(old), args.before)
        try:
            sides = {"before": old / "src", "after": ROOT / "src"}
            found: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
            for n in range(args.runs):  # interleaved: a busy moment hits both sides alike
                for side, src in sides.items():
                    where = Path(tmp) / f"{side}-{n}"
                    where.mkdir()
                    found[side].append(run_side(src, where, args.tasks, args.parallel))
        finally:
            git(ROOT, "worktree", "remove", "--force", str(old))
    print(
        f"{args.tasks} tasks adding a module and its test, --max-parallel {args.parallel}, "
        f"median of {args.runs} runs per side"
    )
    medians = {
        side: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for side, runs in found.items()
    }
    for key in ("wall_per_task_ms", "dispatch_to_verified_ms"):
        b, a = medians["before"][key], medians["after"][key]
        name = key.removesuffix("_ms").replace("_", " ")
        print(
            f"  {name:24} before {b:8.1f} ms   after {a:8.1f} ms   +{a - b:7.1f} ms ({a / b:5.2f}x)"
        )
    print(json.dumps({"before": args.before, **medians}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
