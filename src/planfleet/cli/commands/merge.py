"""`planfleet merge PLAN --tasks A,B`: merge task branches into the integration branch now."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli.output import Out
from planfleet.errors import ExitCode, InputError
from planfleet.ids import check_id
from planfleet.repo import merge, worktrees


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "merge",
        parents=[parent],
        help="merge task branches into the plan's integration branch",
        description="Merge planfleet/<plan>/tasks/<task> branches into "
        "planfleet/<plan>/integration one at a time, in the order given, without touching "
        "your checkout. A conflict, a deletion of undeclared files or a failed --check leaves "
        "the integration branch exactly as it was. Exit 1 when a merge failed, 2 (before "
        "anything merges) when a task has no branch.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan name")
    p.add_argument("--tasks", required=True, metavar="IDS", help="task ids, in merge order")
    p.add_argument(
        "--strategy",
        choices=merge.STRATEGIES,
        default="merge",
        help="merge commit (default) or squash",
    )
    p.add_argument("--check", metavar="CMD", help="quick check run on each merged result")
    p.add_argument(
        "--check-timeout",
        type=float,
        default=600,
        metavar="S",
        help="seconds the check may take (default 600)",
    )
    p.add_argument(
        "--allow-delete",
        action="append",
        default=[],
        metavar="PATH",
        help="a file, folder/ or glob the tasks may delete (repeatable)",
    )
    p.add_argument(
        "--base", metavar="REV", help="where a new integration branch starts (default: HEAD)"
    )
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed merge")
    p.add_argument("--dry-run", action="store_true", help="print the git commands, run none")
    p.set_defaults(handler=_handler, command_name="merge")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    check_id(ns.plan, what="plan name")
    tasks = [check_id(t.strip(), what="task id") for t in ns.tasks.split(",") if t.strip()]
    _require_branches(repo, ns.plan, tasks)
    items = [merge.MergeItem(t, tuple(ns.allow_delete)) for t in tasks]
    results = merge.merge_queue(
        repo,
        ns.plan,
        items,
        strategy=ns.strategy,
        check=ns.check,
        check_timeout=ns.check_timeout,
        base=ns.base,
        fail_fast=ns.fail_fast,
        dry_run=ns.dry_run,
    )
    failed = [r for r in results if not r.ok]

    def human() -> None:
        for r in results:
            out.line(f"{r.status:<16} {r.task}  {r.branch}  -> {(r.after or '-')[:12]}")
            if ns.dry_run:
                for line in r.commands:
                    out.line(f"  $ {line}")
            feedback = r.feedback()
            if feedback:
                out.line("  " + feedback.replace("\n", "\n  "))

    data = {"dry_run": ns.dry_run, "results": [r.to_json() for r in results]}
    out.result("merge", data, status="failed" if failed else "ok", human=human)
    return ExitCode.FAILED if failed else ExitCode.OK


def _require_branches(repo: Path, plan: str, tasks: list[str]) -> None:
    """Raise InputError (before anything merges) naming the tasks that have no branch."""
    if not tasks:
        raise InputError("no task ids given", field="--tasks", hint="pass --tasks A,B")
    refs = {t: git.branch_ref(worktrees.task_branch(plan, t)) for t in tasks}
    found = git.ref_commits(list(refs.values()), cwd=repo)
    unknown = [t for t, ref in refs.items() if ref not in found]
    if unknown:
        prefix = f"refs/heads/planfleet/{plan}/tasks/"
        known = git.out("for-each-ref", "--format=%(refname)", prefix, cwd=repo).split()
        names = [r.removeprefix(prefix) for r in known][:10]
        raise InputError(
            f"no task branch for {', '.join(unknown[:10])} (planfleet/{plan}/tasks/<task>)",
            field="--tasks",
            hint=f"tasks with a branch: {', '.join(names)}"
            if names
            else f"plan {plan!r} has no task branches yet: run the plan first",
        )
