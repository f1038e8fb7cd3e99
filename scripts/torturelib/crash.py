"""Scenario 1, crash and resume: SIGKILL the engine at random moments, resume until the run
completes, and compare with one uninterrupted run of the same plan."""

from __future__ import annotations

import random
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from torturelib import common, procs
from torturelib.common import ScenarioResult, Trial
from torturelib.crashplan import crash_plan

PARALLEL = 6  # --max-parallel of every engine in this scenario
RUN_TIMEOUT_S = 180.0


@dataclass
class Setup:
    template: Path  # the repository every trial copies
    work: Path
    env: dict[str, str]
    reference_tree: str
    reference_s: float
    max_kills: int
    main: str  # the user's branch: the engine must never move it


@dataclass
class Snapshot:
    """What the state and git said right after one kill."""

    verified: dict[str, str | None] = field(default_factory=dict)  # task -> commit
    runs: dict[str, int] = field(default_factory=dict)  # task -> times it started
    integration: str | None = None
    revision: int = -1


def run_scenario(
    work: Path, env: dict[str, str], *, trials: int, max_kills: int, seed: int, workers: int = 2
) -> ScenarioResult:
    """Run ``trials`` crash trials (``workers`` at a time) and return the scenario result."""
    result = ScenarioResult("crash-and-resume", "seconds to completion")
    rng = random.Random(seed)
    template = common.make_repo(
        work / "template",
        {"plans/p.plan.yaml": crash_plan(rng), "README.md": "# crash and resume\n"},
    )
    ref = _reference(work, template, env)
    if isinstance(ref, Trial):
        result.trials.append(ref)
        return result
    tree, seconds = ref
    result.notes.append(f"uninterrupted run: {seconds:.1f} s; tree {tree[:12]}")
    main = common.git(template, "rev-parse", "main").strip()
    setup = Setup(template, work, env, tree, seconds, max_kills, main)
    seeds = [rng.randrange(2**32) for _ in range(trials)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        result.trials = list(pool.map(lambda a: _trial(setup, *a), enumerate(seeds, 1)))
    return result


def _reference(work: Path, template: Path, env: dict[str, str]) -> tuple[str, float] | Trial:
    repo = common.copy_repo(template, work / "reference")
    marks = work / "reference-marks"
    marks.mkdir()
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    try:
        code, out, err, seconds = launcher.run(
            common.shell_run(repo, resume=False, parallel=PARALLEL),
            cwd=repo,
            timeout=RUN_TIMEOUT_S,
            extra={"T": str(marks)},
        )
    finally:
        launcher.close()
    tree = common.integration_tree(repo)
    if code != 0 or tree is None:
        return Trial(
            "reference",
            False,
            [f"the uninterrupted run failed (exit {code}): {(err or out)[-400:]}"],
        )
    return tree, seconds


def _trial(setup: Setup, number: int, seed: int) -> Trial:
    rng = random.Random(seed)
    name = f"trial {number} (seed {seed})"
    folder = setup.work / f"trial-{number}"
    folder.mkdir()
    repo = common.copy_repo(setup.template, folder / "repo")
    marks = folder / "marks"
    marks.mkdir()
    launcher = procs.Launcher(setup.env, uuid.uuid4().hex)
    problems: list[str] = []
    snapshots: list[Snapshot] = []
    started = time.monotonic()
    kills, code = 0, None
    # The first engine is always killed; each resume is killed again with probability 1/2
    # until max_kills is reached; then one resume runs to the end.
    try:
        for segment in range(setup.max_kills + 4):
            kill = kills < setup.max_kills and (kills == 0 or rng.random() < 0.5)
            first = not (repo / ".planfleet" / "state" / "p.json").exists()
            label = "run" if first else "resume"
            argv = common.shell_run(repo, resume=not first, parallel=PARALLEL)
            log = folder / f"engine-{segment}.log"
            if kill:
                # The first engine dies before the uninterrupted run's time would be up;
                # a resume (less work left) may finish before its kill comes.
                at = rng.uniform(0.0, setup.reference_s * (0.95 if kills == 0 else 1.1))
                code = _run_killed(launcher, argv, repo, log, at, {"T": str(marks)})
                if code is None:
                    kills += 1
                    snapshots.append(_after_kill(repo, marks, kills, problems))
                    continue
            else:
                code, out, err, _ = launcher.run(
                    argv, cwd=repo, timeout=RUN_TIMEOUT_S, extra={"T": str(marks)}
                )
                log.write_text(out + err)
            if code != 0:
                problems.append(f"{label} after {kills} kill(s) exited {code}: {_tail(log)}")
            break
        else:
            problems.append("no engine ran to the end")
        elapsed = time.monotonic() - started
        _final_checks(setup, repo, marks, snapshots, problems)
        for info in procs.under(repo):
            problems.append(f"leftover process: {info.describe()}")
    finally:
        left = launcher.close()
    for info in left:
        problems.append(f"leftover tagged process: {info.describe()}")
    return Trial(
        name,
        not problems,
        problems,
        round(elapsed, 1),
        f"{kills} kill(s), {_count(marks)} task runs",
    )


def _run_killed(
    launcher: procs.Launcher,
    argv: list[str],
    repo: Path,
    log: Path,
    at: float,
    extra: dict[str, str],
) -> int | None:
    """Start the engine, SIGKILL it after ``at`` seconds; None if killed, else its exit code."""
    p = launcher.start(argv, cwd=repo, log=log, extra=extra)
    deadline = time.monotonic() + at
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return p.returncode
        time.sleep(0.01)
    if p.poll() is not None:
        return p.returncode
    p.send_signal(signal.SIGKILL)
    p.wait()
    return None


def _after_kill(repo: Path, marks: Path, kills: int, problems: list[str]) -> Snapshot:
    """Check the state right after a kill and note what must survive it."""
    snap = Snapshot(runs=_runs(marks), integration=common.integration_commit(repo))
    state, problem = common.load_state(repo)
    if problem:
        problems.append(f"after kill {kills}: {problem}")
    if state is None:
        return snap
    snap.revision = int(state["revision"])
    for tid, rec in state["tasks"].items():
        if rec["kind"] == "task" and rec["status"] == "verified":
            snap.verified[tid] = rec.get("commit")
    return snap


def _final_checks(
    setup: Setup, repo: Path, marks: Path, snapshots: list[Snapshot], problems: list[str]
) -> None:
    state, problem = common.load_state(repo)
    if problem or state is None:
        problems.append(problem or "no state file at the end")
        return
    if state["status"] != "completed":
        problems.append(f"run status {state['status']} at the end")
    if common.git(repo, "rev-parse", "main").strip() != setup.main:
        problems.append("the user's branch main moved")
    tree = common.integration_tree(repo)
    if tree != setup.reference_tree:
        problems.append(
            f"integration tree {tree} differs from the uninterrupted run's {setup.reference_tree}"
        )
    final_runs = _runs(marks)
    integration = "refs/heads/planfleet/p/integration"
    revisions = [s.revision for s in snapshots if s.revision >= 0]
    if revisions != sorted(revisions):
        problems.append(f"state revision went backwards across kills: {revisions}")
    for i, snap in enumerate(snapshots, 1):
        for tid, commit in snap.verified.items():
            if final_runs.get(tid, 0) != snap.runs.get(tid, 0):
                problems.append(
                    f"{tid} was verified at kill {i} but ran again "
                    f"({snap.runs.get(tid, 0)} -> {final_runs.get(tid, 0)} runs)"
                )
            if commit and not common.is_ancestor(repo, commit, integration):
                problems.append(
                    f"commit {commit[:10]} of {tid} (verified at kill {i}) is not "
                    "on the integration branch"
                )
        if snap.integration and not common.is_ancestor(repo, snap.integration, integration):
            problems.append(f"integration commit {snap.integration[:10]} of kill {i} was lost")
    for tid, rec in state["tasks"].items():
        if rec["kind"] == "task":
            if rec["status"] != "verified" or not rec.get("merged_at"):
                problems.append(f"{tid} ended {rec['status']} (merged: {rec.get('merged_at')})")
            elif rec.get("commit") and not common.is_ancestor(repo, rec["commit"], integration):
                problems.append(f"commit of {tid} is not on the integration branch")
    locks = common.held_locks(repo)
    if locks:
        problems.append(f"locks left: {', '.join(locks)}")
    stale = common.stale_worktrees(repo)
    if stale:
        problems.append(f"stale worktrees: {', '.join(stale)}")


def _runs(marks: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    path = marks / "runs"
    if path.exists():
        for word in path.read_text().split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def _count(marks: Path) -> int:
    return sum(_runs(marks).values())


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-400:].strip()
    except OSError:
        return ""
