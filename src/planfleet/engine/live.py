"""What an attempt's worker thread records at once about the process it started.

Recorded at once, not by the main thread when the attempt ends: a resume after ``kill -9``
of the engine finds the agent's process group, and a remote session, from the state.
Each call opens a store of its own (its lock works across threads) and writes only when
the task is still in progress with the same attempt.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from planfleet.errors import PlanfleetError
from planfleet.state import ops
from planfleet.state.records import State, TaskRecord, add_event
from planfleet.state.store import StateStore


def _current(state: State, tid: str, attempt: int) -> TaskRecord | None:
    """Return the record of ``tid`` when it still runs ``attempt``, else None."""
    record: TaskRecord | None = state["tasks"].get(tid)
    if record and record["status"] == "in_progress" and record["attempts"] == attempt:
        return record
    return None


def started(repo: Path, plan: str, tid: str, attempt: int, pgid: int) -> None:
    """Record the process group an attempt's agent runs in."""
    store = StateStore.for_plan(repo, plan)
    with contextlib.suppress(PlanfleetError), store.transaction() as state:
        if _current(state, tid, attempt) is not None:
            ops.attach_group(state, tid, pgid)


def session(
    repo: Path, plan: str, tid: str, attempt: int, session_id: str, url: str | None
) -> None:
    """Record the remote session an attempt started (its id, and an event with its URL)."""
    store = StateStore.for_plan(repo, plan)
    with contextlib.suppress(PlanfleetError), store.transaction() as state:
        record = _current(state, tid, attempt)
        if record is not None:
            if session_id:
                record["session_id"] = session_id
            detail = f"attempt {attempt}: session {session_id or '?'} {url or ''}".rstrip()
            add_event(state, "cloud_session", tid, detail)
