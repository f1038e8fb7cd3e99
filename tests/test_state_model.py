"""The state machine: transition table, task operations, and a new state from a Plan."""

from __future__ import annotations

import datetime as _dt
import itertools
import os

import pytest

from planfleet.errors import InputError, RefusedError
from planfleet.state import ops
from planfleet.state import records as sm
from planfleet.state.create import init_from_plan
from state_support import flat_state, make_plan, reference_validator

ALL_PAIRS = list(itertools.product(sm.TASK_STATUSES, repeat=2))


def _with_status(status: str) -> sm.State:
    state = flat_state("demo", ["a"])
    state["tasks"]["a"]["status"] = status
    return state


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_transition_table_is_enforced(src: str, dst: str) -> None:
    state = _with_status(src)
    if dst in sm.TRANSITIONS[src]:
        record = sm.move(state, "a", dst, now="2026-01-01T00:00:00.000Z")
        assert record["status"] == dst
        assert record["updated_at"] == "2026-01-01T00:00:00.000Z"
    else:
        with pytest.raises(sm.TransitionError) as info:
            sm.move(state, "a", dst)
        assert info.value.reason == "illegal_transition"
        assert f"is {src}; it cannot become {dst}" in info.value.message
        assert state["tasks"]["a"]["status"] == src


def test_transition_table_covers_every_status() -> None:
    assert set(sm.TRANSITIONS) == set(sm.TASK_STATUSES)
    for targets in sm.TRANSITIONS.values():
        assert targets <= set(sm.TASK_STATUSES)
    # Every status can be left (a run can always be resumed or reset by hand).
    assert all(sm.TRANSITIONS[s] for s in sm.TASK_STATUSES)
    assert "verified" in sm.TRANSITIONS["in_progress"]
    assert "verified" not in sm.TRANSITIONS["pending"]  # markers last: only after work


def test_run_status_transitions() -> None:
    state = flat_state("demo", ["a"])
    sm.set_run_status(state, "paused")
    sm.set_run_status(state, "running")
    sm.set_run_status(state, "completed")
    with pytest.raises(sm.TransitionError):
        sm.set_run_status(state, "paused")
    assert [e["event"] for e in state["events"]] == ["run_paused", "run_running", "run_completed"]


def test_claim_records_the_attempt_and_lease() -> None:
    state = flat_state("demo", ["a"])
    record = ops.claim(
        state, "a", owner="me", pid=os.getpid(), lease_s=60, now="2026-01-01T00:00:00.000Z"
    )
    assert record["status"] == "in_progress"
    assert record["attempts"] == 1
    assert record["owner"] == "me"
    assert record["pid"] == os.getpid()
    assert record["pid_start"] is not None
    assert record["host"] == sm.hostname()
    assert record["started_at"] == record["heartbeat_at"] == "2026-01-01T00:00:00.000Z"
    assert record["lease_until"] == "2026-01-01T00:01:00.000Z"
    assert state["events"][-1]["event"] == "claimed"
    reference_validator().validate(state)


def test_a_second_claim_is_refused_and_names_the_holder() -> None:
    state = flat_state("demo", ["a"])
    ops.claim(state, "a", owner="first")
    with pytest.raises(RefusedError) as info:
        ops.claim(state, "a", owner="second")
    assert info.value.reason == "already_claimed"
    assert "owner first" in info.value.message
    assert info.value.details["owner"] == "first"
    assert state["tasks"]["a"]["attempts"] == 1


def test_claim_waits_for_dependencies() -> None:
    state = flat_state("demo", ["a", "b", "c"])
    state["tasks"]["c"]["depends_on"] = ["a", "b"]
    with pytest.raises(RefusedError) as info:
        ops.claim(state, "c")
    assert info.value.reason == "dependencies_unmet"
    assert info.value.details["unmet"] == ["a", "b"]
    ops.claim(state, "a")
    ops.complete(state, "a", commit="abc1234")
    ops.skip(state, "b", "not needed")  # a skipped dependency lets work go on
    assert ops.claim(state, "c")["status"] == "in_progress"


def test_claim_refuses_when_attempts_are_spent() -> None:
    state = flat_state("demo", ["a"])
    state["tasks"]["a"]["max_attempts"] = 2
    for _ in range(2):
        assert sm.ready_tasks(state) == ["a"]
        ops.claim(state, "a")
        assert sm.ready_tasks(state) == []
        ops.fail(state, "a", error_type="test_failure", step="verify", message="red")
    assert sm.ready_tasks(state) == []
    with pytest.raises(RefusedError) as info:
        ops.claim(state, "a")
    assert info.value.reason == "attempts_exhausted"
    ops.reset(state, "a", hard=True)
    assert ops.claim(state, "a")["attempts"] == 1


def test_complete_records_only_what_it_is_told() -> None:
    state = flat_state("demo", ["a"])
    ops.claim(state, "a", owner="me", pid=os.getpid())
    record = ops.complete(
        state, "a", commit="abc1234", verification="logs/a.json", owner="me", cost_usd=0.25
    )
    assert record["status"] == "verified"
    assert (record["commit"], record["verification"]) == ("abc1234", "logs/a.json")
    assert record["pid"] is None
    assert record["lease_until"] is None
    assert record["cost_usd"] == 0.25 == state["totals"]["cost_usd"]
    assert record["finished_at"] is not None


def test_only_the_owner_may_finish_a_claimed_task() -> None:
    state = flat_state("demo", ["a"])
    ops.claim(state, "a", owner="me")
    with pytest.raises(RefusedError) as info:
        ops.complete(state, "a", commit="abc1234", owner="someone-else")
    assert info.value.reason == "not_owner"
    with pytest.raises(RefusedError):
        ops.heartbeat(state, "a", owner="someone-else")
    assert state["tasks"]["a"]["status"] == "in_progress"


def test_fail_and_timeout_keep_error_and_feedback_for_the_retry() -> None:
    state = flat_state("demo", ["a", "b"])
    ops.claim(state, "a")
    record = ops.fail(
        state,
        "a",
        error_type="test_failure",
        step="verify",
        message="2 failed",
        feedback="fix the tokenizer",
    )
    assert record["status"] == "failed"
    assert record["error"] == {"type": "test_failure", "step": "verify", "message": "2 failed"}
    assert record["feedback"] == "fix the tokenizer"
    retry = ops.claim(state, "a")
    assert retry["attempts"] == 2
    assert retry["feedback"] == "fix the tokenizer"
    assert retry["error"] is None
    ops.claim(state, "b")
    assert (
        ops.fail(state, "b", error_type="timeout", step="agent", message="600 s")["status"]
        == "timeout"
    )


def test_heartbeat_extends_the_lease_and_needs_a_claim() -> None:
    state = flat_state("demo", ["a"])
    with pytest.raises(sm.TransitionError) as info:
        ops.heartbeat(state, "a")
    assert info.value.reason == "not_in_progress"
    ops.claim(state, "a", lease_s=10, now="2026-01-01T00:00:00.000Z")
    record = ops.heartbeat(state, "a", now="2026-01-01T00:00:05.000Z")
    assert record["lease_until"] == "2026-01-01T00:00:15.000Z"  # the claim's lease length
    record = ops.heartbeat(state, "a", lease_s=100, now="2026-01-01T00:00:05.000Z")
    assert record["lease_until"] == "2026-01-01T00:01:45.000Z"


def test_reset_keeps_attempts_and_worktree_unless_hard() -> None:
    state = flat_state("demo", ["a"])
    ops.claim(state, "a")
    state["tasks"]["a"].update(worktree=".planfleet/worktrees/demo/a", branch="b")
    ops.fail(state, "a", error_type="crash", step="agent", message="boom", feedback="f")
    ops.abandon(state, "a", "gave up")
    assert state["abandoned"] == ["a"]
    record = ops.reset(state, "a", reason="try again")
    assert record["status"] == "pending"
    assert record["attempts"] == 1
    assert record["worktree"] == ".planfleet/worktrees/demo/a"
    assert record["feedback"] == "f"
    assert record["note"] == "try again"
    assert state["abandoned"] == []
    ops.claim(state, "a")
    ops.add_cost(state, "a", 1.5)
    record = ops.reset(state, "a", hard=True)
    assert record["attempts"] == 0
    assert record["worktree"] is None
    assert record["error"] is None
    assert record["cost_usd"] == 1.5  # money spent stays spent
    assert ops.reset(state, "a")["status"] == "pending"  # reset of a pending task is fine


def test_unknown_task_is_an_input_error_naming_known_tasks() -> None:
    state = flat_state("demo", ["a", "b"])
    with pytest.raises(InputError) as info:
        ops.claim(state, "zzz")
    assert "no task 'zzz'" in info.value.message
    assert "a, b" in (info.value.hint or "")


def test_merge_queue_orders_by_priority_then_age() -> None:
    state = flat_state("demo", ["a", "b", "c"])
    for tid in ("a", "b", "c"):
        ops.claim(state, tid)
        ops.complete(state, tid, commit="abc1234")
    sm.enqueue(state, "a", 0, now="2026-01-01T00:00:01.000Z")
    sm.enqueue(state, "b", 5, now="2026-01-01T00:00:02.000Z")
    sm.enqueue(state, "c", 0, now="2026-01-01T00:00:00.000Z")
    sm.enqueue(state, "a", 9)  # already queued: no duplicate, priority kept
    assert sm.merge_order(state) == ["b", "c", "a"]
    assert sm.dequeue(state, "b")
    assert not sm.dequeue(state, "b")
    ops.reset(state, "c")
    assert sm.merge_order(state) == ["a"]
    with pytest.raises(sm.TransitionError):
        sm.enqueue(state, "c")  # pending again: not mergeable
    reference_validator().validate(state)


def test_negative_cost_is_refused() -> None:
    state = flat_state("demo", ["a"])
    with pytest.raises(InputError):
        sm.add_cost(state, "a", -1)


def test_events_are_capped() -> None:
    state = flat_state("demo", ["a"])
    for i in range(sm.MAX_EVENTS + 1):
        sm.add_event(state, "tick", None, str(i))
    kept = sm.MAX_EVENTS - sm.MAX_EVENTS // 10
    assert len(state["events"]) == kept
    assert state["events"][-1]["detail"] == str(sm.MAX_EVENTS)
    assert state["events"][0]["detail"] == str(sm.MAX_EVENTS + 1 - kept)


def test_timestamps_are_utc_iso() -> None:
    stamp = sm.now_iso()
    assert stamp.endswith("Z")
    assert "T" in stamp
    parsed = sm.parse_iso(stamp)
    assert parsed.utcoffset() == _dt.timedelta(0)
    assert sm.to_iso(parsed) == stamp


# -- a new state from a Plan ----------------------------------------------------------


def test_init_from_plan_creates_tasks_gates_and_dependencies() -> None:
    plan = make_plan(
        [("p1", ["a", "b"], []), ("p2", ["c"], ["p1"]), ("p3", ["d"], [])],
        deps={"b": ["a"], "d": ["p2"]},  # a task may depend on a phase (its gate)
    )
    state = init_from_plan(plan, name="run-1", now="2026-01-01T00:00:00.000Z")
    reference_validator().validate(state)
    assert state["plan"] == {
        "name": "run-1",
        "format": "native",
        "path": "plan.yaml",
        "title": "Demo plan",
    }
    assert state["order"] == ["a", "b", "p1:gate", "c", "p2:gate", "d", "p3:gate"]
    tasks = state["tasks"]
    assert tasks["b"]["depends_on"] == ["a"]
    assert tasks["p1:gate"]["depends_on"] == ["a", "b"]
    assert tasks["p1:gate"]["kind"] == "gate"
    assert tasks["c"]["depends_on"] == ["p1:gate"]
    assert tasks["d"]["depends_on"] == ["p2:gate"]
    assert tasks["a"]["max_attempts"] == 3
    assert all(t["status"] == "pending" for t in tasks.values())
    assert state["events"][0]["event"] == "init"


def test_init_from_plan_carries_recorded_statuses() -> None:
    plan = make_plan(
        [("p1", ["a", "b", "c"], []), ("p2", ["d", "e", "f"], ["p1"])],
        statuses={
            "a": "done",
            "b": "skipped",
            "c": "in_progress",
            "p1": "done",
            "d": "failed",
            "e": "blocked",
        },
    )
    tasks = init_from_plan(plan)["tasks"]
    assert tasks["a"]["status"] == "verified"
    assert "imported" in tasks["a"]["note"]
    assert tasks["a"]["commit"] is None
    assert tasks["b"]["status"] == "skipped"
    assert tasks["c"]["status"] == "pending"  # nobody is working on it now
    assert tasks["p1:gate"]["status"] == "verified"
    assert tasks["d"]["status"] == "failed"
    assert tasks["d"]["error"]["type"] == "imported"
    assert tasks["e"]["status"] == "blocked"
    assert tasks["f"]["status"] == "pending"


def test_init_from_plan_refuses_a_broken_graph_and_unsafe_ids() -> None:
    with pytest.raises(InputError) as info:
        init_from_plan(make_plan([("p1", ["a"], [])], deps={"a": ["nope"]}))
    assert "nope" in info.value.message
    with pytest.raises(InputError) as info:
        init_from_plan(make_plan([("p1", ["a", "b"], [])], deps={"a": ["b"], "b": ["a"]}))
    assert "cycle" in info.value.message
    with pytest.raises(InputError) as info:
        init_from_plan(make_plan([("p1", ["../evil"], [])]))
    assert info.value.field == "task id"
