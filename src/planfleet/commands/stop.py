"""`planfleet stop PLAN [--task ID]`: pause a run gracefully (or stop one task's agent)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from planfleet import git, runinfo, stateops, staterecover
from planfleet.commands import agents
from planfleet.errors import ExitCode, InputError, UsageError
from planfleet.ids import check_id
from planfleet.output import Out
from planfleet.state import StateStore
from planfleet.statemodel import set_run_status

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
        "--task only that task's agent is stopped and the task is held until the next resume. "
        "If the engine is gone, the state is repaired and marked paused directly.",
    )
    p.add_argument(
        "plan", nargs="?", metavar="PLAN", help="a plan run's name (or a background session id)"
    )
    p.add_argument("--task", metavar="ID", help="stop only this task")
    p.add_argument(
        "--all",
        action="store_true",
        help="stop every background session of a dispatch (`planfleet dispatch`)",
    )
    p.add_argument("--phase", type=int, metavar="N", help="with --all: only this phase's sessions")
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the engine to pause (default 60)",
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
        raise InputError(f"plan {plan!r} has no run to stop", hint="`planfleet status` lists runs")
    running = runinfo.is_running(repo, plan)
    data: dict[str, Any] = {"plan": plan, "engine_was_running": running}
    if ns.task:
        task = check_id(ns.task, what="task id")
        if running:
            runinfo.request(repo, plan, runinfo.stop_task_request(task))
            data["requested"] = f"stop {task}"
        with store.transaction() as state:
            record = state["tasks"].get(task)
            if record is None:
                raise InputError(f"no task {task!r} in plan {plan!r}", field="--task")
            if not running and record["status"] == "in_progress":
                staterecover.stop_leftovers([record], task_id=task)
                stateops.release(state, task, "stopped by planfleet stop --task")
            if record["status"] == "pending":
                stateops.block(state, task, "stopped by planfleet stop --task")
        data["task"] = task
    elif running:
        runinfo.request(repo, plan, runinfo.PAUSE)
        data["paused"] = runinfo.wait_stopped(repo, plan, ns.wait)
        if not data["paused"]:
            info = runinfo.read_info(repo, plan)
            if info is not None:
                runinfo.signal_engine(info)
            data["paused"] = runinfo.wait_stopped(repo, plan, 10)
    else:
        staterecover.stop_leftovers(store.load()["tasks"].values())
        with store.transaction() as state:
            data["orphans"] = staterecover.requeue_orphans(state)
            if state["status"] == "running":
                set_run_status(state, "paused")
        data["paused"] = True
    state = store.load()
    data["status"] = state["status"]

    def human() -> None:
        if ns.task:
            out.line(
                f"{plan}: task {ns.task} stopped and held; `planfleet resume {plan}` takes it up"
            )
        elif data["paused"]:
            out.line(f"{plan}: {state['status']}; continue with `planfleet resume {plan}`")
        else:
            out.line(f"{plan}: the engine did not pause within {ns.wait:g} s")

    out.result("stop", data, human=human, status="ok" if data.get("paused", True) else "error")
    return ExitCode.OK if data.get("paused", True) else ExitCode.FAILED
