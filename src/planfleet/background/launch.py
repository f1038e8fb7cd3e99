"""Starting a dispatch: a planfleet worktree per plan, then its `claude --bg` session in it.

The worktrees are made by ``provision.create_worktrees`` under the plan run's engine lock,
with the names, branches and metadata lock of `run`; each session is started with its
worktree as working directory. Claude Code moves a background session into a worktree of
its own before its first edit unless it already runs in a linked worktree, so the session
edits and commits on the task branch. Once started, each session is looked up in
`claude agents --json --all`: one that runs outside its worktree, or failed at once, is
reported now, not found out at collect.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, proc
from planfleet.background import agents, work
from planfleet.background.dispatch import DISPATCH_TIMEOUT_S, DispatchPlan, Planned, read_manifest
from planfleet.engine import runinfo
from planfleet.errors import CommandError, PlanfleetError
from planfleet.repo import provision
from planfleet.state.records import now_iso

CONFIRM_TIMEOUT_S = 60.0  # how long a started session may take to show in `claude agents`
CONFIRM_POLL_S = 0.5

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SHORT_ID = re.compile(r"\bbackgrounded\s*·\s*([a-f0-9]{8})\b")
_ATTACH_ID = re.compile(r"\bclaude attach ([a-f0-9]{8})\b")


def parse_short_id(output: str) -> str | None:
    """Return the 8-hex short id `claude --bg` printed, or None."""
    text = _ANSI.sub("", output)
    m = _SHORT_ID.search(text) or _ATTACH_ID.search(text)
    return m.group(1) if m else None


@dataclass
class Outcome:
    """What a dispatch did: the sessions started, what stopped it, what is wrong with them."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    not_dispatched: list[str] = field(default_factory=list)
    # started sessions that cannot do their work where they run (reason, message, next step)
    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def dispatch(
    repo: Path, plan: DispatchPlan, *, confirm_timeout_s: float = CONFIRM_TIMEOUT_S
) -> Outcome:
    """Make each plan's worktree, start its session there and record it in the manifest.

    Stops at the first plan whose worktree cannot be made or whose session does not start.
    RefusedError (``engine_running``) while an engine or a collect holds the plan run.
    """
    repo = repo.resolve()
    data = read_manifest(plan.manifest, repo=repo) or {"phase": plan.phase, "sessions": []}
    data["phase"] = plan.phase
    data["dispatched_at"] = now_iso()
    outcome = Outcome()
    with runinfo.engine_lock(repo, plan.run):
        for p in plan.planned:  # their sessions are over (resolve skipped the live ones)
            work.release(repo, p.worktree)
        made = provision.create_worktrees(repo, plan.run, [p.task for p in plan.planned])
        for i, (p, wt) in enumerate(zip(plan.planned, made, strict=True)):
            started = _no_worktree(repo, p, wt) or _start(p)
            if isinstance(started, dict):
                outcome.failure = started
                outcome.not_dispatched = [q.plan for q in plan.planned[i:]]
                break
            entry = {
                "plan": Path(p.plan).name,
                "path": p.plan,
                "session_id": started,
                "name": p.name,
                "run": plan.run,
                "task": p.task,
                "worktree": p.worktree.relative_to(repo).as_posix(),
                "branch": p.branch,
                "dispatched_at": now_iso(),
            }
            data["sessions"].append(entry)
            outcome.sessions.append(entry)
            text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
            fsutil.atomic_write(plan.manifest, text + "\n")
            try:  # after the record: a session that runs is never left out of it
                work.hold(repo, p.worktree, started)
            except PlanfleetError as exc:
                outcome.warnings.append(
                    f"could not lock {entry['worktree']} for session {started} "
                    f"({exc.message.splitlines()[-1].strip()}): an engine run of {plan.run} "
                    "could take it over while the session works"
                )
    if outcome.sessions:
        exe = plan.planned[0].argv[0]
        confirm(repo, exe, outcome, timeout_s=confirm_timeout_s)
    return outcome


def _no_worktree(repo: Path, p: Planned, wt: provision.Worktree) -> dict[str, Any] | None:
    """Return why ``p``'s session would have nowhere to work, or None when its worktree is fine."""
    failure: dict[str, Any] = {"plan": p.plan, "name": p.name, "command": p.command}
    where = p.worktree.relative_to(repo).as_posix()
    if wt.error is not None:
        output = f"could not make its worktree {where}: {wt.error.render()}"
        return {**failure, "reason": "no_worktree", "output": output}
    if not (p.worktree / p.plan).is_file():  # the integration branch it starts from lacks it
        output = (
            f"its worktree {where} (from {(wt.base or '?')[:12]}) has no {p.plan}: the "
            "session could not read its plan; commit the plan on the branch the phase's "
            f"integration branch planfleet/{wt.plan}/integration starts from"
        )
        return {**failure, "reason": "plan_not_in_worktree", "output": output}
    return None


def _start(p: Planned) -> str | dict[str, Any]:
    """Start ``p``'s session in its worktree; return its short id or the failure."""
    failure: dict[str, Any] = {"plan": p.plan, "name": p.name, "command": p.command}
    try:
        # `claude --bg` leaves the session (and maybe its daemon) running: by design.
        result = proc.run(
            p.argv, cwd=p.worktree, timeout=DISPATCH_TIMEOUT_S, check=False, services=True
        )
    except CommandError as exc:
        return {**failure, "reason": "timeout", "output": exc.stdout + exc.stderr}
    output = (result.stdout + result.stderr).strip()
    if not result.ok:
        return {**failure, "reason": "claude_failed", "exit": result.returncode, "output": output}
    short = parse_short_id(result.stdout) or parse_short_id(result.stderr)
    if short is None:
        return {**failure, "reason": "no_session_id", "output": output}
    return short


def confirm(repo: Path, exe: str, outcome: Outcome, *, timeout_s: float) -> None:
    """Check in `claude agents` that each started session runs in its worktree.

    Fills ``outcome.problems`` (outside its worktree, failed at once) and, for a session
    not listed before ``timeout_s``, ``outcome.warnings``.
    """
    pending = {s["session_id"]: s for s in outcome.sessions}
    deadline = time.monotonic() + timeout_s
    wait = threading.Event()
    while pending:
        try:
            entries = agents.claude_entries(repo, exe)
        except PlanfleetError as exc:
            outcome.warnings.append(f"could not list the sessions to check them: {exc.message}")
            return
        listed = {str(e.get("id")): e for e in entries}
        for sid in [sid for sid in pending if sid in listed]:
            problem = _problem(repo, pending.pop(sid), listed[sid])
            if problem is not None:
                outcome.problems.append(problem)
        if pending and time.monotonic() >= deadline:
            for sid in pending:
                outcome.warnings.append(
                    f"session {sid} did not show in `claude agents` within {timeout_s:g} s; "
                    "check it with `planfleet agents`"
                )
            return
        if pending:
            wait.wait(CONFIRM_POLL_S)  # the supervisor lists a new session within moments


def _problem(repo: Path, session: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """Return what keeps a listed session from working in its worktree, or None."""
    sid, worktree = session["session_id"], repo / session["worktree"]
    found: dict[str, Any] = {"session_id": sid, "name": session["name"], "plan": session["path"]}
    cwd = entry.get("cwd")
    if agents.entry_state(entry) == "failed":
        return {
            **found,
            "reason": "session_failed",
            "message": f"the session of {session['path']} failed as it started",
            "next_step": f"see why with `planfleet agents logs {sid}`, fix it, then dispatch "
            "the phase again",
        }
    if isinstance(cwd, str) and cwd and not fsutil.is_within(Path(cwd), worktree):
        return {
            **found,
            "reason": "not_in_worktree",
            "message": f"the session runs in {cwd}, not in its worktree {session['worktree']}: "
            f"its commits would not reach {session['branch']}",
            "next_step": f"stop it (`planfleet agents stop {sid}`) and dispatch the phase "
            "again; `planfleet agents logs {sid}` shows what it did",
        }
    return None
