"""`planfleet stop PLAN [--task ID]`: pause a run gracefully (or stop one task's agent)."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli.commands import agents
from planfleet.cli.output import Out
from planfleet.engine import runinfo
from planfleet.errors import ExitCode, InputError, RefusedError, UsageError
from planfleet.ids import check_id
from planfleet.state import ops, recover
from planfleet.state.records import HOLDABLE, set_run_status
from planfleet.state.store import StateStore, no_run

SESSION_ID = re.compile(r"^[0-9a-f]{8}$")


def _has_run(repo: Path, name: str) -> bool:
    return StateStore.for_plan(repo, name).exists()


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stop",
        parents=[parent],
        help="pause a run: agents stopped, state paused, worktrees kept",
        description="Ask the engine of PLAN to pause: running agents are stopped (INT, TERM, "
        "KILL to their process groups), their tasks go back to the queue without using an "
        "attempt, worktrees are kept, and the run is `paused` until `planfleet resume`. With "
        "--task only that task is stopped (its agent, if it runs) and held: its attempt is "
        "not counted, what depends on it waits, the rest of the run goes on, and the next "
        "`planfleet resume` (or `resume --tasks ID`) releases it. If the engine is gone, the "
        "state is repaired and marked paused directly.",
    )
    p.add_argument(
        "plan", nargs="?", metavar="PLAN", help="a plan run's name (or a background session id)"
    )
    p.add_argument("--task", metavar="TASK", help="stop only this task")
    p.add_argument(
        "--all",
        action="store_true",
        help="stop every background session of a dispatch (`planfleet dispatch`)",
    )
    p.add_argument(
        "--phase", type=int, metavar="PHASE", help="with --all: only this phase's sessions"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the engine to pause, or to stop the task (default 60)",
    )
    p.set_defaults(handler=_handler, command_name="stop")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    if ns.all or (ns.plan and SESSION_ID.match(ns.plan) and not _has_run(repo, ns.plan)):
        # Background sessions: the same as `planfleet agents stop`.
        ns.session = [] if ns.all else [ns.plan]
        return agents.stop_handler(ns, out)
    if not ns.plan:
        raise UsageError("name the PLAN to stop (or --all for background sessions)")
    plan = check_id(ns.plan, what="plan name")
    store = StateStore.for_plan(repo, plan)
    if not store.exists():
        raise no_run(plan)
    running = runinfo.is_running(repo, plan)
    data: dict[str, Any] = {"plan": plan, "engine_was_running": running}
    if ns.task:
        task = check_id(ns.task, what="task id")
        data.update(_hold(repo, plan, store, task, ns.wait))
    elif running:
        runinfo.request(repo, plan, runinfo.PAUSE)
        data["paused"] = runinfo.wait_stopped(repo, plan, ns.wait)
        if not data["paused"]:
            info = runinfo.read_info(repo, plan)
            if info is not None:
                runinfo.signal_engine(info)
            data["paused"] = runinfo.wait_stopped(repo, plan, 10)
    else:
        recover.stop_leftovers(store.load()["tasks"].values())
        with store.transaction() as state:
            data["orphans"] = recover.requeue_orphans(state)
            if state["status"] == "running":
                set_run_status(state, "paused")
        data["paused"] = True
    state = store.load()
    data["status"] = state["status"]

    def human() -> None:
        if ns.task and data["held"]:
            out.line(
                f"{plan}: task {ns.task} stopped and held (the rest of the run goes on); "
                f"`planfleet resume {plan}` releases it"
            )
        elif ns.task:
            out.line(f"{plan}: the engine did not stop task {ns.task} within {ns.wait:g} s")
        elif data["paused"]:
            out.line(f"{plan}: {state['status']}; continue with `planfleet resume {plan}`")
        else:
            out.line(f"{plan}: the engine did not pause within {ns.wait:g} s")

    done = data["held"] if ns.task else data["paused"]
    out.result("stop", data, human=human, status="ok" if done else "error")
    return ExitCode.OK if done else ExitCode.FAILED


def _hold(repo: Path, plan: str, store: StateStore, task: str, wait_s: float) -> dict[str, Any]:
    """Hold ``task``: directly in the state, or (while its agent runs) through the engine.

    Return what was done; RefusedError for a task that is finished or given up.
    """
    deadline = time.monotonic() + wait_s
    data: dict[str, Any] = {"task": task, "held": False}
    while True:
        with store.transaction() as state:
            record = state["tasks"].get(task)
            if record is None or record["kind"] != "task":
                raise InputError(f"no task {task!r} in plan {plan!r}", field="--task")
            status = record["status"]
            if status == "held":
                data.update(held=True, task_status=status)
                return data
            if status not in HOLDABLE and status != "in_progress":
                raise RefusedError(
                    f"task {task!r} is {status}: there is nothing to stop",
                    reason="not_stoppable",
                    next_step=f"`planfleet status {plan}` shows every task's state",
                    details={"task": task, "status": status},
                )
            # Only the engine can stop an agent it runs; anything else is changed here, in
            # the same transaction the engine's dispatch takes (so it cannot start it now).
            if status != "in_progress" or not runinfo.is_running(repo, plan):
                if status == "in_progress":
                    recover.stop_leftovers([record], task_id=task)
                ops.hold(state, task, runinfo.HELD_NOTE)
                runinfo.clear_requests(repo, plan, {runinfo.stop_task_request(task)})
                data.update(held=True, task_status="held", was=status)
                return data
        if "requested" not in data:
            runinfo.request(repo, plan, runinfo.stop_task_request(task))
            data["requested"] = f"stop {task}"
        if time.monotonic() > deadline:
            return data
        time.sleep(0.1)
