#!/usr/bin/env python3
"""Benchmark: 16 task worktrees with planfleet vs a sequential ``git worktree add`` loop.

Generates a repository of 20,000 small files in nested folders (one commit), then, in the
same run and on the same warm repository, times:

- a plain sequential loop of ``git worktree add -b`` (the baseline);
- ``planfleet.repo.provision.create_worktrees`` (metadata serialized, checkouts in parallel with
  ``os.cpu_count()`` workers);
- optionally (``--naive``) the same ``git worktree add`` commands started all at once, to
  count the lock errors git gives without our lock;
- the merge queue: each task branch changes one file and is merged one by one (median ms per
  merge, without and with a post-merge check).

Prints a table and one JSON line. Usage: ``python scripts/bench_worktrees.py [--files N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from planfleet import git, proc
from planfleet.cli.output import table
from planfleet.repo import merge, provision, worktrees

T = TypeVar("T")

ENV = {
    **os.environ,
    **git.PLANFLEET_IDENTITY,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def sh_git(*args: str, cwd: Path, check: bool = True) -> proc.Result:
    return proc.run(["git", *args], cwd=cwd, env=ENV, check=check, timeout=600)


def generate(repo: Path, files: int) -> None:
    """Make a repository with ``files`` small files in nested folders, in one commit."""
    repo.mkdir(parents=True)
    sh_git("init", "-q", "-b", "main", cwd=repo)
    # git fast-import writes the objects without touching the file system file by file.
    lines = [
        "commit refs/heads/main",
        "committer bench <bench@localhost> 1700000000 +0000",
        "data 7",
        "initial",
    ]
    for i in range(files):
        path = f"src/m{i % 20:02d}/p{(i // 20) % 25:02d}/f{i:05d}.txt"
        body = f"file {i}\n" + "some content line\n" * 4
        lines += [f"M 100644 inline {path}", f"data {len(body.encode())}", body.rstrip("\n")]
    proc.run(
        ["git", "fast-import", "--quiet"],
        cwd=repo,
        env=ENV,
        input_text="\n".join(lines) + "\n",
        timeout=600,
    )
    sh_git("read-tree", "-u", "--reset", "HEAD", cwd=repo)  # populate the main checkout


def child_cpu() -> float:
    """Return the CPU seconds (user + system) used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Return (wall seconds, child CPU seconds, result) of ``fn()``, after a sync."""
    os.sync()
    cpu, start = child_cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - start, child_cpu() - cpu, result


def add_argv(branch: str, path: Path) -> list[str]:
    return ["worktree", "add", "-q", "-b", branch, str(path), "HEAD"]


def sequential(repo: Path, n: int, tag: str) -> tuple[float, float, int]:
    """Time a plain loop of ``git worktree add`` (fresh paths: nothing deleted meanwhile)."""

    def run() -> int:
        area = repo / ".bench" / tag
        return sum(
            not sh_git(*add_argv(f"{tag}/t{i}", area / f"t{i}"), cwd=repo, check=False).ok
            for i in range(n)
        )

    return timed(run)


def naive_parallel(repo: Path, n: int) -> tuple[float, float, list[str]]:
    """Time the same adds started all at once, without our lock; return git's errors."""

    def run() -> list[proc.Result]:
        area = repo / ".bench" / "naive"
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(
                pool.map(
                    lambda i: sh_git(
                        *add_argv(f"naive/t{i}", area / f"t{i}"), cwd=repo, check=False
                    ),
                    range(n),
                )
            )

    wall, cpu, results = timed(run)
    return wall, cpu, [r.stderr.strip().splitlines()[-1] for r in results if not r.ok]


def planfleet_create(repo: Path, n: int, workers: int, plan: str) -> tuple[float, float, list[str]]:
    """Time ``create_worktrees`` for ``n`` tasks of a fresh plan; return its errors."""
    wall, cpu, wts = timed(
        lambda: provision.create_worktrees(repo, plan, [f"t{i}" for i in range(n)], workers=workers)
    )
    return wall, cpu, [f"{w.task}: {w.error}" for w in wts if w.error]


def merge_costs(repo: Path, plan: str, tasks: range, check: str | None) -> list[float]:
    """Commit a one-file change on each task branch, then time each merge of the queue."""
    times = []
    for i in tasks:
        wt = worktrees.task_worktree(repo, plan, f"t{i}")
        target = next((wt / "src" / f"m{i % 20:02d}").rglob("*.txt"))
        target.write_text(target.read_text() + f"change by task {i} ({check})\n")
        sh_git("commit", "-qam", f"task {i}", cwd=wt)
    for i in tasks:
        start = time.perf_counter()
        (res,) = merge.merge_queue(repo, plan, [merge.MergeItem(f"t{i}")], check=check)
        times.append((time.perf_counter() - start) * 1000)
        if res.status != "merged":
            raise SystemExit(f"merge of t{i} failed: {res.status} {res.feedback()}")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--worktrees", type=int, default=16)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (medians reported)")
    ap.add_argument("--naive", action="store_true", help="also time unlocked parallel adds")
    ap.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="planfleet-bench-"))
    repo = tmp / "repo"
    try:
        t0 = time.perf_counter()
        generate(repo, args.files)
        gen_s = time.perf_counter() - t0
        sh_git("archive", "--format=tar", "-o", str(tmp / "warm.tar"), "HEAD", cwd=repo)
        seq_runs: list[tuple[float, float]] = []
        pf_runs: list[tuple[float, float]] = []
        pf_errors: list[str] = []
        seq_fail = 0
        for rnd in range(args.rounds):
            # alternate the order, so that write-back of one phase does not favour the other
            for phase in ("seq", "pf") if rnd % 2 == 0 else ("pf", "seq"):
                if phase == "seq":
                    wall, cpu, failed = sequential(repo, args.worktrees, f"seq{rnd}")
                    seq_runs.append((wall, cpu))
                    seq_fail += failed
                else:
                    wall, cpu, errors = planfleet_create(
                        repo, args.worktrees, args.workers, f"bench{rnd}"
                    )
                    pf_runs.append((wall, cpu))
                    pf_errors += errors
        seq_s = statistics.median(w for w, _ in seq_runs)
        pf_s = statistics.median(w for w, _ in pf_runs)
        ratios = [s[0] / p[0] for s, p in zip(seq_runs, pf_runs, strict=True)]
        naive = naive_parallel(repo, args.worktrees) if args.naive else None
        plan = f"bench{args.rounds - 1}"
        half = args.worktrees // 2
        merge_plain = merge_costs(repo, plan, range(half), None)
        first_checked, *merge_checked = merge_costs(repo, plan, range(half, args.worktrees), "true")
        result = {
            "files": args.files,
            "worktrees": args.worktrees,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "generate_s": round(gen_s, 2),
            "sequential_s": round(seq_s, 3),
            "planfleet_s": round(pf_s, 3),
            "speedup": round(seq_s / pf_s, 2),
            "speedup_per_round": [round(r, 2) for r in ratios],
            "rounds": args.rounds,
            "sequential_runs_s": [round(w, 3) for w, _ in seq_runs],
            "planfleet_runs_s": [round(w, 3) for w, _ in pf_runs],
            "sequential_cpu_s": round(statistics.median(c for _, c in seq_runs), 2),
            "planfleet_cpu_s": round(statistics.median(c for _, c in pf_runs), 2),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "lock_errors": len(pf_errors),
            "sequential_failures": seq_fail,
            "merge_median_ms": round(statistics.median(merge_plain), 1),
            "merge_with_check_median_ms": round(statistics.median(merge_checked or [0]), 1),
            "merge_worktree_first_checkout_ms": round(first_checked, 1),
        }
        if naive is not None:
            result.update(
                naive_parallel_s=round(naive[0], 3),
                naive_failures=len(naive[2]),
                naive_errors=sorted(set(naive[2]))[:3],
            )
        rows = [
            ["sequential `git worktree add` x N", f"{seq_s:.2f} s", f"{seq_fail} failed"],
            [
                f"planfleet create_worktrees ({args.workers} workers)",
                f"{pf_s:.2f} s",
                f"{len(pf_errors)} failed",
            ],
        ]
        if naive is not None:
            rows.append(
                [
                    "naive parallel `git worktree add`",
                    f"{naive[0]:.2f} s",
                    f"{len(naive[2])} failed (without our lock)",
                ]
            )
        rows += [
            [
                "speedup (sequential / planfleet)",
                f"{seq_s / pf_s:.2f}x",
                "per round: " + ", ".join(f"{r:.2f}x" for r in ratios),
            ],
            [
                "git CPU time, sequential / planfleet",
                f"{result['sequential_cpu_s']} s",
                f"{result['planfleet_cpu_s']} s (same work, spread over cores)",
            ],
            ["merge, median per task", f"{result['merge_median_ms']} ms", "merge-tree"],
            [
                "merge + check `true`, median",
                f"{result['merge_with_check_median_ms']} ms",
                f"first: {first_checked:.0f} ms (merge worktree checkout)",
            ],
        ]
        print(table(rows, ["what", "time", "notes"]))
        for err in pf_errors:
            print(f"error: {err}", file=sys.stderr)
        print(json.dumps(result, sort_keys=True))
        return 0 if not pf_errors else 1
    finally:
        if args.keep:
            print(f"kept {repo}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
