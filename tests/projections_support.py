"""Helpers for the projection and import tests: a copy of a case, and a scripted run."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from pathlib import Path

from planfleet.plan import formats, model
from planfleet.state import create, ops, records
from planfleet.state.records import State

CASES_DIR = Path(__file__).resolve().parent / "fixtures" / "projections"
# Each case: its plan, relative to the case's input folder.
CASES = {
    "spec": ".spec/plans/inventory-sync",
    "ai": ".ai/plans/2025-09-01.search-index.md",
    "plan-dir": "plans/backup-tool",
    "maxvision": ".maxvision",
    "xml-tasks": "tasks/payouts",
    "gsd": ".planning",
    "superpowers": "docs/plans/2026-01-05-cache-layer.md",
    "native": "plans/mailer.plan.yaml",
}
T0 = _dt.datetime(2025, 9, 2, 8, 0, tzinfo=_dt.timezone.utc)


class Clock:
    """A minute later on every call: timestamps that make goldens reproducible."""

    def __init__(self) -> None:
        self.minutes = 0

    def __call__(self) -> str:
        self.minutes += 1
        return records.to_iso(T0 + _dt.timedelta(minutes=self.minutes))


def copy_case(case: str, dest: Path) -> Path:
    """Copy ``fixtures/projections/<case>/input`` to ``dest/<case>``; return the copy."""
    target = dest / case
    shutil.copytree(CASES_DIR / case / "input", target)
    return target


def load(repo: Path, case: str) -> model.Plan:
    return formats.load_plan(repo / CASES[case], repo=repo)


def sha(node: str) -> str:
    return hashlib.sha1(node.encode()).hexdigest()[:12]  # noqa: S324 - a fake commit id


def write_record(repo: Path, state: State, task: model.Task) -> str:
    """Write a verification record for ``task``'s first attempt; return its repo path."""
    rel = f".planfleet/runs/{state['plan']['name']}/verify/{task.id}.1.json"
    record = {
        "files_created": list(task.files_create),
        "files_modified": list(task.files_modify),
        "tests": [{"command": c, "passed": True} for c in task.verify or ("pytest -q",)],
    }
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(json.dumps(record), encoding="utf-8")
    return rel


def finish(repo: Path, plan: model.Plan, state: State, node: str, clock: Clock) -> None:
    """Claim ``node`` and record it verified (with a verification record for a task)."""
    ops.claim(state, node, owner="agent", now=clock())
    ref = None if model.is_gate(node) else write_record(repo, state, plan.task(node))
    ops.complete(state, node, commit=sha(node), verification=ref, now=clock())


def fail(state: State, node: str, clock: Clock) -> None:
    ops.claim(state, node, owner="agent", now=clock())
    ops.fail(
        state,
        node,
        error_type="test_failure",
        step="pytest -q",
        message="2 tests failed\nE   assert 3 == 4",
        feedback="the batch size must come from the settings, not a constant",
        now=clock(),
    )


def _ready(state: State, phase: str, statuses: tuple[str, ...]) -> list[str]:
    return [
        t
        for t in records.ready_tasks(state)
        if state["tasks"][t]["phase"] == phase and state["tasks"][t]["status"] in statuses
    ]


def scripted_run(repo: Path, plan: model.Plan, clock: Clock | None = None) -> State:
    """Return a state after a typical interrupted run of ``plan``.

    The first phase is done (its tasks and gate verified); in the second, one task is
    verified, the next ready one failed and the next one after that is in progress;
    then the run is paused.
    """
    clock = clock or Clock()
    state = create.init_from_plan(plan, now=clock())
    first, second = plan.phases[0].id, plan.phases[1].id
    while ready := _ready(state, first, ("pending",)):
        finish(repo, plan, state, ready[0], clock)
    steps = iter(("verify", "fail", "claim"))
    for step in steps:
        ready = [t for t in _ready(state, second, ("pending",)) if not model.is_gate(t)]
        if not ready:
            break
        if step == "verify":
            finish(repo, plan, state, ready[0], clock)
        elif step == "fail":
            fail(state, ready[0], clock)
        else:
            ops.claim(state, ready[0], owner="agent", now=clock())
    records.set_run_status(state, "paused", now=clock())
    return state


def imported(state: State) -> dict[str, str]:
    """Return ``node -> status`` the way an import sees it (in progress starts again)."""
    return {
        t: "pending" if rec["status"] == "in_progress" else rec["status"]
        for t, rec in state["tasks"].items()
    }
