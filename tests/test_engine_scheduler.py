"""The dispatch policy on its own: readiness, priority, write clashes, waves, views."""

from __future__ import annotations

import dataclasses
import io

from planfleet.cli import view
from planfleet.engine.scheduler import Scheduler, doomed, is_merged
from planfleet.plan import graph, model
from planfleet.state import ops
from planfleet.state.create import init_from_plan

SRC = model.Source("plan.yaml", 1)


def _plan(*tasks: model.Task) -> model.Plan:
    phase = model.Phase(id="p", title="p", source=SRC, task_ids=tuple(t.id for t in tasks))
    return model.Plan(
        name="s", title="s", format="planfleet", path="plan.yaml", phases=(phase,), tasks=tasks
    )


def _task(tid: str, *deps: str, est: float = 1, writes: tuple[str, ...] = ()) -> model.Task:
    return model.Task(
        id=tid,
        title=tid,
        phase="p",
        source=SRC,
        depends_on=deps,
        estimate=est,
        files_modify=writes,
    )


def _merge(state: dict, tid: str) -> None:
    ops.claim(state, tid)
    ops.complete(state, tid, commit="c0ffee")
    state["tasks"][tid]["merged_at"] = "2026-01-01T00:00:00.000Z"


def test_longest_remaining_path_goes_first_and_slots_are_respected() -> None:
    plan = _plan(_task("short", est=1), _task("long", est=1), _task("tail", "long", est=5))
    state = init_from_plan(plan)
    sched = Scheduler.for_plan(plan, graph.build(plan), max_parallel=1)
    assert sched.pick(state, ()) == ["long"]
    assert sched.pick(state, ("long",)) == []


def test_a_dependency_must_be_merged_not_only_verified() -> None:
    plan = _plan(_task("a"), _task("b", "a"))
    state = init_from_plan(plan)
    sched = Scheduler.for_plan(plan, graph.build(plan))
    ops.claim(state, "a")
    ops.complete(state, "a", commit="c0ffee")
    assert not is_merged(state["tasks"]["a"])
    assert sched.pick(state, ()) == []
    state["tasks"]["a"]["merged_at"] = "2026-01-01T00:00:00.000Z"
    assert sched.pick(state, ()) == ["b"]


def test_overlapping_write_sets_wait_for_each_other() -> None:
    plan = _plan(_task("a", writes=("x.py",)), _task("b", writes=("x.py",)), _task("c"))
    state = init_from_plan(plan)
    sched = Scheduler.for_plan(plan, graph.build(plan), max_parallel=3)
    assert sched.pick(state, ()) == ["a", "c"]
    assert sched.pick(state, ("a",)) == ["c"]


def test_waves_hold_the_next_level_until_the_whole_level_is_done() -> None:
    plan = _plan(_task("a"), _task("slow", est=9), _task("after-a", "a"))
    state = init_from_plan(plan)
    dag = Scheduler.for_plan(plan, graph.build(plan), max_parallel=3)
    waves = Scheduler.for_plan(plan, graph.build(plan), max_parallel=3, policy="waves")
    _merge(state, "a")
    ops.claim(state, "slow")
    assert dag.pick(state, ("slow",)) == ["after-a"]
    assert waves.pick(state, ("slow",)) == []


def test_dependents_of_an_abandoned_task_are_doomed() -> None:
    plan = _plan(_task("a"), _task("b", "a"), _task("c", "b"))
    state = init_from_plan(plan)
    ops.abandon(state, "a", "gave up")
    assert doomed(state) == [("b", "a"), ("p:gate", "a")]
    ops.block(state, "b", "dependency a is abandoned")
    assert ("c", "b") in doomed(state)


def test_the_views_render_progress_lines_and_a_live_table() -> None:
    plan = _plan(_task("a"), _task("b", "a"))
    state = init_from_plan(plan)
    ops.claim(state, "a")
    stream = io.StringIO()
    view.LineReporter(stream)(state, [{"event": "dispatched", "task": "a", "detail": None}])
    assert stream.getvalue() == "[BATCH p #1] a ▶, b · (0/3)\n"
    from rich.console import Console

    live = view.LiveReporter(io.StringIO(), "t")
    live(state, [])
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    console.print(live)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "in_progress" in text
    assert "a" in text


def test_local_and_cloud_slots_fill_from_one_queue_and_pins_hold() -> None:
    plan = _plan(
        _task("big", est=9),
        dataclasses.replace(_task("remote", est=5), runner="cloud"),
        _task("mid", est=3),
        dataclasses.replace(_task("here", est=1), runner="local"),
    )
    state = init_from_plan(plan)
    sched = Scheduler.for_plan(plan, graph.build(plan), max_parallel=1, cloud_parallel=1)
    # best first: big takes the local slot, remote its cloud slot; the rest wait
    assert sched.pick_where(state, {}) == [("big", "local"), ("remote", "cloud")]
    # the local slot busy: an unpinned task goes to the cloud, a local-pinned one waits
    assert sched.pick_where(state, {"big": "local"}) == [("remote", "cloud")]
    assert sched.pick_where(state, {"big": "local", "remote": "cloud"}) == []
    assert sched.pick_where(state, {"remote": "cloud"}) == [("big", "local")]
    assert sched.pick_where(state, {"big": "local", "x": "cloud"}) == []
    # without cloud slots a cloud-pinned task never starts; pick() is the local view
    local = Scheduler.for_plan(plan, graph.build(plan), max_parallel=4)
    assert local.pick(state, ()) == ["big", "mid", "here"]
