#!/usr/bin/env python3
"""Benchmark the way of one task from "ready" to "merged", and the git processes it starts.

Runs real plans of no-op shell tasks through `bin/planfleet run` on a generated repository
of 1,000 files, with a `git` on PATH that logs each call (a shell script: no Python start):

- a chain of 20 tasks at --max-parallel 1, where each step of one task has the engine to
  itself: per task the median time from ready (its dependency merged) to dispatched,
  dispatched to verified, verified to merged, and merged to the next task's dispatch, with
  the git processes started in each step;
- 60 independent tasks at --max-parallel 3: wall time per task.

Usage: scripts/bench_taskpath.py [--chain N] [--wide N] [--files N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("ready>dispatched", "dispatched>verified", "verified>merged", "merged>next")
WRAPPER = """#!/bin/sh
printf '@%s %s %s %s %s\\n' "$(date +%s.%N)" "$1" "$2" "$3" "$4" \\
  >> "$PLANFLEET_BENCH_GITLOG"
exec {git} "$@"
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(where: Path, files: int, plan: str) -> Path:
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(files):
        (repo / "src" / f"f{i:04}.txt").write_text(f"file {i}\n")
    (repo / "plans").mkdir()
    (repo / "plans" / "p.plan.yaml").write_text(plan)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "start")
    return repo


def plan_text(n: int, chain: bool) -> str:
    lines = ["planfleet: 1", "name: p", "phases:", "  - id: one", "    tasks:"]
    for i in range(n):
        lines += [
            f"      - id: t{i:03}",
            f"        title: task {i}",
            f"        files: {{create: [out/t{i:03}.txt]}}",
            f'        commands: ["mkdir -p out && echo {i} > out/t{i:03}.txt"]',
        ]
        if chain and i:
            lines.append(f"        depends_on: [t{i - 1:03}]")
    return "\n".join(lines) + "\n"


def run(where: Path, n: int, chain: bool, files: int, parallel: int) -> dict[str, object]:
    repo = make_repo(where, files, plan_text(n, chain))
    shim = where / "shim"
    shim.mkdir()
    real = shutil.which("git") or "/usr/bin/git"
    (shim / "git").write_text(WRAPPER.format(git=real))
    (shim / "git").chmod(0o755)
    log = where / "git.log"
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PLANFLEET_BENCH_GITLOG": str(log),
    }
    argv = [str(ROOT / "bin" / "planfleet"), "-C", str(repo), "run", "plans/p.plan.yaml"]
    argv += ["--runner", "shell", "--max-parallel", str(parallel), "--no-projections", "--json"]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"the run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    state = json.loads((repo / ".planfleet" / "state" / "p.json").read_text())
    # one line per call starts with "@"; an argument's own newlines make the other lines
    calls = [_call(line[1:]) for line in log.read_text().splitlines() if line.startswith("@")]
    return {"wall_s": wall, "state": state, "calls": calls}


def _call(line: str) -> tuple[float, str]:
    stamp, _, args = line.partition(" ")
    words = args.split()
    i = 0
    while i < len(words) and words[i].startswith("-"):  # -C DIR, -c k=v, --literal-pathspecs
        i += 2 if words[i] in ("-C", "-c") else 1
    return float(stamp), words[i] if i < len(words) else "?"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def chain_steps(result: dict[str, object]) -> dict[str, dict[str, float]]:
    """Return per step the median milliseconds and the git processes per task."""
    state: dict[str, object] = result["state"]  # type: ignore[assignment]
    calls: list[tuple[float, str]] = result["calls"]  # type: ignore[assignment]
    when: dict[tuple[str, str], float] = {}
    for e in state["events"]:  # type: ignore[index]
        key = (e["event"], e["task"])
        if key not in when:
            when[key] = _ts(e["ts"])
    ids = sorted(t for t in state["tasks"] if not t.endswith(":gate"))  # type: ignore[union-attr]
    spans: dict[str, list[tuple[float, float]]] = {s: [] for s in STEPS}
    for prev, tid, nxt in zip([None, *ids[:-1]], ids, [*ids[1:], None], strict=True):
        ready = when[("merged", prev)] if prev else when[("run_start", None)]
        marks = [ready, when[("dispatched", tid)], when[("verified", tid)], when[("merged", tid)]]
        if nxt:
            marks.append(when[("dispatched", nxt)])
        for step, a, b in zip(STEPS, marks, marks[1:], strict=False):
            spans[step].append((a, b))
    out = {}
    for step, found in spans.items():
        count = sum(1 for t, _ in calls for a, b in found if a <= t < b)
        out[step] = {
            "ms": statistics.median(b - a for a, b in found) * 1000,
            "git": count / len(found),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--wide", type=int, default=60)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep-log", type=Path, help="copy the wide run's git log here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="planfleet-bench-") as tmp:
        (Path(tmp) / "chain").mkdir()
        (Path(tmp) / "wide").mkdir()
        chain = run(Path(tmp) / "chain", args.chain, True, args.files, 1)
        wide = run(Path(tmp) / "wide", args.wide, False, args.files, 3)
        if args.keep_log:
            shutil.copy(Path(tmp) / "wide" / "git.log", args.keep_log)
    steps = chain_steps(chain)
    kinds: Counter[str] = Counter(k for _, k in wide["calls"])  # type: ignore[attr-defined]
    per_task = {k: n / args.wide for k, n in kinds.most_common()}
    report = {
        "chain_steps": steps,
        "chain_wall_per_task_ms": float(chain["wall_s"]) / args.chain * 1000,  # type: ignore[arg-type]
        "wide_wall_per_task_ms": float(wide["wall_s"]) / args.wide * 1000,  # type: ignore[arg-type]
        "wide_git_per_task": sum(per_task.values()),
        "wide_git_by_command": per_task,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"chain of {args.chain} tasks, --max-parallel 1, {args.files}-file repository:")
    for step, row in steps.items():
        print(f"  {step:22} {row['ms']:8.1f} ms   {row['git']:5.1f} git processes")
    print(f"  wall per task          {report['chain_wall_per_task_ms']:8.1f} ms")
    print(f"{args.wide} independent tasks, --max-parallel 3:")
    print(f"  wall per task          {report['wide_wall_per_task_ms']:8.1f} ms")
    print(f"  git processes per task {report['wide_git_per_task']:8.1f}")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in list(per_task.items())[:12]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
