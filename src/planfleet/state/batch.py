"""Several state changes in one transaction (`planfleet state apply`): parsed and checked
in full before the first one is made, so a bad change leaves the state as it was."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from planfleet.errors import InputError, PlanfleetError
from planfleet.state import ops

SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
Change = tuple[str, str, dict[str, Any]]  # (op, task id, keyword arguments of the op)

# Each operation's fields -> (the keyword of the ops function, the JSON types).
_NUMBER = (int, float)
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
FIELDS: dict[str, dict[str, tuple[str, tuple[type, ...]]]] = {
    "claim": {"owner": ("owner", (str,)), "pid": ("pid", (int,)), "lease": ("lease_s", _NUMBER)},
    "heartbeat": {"owner": ("owner", (str,)), "lease": ("lease_s", _NUMBER)},
    "complete": {
        "commit": ("commit", (str,)),
        "verification": ("verification", (str,)),
        "owner": ("owner", (str,)),
        "cost": ("cost_usd", _NUMBER),
    },
    "fail": {
        "type": ("error_type", (str,)),
        "step": ("step", (str,)),
        "message": ("message", (str,)),
        "feedback": ("feedback", (str,)),
        "owner": ("owner", (str,)),
        "cost": ("cost_usd", _NUMBER),
    },
    "reset": {"hard": ("hard", (bool,)), "reason": ("reason", (str,))},
}
REQUIRED = {"complete": ("commit",), "fail": ("type", "step", "message")}
OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "claim": ops.claim,
    "heartbeat": ops.heartbeat,
    "complete": ops.complete,
    "fail": ops.fail,
    "reset": ops.reset,
}


def parse_changes(doc: Any, where: str) -> list[Change]:
    """Return (op, task, keyword arguments) per change; InputError naming the bad field."""
    if not isinstance(doc, list) or not doc:
        raise InputError("expected a non-empty JSON array of changes", file=where)
    changes: list[Change] = []
    for n, change in enumerate(doc, 1):
        at = f"change {n}"
        if not isinstance(change, dict):
            raise InputError("a change must be an object", file=where, field=at)
        op, task_id = change.get("op"), change.get("task")
        if op not in OPERATIONS:
            known = ", ".join(OPERATIONS)
            raise InputError(f"unknown op {op!r} (one of {known})", file=where, field=f"{at}.op")
        if not isinstance(task_id, str) or not task_id:
            raise InputError("a task id is required", file=where, field=f"{at}.task")
        fields = FIELDS[op]
        kwargs: dict[str, Any] = {}
        for key, value in change.items():
            if key in ("op", "task"):
                continue
            if key not in fields:
                known = ", ".join(fields) or "none"
                raise InputError(
                    f"{op} takes no field {key!r} (it takes: {known})",
                    file=where,
                    field=f"{at}.{key}",
                )
            name, types = fields[key]
            wrong_bool = isinstance(value, bool) and bool not in types
            if value is None or not isinstance(value, types) or wrong_bool:
                kind = " or ".join(_TYPE_NAMES[t] for t in types)
                raise InputError(f"must be {kind}", file=where, field=f"{at}.{key}")
            kwargs[name] = value
        for key in REQUIRED.get(op, ()):
            if key not in change:
                raise InputError(f"{op} needs {key!r}", file=where, field=f"{at}.{key}")
        if "lease_s" in kwargs and not kwargs["lease_s"] > 0:
            raise InputError(
                "must be a positive number of seconds", file=where, field=f"{at}.lease"
            )
        if "commit" in kwargs and not SHA.match(kwargs["commit"]):
            raise InputError("not a commit id", file=where, field=f"{at}.commit")
        if op == "claim" and "owner" not in kwargs:
            kwargs["owner"] = ops.default_owner()
        changes.append((op, task_id, kwargs))
    return changes


def apply(state: dict[str, Any], changes: list[Change]) -> list[dict[str, Any]]:
    """Make ``changes`` on ``state`` (inside one transaction) and return each new record.

    A refused change raises with its number added to the message; the caller's transaction
    then writes nothing, so either every change is made or none is.
    """
    results = []
    for n, (op, task_id, kwargs) in enumerate(changes, 1):
        try:
            record = OPERATIONS[op](state, task_id, **kwargs)
        except PlanfleetError as exc:
            exc.message = f"change {n} ({op} {task_id}), none made: {exc.message}"
            raise
        results.append({"op": op, "task": task_id, "record": copy.deepcopy(record)})
    return results
