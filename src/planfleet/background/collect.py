"""Collecting background sessions' work: the engine's gates, state and merge queue on it.

A `claude --bg` session that reports ``done`` has committed in the task worktree planfleet
made for its plan, on the plan's task branch (older dispatches: in a worktree Claude Code
made under ``<repo>/.claude/worktrees/``). For each session of a phase's dispatch, collect
takes that worktree's HEAD as the task branch (``update-ref`` if the session committed
elsewhere; neither the user's checkout nor the session's worktree changes), runs the gates
the engine runs (``verify.verify_attempt``), records the attempt in the plan's state and
merges what passed into the integration branch. Blocked sessions are surfaced with what
they wait for.
A commit already verified, failed or merged is not looked at again: collecting twice is a
no-op. While it records and merges, collect holds the plan's engine lock, so it never races
an engine (or another collect) on the same plan.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git, proc
from planfleet.background import agents, dispatch
from planfleet.background import work as bgwork
from planfleet.background.agents import Session
from planfleet.engine import runinfo
from planfleet.engine.setup import load_or_take_baseline
from planfleet.errors import PlanfleetError, RefusedError
from planfleet.plan import graph, model
from planfleet.plan.formats.maxvision import READER
from planfleet.repo import worktrees
from planfleet.repo.merge import MergeItem, merge_queue
from planfleet.state import ops
from planfleet.state.create import init_from_plan
from planfleet.state.records import (
    State,
    add_event,
    enqueue,
    new_task,
    set_run_status,
)
from planfleet.state.recover import orphan_reason, stop_leftovers
from planfleet.state.store import StateStore
from planfleet.verify import gates, testcmd

OWNER = "planfleet agents collect"
DEFAULT_TIMEOUT_S = 600.0
FAILED_RESULTS = frozenset({"failed", "merge_failed", "not_merged", "error", "no_work"})


@dataclass
class Collected:
    """What collect found and did for one session of a dispatch."""

    id: str
    name: str | None
    phase: int
    plan: str  # the plan file, repository-relative
    state: str  # the session's state as claude reports it (or missing)
    # merged | already_merged | verified | failed | merge_failed | not_merged | blocked |
    # working | stopped | session_failed | missing | unknown | superseded | no_work |
    # waiting | busy | skipped | error
    result: str = ""
    message: str = ""
    run: str | None = None  # the plan run recording it, and its task
    task: str | None = None
    worktree: str | None = None
    commit: str | None = None
    branch: str | None = None
    waiting_for: str | None = None
    feedback: str | None = None
    resume_argv: list[str] | None = None  # sends the feedback back to the session
    feedback_sent: bool = False
    next_step: str | None = None
    verification: str | None = None  # path of the saved verification record
    changed: bool = False  # whether this collect changed state or branches for it

    @property
    def resume_command(self) -> str | None:
        return shlex.join(["claude", *self.resume_argv[1:]]) if self.resume_argv else None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "resume_command": self.resume_command}


@dataclass
class _Phase:
    """One phase's plan, its state store and what its collect needs along the way."""

    repo: Path
    plan: model.Plan
    store: StateStore
    integration: str
    timeout_s: float
    baseline: gates.Baseline | None = None
    baseline_taken: bool = False
    queued: list[Collected] = field(default_factory=list)

    def take_baseline(self) -> gates.Baseline | None:
        if not self.baseline_taken:
            self.baseline = load_or_take_baseline(
                self.repo, self.plan, self.integration, timeout_s=self.timeout_s
            )
            self.baseline_taken = True
        return self.baseline


def collect(
    repo: Path,
    phase: int | None = None,
    *,
    send_feedback: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    entries: Sequence[dict[str, Any]] | None = None,
) -> list[Collected]:
    """Collect every session of phase N's dispatch (all dispatches without ``phase``).

    RefusedError (reason ``not_dispatched``) when phase N has no dispatch manifest.
    """
    repo = repo.resolve()
    if phase is not None and not dispatch.manifest_path(repo, phase).exists():
        raise RefusedError(
            f"phase {phase} has no dispatch manifest ({dispatch.MANIFEST_NAME})",
            reason="not_dispatched",
            next_step=f"dispatch it first: planfleet dispatch --phase {phase}",
        )
    if entries is None:
        entries = agents.claude_entries(repo)
    listing = agents.list_sessions(repo, phase, entries=entries)
    by_phase: dict[int, list[Session]] = {}
    for s in listing.sessions:
        if s.plan is not None and s.phase is not None:
            by_phase.setdefault(int(s.phase), []).append(s)
    found: list[Collected] = []
    for number in sorted(by_phase):
        found += _collect_phase(repo, number, by_phase[number], send_feedback, timeout_s)
    return found


def _collect_phase(
    repo: Path, phase: int, sessions: list[Session], send_feedback: bool, timeout_s: float
) -> list[Collected]:
    plan = READER.read(dispatch.phase_dir(repo, phase), repo=repo)
    tasks = {t.spec_files[0]: t for t in plan.tasks if t.spec_files}
    # A plan dispatched again: only its latest session counts.
    latest = {
        r.get("path") or r["plan"]: r["session_id"] for r in agents.manifest_sessions(repo, phase)
    }
    results, done = [], []
    for s in sessions:
        c = Collected(s.id, s.name, phase, s.plan or "", s.state, waiting_for=s.waiting_for)
        results.append(c)
        task = tasks.get(c.plan)
        if task is not None:
            c.run, c.task = plan.name, task.id
        if latest.get(c.plan, s.id) != s.id:
            c.result, c.message = "superseded", f"the plan was dispatched again: {latest[c.plan]}"
        elif s.state != "done":
            c.result, c.message, c.next_step = bgwork.unfinished(s, phase)
        elif task is None:
            c.result, c.message = "error", f"{c.plan} is no longer a plan of phase {phase}"
        else:
            done.append((s, c, task))
    if not done:
        return results
    order = {tid: i for i, tid in enumerate(graph.topo_order(graph.build(plan)))}
    done.sort(key=lambda item: order.get(item[2].id, len(order)))
    try:
        with runinfo.engine_lock(repo, plan.name):
            ctx = _open(repo, plan, timeout_s)
            for s, c, task in done:
                _collect_done(ctx, s, c, task)
            _merge(ctx)
            for s, c, _ in done:
                if c.result in ("failed", "merge_failed"):
                    _feedback(ctx, s, c, send_feedback)
    except RefusedError as exc:
        if exc.reason != "engine_running":
            raise
        for _, c, _ in done:
            c.result, c.message = "busy", exc.message
            c.next_step = exc.hint
    return results


def _open(repo: Path, plan: model.Plan, timeout_s: float) -> _Phase:
    """Return the phase's context: the plan's state (created if missing), its integration."""
    store = StateStore.for_plan(repo, plan.name, command=OWNER)
    if not store.exists():
        store.create(init_from_plan(plan))
        with store.transaction() as state:
            # No engine runs this plan: a "running" state would look like a dead engine.
            set_run_status(state, "paused")
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        integration = worktrees.ensure_integration(repo, plan.name)
    # The tests gate gets the same test command as a run's (plan, config, or detected).
    plan = testcmd.apply(plan, testcmd.choose(repo, plan))
    return _Phase(repo, plan, store, integration, timeout_s)


def _collect_done(ctx: _Phase, s: Session, c: Collected, task: model.Task) -> None:
    """Verify a done session's commit and record the attempt (unless already recorded)."""
    c.branch = worktrees.task_branch(ctx.plan.name, task.id)
    work = bgwork.locate_work(ctx.repo, s, ctx.plan.name, task.id)
    if isinstance(work, str):
        c.result, c.message = "no_work", work
        c.next_step = f"see where its work is with `planfleet agents logs {c.id}`"
        return
    worktree, head = work
    c.worktree, c.commit = str(worktree), head
    if _already(ctx, c, task.id, head):
        return
    try:
        with ctx.store.transaction() as state:
            _ensure_task(state, ctx.plan, task.id)
            ops.claim(state, task.id, owner=OWNER, pid=os.getpid())
            attempt = int(state["tasks"][task.id]["attempts"])
    except RefusedError as exc:
        c.result, c.message, c.next_step = "waiting", exc.message, exc.hint
        return
    try:
        base = bgwork.point_branch(ctx.repo, ctx.plan.name, c.branch, head)
        with ctx.store.transaction() as state:
            # The worktree stays the session's (it may be sent feedback and work on): it is
            # left out of the record, so an engine resuming the plan does not adopt it.
            record = state["tasks"][task.id]
            record.update(branch=c.branch, base_commit=base, session_id=s.session_uuid or s.id)
            record["note"] = f"collected from background session {c.id} in {worktree}"
        v = gates.verify_attempt(
            ctx.repo,
            ctx.plan,
            task,
            worktree=worktree,
            branch=c.branch,
            base_commit=base,
            baseline=ctx.take_baseline(),
            claims=None,
            timeout_s=ctx.timeout_s,
        )
        c.verification = str(gates.save_record(ctx.repo, ctx.plan.name, task.id, attempt, v))
    except PlanfleetError as exc:
        with ctx.store.transaction() as state:
            ops.release(state, task.id, f"collect failed: {exc.message}")
        c.result, c.message, c.next_step = "error", exc.message, exc.hint
        return
    c.changed = True
    with ctx.store.transaction() as state:
        if v.ok:
            ops.complete(state, task.id, commit=head, verification=c.verification)
            enqueue(state, task.id)
        else:
            err = v.error or {"type": "verify_failed", "step": "gates", "message": "failed"}
            ops.fail(
                state,
                task.id,
                error_type=err["type"],
                step=err["step"],
                message=err["message"],
                feedback=v.feedback,
            )
            state["tasks"][task.id].update(commit=head, verification=c.verification)
    if v.ok:
        c.result, c.message = "verified", f"gates passed on {head[:12]}"
        ctx.queued.append(c)
    else:
        c.result, c.feedback = "failed", v.feedback
        c.message = (v.error or {}).get("message", "verification failed")


def _already(ctx: _Phase, c: Collected, tid: str, head: str) -> bool:
    """Fill ``c`` and return True when the state already settles this commit (no re-check)."""
    state = ctx.store.load()
    record = state["tasks"].get(tid)
    if record is None:
        return False
    status, commit = record["status"], record["commit"]
    if status == "verified" and record["merged_at"] and commit:
        c.result = "already_merged"
        c.message = f"merged at {record['merged_at']}"
        if commit != head and not git.is_ancestor(head, ctx.integration, cwd=ctx.repo):
            c.message += f"; the session has committed since ({head[:12]})"
            c.next_step = f"take its new work with `planfleet state reset {ctx.plan.name} {tid}`"
        return True
    if status == "verified" and commit:
        c.result, c.message = "verified", "verified before; waiting to be merged"
        if commit != head:
            c.message += f" (the session has committed since: {head[:12]})"
        c.commit = commit
        ctx.queued.append(c)
        return True
    if status == "verified":
        c.result, c.message = "skipped", record["note"] or "already verified"
        return True
    if status in ("failed", "timeout", "pending") and commit == head and record["error"]:
        c.result = "merge_failed" if record["error"]["step"] == "merge" else "failed"
        c.message, c.feedback = record["error"]["message"], record["feedback"]
        c.verification = record["verification"]
        return True
    if status == "in_progress":
        # We hold the engine lock: a claim still in progress is a dead engine's or collect's.
        why = orphan_reason(record)
        if why is None:
            c.result, c.message = "busy", f"task {tid} is in progress elsewhere"
            return True
        stop_leftovers([record])  # what the dead holder left running goes first
        with ctx.store.transaction() as st:
            ops.release(st, tid, f"orphaned: {why}")
        return False
    if status in ("blocked", "abandoned", "skipped"):
        c.result, c.message = "skipped", f"task {tid} is {status}: {record['note'] or ''}"
        c.next_step = f"planfleet state reset {ctx.plan.name} {tid}"
        return True
    return False


def _ensure_task(state: State, plan: model.Plan, tid: str) -> None:
    """Add a task the plan gained after its state was created (as the engine's sync does)."""
    if tid in state["tasks"]:
        return
    task = plan.task(tid)
    deps = graph.build(plan).deps[tid]
    state["tasks"][tid] = new_task(
        title=task.title, phase=task.phase, depends_on=deps, max_attempts=task.max_attempts
    )
    state["order"].append(tid)
    add_event(state, "added", tid, "new in the plan")


def _merge(ctx: _Phase) -> None:
    """Merge the verified tasks of this collect into the integration branch, one at a time."""
    for c in ctx.queued:
        tid = str(c.task)
        task = ctx.plan.task(tid)
        try:
            (res,) = merge_queue(
                ctx.repo,
                ctx.plan.name,
                [MergeItem(tid, tuple(task.writes))],
                check=task.verify,
                check_timeout=ctx.timeout_s,
            )
        except PlanfleetError as exc:
            c.result, c.message, c.next_step = "not_merged", exc.message, exc.hint
            continue
        c.changed = True
        with ctx.store.transaction() as state:
            ops.record_merge(state, tid, **res.outcome())
        if res.ok:
            c.result = "merged" if res.status == "merged" else "already_merged"
            c.message = f"merged into {worktrees.integration_branch(ctx.plan.name)}"
            if c.worktree:  # its work is in: the worktree is no longer the session's alone
                bgwork.release(ctx.repo, Path(c.worktree))
        else:
            c.result, c.message, c.feedback = "merge_failed", res.status, res.feedback()


def _feedback(ctx: _Phase, s: Session, c: Collected, send: bool) -> None:
    """Attach the command that sends a failure back to its session; run it if ``send``."""
    if not c.feedback:
        return
    exe = agents.claude_exe()
    c.resume_argv = bgwork.resume_argv(exe, s, c.feedback)
    mark = f"{c.id} {c.commit}"
    state = ctx.store.load()
    sent = any(
        e["event"] == "feedback_sent" and e["task"] == c.task and e["detail"] == mark
        for e in state["events"]
    )
    if sent:
        c.feedback_sent = True
        c.next_step = f"the feedback was sent; watch it with `planfleet agents logs {c.id}`"
        return
    if not send:
        c.next_step = f"send the feedback to the session: {c.resume_command}"
        return
    try:
        result = proc.run(
            c.resume_argv,
            cwd=ctx.repo,
            timeout=dispatch.DISPATCH_TIMEOUT_S,
            check=False,
            services=True,  # the session it resumes runs on in the background
        )
    except PlanfleetError as exc:
        c.message += f"; sending the feedback failed: {exc.message}"
        return
    if not result.ok:
        c.message += f"; sending the feedback failed: {(result.stderr or result.stdout).strip()}"
        return
    c.feedback_sent, c.changed = True, True
    c.next_step = "the session works on it; collect again when `planfleet agents` shows it done"
    with ctx.store.transaction() as st:
        add_event(st, "feedback_sent", c.task, mark)
