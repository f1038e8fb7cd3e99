"""`planfleet merge PLAN --tasks A,B`: merge task branches into the integration branch now."""

from __future__ import annotations

import argparse
from typing import Any

from planfleet import git, merge
from planfleet.errors import ExitCode
from planfleet.ids import check_id
from planfleet.output import Out


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "merge",
        parents=[parent],
        help="merge task branches into the plan's integration branch",
        description="Merge planfleet/<plan>/tasks/<task> branches into "
        "planfleet/<plan>/integration one at a time, in the order given, without touching "
        "your checkout. A conflict, a deletion of undeclared files or a failed --check leaves "
        "the integration branch exactly as it was. Exit 1 when a merge failed.",
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
