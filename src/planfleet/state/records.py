"""The run state as plain JSON-ready dicts: records, the transition table, and transitions.

The on-disk JSON (``schemas/state.schema.json``) is the contract; these functions are the
only code that changes a state document, and each one refuses an illegal transition.
"""

from __future__ import annotations

import datetime as _dt
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from planfleet.errors import InputError, RefusedError
from planfleet.ids import check_id

SCHEMA_VERSION = 1
State = dict[str, Any]
TaskRecord = dict[str, Any]

TASK_STATUSES = (
    "pending",
    "in_progress",
    "verified",
    "failed",
    "timeout",
    "blocked",
    "abandoned",
    "skipped",
    "held",
)
RUN_STATUSES = ("running", "paused", "completed", "failed")

# status -> the statuses it may move to. Anything else is refused.
# A running task is held by handing it back (pending) first: see state.ops.hold.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"in_progress", "blocked", "skipped", "abandoned", "held"}),
    "in_progress": frozenset({"verified", "failed", "timeout", "blocked", "abandoned", "pending"}),
    "failed": frozenset({"in_progress", "pending", "blocked", "skipped", "abandoned", "held"}),
    "timeout": frozenset({"in_progress", "pending", "blocked", "skipped", "abandoned", "held"}),
    "blocked": frozenset({"pending", "skipped", "abandoned", "held"}),
    "abandoned": frozenset({"pending"}),
    "skipped": frozenset({"pending"}),
    "verified": frozenset({"pending"}),
    "held": frozenset({"pending", "skipped", "abandoned"}),
}
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "running": frozenset({"paused", "completed", "failed"}),
    "paused": frozenset({"running", "failed"}),
    "completed": frozenset({"running"}),
    "failed": frozenset({"running"}),
}
CLAIMABLE = frozenset({"pending", "failed", "timeout"})
# What `planfleet stop --task` can hold: a task waiting for its turn (or running, see above).
HOLDABLE = frozenset({"pending", "failed", "timeout", "blocked"})
SATISFIED = frozenset({"verified", "skipped"})  # a dependency in these states lets work start
DEFAULT_LEASE_S = 900.0
# The timeline keeps the latest events: past MAX_EVENTS the oldest tenth goes at once (every
# transaction re-reads the whole file, so an unbounded list would slow every one of them).
MAX_EVENTS = 2000

# Fields that describe the live process of an attempt; cleared when the attempt ends.
# ``pid`` is the holder (the engine); ``pgid`` the process group of the agent it started.
LIVE_FIELDS = (
    "pid",
    "pid_start",
    "host",
    "heartbeat_at",
    "lease_s",
    "lease_until",
    "pgid",
    "pgid_start",
)
# Owners of claims that planfleet itself holds (the engine, `agents collect`): when such a
# holder dies, the attempt it cut short is not the agent's failure.
PLANFLEET_OWNERS = ("engine:", "planfleet ")
# The optional fields of a task record. In memory every record has all of them (None when
# unset), so code can index them; on disk an unset one is left out, keeping files small.
OPTIONAL_FIELDS = (
    "max_attempts",
    "error",
    "feedback",
    "note",
    "owner",
    "worktree",
    "branch",
    "commit",
    "base_commit",
    "session_id",
    "verification",
    "started_at",
    "finished_at",
    "merged_at",
    *LIVE_FIELDS,
)
_UNSET: dict[str, None] = dict.fromkeys(OPTIONAL_FIELDS)


def with_defaults(record: Mapping[str, Any]) -> TaskRecord:
    """Return a task record as read from disk with every unset optional field as None."""
    return {**_UNSET, **record}


def without_defaults(record: Mapping[str, Any]) -> TaskRecord:
    """Return a task record as written to disk: unset (None) fields left out."""
    return {k: v for k, v in record.items() if v is not None}


class TransitionError(RefusedError):
    """A task (or the run) may not move from its status to the one asked for."""


def now_iso() -> str:
    """Return the current UTC time as ISO-8601 with milliseconds and a ``Z``."""
    return to_iso(_dt.datetime.now(_dt.timezone.utc))


def to_iso(moment: _dt.datetime) -> str:
    """Return ``moment`` (aware) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> _dt.datetime:
    """Return the aware datetime of a timestamp written by :func:`to_iso`."""
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def hostname() -> str:
    return socket.gethostname()


def new_task(
    *,
    title: str,
    phase: str,
    kind: str = "task",
    depends_on: Sequence[str] = (),
    status: str = "pending",
    max_attempts: int | None = None,
    note: str | None = None,
    now: str | None = None,
) -> TaskRecord:
    """Return a fresh task (or gate) record."""
    record = with_defaults({})
    record.update(
        status=status,
        kind=kind,
        phase=phase,
        title=title,
        depends_on=list(depends_on),
        attempts=0,
        max_attempts=max_attempts,
        note=note,
        cost_usd=0,
        updated_at=now or now_iso(),
    )
    return record


def new_state(
    *, name: str, format: str = "", path: str = "", title: str = "", now: str | None = None
) -> State:
    """Return an empty run state for the plan ``name``."""
    stamp = now or now_iso()
    return {
        "schema_version": SCHEMA_VERSION,
        "plan": {
            "name": check_id(name, what="plan name"),
            "format": format,
            "path": path,
            "title": title,
        },
        "status": "running",
        "created_at": stamp,
        "updated_at": stamp,
        "revision": 0,
        "order": [],
        "tasks": {},
        "merge_queue": [],
        "abandoned": [],
        "events": [],
        "totals": {"cost_usd": 0},
    }


def task(state: State, task_id: str) -> TaskRecord:
    """Return the record of ``task_id``; raise InputError naming the known ids if unknown."""
    try:
        record: TaskRecord = state["tasks"][task_id]
    except KeyError:
        known = ", ".join(state["order"][:10]) or "none"
        raise InputError(
            f"no task {task_id!r} in plan {state['plan']['name']!r}",
            field="task",
            hint=f"known tasks: {known}",
        ) from None
    return record


def ordered_ids(state: State) -> list[str]:
    """Return the node ids in plan order (ids missing from ``order`` last, sorted)."""
    seen = [t for t in state["order"] if t in state["tasks"]]
    rest = sorted(set(state["tasks"]) - set(seen))
    return seen + rest


def add_event(
    state: State,
    event: str,
    task_id: str | None,
    detail: str | None = None,
    *,
    now: str | None = None,
) -> None:
    """Append an event to the timeline (past MAX_EVENTS the oldest tenth is dropped)."""
    events = state["events"]
    events.append({"detail": detail, "event": event, "task": task_id, "ts": now or now_iso()})
    if len(events) > MAX_EVENTS:
        del events[: len(events) - MAX_EVENTS + MAX_EVENTS // 10]


def move(state: State, task_id: str, status: str, *, now: str | None = None) -> TaskRecord:
    """Move ``task_id`` to ``status`` and return its record; raise TransitionError if illegal."""
    record = task(state, task_id)
    current = record["status"]
    if status not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        raise TransitionError(
            f"task {task_id!r} is {current}; it cannot become {status}",
            reason="illegal_transition",
            next_step=f"from {current} a task may become: {allowed}",
            details={"task": task_id, "from": current, "to": status},
        )
    record["status"] = status
    record["updated_at"] = now or now_iso()
    return record


def set_run_status(state: State, status: str, *, now: str | None = None) -> None:
    """Move the run to ``status``; raise TransitionError if illegal."""
    current = state["status"]
    if current == status:
        return
    if status not in RUN_TRANSITIONS[current]:
        raise TransitionError(
            f"the run is {current}; it cannot become {status}",
            reason="illegal_transition",
            details={"from": current, "to": status},
        )
    state["status"] = status
    add_event(state, f"run_{status}", None, None, now=now)


def unmet_dependencies(state: State, task_id: str) -> list[str]:
    """Return the dependencies of ``task_id`` that are not verified or skipped."""
    tasks = state["tasks"]
    return [
        d
        for d in task(state, task_id)["depends_on"]
        if d not in tasks or tasks[d]["status"] not in SATISFIED
    ]


def ready_tasks(state: State) -> list[str]:
    """Return the tasks a claim would accept now, in plan order."""
    tasks = state["tasks"]
    return [
        t
        for t in ordered_ids(state)
        if tasks[t]["status"] in CLAIMABLE
        and (tasks[t]["max_attempts"] is None or tasks[t]["attempts"] < tasks[t]["max_attempts"])
        and not unmet_dependencies(state, t)
    ]


def add_cost(state: State, task_id: str, usd: float) -> None:
    """Add ``usd`` to a task's cost and the run total; InputError if negative."""
    if usd < 0:
        raise InputError(f"cost must not be negative, got {usd}", field="cost_usd")
    task(state, task_id)["cost_usd"] += usd
    state["totals"]["cost_usd"] += usd


def enqueue(state: State, task_id: str, priority: float = 0, *, now: str | None = None) -> None:
    """Put a verified task in the merge queue (once); higher priority merges first."""
    if task(state, task_id)["status"] != "verified":
        raise TransitionError(
            f"only a verified task can be queued for merge, not {task_id!r}",
            reason="not_verified",
            details={"task": task_id},
        )
    if any(e["task"] == task_id for e in state["merge_queue"]):
        return
    state["merge_queue"].append(
        {"task": task_id, "priority": priority, "enqueued_at": now or now_iso()}
    )


def merge_order(state: State) -> list[str]:
    """Return the queued task ids, highest priority first, then first come first served."""
    indexed = list(enumerate(state["merge_queue"]))
    indexed.sort(key=lambda ie: (-ie[1]["priority"], ie[1]["enqueued_at"], ie[0]))
    return [e["task"] for _, e in indexed]


def dequeue(state: State, task_id: str) -> bool:
    """Remove ``task_id`` from the merge queue; return True if it was there."""
    queue = state["merge_queue"]
    before = len(queue)
    queue[:] = [e for e in queue if e["task"] != task_id]
    return len(queue) != before
