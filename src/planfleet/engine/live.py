"""What an attempt's worker thread records at once about the process it started.

Recorded at once, not by the main thread when the attempt ends: a resume after ``kill -9``
of the engine finds the agent's process group, and a remote session, from the state.
Each call opens a store of its own (its lock works across threads) and writes only when
the task is still in progress with the same attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path
from typing import Any

from planfleet.engine.attempt import AttemptSpec
from planfleet.errors import PlanfleetError
from planfleet.state import ops
from planfleet.state.records import State, TaskRecord, add_event
from planfleet.state.store import StateStore

_SESSION_EVENT = re.compile(r"^attempt (\d+): session (\S+)(?: (\S+))?$")


def adoptable(state: State, tid: str, attempt: int) -> dict[str, str] | None:
    """Return the cloud session attempt ``attempt`` of ``tid`` started, if the state has one.

    An attempt that ended was counted (the next one has another number): a session of the
    same number belongs to an attempt an engine was stopped or killed in.
    """
    for event in reversed(state["events"]):
        if event["event"] != "cloud_session" or event["task"] != tid:
            continue
        m = _SESSION_EVENT.match(event["detail"] or "")
        if m and int(m.group(1)) == attempt and m.group(2) != "?":
            return {"session_id": m.group(2), "url": m.group(3) or ""}
        return None
    return None


def adopt(state: State, spec: AttemptSpec) -> AttemptSpec:
    """Return ``spec`` set to go on with its attempt's cloud session, when it has one."""
    found = adoptable(state, spec.task.id, spec.attempt)
    if found is None:
        return spec
    add_event(
        state, "cloud_adopted", spec.task.id, f"attempt {spec.attempt}: {found['session_id']}"
    )
    return dataclasses.replace(spec, options={**spec.options, "adopt": found})


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


def resumable(record: dict[str, Any]) -> str | None:
    """Return the session a retry continues: only one whose agent ended its turn normally
    (a killed or crashed session may not have been saved; a fresh start with the feedback
    is the safer retry)."""
    error = record.get("error") or {}
    if (
        record["attempts"] >= 1
        and record.get("session_id")
        and error.get("step") not in ("agent", "setup")
    ):
        return str(record["session_id"])
    return None
