"""`planfleet verify PLAN TASK`: run the engine's gates on a task's branch, on demand."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli import running, savedflags
from planfleet.cli.output import Out
from planfleet.cli.runopts import RunFlags
from planfleet.engine.setup import load_or_take_baseline
from planfleet.errors import ExitCode, InputError, RefusedError
from planfleet.ids import check_id
from planfleet.repo import worktrees
from planfleet.repo.scratch import scratch_worktree
from planfleet.state.store import StateStore
from planfleet.verify import gates, testcmd


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify",
        parents=[parent],
        help="run the gates on a task's branch now (commit, files, checks, tests)",
        description="Run every gate the engine runs after an attempt on the current head of "
        "planfleet/<plan>/tasks/<task>: a real commit with a diff, files to create present "
        "and non-empty, declared dependencies in the manifest, verify commands, tests "
        "against the run's baseline, no deleted or skipped tests. Exit 1 if a gate fails. "
        "With --record the result is saved as the task's verification record.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan name, file or folder")
    p.add_argument("task", metavar="TASK", help="a task id")
    p.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="per command")
    p.add_argument(
        "--record", action="store_true", help="save the record under .planfleet/runs/<plan>/verify/"
    )
    p.add_argument(
        "--strict-files",
        action="store_true",
        help="fail on changes to files the task does not declare (default: report them)",
    )
    p.add_argument(
        "--strict-tests",
        action="store_true",
        help="fail when a new or changed test passes without the task's code (vacuous_test; "
        "default: a warning)",
    )
    p.set_defaults(handler=_handler, command_name="verify")


@contextlib.contextmanager
def _checkout(repo: Path, plan: str, task: str, head: str) -> Iterator[Path]:
    live = worktrees.task_worktree(repo, plan, task)
    if live.is_dir():
        yield live
        return
    with scratch_worktree(repo, plan, f"verify-{task}", head) as path:
        yield path


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    plan = running.load_plan(repo, ns.plan, ns.format)
    # the test command (and limit) the plan's run uses: --test-cmd of the run, config, ...
    saved = savedflags.load(repo, plan.name)
    flags = saved.flags if saved is not None else RunFlags()
    choice = testcmd.choose(repo, plan, flag=flags.test_command, flag_timeout=flags.test_timeout_s)
    plan = testcmd.apply(plan, choice)
    task_id = check_id(ns.task, what="task id")
    try:
        task = plan.task(task_id)
    except KeyError:
        raise InputError(f"no task {task_id!r} in plan {plan.name!r}", field="TASK") from None
    branch = worktrees.task_branch(plan.name, task.id)
    head = git.rev_parse(git.branch_ref(branch), cwd=repo)
    if head is None:
        raise RefusedError(
            f"task {task.id!r} has no branch {branch}",
            reason="no_branch",
            next_step=f"run it first: `planfleet run {plan.name} --tasks {task.id}`",
        )
    integ = worktrees.ensure_integration(repo, plan.name)
    store = StateStore.for_plan(repo, plan.name)
    record = store.load()["tasks"].get(task.id) if store.exists() else None
    base = (record or {}).get("base_commit") or git.out("merge-base", integ, head, cwd=repo)
    baseline = load_or_take_baseline(repo, plan, integ, timeout_s=ns.timeout)
    with _checkout(repo, plan.name, task.id, head) as where:
        v = gates.verify_attempt(
            repo,
            plan,
            task,
            worktree=where,
            branch=branch,
            base_commit=base,
            baseline=baseline,
            claims=None,
            strict_files=ns.strict_files,
            strict_tests=ns.strict_tests,
            timeout_s=ns.timeout,
        )
    data = v.to_json()
    if ns.record:
        attempt = int((record or {}).get("attempts") or 0) or 1
        data["record"] = str(gates.save_record(repo, plan.name, task.id, attempt, v))

    def human() -> None:
        for gate in v.gates:
            out.line(f"{'PASS' if gate.ok else 'FAIL'}  {gate.name}: {gate.message}")
        out.line(f"{task.id}: {'verified' if v.ok else 'not verified'} at {(v.commit or '-')[:12]}")
        if v.feedback and not v.ok:
            out.line("")
            out.line(v.feedback)

    out.result("verify", data, human=human, status="ok" if v.ok else "failed")
    return ExitCode.OK if v.ok else ExitCode.FAILED
