"""Recording what attempts and gates produced, and merging verified work, for the engine.

Runs on the engine's main thread: every change is one state transaction. A verified task
is queued and merged at once (one at a time); a failed one keeps its error and feedback
and is abandoned when it has no attempts left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from planfleet.engine import runinfo, scheduler
from planfleet.engine.attempt import Outcome
from planfleet.engine.phasegate import GateOutcome
from planfleet.errors import PlanfleetError
from planfleet.plan import model
from planfleet.repo import guards, merge, pool
from planfleet.state import ops
from planfleet.state.records import (
    HOLDABLE,
    State,
    add_cost,
    add_event,
    enqueue,
    merge_order,
    now_iso,
)
from planfleet.state.store import StateStore


@dataclass
class Recorder:
    """The engine's bookkeeping for one plan run."""

    repo: Path
    plan: model.Plan
    store: StateStore
    priority: dict[str, float]
    max_attempts: int
    post_merge_check: bool
    timeout_s: float
    pause: Callable[[str], None]
    # --wait-on-limit: called with (state, task, kind, reset text) instead of pausing the
    # run; it returns False when the run should pause after all
    on_limit: Callable[[State, str, str, str | None], bool] | None = None

    def attempt(self, out: Outcome, *, hold: bool = False) -> None:
        """Record how an attempt ended; queue and merge it when it was verified.

        ``hold``: `planfleet stop --task` asked for this task; unless it was verified
        anyway, it is held (not counted, not retried) until the next resume.
        """
        tid = out.task
        with self.store.transaction() as state:
            record = state["tasks"][tid]
            if out.agent and out.agent.session_id:
                record["session_id"] = out.agent.session_id
            record.update(worktree=out.worktree, branch=out.branch, base_commit=out.base_commit)
            if out.kept_branch:
                add_event(state, "attempt_kept", tid, f"attempt {out.attempt} on {out.kept_branch}")
            if out.verdict in ("stopped", "limit"):
                # Not the task's fault: the attempt is not counted (and the task is held
                # when that was asked for).
                limit = out.error["message"] if out.error else None
                if hold:
                    ops.hold(state, tid, runinfo.HELD_NOTE)
                elif out.verdict == "stopped":
                    ops.release(state, tid, "stopped: the run was paused")
                else:
                    how = "waiting out" if self.on_limit is not None else "paused by"
                    ops.release(state, tid, f"{how} {limit or 'a limit'}")
                _add_cost(state, tid, out.cost_usd)
                if out.verdict == "limit":
                    kind = (out.agent.limit if out.agent else None) or "usage_limit"
                    detail = out.agent.limit_detail if out.agent else None
                    if self.on_limit is None or not self.on_limit(state, tid, kind, detail):
                        self.pause(f"{limit or 'usage limit'}: resume later")
                return
            if out.verdict == "verified" and out.verification is not None:
                ops.complete(
                    state,
                    tid,
                    commit=out.verification.commit or "",
                    verification=out.record,
                    cost_usd=out.cost_usd,
                )
                enqueue(state, tid, self.priority.get(tid, 0.0))
            else:
                err = out.error or {"type": "crash", "step": "agent", "message": "no outcome"}
                ops.fail(
                    state,
                    tid,
                    error_type=err["type"],
                    step=err["step"],
                    message=err["message"],
                    feedback=out.feedback,
                    cost_usd=out.cost_usd,
                )
                if out.record:
                    record["verification"] = out.record
                self._maybe_abandon(state, tid)
                if hold and record["status"] in HOLDABLE:
                    ops.hold(state, tid, runinfo.HELD_NOTE)
        if out.verdict == "verified":
            self.merge_queue()
        elif out.error and out.error["type"] == "merge_conflict":
            self._fresh_start(tid)

    def _maybe_abandon(self, state: State, tid: str) -> None:
        record = state["tasks"][tid]
        if not scheduler.attempts_left(record, self.max_attempts):
            ops.abandon(
                state,
                tid,
                f"gave up after {record['attempts']} attempts: {record['error']['message']}",
            )

    def gate(self, gid: str, out: GateOutcome) -> None:
        """Record how a phase gate ended (a failed gate is abandoned: it has no agent)."""
        with self.store.transaction() as state:
            if out.stopped:
                ops.release(state, gid, "stopped: the run was paused")
            elif out.ok:
                ops.complete(state, gid, commit=out.commit, verification=out.record)
                state["tasks"][gid]["merged_at"] = now_iso()
            else:
                ops.fail(
                    state,
                    gid,
                    error_type=out.error_type,
                    step="phase gate",
                    message=out.message,
                    feedback=out.output,
                )
                ops.abandon(state, gid, f"phase gate failed: {out.message}")

    def merge_queue(self) -> None:
        """Merge every queued verified task, one at a time, in queue order."""
        while True:
            state = self.store.load()
            order = [t for t in merge_order(state) if state["tasks"][t]["status"] == "verified"]
            if not order:
                return
            tid = order[0]
            task = self.plan.task(tid)
            checks = task.verify if self.post_merge_check else ()
            item = merge.MergeItem(tid, tuple(task.writes))
            try:
                (res,) = merge.merge_queue(
                    self.repo,
                    self.plan.name,
                    [item],
                    check=checks,
                    check_timeout=self.timeout_s,
                )
            except PlanfleetError as exc:
                self.pause(f"merging {tid} failed: {exc.message}")
                return
            self._record_merge(tid, res)

    def _record_merge(self, tid: str, res: merge.MergeResult) -> None:
        with self.store.transaction() as state:
            record = ops.record_merge(state, tid, **res.outcome())
            if not res.ok and not scheduler.attempts_left(record, self.max_attempts):
                ops.abandon(state, tid, f"could not be merged: {res.status}")
        if res.ok:
            # Merged work is on the integration branch: the worktree is parked for the next
            # task (a recycled checkout rewrites only what differs), or removed.
            # (Done here, not in the background: the next task should find the spare.)
            self._park(tid, res.head if res.status in ("merged", "already_merged") else None)
        else:
            self._fresh_start(tid)

    def _fresh_start(self, tid: str) -> None:
        """Remove the task's worktree: the next attempt starts from the integration tip.

        The old work is kept on a rescue branch, named in the task's feedback.
        """
        with contextlib.suppress(PlanfleetError):
            removal = guards.remove(self.repo, self.plan.name, tid)
            if removal.rescue.branch:
                with self.store.transaction() as state:
                    state["tasks"][tid]["feedback"] += (
                        f"\nYour earlier work is saved on branch {removal.rescue.branch}."
                    )

    def _park(self, tid: str, merged: str | None) -> None:
        with contextlib.suppress(PlanfleetError):
            if pool.park(self.repo, self.plan.name, tid, merged=merged) is None:
                guards.remove(self.repo, self.plan.name, tid)


def _add_cost(state: State, tid: str, usd: float) -> None:
    if usd > 0:
        add_cost(state, tid, usd)
