#!/usr/bin/env python3
"""Benchmark: planfleet's dependency-driven scheduler vs a wave scheduler, and engine overhead.

Part 1 (policy): ``--plans`` random plans (default 30) of 20-200 tasks with uneven
durations (most tasks short, a few long). Each plan is executed twice in the same run by the
real :class:`planfleet.engine.scheduler.Scheduler` over a real run state (state.records,
state.ops), every task a real ``sleep`` process: once with ``policy="dag"`` (ours) and once with
``policy="waves"`` (a barrier after each topological level, as the reference workflows do).
Reported per plan and as medians: makespan / lower bound, where the lower bound is
max(critical path, total work / parallelism), and waves / ours.

Part 2 (overhead): the whole engine (worktree, shell runner, gates, merge, state writes,
projections) on a repository of ``--files`` files (default 1,000) with ``--overhead-tasks``
no-op tasks run one at a time; the wall time per task minus the task's own command time is
the engine's overhead per task.

Prints tables and one JSON line. Usage: ``python scripts/bench_schedule.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from planfleet import proc
from planfleet.cli.output import table
from planfleet.engine.loop import Engine
from planfleet.engine.options import RunOptions
from planfleet.engine.scheduler import Scheduler
from planfleet.plan import graph, model
from planfleet.plan.formats import load_plan
from planfleet.state import ops
from planfleet.state.create import init_from_plan
from planfleet.state.records import State, now_iso


def random_plan(rng: random.Random, n: int, scale: float) -> tuple[model.Plan, dict[str, float]]:
    """Return a one-phase plan of ``n`` tasks with random dependencies and durations (s)."""
    src = model.Source("bench", 1)
    ids = [f"t{i:03d}" for i in range(n)]
    tasks = []
    durations: dict[str, float] = {}
    for i, tid in enumerate(ids):
        window = ids[max(0, i - 12) : i]  # local dependencies: layered, not a chain
        k = min(len(window), rng.choice((0, 1, 1, 2, 2, 3)))
        deps = tuple(sorted(rng.sample(window, k)))
        long = rng.random() < 0.2
        durations[tid] = scale * (rng.uniform(4, 10) if long else rng.uniform(0.5, 2))
        tasks.append(
            model.Task(
                id=tid, title=tid, phase="p", source=src, depends_on=deps, estimate=durations[tid]
            )
        )
    phase = model.Phase(id="p", title="p", source=src, task_ids=tuple(ids))
    plan = model.Plan(
        name="bench",
        title="bench",
        format="planfleet",
        path="bench",
        phases=(phase,),
        tasks=tuple(tasks),
    )
    return plan, durations


def lower_bound(plan: model.Plan, durations: dict[str, float], parallel: int) -> float:
    g = graph.build(plan)
    critical, _ = graph.critical_path(g, durations)
    return max(critical, sum(durations.values()) / parallel)


def execute(plan: model.Plan, durations: dict[str, float], parallel: int, policy: str) -> float:
    """Run ``plan`` with real sleep processes under ``policy``; return the makespan (s)."""
    g = graph.build(plan)
    sched = Scheduler.for_plan(plan, g, max_parallel=parallel, policy=policy)  # type: ignore[arg-type]
    state: State = init_from_plan(plan)
    running: dict[str, subprocess.Popen[bytes]] = {}
    start = time.monotonic()
    while True:
        for gid in sched.ready_gates(state, ()):
            ops.claim(state, gid)
            ops.complete(state, gid, commit="gate")
        for tid in sched.pick(state, running.keys()):
            ops.claim(state, tid)
            running[tid] = proc.spawn(["sleep", f"{durations[tid]:.4f}"], cwd="/")
        if not running:
            break
        time.sleep(0.002)
        for tid, p in list(running.items()):
            if p.poll() is not None:
                del running[tid]
                ops.complete(state, tid, commit="done")
                state["tasks"][tid]["merged_at"] = now_iso()
    return time.monotonic() - start


def policy_part(plans: int, parallel: int, scale: float, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    rows = []
    results = []
    for i in range(plans):
        n = rng.randint(20, 200)
        plan, durations = random_plan(rng, n, scale)
        lb = lower_bound(plan, durations, parallel)
        ours = execute(plan, durations, parallel, "dag")
        waves = execute(plan, durations, parallel, "waves")
        results.append({"tasks": n, "lower_bound_s": lb, "ours_s": ours, "waves_s": waves})
        rows.append(
            [
                str(i + 1),
                str(n),
                f"{lb:.2f}",
                f"{ours:.2f}",
                f"{waves:.2f}",
                f"{ours / lb:.3f}",
                f"{waves / lb:.3f}",
                f"{waves / ours:.3f}",
            ]
        )
        print(
            f"  plan {i + 1}/{plans}: {n} tasks, ours/LB {ours / lb:.3f}, "
            f"waves/ours {waves / ours:.3f}",
            file=sys.stderr,
            flush=True,
        )
    med_ours = statistics.median(r["ours_s"] / r["lower_bound_s"] for r in results)
    med_waves = statistics.median(r["waves_s"] / r["lower_bound_s"] for r in results)
    med_gain = statistics.median(r["waves_s"] / r["ours_s"] for r in results)
    print(
        table(
            rows,
            ["plan", "tasks", "LB s", "ours s", "waves s", "ours/LB", "waves/LB", "waves/ours"],
        )
    )
    print(
        f"\nmedian ours/LB {med_ours:.3f} (target <= 1.10); median waves/LB {med_waves:.3f}; "
        f"median waves/ours {med_gain:.3f} (target >= 1.25); parallelism {parallel}"
    )
    return {
        "plans": results,
        "median_ours_over_lb": med_ours,
        "median_waves_over_lb": med_waves,
        "median_waves_over_ours": med_gain,
    }


def _overhead_repo(work: Path, files: int, tasks: int) -> Path:
    repo = work / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(files):
        d = repo / "src" / f"d{i % 20}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n")
    lines = ["planfleet: 1", "name: bench", "phases:", "  - id: p", "    tasks:"]
    for i in range(tasks):
        lines.append(
            f"      - id: n{i}\n        title: no-op {i}\n"
            f"        files: {{create: [out/n{i}.txt]}}\n"
            f'        commands: ["mkdir -p out && echo {i} > out/n{i}.txt"]'
        )
    (repo / "plan.yaml").write_text("\n".join(lines) + "\n")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def overhead_part(files: int, tasks: int) -> dict[str, object]:
    """Engine overhead per no-op task: one at a time (latency) and 3 at once (throughput)."""
    # what the tasks' own commands cost, measured the way the shell runner runs them
    scratch = Path(tempfile.mkdtemp(prefix="planfleet-bench-"))
    c0 = time.monotonic()
    for i in range(tasks):
        proc.run(proc.user_command(f"mkdir -p out && echo {i} > out/n{i}.txt"), cwd=scratch)
    own = time.monotonic() - c0
    shutil.rmtree(scratch, ignore_errors=True)
    out: dict[str, object] = {"files": files, "tasks": tasks, "own_commands_s": own}
    for parallel in (1, 3):
        work = Path(tempfile.mkdtemp(prefix="planfleet-bench-"))
        try:
            repo = _overhead_repo(work, files, tasks)
            plan = load_plan(repo / "plan.yaml", repo=repo)
            t0 = time.monotonic()
            opts = RunOptions(runner="shell", max_parallel=parallel)
            result = Engine(repo, plan, opts).run()
            wall = time.monotonic() - t0
            if result.status != "completed":
                raise SystemExit(f"overhead run did not complete: {result.reason}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        per_task_ms = (wall - own / parallel) / tasks * 1000
        out[f"parallel_{parallel}"] = {"wall_s": wall, "per_task_overhead_ms": per_task_ms}
        print(
            f"engine overhead, {tasks} no-op tasks, {parallel} at a time, {files}-file repo: "
            f"{wall:.2f} s wall -> {per_task_ms:.0f} ms per task (target < 150 ms)"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", type=int, default=30)
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.02, help="seconds per duration unit")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--overhead-tasks", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="5 plans, 10 overhead tasks")
    ns = ap.parse_args()
    if ns.quick:
        ns.plans, ns.overhead_tasks = 5, 10
    policy = policy_part(ns.plans, ns.parallel, ns.scale, ns.seed)
    overhead = overhead_part(ns.files, ns.overhead_tasks)
    print(
        json.dumps(
            {"policy": {k: v for k, v in policy.items() if k != "plans"}, "overhead": overhead}
        )
    )


if __name__ == "__main__":
    main()
