"""A new run state from a Plan: one record per task, one gate per phase, recorded statuses kept."""

from __future__ import annotations

from collections.abc import Iterable

from planfleet.errors import InputError
from planfleet.ids import check_id
from planfleet.plan import graph, model
from planfleet.state.records import State, add_event, new_state, new_task, now_iso

# What a plan file may have recorded about a task or phase, and the state it starts in.
_IMPORTED: dict[str, tuple[str, str | None]] = {
    "pending": ("pending", None),
    "in_progress": ("pending", "imported: recorded in progress in the plan; starts again"),
    "done": ("verified", "imported: recorded done in the plan"),
    "failed": ("failed", "imported: recorded failed in the plan"),
    "blocked": ("blocked", "imported: recorded blocked in the plan"),
    "skipped": ("skipped", "imported: recorded skipped in the plan"),
}


def init_from_plan(plan: model.Plan, *, name: str | None = None, now: str | None = None) -> State:
    """Return a new state for ``plan`` (named ``name``, default the plan's name).

    Dependencies come from the plan's graph: a task waits for its own dependencies and the
    gates of the phases its phase depends on; a gate waits for its phase's tasks. A task
    the plan records as done starts verified (with a note saying it was imported), skipped
    stays skipped. Raises InputError for an unsafe id or an error in the plan's graph.
    """
    g = graph.build(plan)
    problems = [*plan.errors, *(d for d in g.diagnostics if d.level == "error")]
    if problems:
        first = problems[0]
        raise InputError(
            first.message, file=first.file, line=first.line, field=first.field, hint=first.hint
        )
    stamp = now or now_iso()
    state = new_state(
        name=name or plan.name, format=plan.format, path=plan.path, title=plan.title, now=stamp
    )
    for phase in plan.phases:
        check_id(phase.id, what="phase id", file=phase.source.file, line=phase.source.line)
        for task in plan.tasks_of(phase.id):
            check_id(task.id, what="task id", file=task.source.file, line=task.source.line)
            _add(
                state,
                task.id,
                task.title,
                phase.id,
                "task",
                task.status,
                task.max_attempts,
                g.deps[task.id],
                stamp,
            )
        gate = model.gate_id(phase.id)
        _add(
            state,
            gate,
            f"{phase.title} (gate)",
            phase.id,
            "gate",
            phase.status,
            None,
            g.deps[gate],
            stamp,
        )
    add_event(state, "init", None, f"{len(plan.tasks)} tasks, {len(plan.phases)} phases", now=stamp)
    return state


def _add(
    state: State,
    node: str,
    title: str,
    phase: str,
    kind: str,
    recorded: str,
    max_attempts: int | None,
    deps: Iterable[str],
    now: str,
) -> None:
    if node in state["tasks"]:
        raise InputError(f"duplicate task id {node!r}", field="id")
    status, note = _IMPORTED[recorded]
    record = new_task(
        title=title,
        phase=phase,
        kind=kind,
        depends_on=list(deps),
        status=status,
        max_attempts=max_attempts,
        note=note,
        now=now,
    )
    if recorded == "failed":
        record["error"] = {
            "type": "imported",
            "step": "import",
            "message": "recorded failed in the plan",
        }
    state["tasks"][node] = record
    state["order"].append(node)
