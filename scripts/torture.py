#!/usr/bin/env python3
"""The reliability suite: fault injection, fuzzing and abuse of the planfleet engine.

    python scripts/torture.py [--long] [--json-out PATH] [--scenarios a,b] [--seed N] [--keep]

Scenarios (trials in the short form / the long form):
  crash-and-resume  SIGKILL the engine of a 30-task plan at random moments, resume until it
                    completes, compare with an uninterrupted run (10 / 100)
  agent-faults      8 parallel fake claude agents, a random subset hangs, goes silent,
                    crashes, runs over budget, hits a usage limit or lies (3 / 20)
  hostile-input     generated hostile plan files in all 8 formats through `plan validate`,
                    and a sample through `run --dry-run` (~300 / 10,000 files)
  disk-and-git      read-only state folder (at start, mid-run), disk full, stale index.lock
                    (checkout, worktree), a worktree (or its .git link) deleted by hand,
                    the integration branch moved forward or rewound by someone else
                    (9 sub-cases: 1 / 3 each)
  symlinks          a link to a folder outside the repository planted at every folder
                    planfleet writes under .planfleet/ (and a committed .planfleet), then
                    a command that writes there: refused, nothing outside changed (16 / 16)

Prints one table (scenario, trials, passed, failed, worst case) and a closing line with the
totals (and how many folders the symlink scenario covered), and writes the same figures as
JSON with --json-out. Exit 0 when every trial passed, 1 otherwise, 2 for bad usage.
Everything runs under a temporary folder with its own HOME and git config.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torturelib import agents, common, crash, diskgit, hostile, procs, symlinks
from torturelib.common import ScenarioResult

Runner = Callable[[Path, dict[str, str], bool, int], ScenarioResult]


def _crash(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
    # Engines of this scenario mostly wait on their tasks' sleeps: three trials at once
    # keep the long form near ten minutes on two cores.
    return crash.run_scenario(
        work,
        env,
        trials=100 if long else 10,
        max_kills=3 if long else 1,
        seed=seed,
        workers=3 if long else 2,
    )


def _agents(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
    return agents.run_scenario(work, env, trials=20 if long else 3, seed=seed)


def _hostile(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
    return hostile.run_scenario(
        work, env, files=10_000 if long else 300, dry_runs=200 if long else 20, seed=seed
    )


def _diskgit(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
    return diskgit.run_scenario(work, env, repeats=3 if long else 1, seed=seed)


def _symlinks(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
    return symlinks.run_scenario(work, env, seed=seed)


SCENARIOS: dict[str, Runner] = {
    "crash-and-resume": _crash,
    "agent-faults": _agents,
    "hostile-input": _hostile,
    "disk-and-git": _diskgit,
    "symlinks": _symlinks,
}


def run(
    names: list[str],
    *,
    work: Path,
    long: bool,
    seed: int,
    log: Callable[[str], None] = lambda s: None,
) -> list[ScenarioResult]:
    """Run the named scenarios under ``work``; return their results in order."""
    env = common.isolated_env(work / "home")
    # Temporary files (and the crash logs of an internal error) stay in the work folder.
    env["TMPDIR"] = str(work / "tmp")
    for sub in ("home", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    results = []
    with procs.subreaper():
        for i, name in enumerate(names):
            folder = work / name
            folder.mkdir()
            started = time.monotonic()
            log(f"{name}: running ({'long' if long else 'short'} form)...")
            result = SCENARIOS[name](folder, env, long, seed + i)
            result.notes.append(f"{time.monotonic() - started:.1f} s")
            log(
                f"{name}: {result.passed}/{len(result.trials)} passed "
                f"in {time.monotonic() - started:.0f} s"
            )
            results.append(result)
    return results


def table(results: list[ScenarioResult]) -> str:
    """Return the report table as text."""
    rows = [["scenario", "trials", "passed", "failed", "worst case"]]
    rows += [
        [r.scenario, str(len(r.trials)), str(r.passed), str(r.failed), r.worst_text()]
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]))
        if n == 0:
            lines.append("  ".join(["-" * w for w in widths] + ["-" * 10]))
    return "\n".join(lines)


def closing_line(results: list[ScenarioResult]) -> str:
    """Return the last line of the report: totals, and what the symlink scenario covered."""
    trials = sum(len(r.trials) for r in results)
    passed = sum(r.passed for r in results)
    line = f"total: {trials} trials in {len(results)} scenarios, {passed} passed, "
    line += f"{trials - passed} failed"
    links = next((r for r in results if r.scenario == "symlinks"), None)
    if links is not None:
        line += (
            f"; symlinks: {links.passed}/{len(links.trials)} refused safely, "
            f"{len(symlinks.folders())} folders and files under .planfleet/ covered"
        )
    return line


def report(results: list[ScenarioResult], *, long: bool, seed: int) -> dict[str, Any]:
    """Return the JSON report: the same figures as the table, plus failures and notes."""
    from planfleet import __version__

    return {
        "planfleet": __version__,
        "form": "long" if long else "short",
        "seed": seed,
        "scenarios": [r.to_json() for r in results],
        "passed": all(r.failed == 0 and r.trials for r in results),
        "summary": closing_line(results),
    }


def isolate(home: Path) -> None:
    """Point this process's own HOME and git config at ``home`` (nothing touches the real ones)."""
    home.mkdir(parents=True, exist_ok=True)
    for key, value in common.isolated_env(home).items():
        os.environ[key] = value
    for key in common.DROP:
        os.environ.pop(key, None)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="the long form (many more trials)")
    parser.add_argument("--json-out", type=Path, metavar="PATH", help="write the report here")
    parser.add_argument("--scenarios", metavar="A,B", help=f"among: {', '.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, help="random seed (default: chosen and printed)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    ns = parser.parse_args(argv)
    names = ns.scenarios.split(",") if ns.scenarios else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    seed = ns.seed if ns.seed is not None else random.randrange(2**31)
    work = Path(tempfile.mkdtemp(prefix="planfleet-torture-"))
    isolate(work / "home")
    print(f"torture: seed {seed}, work folder {work}", file=sys.stderr)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so that nothing started outlives us.
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run(
            names,
            work=work,
            long=ns.long,
            seed=seed,
            log=lambda s: print(f"torture: {s}", file=sys.stderr, flush=True),
        )
    finally:
        signal.signal(signal.SIGTERM, old_term)
        procs.close_all()
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    data = report(results, long=ns.long, seed=seed)
    for r in data["scenarios"]:
        for f in r["failures"]:
            print(
                f"\n{r['scenario']} / {f['trial']}:", *(f"  - {p}" for p in f["problems"]), sep="\n"
            )
    print(closing_line(results))
    if ns.json_out:
        ns.json_out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
