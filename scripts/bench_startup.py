"""Benchmark the CLI's start-up: `planfleet --version` and `planfleet state show` through
bin/planfleet, as ratios to `python -c pass` measured in the same run.

    python scripts/bench_startup.py [--runs 11] [--before REV]

With --before, the same commands also run from a checkout of REV (a temporary worktree of
this repository), so one run prints before and after side by side. Every figure is the
median wall time of --runs runs; the machine's load affects both sides alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples/textstats/repo/plans/textstats.plan.yaml"
TARGET_VERSION_MS = 100.0


def median_ms(command: list[str], cwd: Path, runs: int) -> float:
    """Return the median wall time of ``command`` in ms; fail loudly if it fails."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            sys.exit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return statistics.median(times)


def make_repo(where: Path, launcher: Path) -> Path:
    """Return a git repository with the example plan and a state initialised from it."""
    repo = where / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(EXAMPLE, repo / "plan.yaml")
    init = [str(launcher), "state", "init", "demo", "--from", "plan.yaml", "--json"]
    subprocess.run(init, cwd=repo, check=True, capture_output=True)
    return repo


def measure(launcher: Path, repo: Path, runs: int) -> dict[str, float]:
    return {
        "version_ms": median_ms([str(launcher), "--version"], repo, runs),
        "state_show_ms": median_ms([str(launcher), "state", "show", "demo", "--json"], repo, runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--before", metavar="REV", help="also measure a checkout of REV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="planfleet-bench-startup-") as temp:
        where = Path(temp)
        sides = {"after": ROOT / "bin" / "planfleet"}
        if args.before:
            old = where / "before"
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(ROOT),
                    "worktree",
                    "add",
                    "-q",
                    "--detach",
                    str(old),
                    args.before,
                ],
                check=True,
            )
            sides = {"before": old / "bin" / "planfleet", **sides}
        try:
            repo = make_repo(where, sides["after"])
            base = median_ms([sys.executable, "-c", "pass"], repo, args.runs)
            print(f"python -c pass: {base:.1f} ms (median of {args.runs})")
            report: dict[str, object] = {"python_ms": round(base, 1)}
            for side, launcher in sides.items():
                figures = measure(launcher, repo, args.runs)
                for key, ms in figures.items():
                    name = key.removesuffix("_ms").replace("_", " ")
                    print(f"{side:>6} {name:<11} {ms:7.1f} ms  {ms / base:6.2f}x python")
                report[side] = {k: round(v, 1) for k, v in figures.items()}
            ok = measure(sides["after"], repo, 1)["version_ms"] < TARGET_VERSION_MS
            print(f"--version under {TARGET_VERSION_MS:.0f} ms: {'yes' if ok else 'no'}")
            print(json.dumps(report))
        finally:
            if args.before:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
