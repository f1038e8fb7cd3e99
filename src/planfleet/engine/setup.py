"""What an engine does before its first dispatch: state, recovery, reconciliation, baseline.

A new plan gets a state from the plan (tasks the plan records as done are imported as
verified). An existing state is brought up to date with the plan and with git:

- tasks added to the plan since are added; tasks removed from it are skipped;
- in-progress tasks of a dead engine are orphans: every process it left running (the
  agents' process groups, and whatever carries its lineage mark, also outside those groups)
  is stopped first, then the tasks go back to the queue with their worktrees, the
  interrupted attempt not counted;
- verified tasks are checked against git: a merged task's commit must be on the
  integration branch, an unmerged one's must still exist, or the task is demoted;
- a verified task whose commit reached integration (the engine died between merging and
  recording) is marked merged; one that did not is queued for merge again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from planfleet import fsutil, git, jsonread, paths
from planfleet.errors import InputError, RefusedError
from planfleet.plan import graph, model
from planfleet.repo import worktrees
from planfleet.state import ops
from planfleet.state.create import init_from_plan
from planfleet.state.records import (
    State,
    add_event,
    enqueue,
    new_task,
    now_iso,
    set_run_status,
)
from planfleet.state.recover import (
    commit_problem,
    demote_untrusted,
    requeue_orphans,
    stop_leftovers,
)
from planfleet.state.store import StateStore
from planfleet.verify import gates, testrun

BASELINE_FILE = "baseline.json"
BLOCK_NOTES = ("stopped", "dependency ")


def prepare_state(
    store: StateStore,
    plan: model.Plan,
    repo: Path,
    integration: str,
    scope: frozenset[str] | None = None,
) -> State:
    """Create or reconcile the plan's state for a run starting now; return it."""
    refuse_foreign_commands(plan, repo)
    if not store.exists():
        store.create(init_from_plan(plan))
    # Before any worktree is reused, and outside the lock: stopping takes grace periods.
    survivors = stop_leftovers(store.load()["tasks"].values())
    with store.transaction() as state:
        if survivors:
            add_event(state, "leftovers", None, f"still alive after SIGKILL: {survivors}")
        _sync_with_plan(state, plan)
        _recover(state, repo, plan.name, integration)
        if state["status"] != "running":
            set_run_status(state, "running")
        for tid, record in state["tasks"].items():
            # Blocked by a dependency that may have been reset since (or held by an older
            # planfleet's `stop --task`): a new run takes them up (the engine blocks again
            # what still is).
            note = record["note"] or ""
            if record["status"] == "blocked" and note.startswith(BLOCK_NOTES):
                ops.reset(state, tid, reason="resumed")
            # Held by `planfleet stop --task`: this run takes it up if it is selected.
            if record["status"] == "held" and (scope is None or tid in scope):
                ops.unhold(state, tid, "released by resume")
        if scope is not None:
            _check_scope(state, scope)
        add_event(state, "run_start", None, f"pid {os.getpid()}")
        return state


def refuse_foreign_commands(plan: model.Plan, repo: Path) -> None:
    """RefusedError if a plan from outside ``repo`` (a link counts) has commands to run."""
    path = Path(plan.path) if Path(plan.path).is_absolute() else repo / plan.path
    if fsutil.is_within(path, repo):
        return
    runs = any(t.commands or t.verify for t in plan.tasks) or any(
        p.gate_commands for p in plan.phases
    )
    # A test command found in the repository or given on the command line is not the plan's.
    own_tests = plan.meta.get("test_command_source", "plan") == "plan"
    if runs or (own_tests and plan.meta.get("test_command")):
        raise RefusedError(
            f"plan {plan.path} is outside the repository {repo} and has commands to run",
            reason="plan_outside_repo",
            next_step="commands run only from plans inside the repository: copy the plan "
            "into it (`planfleet run --dry-run` shows the commands)",
        )


def _sync_with_plan(state: State, plan: model.Plan) -> None:
    g = graph.build(plan)
    wanted: dict[str, tuple[str, str, str, int | None]] = {}
    for phase in plan.phases:
        for t in plan.tasks_of(phase.id):
            wanted[t.id] = (t.title, phase.id, "task", t.max_attempts)
        wanted[model.gate_id(phase.id)] = (f"{phase.title} (gate)", phase.id, "gate", None)
    tasks = state["tasks"]
    for node, (title, phase_id, kind, limit) in wanted.items():
        if node in tasks:
            if kind == "task":
                tasks[node]["max_attempts"] = limit
            tasks[node]["depends_on"] = list(g.deps[node])
            continue
        tasks[node] = new_task(
            title=title, phase=phase_id, kind=kind, depends_on=g.deps[node], max_attempts=limit
        )
        state["order"].append(node)
        add_event(state, "added", node, "new in the plan")
    for node in list(tasks):
        if node not in wanted and tasks[node]["status"] not in ("skipped", "verified"):
            if tasks[node]["status"] == "in_progress":
                ops.release(state, node, "removed from the plan")
            ops.skip(state, node, "removed from the plan")
        if node not in wanted:
            tasks[node]["depends_on"] = [d for d in tasks[node]["depends_on"] if d in wanted]


def _recover(state: State, repo: Path, plan: str, integration: str) -> None:
    requeue_orphans(state)
    recheck_verified(state, repo, plan, integration)


def recheck_verified(
    state: State, repo: Path, plan: str, integration: str, since: str | None = None
) -> list[str]:
    """Check verified tasks against git (see above); return the ones demoted to redo.

    ``since``: a commit the integration branch grew from (the run's baseline); the commits
    added since are listed once, and a merged task found among them needs no other check.
    """
    integ_ref = git.branch_ref(worktrees.integration_branch(plan))
    found: dict[str, str] = {}
    added = _added_since(repo, integration, since) if since else frozenset()
    for tid, record in state["tasks"].items():
        if record["status"] != "verified" or not record["commit"] or record["kind"] != "task":
            continue
        merged = record["merged_at"] is not None
        if merged and record["commit"] in added:
            continue  # on the integration branch: it exists and is reachable
        problem = commit_problem(record, repo, ref=integ_ref if merged else None)
        if problem is not None:
            found[tid] = problem
            continue
        if not merged and git.is_ancestor(record["commit"], integration, cwd=repo):
            record["merged_at"] = now_iso()
            add_event(state, "merged", tid, "found on the integration branch")
            state["merge_queue"] = [e for e in state["merge_queue"] if e["task"] != tid]
        elif not merged:
            enqueue(state, tid)
    demote_untrusted(state, found)
    return sorted(found)


def _added_since(repo: Path, tip: str, since: str) -> frozenset[str]:
    """Return the commits reachable from ``tip`` and not from ``since`` (one git process)."""
    result = git.git("rev-list", tip, "--not", since, cwd=repo, check=False)
    return frozenset(result.stdout.split()) if result.ok else frozenset()


def _check_scope(state: State, scope: frozenset[str]) -> None:
    """Refuse a --phase/--tasks selection whose tasks wait for work outside it."""
    tasks = state["tasks"]
    for tid in sorted(scope):
        if tid not in tasks:
            raise InputError(f"no task {tid!r} in the plan", field="--tasks")
    missing: dict[str, list[str]] = {}
    for tid in sorted(scope):
        for dep in tasks[tid]["depends_on"]:
            if dep not in scope and tasks[dep]["status"] not in ("verified", "skipped"):
                missing.setdefault(tid, []).append(_describe(dep))
    if missing:
        first, deps = next(iter(missing.items()))
        raise RefusedError(
            f"{first} depends on {', '.join(deps)}, not done and not selected",
            reason="dependency_outside_selection",
            next_step="select that work too (--tasks, or --phase for a whole phase and its "
            "gate), or run it first",
            details={"missing": missing},
        )


def _describe(node: str) -> str:
    if model.is_gate(node):
        return f"phase {node[: -len(model.GATE_SUFFIX)]} (its gate)"
    return node


def load_or_take_baseline(
    repo: Path, plan: model.Plan, integration: str, *, timeout_s: float
) -> gates.Baseline | None:
    """Return the test baseline of this run, taken once on ``integration`` and kept.

    A kept baseline of another test command is taken again on the commit it was taken on.
    RefusedError (nothing kept) when the command cannot judge anything there: it timed
    out, or it could not start.
    """
    command = testrun.test_command(plan)
    if command is None:
        return None
    path = paths.runs_dir(repo, plan.name) / BASELINE_FILE
    commit = integration
    try:
        data: dict[str, Any] = jsonread.parse(path.read_text(encoding="utf-8"))
        if data.get("commit") == integration or data.get("keep"):
            kept = gates.Baseline.from_json(data["baseline"])
            if kept.command == command:
                return kept
            if git.rev_parse(f"{kept.commit}^{{commit}}", cwd=repo):
                commit = kept.commit  # the same starting point, measured with this command
    except (OSError, ValueError, KeyError, TypeError):
        pass
    baseline = gates.take_baseline(repo, plan, commit, timeout_s=timeout_s)
    _refuse_unusable(baseline)
    paths.writable(repo, path)
    # Kept for the whole plan run: later resumes compare against the same starting point.
    fsutil.atomic_write(
        path,
        json.dumps({"commit": commit, "keep": True, "baseline": baseline.to_json()}, indent=1)
        + "\n",
    )
    return baseline


def _refuse_unusable(baseline: gates.Baseline) -> None:
    """RefusedError when the baseline run timed out or its command could not start."""
    run = baseline.run
    if run is None or baseline.command is None:
        return
    where = f"on the base commit {baseline.commit[:12]}"
    if run.exit_code is None:
        raise RefusedError(
            f"the test command `{baseline.command}` {testrun.timed_out(run)} {where}",
            reason="baseline_timeout",
            next_step="make the suite finish, or give each test run more time with "
            "--test-timeout S (or pick another command with --test-cmd)",
            details={"output_tail": run.output_tail},
        )
    if run.exit_code in (126, 127) or (
        run.format is None
        and run.exit_code != 0
        and testrun.runner_kind(baseline.command) is not None
    ):
        last = (run.output_tail.strip().splitlines() or [""])[-1]
        raise RefusedError(
            f"the test command `{baseline.command}` could not run {where} (exit "
            f"{run.exit_code}): {last}",
            reason="test_command_broken",
            next_step="pass a command that runs your tests with --test-cmd CMD, e.g. with "
            "the Python of your virtual environment by its absolute path (tests run in each "
            "task's worktree): --test-cmd '/path/to/.venv/bin/python -m pytest'",
            details={"output_tail": run.output_tail},
        )
