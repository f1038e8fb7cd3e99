#!/usr/bin/env python3
"""Benchmark reading big plans: seconds per 1,000 tasks for every format, and their growth.

    python scripts/bench_formats.py [--sizes 1000,10000] [--formats a,b] [--ops validate,dry-run]
                                    [--json]

For each of the eight plan formats (and GSD once more with every task in one file) it
writes a generated plan of each size into a fresh git repository (10 tasks a phase, each task
depending on the one before it in its phase; the xml-tasks plan also has an
execute-state.json naming every task and 30 % more that have no task file),
then times in-process `planfleet plan validate --json` (read and validate) and
`planfleet run --dry-run --json --runner shell` (read, validate, build the state and the
schedule). It prints seconds per 1,000 tasks at each size and the ratio of the largest
size's figure to the smallest's: about 1 for linear work, about 10 for quadratic work over
1k -> 10k. Exit 1 when a ratio is above --max-ratio (default 3).

Seconds are CPU seconds of this process and the git commands it ran (a shared machine's
load does not inflate them); --wall measures wall-clock time instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from planfleet.cli import app  # noqa: E402

PER_PHASE = 10
Files = dict[str, str]


def _phases(n: int) -> list[range]:
    return [range(p, min(n, p + PER_PHASE)) for p in range(0, n, PER_PHASE)]


def native(n: int) -> tuple[str, Files]:
    lines = ["planfleet: 1", f"name: bench-{n}", "phases:"]
    for k, tasks in enumerate(_phases(n)):
        lines += [f"  - id: p{k}", f"    title: Phase {k}", "    blast_radius: tests", "    tasks:"]
        for i in tasks:
            lines += [
                f"      - id: t{i}",
                f"        title: Task {i}",
                f"        files: {{create: [src/m{i}.py]}}",
                f"        verify: ['test -f src/m{i}.py']",
                f"        commands: ['touch src/m{i}.py']",
            ]
            if i != tasks.start:
                lines.append(f"        depends_on: [t{i - 1}]")
    return "plans/bench.plan.yaml", {"plans/bench.plan.yaml": "\n".join(lines) + "\n"}


def ai(n: int) -> tuple[str, Files]:
    """One phase per task: the shape of a long .ai plan (``plan show`` of 10,000 phases)."""
    lines = [f"# Bench plan of {n} phases", "", "## Phases", ""]
    for i in range(n):
        lines += [
            f"### Phase {i + 1}: Part {i + 1}",
            "- **Owner**: python-dev",
            f"- **Depends on**: Phase {i}" if i % PER_PHASE else "- **Depends on**: -",
            f"- **Files to create**: `src/m{i}.py`",
            f"- **Blast radius**: `tests/test_m{i}.py`",
            "- **Acceptance**:",
            f"  - module {i} imports",
            "",
        ]
    rel = ".ai/plans/2026-01-01.bench.md"
    return rel, {rel: "\n".join(lines)}


def spec(n: int) -> tuple[str, Files]:
    lines = ["# Bench", "", "- **Branch**: feature/bench", "", "## Phases", ""]
    for k, tasks in enumerate(_phases(n)):
        lines += [f"### Phase {k + 1}: Part {k + 1}", ""]
        lines += [f"- [ ] Write module `src/m{i}.py` with its test" for i in tasks]
        lines += ["", f"- **Verify**: `pytest tests/p{k} -q`", ""]
    return ".spec/plans/bench", {".spec/plans/bench/plan.md": "\n".join(lines)}


def maxvision(n: int) -> tuple[str, Files]:
    files = {}
    for k, tasks in enumerate(_phases(n)):
        for j, i in enumerate(tasks):
            files[f".maxvision/phase-{k + 1}/plans/plan-{j + 1:03d}-m{i}.md"] = (
                f"---\nstatus: pending\nfiles_modified: [src/m{i}.py]\n---\n\n"
                f"# Module {i}\n\nWrite `src/m{i}.py`.\n"
            )
    return ".maxvision", files


def plan_dir(n: int) -> tuple[str, Files]:
    lines = [f"# Task Plan: bench {n}", "", "Goal: many tasks.", ""]
    for k, tasks in enumerate(_phases(n)):
        lines += [f"## Phase {k + 1}: Part {k + 1}", ""]
        for j, i in enumerate(tasks):
            lines += [
                f"### Task {k + 1}.{j + 1}: Module {i}",
                f"- Files: `src/m{i}.py` (new)",
                f"- Verify: `pytest tests/test_m{i}.py -q`",
            ]
            if j:
                lines.append(f"- Depends on: Task {k + 1}.{j}")
            lines.append("")
    return "plans/bench", {"plans/bench/task_plan.md": "\n".join(lines)}


def xml_tasks(n: int) -> tuple[str, Files]:
    """Task files in layers, and an execute-state.json naming 30 % more tasks than exist."""
    files, state = {}, {}
    for k, tasks in enumerate(_phases(n)):
        for i in tasks:
            dep = f"<dependencies><task>T-{i - 1:05d}</task></dependencies>" if i % 10 else ""
            files[f"tasks/bench/{k + 1}-layer/T-{i:05d}-m{i}.xml"] = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<task id="T-{i:05d}">\n'
                f"  <title>Module {i}</title>\n  {dep}\n"
                f"  <files><create>src/m{i}.py</create></files>\n"
                f"  <verification><command>test -f src/m{i}.py</command></verification>\n"
                "</task>\n"
            )
            state[f"T-{i:05d}"] = {"status": "pending", "attempts": 0}
    for i in range(n, n + n * 3 // 10):
        state[f"X-{i:05d}"] = {"status": "completed", "attempts": 1, "notes": "x" * 200}
    files["tasks/bench/execute-state.json"] = json.dumps({"tasks": state}, indent=2)
    return "tasks/bench", files


def gsd(n: int) -> tuple[str, Files]:
    files = {".planning/PROJECT.md": "# Bench\n"}
    for k, tasks in enumerate(_phases(n)):
        for j, i in enumerate(tasks):
            deps = f"[{k + 1:02d}-{j:02d}]" if j else "[]"
            files[f".planning/phases/{k + 1:02d}-part/{k + 1:02d}-{j + 1:02d}-PLAN.md"] = (
                f"---\nphase: {k + 1:02d}-part\nplan: {j + 1:02d}\ntype: execute\n"
                f"wave: {j + 1}\ndepends_on: {deps}\nfiles_modified: [src/m{i}.py]\n"
                "autonomous: true\n---\n\n<objective>\nModule "
                f'{i}.\n</objective>\n\n<tasks>\n<task type="auto">\n'
                f"  <name>Task 1: module {i}</name>\n  <files>src/m{i}.py</files>\n"
                f"  <action>Write it.</action>\n  <verify>test -f src/m{i}.py</verify>\n"
                "  <done>It exists</done>\n</task>\n</tasks>\n"
            )
    return ".planning", files


def gsd_one_file(n: int) -> tuple[str, Files]:
    """All ``n`` tasks in one GSD plan file: the reader's work inside a single big file."""
    tasks = "".join(
        f'<task type="auto">\n  <name>Task {i + 1}: module {i}</name>\n'
        f"  <files>src/m{i}.py</files>\n  <action>Write it.</action>\n"
        f"  <verify>test -f src/m{i}.py</verify>\n  <done>It exists</done>\n</task>\n"
        for i in range(n)
    )
    files = {
        ".planning/PROJECT.md": "# Bench\n",
        ".planning/phases/01-all/01-01-PLAN.md": (
            "---\nphase: 01-all\nplan: 01\ntype: execute\nwave: 1\ndepends_on: []\n"
            "files_modified: [src/m0.py]\nautonomous: true\n---\n\n<objective>\nAll.\n"
            f"</objective>\n\n<tasks>\n{tasks}</tasks>\n"
        ),
    }
    return ".planning", files


def superpowers(n: int) -> tuple[str, Files]:
    lines = [f"# Bench {n} Implementation Plan", "", "**Goal:** many tasks.", "", "---", ""]
    for i in range(n):
        lines += [
            f"### Task {i + 1}: Module {i}",
            "",
            "**Files:**",
            f"- Create: `src/m{i}.py`",
            f"- Test: `tests/test_m{i}.py`",
            "",
            "**Step 1: Run the test**",
            "",
            f"Run: `pytest tests/test_m{i}.py -v`",
            "Expected: PASS",
            "",
        ]
    rel = "docs/plans/2026-01-01-bench.md"
    return rel, {rel: "\n".join(lines)}


GENERATORS: dict[str, Callable[[int], tuple[str, Files]]] = {
    "planfleet": native,
    "ai": ai,
    "spec": spec,
    "maxvision": maxvision,
    "plan-dir": plan_dir,
    "xml-tasks": xml_tasks,
    "gsd": gsd,
    "gsd-one-file": gsd_one_file,
    "superpowers": superpowers,
}
OPS: dict[str, list[str]] = {
    "validate": ["plan", "validate", "{plan}", "--json"],
    "dry-run": ["run", "{plan}", "--dry-run", "--json", "--runner", "shell"],
}


def make_repo(folder: Path, files: Files) -> None:
    folder.mkdir(parents=True)
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*ident, "commit", "-qm", "plan"]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True)


def _clock(wall: bool) -> float:
    if wall:
        return time.perf_counter()
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(repo: Path, argv: list[str], *, wall: bool = False) -> tuple[float, int]:
    """Return (seconds, exit code) of ``planfleet ARGV`` run in-process in ``repo``."""
    sink = io.StringIO()
    old = Path.cwd()
    os.chdir(repo)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            start = _clock(wall)
            code = app.main(argv)
            seconds = _clock(wall) - start
    finally:
        os.chdir(old)
    return seconds, code


def selection(
    ap: argparse.ArgumentParser, ns: argparse.Namespace, formats: Iterable[str], ops: Iterable[str]
) -> tuple[list[int], list[str], list[str]]:
    """Return the sorted --sizes, the --formats and the --ops asked for (unknown ones: exit 2)."""
    sizes = sorted(int(s) for s in ns.sizes.split(","))
    names, chosen = ns.formats.split(","), ns.ops.split(",")
    unknown = [n for n in names if n not in formats] + [o for o in chosen if o not in ops]
    if unknown:
        ap.error(f"unknown format or op: {', '.join(unknown)}")
    return sizes, names, chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="task counts (default 1000,10000)")
    ap.add_argument("--formats", default=",".join(GENERATORS), help="formats to time")
    ap.add_argument("--ops", default=",".join(OPS), help="validate and/or dry-run")
    ap.add_argument("--max-ratio", type=float, default=3.0, help="exit 1 above this growth")
    ap.add_argument("--wall", action="store_true", help="wall-clock seconds, not CPU seconds")
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    ns = ap.parse_args()
    sizes, names, ops = selection(ap, ns, GENERATORS, OPS)
    rows: list[dict[str, object]] = []
    header = f"{'format':<12} {'op':<9}" + "".join(f"{f'{n} tasks':>14}" for n in sizes)
    clock = "wall-clock" if ns.wall else "CPU"
    print(header + f"{'ratio':>8}  ({clock} seconds per 1,000 tasks)")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="planfleet-bench-") as tmp:
        for name in names:
            warm, files = GENERATORS[name](PER_PHASE)  # imports and caches: not timed
            make_repo(Path(tmp) / f"{name}-warm", files)
            for op in ops:
                timed(Path(tmp) / f"{name}-warm", [a.format(plan=warm) for a in OPS[op]])
            repos = {}
            for n in sizes:
                plan, files = GENERATORS[name](n)
                repos[n] = (Path(tmp) / f"{name}-{n}", plan)
                make_repo(repos[n][0], files)
            for op in ops:
                per_k = {}
                for n in sizes:
                    repo, plan = repos[n]
                    argv = [a.format(plan=plan) for a in OPS[op]]
                    seconds, code = timed(repo, argv, wall=ns.wall)
                    if code not in (0, 1):
                        print(f"{name} {op} {n}: exit {code}", file=sys.stderr)
                    per_k[n] = seconds / (n / 1000)
                ratio = per_k[sizes[-1]] / per_k[sizes[0]] if per_k[sizes[0]] else 0.0
                worst = max(worst, ratio)
                cells = "".join(f"{per_k[n]:>14.3f}" for n in sizes)
                print(f"{name:<12} {op:<9}{cells}{ratio:>8.2f}", flush=True)
                rows.append({"format": name, "op": op, "per_1000_s": per_k, "ratio": ratio})
    if ns.json:
        print(json.dumps({"rows": rows, "worst_ratio": round(worst, 2)}))
    return 0 if worst <= ns.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
