"""Scenario 2, agent faults under load: 8 parallel fake claude agents, a random subset of
which hangs, goes silent, crashes, runs over budget, hits a usage limit or lies."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from torturelib import common, procs
from torturelib.common import ScenarioResult, Trial

AGENTS = 8
TIMEOUT_S = 4.0  # --timeout: a hanging agent is killed after this
STALL_S = 2.0  # --stall: a silent agent is killed after this
# What the engine may add to the slowest agent's timeout: start-up, worktrees, merges and
# closing on a loaded 2-core machine. Wall time above TIMEOUT_S + this is a failure.
OVERHEAD_S = 20.0
FAULTS = ("hang", "silent", "crash", "budget", "usage_limit", "lie")
# behaviour -> the error types the engine must record for it (abandoned after 1 attempt)
EXPECTED = {
    "hang": {"timeout"},
    "silent": {"stall"},
    "crash": {"crash"},
    "budget": {"budget"},
    "lie": {"no_commit", "false_claim"},
}
FLAGS = (
    "--runner",
    "claude",
    "--yes",
    "--json",
    "--max-parallel",
    str(AGENTS),
    "--max-attempts",
    "1",
    "--timeout",
    str(TIMEOUT_S),
    "--stall",
    str(STALL_S),
    "--task-budget-usd",
    "0.5",
)


def _plan() -> str:
    lines = [
        "planfleet: 1",
        "name: p",
        "title: agent faults",
        "phases:",
        "  - id: one",
        "    tasks:",
    ]
    for i in range(AGENTS):
        lines += [
            f"      - id: a{i}",
            f"        title: agent {i}",
            f"        files: {{create: [out/a{i}.txt]}}",
        ]
    return "\n".join(lines) + "\n"


def run_scenario(work: Path, env: dict[str, str], *, trials: int, seed: int) -> ScenarioResult:
    """Run ``trials`` trials, each with a random subset of faulty agents."""
    result = ScenarioResult("agent-faults", f"wall seconds (bound {TIMEOUT_S:g}+{OVERHEAD_S:g})")
    rng = random.Random(seed)
    template = common.make_repo(
        work / "template", {"plans/p.plan.yaml": _plan(), "README.md": "# agents\n"}
    )
    pool: list[str] = []
    seen: dict[str, int] = dict.fromkeys(FAULTS, 0)
    for n in range(1, trials + 1):
        behaviours = ["succeed"] * AGENTS
        for i in rng.sample(range(AGENTS), rng.randint(2, 6)):
            if not pool:  # deal the faults from a shuffled deck: every kind comes up early
                pool = list(FAULTS)
                rng.shuffle(pool)
            behaviours[i] = pool.pop()
            seen[behaviours[i]] += 1
        result.trials.append(_trial(work, template, env, n, behaviours))
    result.trials.append(_resume_keeps_limits(work, template, env))
    result.notes.append("faults dealt: " + ", ".join(f"{k} {v}" for k, v in seen.items()))
    return result


def _trial(work: Path, template: Path, env: dict[str, str], n: int, behaviours: list[str]) -> Trial:
    folder = work / f"trial-{n}"
    folder.mkdir()
    repo = common.copy_repo(template, folder / "repo")
    scenario = folder / "scenario.json"
    _write_scenario(scenario, behaviours)
    name = f"trial {n} [{' '.join(f'a{i}={b}' for i, b in enumerate(behaviours))}]"
    extra = {"PLANFLEET_CLAUDE": str(common.FAKE_CLAUDE), "FAKE_CLAUDE_SCENARIO": str(scenario)}
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    problems: list[str] = []
    walls: list[float] = []
    try:
        with procs.ZombieWatch(launcher.tag) as watch:
            state = _run_and_resume(problems, walls, launcher, repo, scenario, behaviours, extra)
        problems += [
            f"zombie not reaped by its parent: {z.describe()}" for z in watch.leaks.values()
        ]
        if state is not None:
            final = ["succeed" if b == "usage_limit" else b for b in behaviours]
            _check_outcomes(problems, repo, state, final)
        problems += [f"leftover process: {p.describe()}" for p in procs.under(repo)]
        locks = common.held_locks(repo)
        if locks:
            problems.append(f"locks left: {', '.join(locks)}")
    finally:
        left = launcher.close()
    problems += [f"leftover tagged process: {p.describe()}" for p in left]
    return Trial(
        name,
        not problems,
        problems,
        round(max(walls, default=0.0), 1),
        "wall per engine run: " + ", ".join(f"{w:.1f} s" for w in walls),
    )


def _run_and_resume(
    problems: list[str],
    walls: list[float],
    launcher: procs.Launcher,
    repo: Path,
    scenario: Path,
    behaviours: list[str],
    extra: dict[str, str],
) -> dict[str, Any] | None:
    """Run the plan; after a usage-limit pause, lift the limit and resume; return the state."""
    code, out, err, wall = launcher.run(
        common.planfleet(repo, "run", "plans/p.plan.yaml", *FLAGS),
        cwd=repo,
        timeout=120,
        extra=extra,
    )
    walls.append(wall)
    _check_exit(problems, "run", code, out, err, wall)
    state, problem = common.load_state(repo)
    limited = [f"a{i}" for i, b in enumerate(behaviours) if b == "usage_limit"]
    if problem or state is None:
        problems.append(problem or "no state after the run")
        return None
    if not limited:
        return state
    _check_paused(problems, state, limited, behaviours)
    # The limit resets: the same agents now succeed, and resume finishes the run.
    _write_scenario(scenario, [("succeed" if b == "usage_limit" else b) for b in behaviours])
    code, out, err, wall = launcher.run(
        common.planfleet(repo, "resume", "p", *FLAGS), cwd=repo, timeout=120, extra=extra
    )
    walls.append(wall)
    _check_exit(problems, "resume", code, out, err, wall)
    state, problem = common.load_state(repo)
    if problem or state is None:
        problems.append(problem or "no state after the resume")
    return state


def _write_scenario(path: Path, behaviours: list[str]) -> None:
    tasks = {
        f"a{i}": {"behaviour": b, "files": {f"out/a{i}.txt": f"agent {i}\n"}}
        for i, b in enumerate(behaviours)
    }
    path.write_text(json.dumps({"tasks": tasks}))


def _check_exit(
    problems: list[str], what: str, code: int | None, out: str, err: str, wall: float
) -> None:
    if code is None:
        problems.append(f"{what} did not end within 120 s")
    elif code not in (0, 1):
        problems.append(f"{what} exited {code}: {(err or out)[-300:]}")
    if common.has_traceback(out + err):
        problems.append(f"{what} printed a traceback")
    if wall > TIMEOUT_S + OVERHEAD_S:
        problems.append(f"{what} took {wall:.1f} s, over the bound {TIMEOUT_S + OVERHEAD_S:g} s")


def _check_paused(
    problems: list[str], state: dict[str, Any], limited: list[str], behaviours: list[str]
) -> None:
    """A usage limit pauses the run; no task loses an attempt to it or to the pause."""
    if state["status"] != "paused":
        problems.append(f"a usage limit should pause the run, status is {state['status']}")
    for tid in limited:
        rec = state["tasks"][tid]
        if rec["status"] != "pending" or rec["attempts"] != 0:
            problems.append(
                f"{tid} (usage limit) is {rec['status']} with {rec['attempts']} "
                "attempts; expected pending with 0"
            )
    for i, b in enumerate(behaviours):
        rec = state["tasks"][f"a{i}"]
        if b != "usage_limit" and rec["status"] == "pending" and rec["attempts"] != 0:
            problems.append(f"a{i} was stopped by the pause but lost an attempt")
        if rec["status"] == "in_progress":
            problems.append(f"a{i} still in_progress after the paused run ended")


def _check_outcomes(
    problems: list[str], repo: Path, state: dict[str, Any], behaviours: list[str]
) -> None:
    """Every agent's outcome is classified as its behaviour demands."""
    files = set(
        common.git(
            repo, "ls-tree", "-r", "--name-only", "refs/heads/planfleet/p/integration", check=False
        ).split()
    )
    for i, b in enumerate(behaviours):
        tid = f"a{i}"
        rec = state["tasks"][tid]
        err = (rec.get("error") or {}).get("type")
        if b == "succeed":
            if rec["status"] != "verified" or not rec.get("merged_at"):
                problems.append(f"{tid} (succeed) ended {rec['status']} ({err})")
            if f"out/{tid}.txt" not in files:
                problems.append(f"{tid} (succeed): out/{tid}.txt is not on the integration branch")
            continue
        if rec["status"] != "abandoned" or err not in EXPECTED[b]:
            problems.append(
                f"{tid} ({b}) classified {rec['status']}/{err}, expected "
                f"abandoned/{'|'.join(sorted(EXPECTED[b]))}"
            )
        if f"out/{tid}.txt" in files:
            problems.append(f"{tid} ({b}): its file reached the integration branch")
    expected_status = "completed" if all(b == "succeed" for b in behaviours) else "failed"
    if state["status"] != expected_status:
        problems.append(f"run status {state['status']}, expected {expected_status}")


def _resume_keeps_limits(work: Path, template: Path, env: dict[str, str]) -> Trial:
    """After a usage-limit pause, ``planfleet resume p`` (the command the engine prints, plus
    the runner and consent) must keep the run's limits: the hanging agent gets the run's one
    attempt of TIMEOUT_S, not the defaults (5 attempts of 600 s, no budget cap)."""
    folder = work / "resume-keeps-limits"
    folder.mkdir()
    repo = common.copy_repo(template, folder / "repo")
    scenario = folder / "scenario.json"
    behaviours = ["usage_limit", "hang"] + ["succeed"] * (AGENTS - 2)
    _write_scenario(scenario, behaviours)
    extra = {"PLANFLEET_CLAUDE": str(common.FAKE_CLAUDE), "FAKE_CLAUDE_SCENARIO": str(scenario)}
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    problems: list[str] = []
    wall = 0.0
    try:
        code, out, err, _ = launcher.run(
            common.planfleet(repo, "run", "plans/p.plan.yaml", *FLAGS),
            cwd=repo,
            timeout=120,
            extra=extra,
        )
        _check_exit(problems, "run", code, out, err, 0.0)
        behaviours[0] = "succeed"
        _write_scenario(scenario, behaviours)
        started = time.monotonic()
        p = launcher.start(
            common.planfleet(repo, "resume", "p", "--runner", "claude", "--yes", "--json"),
            cwd=repo,
            log=folder / "resume.log",
            extra=extra,
        )
        verdict = _watch_hanger(repo, p, "a1")
        wall = time.monotonic() - started
        if verdict:
            problems.append(
                f"`planfleet resume p` forgot the run's limits (--max-attempts 1 "
                f"--timeout {TIMEOUT_S:g}): {verdict}"
            )
        _, problem = common.load_state(repo)
        if problem:
            problems.append(problem)
    finally:
        left = launcher.close()
    problems += [f"leftover tagged process: {p.describe()}" for p in left]
    return Trial("resume keeps the run's limits", not problems, problems, round(wall, 1))


def _watch_hanger(repo: Path, p: Any, tid: str) -> str:
    """Follow the hanging task through a resume; return what broke the run's limits, or ""."""
    path = repo / ".planfleet" / "state" / "p.json"
    seen_running: float | None = None
    deadline = time.monotonic() + TIMEOUT_S + OVERHEAD_S
    while p.poll() is None:
        try:
            rec = json.loads(path.read_text())["tasks"][tid]
        except (OSError, ValueError, KeyError):
            rec = {}
        now = time.monotonic()
        verdict = ""
        if rec.get("attempts", 0) > 1:
            verdict = f"{tid} was given attempt {rec['attempts']}"
        elif rec.get("status") == "in_progress":
            seen_running = seen_running or now
            if now - seen_running > TIMEOUT_S + 8:
                verdict = f"{tid} still ran {now - seen_running:.0f} s after it started"
        if not verdict and now > deadline:
            verdict = f"the resume ran longer than {TIMEOUT_S + OVERHEAD_S:g} s"
        if verdict:
            p.send_signal(signal.SIGTERM)  # the engine pauses and stops its agents
            try:
                p.wait(timeout=procs.TERM_GRACE_S)
            except Exception:
                p.kill()
                p.wait()
            return verdict
        time.sleep(0.1)
    return ""
