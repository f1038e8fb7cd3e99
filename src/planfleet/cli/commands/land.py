"""`planfleet land PLAN [--into BRANCH]`: bring a finished integration branch home."""

from __future__ import annotations

import argparse
from typing import Any

from planfleet import git
from planfleet.cli.output import Out
from planfleet.engine import attemptsave
from planfleet.errors import ExitCode
from planfleet.ids import check_id
from planfleet.repo import landing


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "land",
        parents=[parent],
        help="fast-forward (or merge) the integration branch into your branch",
        description="Bring planfleet/<plan>/integration into BRANCH (default: the branch "
        "checked out here). A checkout holding BRANCH must have no uncommitted changes; it is "
        "then only fast-forwarded (a needed merge commit is made first, off the checkout). "
        "Refused on conflicts.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan name")
    p.add_argument("--into", metavar="BRANCH", help="target branch (default: the current one)")
    p.add_argument("--dry-run", action="store_true", help="print the git commands, run none")
    p.set_defaults(handler=_handler, command_name="land")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    check_id(ns.plan, what="plan name")
    res = landing.land(repo, ns.plan, into=ns.into, dry_run=ns.dry_run)
    kept = [k.branch for k in attemptsave.kept(repo, ns.plan)]

    def human() -> None:
        prefix = "(dry run) " if ns.dry_run else ""
        before = (res.before or "(new)")[:12]
        out.line(f"{prefix}{res.mode}: {res.target} {before} -> {(res.after or '')[:12]}")
        for line in res.commands if ns.dry_run else []:
            out.line(f"  $ {line}")
        if kept:
            out.line(
                f"{len(kept)} branch(es) keep failed attempts of this plan; "
                f"`planfleet clean {ns.plan}` deletes them"
            )

    data = {"dry_run": ns.dry_run, **res.to_json(), "kept_attempts": kept}
    out.result("land", data, human=human)
    return ExitCode.OK
