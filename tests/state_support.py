"""Helpers shared by the state tests: plans built in code, small states, forked workers."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from planfleet import schemas
from planfleet.plan import model
from planfleet.state import records as sm
from planfleet.state.store import StateStore


def make_plan(
    phases: Sequence[tuple[str, Sequence[str], Sequence[str]]],
    *,
    statuses: dict[str, str] | None = None,
    deps: dict[str, Sequence[str]] | None = None,
    name: str = "demo",
) -> model.Plan:
    """Return a Plan from ``(phase id, task ids, phase deps)`` triples.

    ``statuses`` gives recorded statuses of tasks or phases; ``deps`` task dependencies.
    """
    statuses = statuses or {}
    deps = deps or {}
    src = model.Source("plan.yaml", 1)
    plan_phases, tasks = [], []
    for pid, task_ids, phase_deps in phases:
        plan_phases.append(
            model.Phase(
                id=pid,
                title=f"Phase {pid}",
                source=src,
                depends_on=tuple(phase_deps),
                task_ids=tuple(task_ids),
                status=statuses.get(pid, "pending"),  # type: ignore[arg-type]
            )
        )
        for tid in task_ids:
            tasks.append(
                model.Task(
                    id=tid,
                    title=f"Task {tid}",
                    phase=pid,
                    source=src,
                    depends_on=tuple(deps.get(tid, ())),
                    max_attempts=3,
                    status=statuses.get(tid, "pending"),  # type: ignore[arg-type]
                )
            )
    return model.Plan(
        name=name,
        title="Demo plan",
        format="native",
        path="plan.yaml",
        phases=tuple(plan_phases),
        tasks=tuple(tasks),
    )


def flat_state(name: str, task_ids: Sequence[str]) -> sm.State:
    """Return a state with independent tasks in one phase."""
    state = sm.new_state(name=name, format="native", path="plan.yaml", title="t")
    for tid in task_ids:
        state["tasks"][tid] = sm.new_task(title=f"Task {tid}", phase="p1", max_attempts=5)
        state["order"].append(tid)
    return state


def create_store(path: Path, task_ids: Sequence[str], **kwargs: Any) -> StateStore:
    """Create a state file at ``path`` with independent tasks; return its store."""
    store = StateStore(path, **kwargs)
    store.create(flat_state(path.stem, task_ids))
    return store


@cache
def reference_validator() -> Any:
    """Return jsonschema's validator for the state schema (the independent judge)."""
    schema = schemas.load("state")
    return jsonschema.validators.validator_for(schema)(schema)


def read_valid(path: Path) -> dict[str, Any]:
    """Return the state file parsed; raise if it is not valid by jsonschema."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    reference_validator().validate(doc)
    return doc


def temp_files(path: Path) -> list[str]:
    """Return the names of atomic-write temp files next to ``path``."""
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*.tmp"))


def fork(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child process and return its pid (exit 0 = success)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_ok(pid: int, timeout_note: str = "") -> None:
    """Wait for a forked child and assert it exited 0."""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed {timeout_note}"
