"""Resume checks on a state: orphaned in-progress tasks, and verified tasks git no longer backs.

An ``in_progress`` task whose worker is gone (its pid is dead or now names another process,
or, for a claim with no process of this host, its lease expired) is an orphan: it goes back
to ``pending`` with its worktree, branch and feedback kept. Its attempt is given back when
planfleet itself held the claim (the engine died, or was stopped: not the agent's failure);
a worker that claimed for itself and vanished used its attempt. Processes a dead holder
left running (its agent's process group, and everything marked with its lineage) are found
and stopped before the worktree is handed to anyone else. A ``verified`` task whose commit
no longer exists (or is not on the branch it should be on) is not trusted.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable
from pathlib import Path

import psutil

from planfleet import git, proc, proctree
from planfleet.state.records import (
    LIVE_FIELDS,
    PLANFLEET_OWNERS,
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
    """Put every orphan back to pending (worktree and branch kept); return them.

    The attempt is given back when planfleet held the claim (see the module's docstring).
    """
    found = find_orphans(state, host=host, now=now)
    stamp = now_iso()
    for tid, reason in found.items():
        record = move(state, tid, "pending", now=stamp)
        note = f"orphaned: {reason}"
        if (record["owner"] or "").startswith(PLANFLEET_OWNERS):
            record["attempts"] = max(0, int(record["attempts"]) - 1)
            note += "; the interrupted attempt is not counted"
        record.update(dict.fromkeys(LIVE_FIELDS), owner=None, note=note)
        add_event(state, "orphaned", tid, reason, now=stamp)
    return found


def leftover_processes(record: TaskRecord, task_id: str | None = None) -> list[psutil.Process]:
    """Return the live processes an in-progress attempt's dead holder left behind.

    Its agent's process group (unless that number now names another group), and every
    process marked with the holder's lineage: also those that left the group (``setsid``).
    With ``task_id``, of the marked ones only those of that task (its agent's environment
    names it, or they work in its worktree). Only for a holder on this host that is gone.
    """
    if record["status"] != "in_progress" or record["host"] != hostname():
        return []
    holder = record["pid"]
    if holder is None or orphan_reason(record) is None:
        return []
    found = {}
    pgid = record["pgid"]
    if pgid is not None and proctree.group_is(pgid, record["pgid_start"]):
        found.update({p.pid: p for p in proctree.group_members(pgid)})
    prefix = proctree.holder_prefix(holder, record["pid_start"])
    for p in proctree.marked(lambda t: t.startswith(prefix), since=record["pid_start"]):
        if task_id is None or _works_on(p.pid, task_id, record["worktree"]):
            found[p.pid] = p
    found.pop(os.getpid(), None)
    return list(found.values())


def _works_on(pid: int, task_id: str, worktree: str | None) -> bool:
    if proctree.environ_value(pid, "PLANFLEET_TASK") == task_id:
        return True
    cwd = proctree.cwd_of(pid)
    if not worktree or cwd is None:
        return False
    return proctree.within(cwd, str(Path(worktree).resolve()))


def stop_leftovers(
    records: Iterable[TaskRecord], *, task_id: str | None = None, grace_s: float = 3.0
) -> list[int]:
    """Stop what dead holders of ``records`` left running (INT, TERM, KILL); return survivors.

    With ``task_id`` only that task's processes (see :func:`leftover_processes`). Returns
    when every such process is gone (or stuck in the kernel past a SIGKILL): only then may
    the worktree be given to a new attempt. Looks again after each round, for children
    they forked meanwhile (they carry the same mark).
    """
    records = list(records)
    survivors: list[int] = []
    for _ in range(3):
        procs = {p.pid: p for r in records for p in leftover_processes(r, task_id)}
        if not set(procs) - set(survivors):
            break
        survivors = proctree.terminate(procs.values(), grace_s=grace_s)
    return survivors


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
