"""Scenario 5, symbolic links: a repository that plants a link in (or commits) ``.planfleet/``.

For every folder planfleet writes - ``.planfleet`` itself (a committed link), ``state/``,
the state file, ``locks/``, ``logs/``, ``logs/<plan>/``, ``runs/``, ``runs/<plan>/``,
``runs/<plan>/verify/``, ``worktrees/``, ``worktrees/<plan>/``, ``knowledge/`` - a link to
a bait folder outside the repository is planted and a command that writes there is run, as
a user would (``state init``, ``run``, ``resume``, ``worktree create``, ``verify --record``,
the knowledge store). Each trial passes when the command is refused with exit 3 and a next
step, no traceback, the bait folder is exactly as it was (names, modes, bytes), and no task
command ran. A ``.planfleet`` committed as a real folder must be refused the same way.
"""

from __future__ import annotations

import json
import os
import random
import stat
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from torturelib import common, procs
from torturelib.common import ScenarioResult, Trial

TIMEOUT_S = 60.0
PLAN = """planfleet: 1
name: p
phases:
  - id: one
    tasks:
      - id: t1
        title: touch the canary
        files: {{create: [out.txt]}}
        commands: ["touch {canary}", "echo hi > out.txt"]
"""
RUN = ["run", "plans/p.plan.yaml", "--runner", "shell", "--yes", "--max-attempts", "1"]
KNOWLEDGE = (
    "from pathlib import Path; from planfleet.orchestrate import knowledge; "
    "knowledge.record(Path('.'), knowledge.Technology('redis', 'Redis', (), 'plan'), "
    "plan='p', report={})"
)


@dataclass(frozen=True)
class Case:
    """A link planted at ``link`` (relative to the repository), then ``argv`` is run."""

    link: str
    argv: tuple[str, ...]
    state_first: bool = False  # `state init` before the link is planted
    commit: bool = False  # the link is committed, as a hostile repository would
    python: bool = False  # argv is Python code using the library (no CLI writes there)
    branch: bool = False  # the task branch exists, with a commit (what `verify` checks)


CASES = (
    Case(".planfleet", ("state", "init", "p", "--from", "plans/p.plan.yaml"), commit=True),
    Case(".planfleet", tuple(RUN), commit=True),
    Case(".planfleet/state", ("state", "init", "p", "--from", "plans/p.plan.yaml")),
    Case(".planfleet/state/p.json", ("resume", "p", "--runner", "shell", "--yes"), True),
    Case(".planfleet/state/p.json", ("status", "p"), True),
    Case(".planfleet/locks", tuple(RUN)),
    Case(".planfleet/locks", ("worktree", "create", "p", "t1")),
    Case(".planfleet/logs", tuple(RUN)),
    Case(".planfleet/logs/p", tuple(RUN)),
    Case(".planfleet/runs", tuple(RUN)),
    Case(".planfleet/runs/p", tuple(RUN)),
    Case(
        ".planfleet/runs/p/verify", ("verify", "plans/p.plan.yaml", "t1", "--record"), branch=True
    ),
    Case(".planfleet/worktrees", ("worktree", "create", "p", "t1")),
    Case(".planfleet/worktrees/p", tuple(RUN)),
    Case(".planfleet/knowledge", (KNOWLEDGE,), python=True),
)
TRACKED = "tracked .planfleet folder"


def folders() -> list[str]:
    """Return every folder (or file) under test, once each: the closing line counts them."""
    return sorted({c.link for c in CASES})


def run_scenario(work: Path, env: dict[str, str], *, seed: int, workers: int = 2) -> ScenarioResult:
    """Run every case (and the tracked-folder case) once; return the scenario result."""
    result = ScenarioResult("symlinks", "seconds")
    rng = random.Random(seed)
    canary = work / f"canary-{uuid.uuid4().hex[:8]}"
    template = common.make_repo(
        work / "template", {"plans/p.plan.yaml": PLAN.format(canary=canary), "README.md": "# r\n"}
    )
    jobs = [(i, case) for i, case in enumerate(CASES)]
    rng.shuffle(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        trials = list(pool.map(lambda job: _one(work, env, template, canary, *job), jobs))
    result.trials = [*sorted(trials, key=lambda t: t.name), _tracked(work, env, template, canary)]
    result.notes.append(f"{len(folders())} folders and files: {', '.join(folders())}")
    return result


def _bait(folder: Path) -> Path:
    """A folder outside the repository with a README and a mode a write would change."""
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("not planfleet's\n")
    (folder / "p.json").write_text('{"not": "a state file"}\n')
    folder.chmod(0o755)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Return name -> (mode, bytes of a regular file) for ``folder`` and everything in it."""
    found: dict[str, tuple[int, bytes | None]] = {".": (folder.lstat().st_mode, None)}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(path.relative_to(folder))] = (st.st_mode, data)
    return found


def _one(
    work: Path, env: dict[str, str], template: Path, canary: Path, i: int, case: Case
) -> Trial:
    repo = common.copy_repo(template, work / f"case-{i}")
    bait = _bait(work / f"bait-{i}")
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    try:
        if case.state_first:
            init = common.planfleet(repo, "state", "init", "p", "--from", "plans/p.plan.yaml")
            code, out, err, _ = launcher.run(init, cwd=repo, timeout=TIMEOUT_S)
            if code != 0:
                return Trial(_name(case), False, [f"state init exit {code}: {err[-200:]}"])
            state = repo / case.link
            (bait / "p.json").write_bytes(state.read_bytes())
            state.unlink()
        if case.branch:
            _task_branch(repo)
        target = repo / case.link
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(bait / "p.json" if case.state_first else bait)
        if case.commit:
            common.git(repo, "add", "-A")
            common.git(repo, "commit", "-qm", "a link into the user's files")
        before = snapshot(bait)
        argv = (
            [sys.executable, "-c", case.argv[0]]
            if case.python
            else common.planfleet(repo, *case.argv, "--json")
        )
        code, out, err, seconds = launcher.run(argv, cwd=repo, timeout=TIMEOUT_S)
        problems = judge(case, code, out, err, python=case.python)
        problems += [f"outside the repository: {p}" for p in _changes(before, snapshot(bait))]
        if canary.exists():
            problems.append("a task command ran")
        if (repo / "out.txt").exists():
            problems.append("the task wrote out.txt into the user's checkout")
    finally:
        left = launcher.close()
    problems += [f"left running: {p.describe()}" for p in left]
    return Trial(_name(case), not problems, problems, round(seconds, 2), f"exit-{code}")


def _task_branch(repo: Path) -> None:
    """Make ``planfleet/p/tasks/t1`` with the task's file, as a finished attempt leaves it."""
    common.git(repo, "switch", "-q", "-c", "planfleet/p/tasks/t1")
    (repo / "out.txt").write_text("hi\n")
    common.git(repo, "add", "out.txt")
    common.git(repo, "commit", "-qm", "t1")
    common.git(repo, "switch", "-q", "main")


def _name(case: Case) -> str:
    verb = "python: knowledge.record" if case.python else " ".join(case.argv[:2])
    return f"{case.link} -> outside, then {verb}" + (" (committed)" if case.commit else "")


def judge(case: Case, code: int | None, out: str, err: str, *, python: bool) -> list[str]:
    """Return what is wrong with how the command treated the link (empty: refused well)."""
    if python:  # the library raises; the CLI is not involved
        if code == 0 or ("planfleet_symlink" not in err and "symbolic link" not in err):
            return [f"knowledge.record was not refused (exit {code}): {err.strip()[-200:]}"]
        return []
    problems = []
    if code != 3:
        problems.append(f"exit {code}, not 3: {(err or out).strip()[-300:]}")
    if common.has_traceback(out + err):
        problems.append("a traceback was printed")
    env = common.envelope(out)
    errors = (env or {}).get("errors") or []
    if not errors:
        problems.append("no JSON error")
    elif errors[0].get("reason") != "planfleet_symlink":
        problems.append(f"reason {errors[0].get('reason')!r}, not planfleet_symlink")
    elif not errors[0].get("next_step"):
        problems.append("no next step")
    elif errors[0].get("details", {}).get("path") != case.link:
        problems.append(f"the error names {errors[0].get('details')}, not {case.link}")
    return problems


def _changes(
    before: dict[str, tuple[int, bytes | None]], after: dict[str, tuple[int, bytes | None]]
) -> list[str]:
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [f"{k} {'created' if k not in before else 'changed'}" for k in changed[:10]]


def _tracked(work: Path, env: dict[str, str], template: Path, canary: Path) -> Trial:
    """A repository that commits ``.planfleet/`` as a folder: refused before any write."""
    repo = common.copy_repo(template, work / "tracked")
    shipped = repo / ".planfleet" / "state" / "p.json"
    shipped.parent.mkdir(parents=True)
    shipped.write_text(json.dumps({"from": "the repository"}) + "\n")
    common.git(repo, "add", "-f", ".planfleet")
    common.git(repo, "commit", "-qm", "ship some state")
    kept = shipped.read_bytes()
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    try:
        code, out, err, seconds = launcher.run(
            common.planfleet(repo, *RUN, "--json"), cwd=repo, timeout=TIMEOUT_S
        )
    finally:
        left = launcher.close()
    problems = [f"left running: {p.describe()}" for p in left]
    errors = (common.envelope(out) or {}).get("errors") or [{}]
    if code != 3 or errors[0].get("reason") != "planfleet_tracked":
        problems.append(f"exit {code} reason {errors[0].get('reason')!r}: {err.strip()[-200:]}")
    if shipped.read_bytes() != kept or canary.exists():
        problems.append("the tracked state file was written, or a task ran")
    if os.path.exists(repo / ".planfleet" / "README.md"):
        problems.append("planfleet wrote its README into the tracked folder")
    return Trial(TRACKED, not problems, problems, round(seconds, 2), f"exit-{code}")
