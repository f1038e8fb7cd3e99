"""Resume checks on a state: orphaned in-progress tasks, and verified tasks git no longer backs.

An ``in_progress`` task whose worker is gone (its pid is dead or now names another process,
or, for a claim with no process of this host, its lease expired) is an orphan: it goes back
to ``pending`` with its worktree, branch, attempts and feedback kept. A ``verified`` task
whose commit no longer exists (or is not on the branch it should be on) is not trusted.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from planfleet import git, proc
from planfleet.statemodel import (
    LIVE_FIELDS,
    State,
    TaskRecord,
    add_event,
    dequeue,
    hostname,
    move,
    now_iso,
    ordered_ids,
    parse_iso,
)


def orphan_reason(
    record: TaskRecord, *, host: str | None = None, now: _dt.datetime | None = None
) -> str | None:
    """Return why an in-progress task's worker is gone, or None if it may still be alive."""
    if record["status"] != "in_progress":
        return None
    here = host or hostname()
    pid = record["pid"]
    if pid is not None and record["host"] == here:
        if not proc.pid_alive(pid):
            return f"its process {pid} is gone"
        started = record["pid_start"]
        if started is not None and proc.process_start_time(pid) != started:
            return f"pid {pid} now belongs to another process (its start time changed)"
        return None
    # A claim on another host, or one with no process (an in-session worker): the lease
    # decides, renewed by heartbeats.
    until = record["lease_until"]
    if until is None:
        return "it records neither a process nor a lease"
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    if parse_iso(until) > moment:
        return None
    where = f" on {record['host']}" if record["host"] and record["host"] != here else ""
    return f"its lease{where} expired at {until}"


def find_orphans(
    state: State, *, host: str | None = None, now: _dt.datetime | None = None
) -> dict[str, str]:
    """Return ``{task id: reason}`` for every orphaned in-progress task, in plan order."""
    found = {}
    for tid in ordered_ids(state):
        reason = orphan_reason(state["tasks"][tid], host=host, now=now)
        if reason is not None:
            found[tid] = reason
    return found


def requeue_orphans(
    state: State, *, host: str | None = None, now: _dt.datetime | None = None
) -> dict[str, str]:
    """Put every orphan back to pending (worktree, branch and attempts kept); return them."""
    found = find_orphans(state, host=host, now=now)
    stamp = now_iso()
    for tid, reason in found.items():
        record = move(state, tid, "pending", now=stamp)
        record.update(dict.fromkeys(LIVE_FIELDS), owner=None, note=f"orphaned: {reason}")
        add_event(state, "orphaned", tid, reason, now=stamp)
    return found


def commit_problem(record: TaskRecord, repo: Path, *, ref: str | None = None) -> str | None:
    """Return why a verified task's commit cannot be trusted, or None.

    The commit must exist, and be reachable from ``ref`` when given (e.g. the integration
    branch once the task was merged), otherwise from the task's own branch if it still
    exists. A task verified without a commit (imported as done) has nothing to check.
    """
    commit = record["commit"]
    if record["status"] != "verified" or not commit:
        return None
    if git.rev_parse(commit, cwd=repo) is None:
        return f"its commit {commit} no longer exists in the repository"
    target = ref or record["branch"]
    if target and git.rev_parse(target, cwd=repo) is None:
        return None if ref is None else f"{ref} does not exist"
    if target and not git.is_ancestor(commit, target, cwd=repo):
        return f"its commit {commit} is not reachable from {target}"
    return None


def find_untrusted(state: State, repo: Path, *, ref: str | None = None) -> dict[str, str]:
    """Return ``{task id: reason}`` for verified tasks whose commit git no longer backs."""
    found = {}
    for tid in ordered_ids(state):
        problem = commit_problem(state["tasks"][tid], repo, ref=ref)
        if problem is not None:
            found[tid] = problem
    return found


def demote_untrusted(state: State, found: dict[str, str]) -> None:
    """Put each task of ``found`` (from :func:`find_untrusted`) back to pending."""
    stamp = now_iso()
    for tid, reason in found.items():
        record = move(state, tid, "pending", now=stamp)
        record.update(commit=None, verification=None, note=f"not trusted: {reason}")
        dequeue(state, tid)
        add_event(state, "untrusted", tid, reason, now=stamp)
