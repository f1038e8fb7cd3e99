"""`planfleet clean PLAN`: delete the branches a run keeps aside (failed attempts, rescues)."""

from __future__ import annotations

import argparse
from typing import Any

from planfleet import git
from planfleet.cli.commands import cleanremote
from planfleet.cli.output import Out
from planfleet.engine import attemptsave, runinfo
from planfleet.errors import ExitCode, RefusedError
from planfleet.ids import check_id
from planfleet.repo import worktrees


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "clean",
        parents=[parent],
        help="delete the branches that keep failed attempts (and, asked, rescued work)",
        description="Delete planfleet/<plan>/attempts/<task>/<n>, the branches that keep "
        "the work of failed attempts (each retry starts from a clean branch). Rescue "
        "branches (planfleet/<plan>/rescue/...) may hold work nothing else has: they go only "
        "with --rescue. Refused while the plan's engine runs.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan run's name")
    p.add_argument("--task", metavar="TASK", help="only this task's branches")
    p.add_argument("--rescue", action="store_true", help="delete the rescue branches too")
    p.add_argument("--dry-run", action="store_true", help="print the git commands, run none")
    p.add_argument(
        "--remote",
        metavar="NAME",
        help="instead: delete the run's cloud branches (planfleet/<plan>/base/... and "
        "planfleet/<plan>/tasks/...) from the git remote NAME, after asking",
    )
    p.add_argument("--yes", "-y", action="store_true", help="with --remote: do not ask")
    p.set_defaults(handler=_handler, command_name="clean")


def rescue_prefix(plan: str) -> str:
    """Return ``planfleet/<plan>/rescue/``."""
    return worktrees.rescue_branch(plan, "x").rsplit("/", 1)[0] + "/"


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    plan = check_id(ns.plan, what="plan name")
    task = check_id(ns.task, what="task id") if ns.task else None
    if runinfo.is_running(repo, plan):
        raise RefusedError(
            f"plan {plan!r} is running: a retry may still need its attempt branches",
            reason="engine_running",
            next_step=f"wait for the run to end, or `planfleet stop {plan}` first",
        )
    if ns.remote:
        return cleanremote.clean_remote(
            out, repo, plan, remote=ns.remote, task=task, dry_run=ns.dry_run, yes=ns.yes
        )
    chosen = {k.branch: k.commit for k in attemptsave.kept(repo, plan, task)}
    rescued = {
        name: commit
        for name, commit in git.branches_under(rescue_prefix(plan), cwd=repo).items()
        if task is None or name.rsplit("/", 1)[-1].startswith(f"{task}-")
    }
    if ns.rescue:
        chosen.update(rescued)
    steps = git.GitPlan()
    for name, commit in sorted(chosen.items()):
        steps.add("update-ref", "-d", git.branch_ref(name), commit, cwd=repo)
    if not ns.dry_run and steps.steps:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            steps.run()
    kept_rescue = [] if ns.rescue else sorted(rescued)
    data = {
        "plan": plan,
        "dry_run": ns.dry_run,
        "deleted": sorted(chosen),
        "kept_rescue": kept_rescue,
        "commands": steps.render(),
    }

    def human() -> None:
        verb = "would delete" if ns.dry_run else "deleted"
        out.line(f"{plan}: {verb} {len(chosen)} branch(es)")
        for name in sorted(chosen):
            out.line(f"  {name}")
        for line in steps.render() if ns.dry_run else []:
            out.line(f"  $ {line}")
        if kept_rescue:
            out.line(
                f"{len(kept_rescue)} rescue branch(es) kept (they may hold work nothing else "
                "has); --rescue deletes them"
            )

    out.result("clean", data, human=human)
    return ExitCode.OK
