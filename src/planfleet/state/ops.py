"""Task transitions of the run state: claim, heartbeat, complete, fail, reset, and more.

Each function changes one task of a state document (inside a store transaction) and
refuses a transition the table in :mod:`planfleet.state.records` does not allow.
"""

from __future__ import annotations

import datetime as _dt
import os

from planfleet import proc
from planfleet.errors import RefusedError
from planfleet.state.records import (
    DEFAULT_LEASE_S,
    LIVE_FIELDS,
    State,
    TaskRecord,
    TransitionError,
    add_cost,
    add_event,
    dequeue,
    hostname,
    move,
    new_task,
    now_iso,
    parse_iso,
    task,
    to_iso,
    unmet_dependencies,
)

TIMEOUT_TYPES = frozenset({"timeout", "stall"})


def holder_text(record: TaskRecord) -> str:
    """Return who works on a task, for messages: owner, pid, host and since when."""
    parts = [f"owner {record['owner']}"] if record.get("owner") else []
    if record.get("pid"):
        parts.append(f"pid {record['pid']}")
    if record.get("host"):
        parts.append(f"on {record['host']}")
    if record.get("started_at"):
        parts.append(f"since {record['started_at']}")
    return " ".join(parts) or "an unknown holder"


def claim(
    state: State,
    task_id: str,
    *,
    owner: str | None = None,
    pid: int | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    now: str | None = None,
) -> TaskRecord:
    """Start an attempt of ``task_id``; RefusedError if it is taken, blocked by deps or spent."""
    record = task(state, task_id)
    if record["status"] == "in_progress":
        raise RefusedError(
            f"task {task_id!r} is already claimed by {holder_text(record)}",
            reason="already_claimed",
            details={
                "task": task_id,
                "owner": record["owner"],
                "pid": record["pid"],
                "host": record["host"],
                "since": record["started_at"],
            },
        )
    unmet = unmet_dependencies(state, task_id)
    if unmet:
        raise RefusedError(
            f"task {task_id!r} waits for {', '.join(unmet)}",
            reason="dependencies_unmet",
            next_step="claim it after its dependencies are verified",
            details={"task": task_id, "unmet": unmet},
        )
    limit = record["max_attempts"]
    if limit is not None and record["attempts"] >= limit:
        raise RefusedError(
            f"task {task_id!r} has used all {limit} attempts",
            reason="attempts_exhausted",
            next_step=f"planfleet state reset {state['plan']['name']} {task_id} --hard",
        )
    stamp = now or now_iso()
    move(state, task_id, "in_progress", now=stamp)
    record["attempts"] += 1
    record.update(owner=owner, started_at=stamp, finished_at=None, error=None, merged_at=None)
    record.update(dict.fromkeys(LIVE_FIELDS))
    record.update(host=hostname())
    if pid is not None:
        attach_process(state, task_id, pid, now=stamp)
    heartbeat(state, task_id, lease_s=lease_s, now=stamp)
    add_event(
        state,
        "claimed",
        task_id,
        f"attempt {record['attempts']}" + (f" by {owner}" if owner else ""),
        now=stamp,
    )
    return record


def attach_process(
    state: State,
    task_id: str,
    pid: int,
    *,
    session_id: str | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Record the process working on an in-progress task (pid, its start time, this host)."""
    record = _in_progress(state, task_id, "attach a process to")
    record.update(pid=pid, pid_start=proc.process_start_time(pid), host=hostname())
    if session_id is not None:
        record["session_id"] = session_id
    record["updated_at"] = now or now_iso()
    return record


def attach_group(state: State, task_id: str, pgid: int, *, now: str | None = None) -> TaskRecord:
    """Record the process group of the agent an in-progress attempt runs (and its start)."""
    record = _in_progress(state, task_id, "attach a process group to")
    record.update(pgid=pgid, pgid_start=proc.process_start_time(pgid))
    record["updated_at"] = now or now_iso()
    return record


def heartbeat(
    state: State,
    task_id: str,
    *,
    lease_s: float | None = None,
    owner: str | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Renew the lease of an in-progress task; refuse for a task not in progress."""
    record = _in_progress(state, task_id, "heartbeat")
    _check_owner(record, task_id, owner)
    stamp = now or now_iso()
    lease = float(lease_s if lease_s is not None else record["lease_s"] or DEFAULT_LEASE_S)
    until = parse_iso(stamp) + _dt.timedelta(seconds=lease)
    record.update(heartbeat_at=stamp, lease_s=lease, lease_until=to_iso(until), updated_at=stamp)
    return record


def _in_progress(state: State, task_id: str, action: str) -> TaskRecord:
    record = task(state, task_id)
    if record["status"] != "in_progress":
        raise TransitionError(
            f"cannot {action} task {task_id!r}: it is {record['status']}",
            reason="not_in_progress",
            details={"task": task_id, "status": record["status"]},
        )
    return record


def _check_owner(record: TaskRecord, task_id: str, owner: str | None) -> None:
    if owner is not None and record["owner"] not in (None, owner):
        raise RefusedError(
            f"task {task_id!r} is held by {holder_text(record)}, not {owner}",
            reason="not_owner",
            details={"task": task_id, "owner": record["owner"]},
        )


def _finish(
    state: State,
    task_id: str,
    status: str,
    *,
    owner: str | None,
    cost_usd: float | None,
    now: str | None,
) -> tuple[TaskRecord, str]:
    """End the attempt of ``task_id`` with ``status``; return its record and the time."""
    _check_owner(task(state, task_id), task_id, owner)
    stamp = now or now_iso()
    record = move(state, task_id, status, now=stamp)
    record.update(dict.fromkeys(LIVE_FIELDS), finished_at=stamp)
    if cost_usd is not None:
        add_cost(state, task_id, cost_usd)
    return record, stamp


def complete(
    state: State,
    task_id: str,
    *,
    commit: str,
    verification: str | None = None,
    owner: str | None = None,
    cost_usd: float | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Record ``task_id`` as verified at ``commit`` (and the verification record's reference)."""
    record, stamp = _finish(state, task_id, "verified", owner=owner, cost_usd=cost_usd, now=now)
    record.update(commit=commit, verification=verification, error=None, feedback=None)
    add_event(state, "verified", task_id, f"commit {commit}", now=stamp)
    return record


def fail(
    state: State,
    task_id: str,
    *,
    error_type: str,
    step: str,
    message: str,
    feedback: str | None = None,
    owner: str | None = None,
    cost_usd: float | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Record a failed attempt (status ``timeout`` for a timeout or a stall)."""
    status = "timeout" if error_type in TIMEOUT_TYPES else "failed"
    record, stamp = _finish(state, task_id, status, owner=owner, cost_usd=cost_usd, now=now)
    record["error"] = {"type": error_type, "step": step, "message": message}
    if feedback is not None:
        record["feedback"] = feedback
    add_event(state, status, task_id, f"{error_type} at {step}: {message}", now=stamp)
    return record


def reset(
    state: State,
    task_id: str,
    *,
    hard: bool = False,
    reason: str | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Put ``task_id`` back to pending; keep attempts, worktree and feedback unless ``hard``."""
    record = task(state, task_id)
    stamp = now or now_iso()
    if record["status"] != "pending":
        move(state, task_id, "pending", now=stamp)
    record.update(dict.fromkeys(LIVE_FIELDS), owner=None, merged_at=None, updated_at=stamp)
    if hard:
        fresh = new_task(
            title=record["title"],
            phase=record["phase"],
            kind=record["kind"],
            depends_on=record["depends_on"],
            max_attempts=record["max_attempts"],
            now=stamp,
        )
        fresh["cost_usd"] = record["cost_usd"]  # money spent stays spent
        record.clear()
        record.update(fresh)
    if reason is not None:
        record["note"] = reason
    if task_id in state["abandoned"]:
        state["abandoned"].remove(task_id)
    dequeue(state, task_id)
    add_event(state, "reset_hard" if hard else "reset", task_id, reason, now=stamp)
    return record


def release(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Hand an in-progress task back unfinished: pending again, the attempt not counted.

    For attempts that ended through no fault of the task (the run was paused, a usage
    limit was hit): they must not use up the task's attempts.
    """
    record = _in_progress(state, task_id, "release")
    stamp = now or now_iso()
    move(state, task_id, "pending", now=stamp)
    record.update(dict.fromkeys(LIVE_FIELDS), owner=None, finished_at=stamp)
    record["attempts"] = max(0, int(record["attempts"]) - 1)
    record["note"] = reason
    add_event(state, "released", task_id, reason, now=stamp)
    return record


def hold(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Hold ``task_id`` (``planfleet stop --task``): nothing starts it until it is unheld.

    A running task is released first (its attempt not counted); a failed one keeps its
    error and feedback for the attempt after the hold.
    """
    record = task(state, task_id)
    stamp = now or now_iso()
    if record["status"] == "in_progress":
        release(state, task_id, reason, now=stamp)
    move(state, task_id, "held", now=stamp)
    record.update(dict.fromkeys(LIVE_FIELDS), owner=None, note=reason)
    add_event(state, "held", task_id, reason, now=stamp)
    return record


def unhold(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Put a held task back in the queue (``planfleet resume``)."""
    return _move_noted(state, task_id, "pending", "unheld", reason, now)


def _move_noted(
    state: State, task_id: str, status: str, event: str, reason: str, now: str | None
) -> TaskRecord:
    """Move ``task_id`` to ``status`` with ``reason`` as its note and as the event's detail."""
    record = move(state, task_id, status, now=now)
    record["note"] = reason
    add_event(state, event, task_id, reason, now=now)
    return record


def record_merge(
    state: State,
    task_id: str,
    *,
    ok: bool,
    status: str,
    detail: str = "",
    feedback: str | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Record the outcome of merging a verified task: merged, or back to pending.

    A failed merge (``status`` conflict, refused_deletion, check_failed, ...) puts the task
    back to pending with the merge as its error and ``feedback`` for the next attempt.
    """
    stamp = now or now_iso()
    dequeue(state, task_id)
    record = task(state, task_id)
    if ok:
        record["merged_at"] = stamp
        add_event(state, "merged", task_id, detail, now=stamp)
        return record
    reset(state, task_id, reason=f"merge failed: {status}", now=stamp)
    kind = "merge_conflict" if status == "conflict" else status
    record["error"] = {"type": kind, "step": "merge", "message": status}
    record["feedback"] = feedback
    add_event(state, "merge_failed", task_id, status, now=stamp)
    return record


def block(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Mark ``task_id`` blocked (e.g. a dependency was abandoned) with ``reason``."""
    record = _move_noted(state, task_id, "blocked", "blocked", reason, now)
    record.update(dict.fromkeys(LIVE_FIELDS))
    return record


def skip(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Mark ``task_id`` skipped (its dependents may go on) with ``reason``."""
    return _move_noted(state, task_id, "skipped", "skipped", reason, now)


def abandon(state: State, task_id: str, reason: str, *, now: str | None = None) -> TaskRecord:
    """Give up on ``task_id``: status abandoned, added to the abandoned list."""
    record = move(state, task_id, "abandoned", now=now)
    record["note"] = reason
    record.update(dict.fromkeys(LIVE_FIELDS))
    if task_id not in state["abandoned"]:
        state["abandoned"].append(task_id)
    dequeue(state, task_id)
    add_event(state, "abandoned", task_id, reason, now=now)
    return record


def default_owner() -> str:
    """Return ``user@host:pid``-style text naming this process, for a claim's owner."""
    return f"{os.environ.get('USER', 'user')}@{hostname()}:{os.getpid()}"
