"""`planfleet worktree create|list|remove|prune|rescue`: task worktrees, safely."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli.output import Out, table
from planfleet.errors import ExitCode
from planfleet.ids import check_id
from planfleet.repo import guards, provision, worktrees


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "worktree",
        help="create, list, remove, prune and rescue task worktrees",
        description="One git worktree per task under .planfleet/worktrees/<plan>/<task>, on "
        "branch planfleet/<plan>/tasks/<task>. Work is never thrown away: removing a worktree "
        "saves uncommitted or unmerged work on a rescue branch first.",
    )
    wsub = p.add_subparsers(dest="worktree_command", metavar="SUBCOMMAND", required=True)
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true", help="print the git commands, run none")

    c = wsub.add_parser(
        "create",
        parents=[parent, dry],
        help="create or reuse worktrees",
        description="Create (or reuse) one worktree per task. New ones start at "
        "the integration branch (made from HEAD if missing) unless --base.",
    )
    c.add_argument("plan", metavar="PLAN", help="plan name")
    c.add_argument("tasks", nargs="+", metavar="TASK", help="task ids")
    c.add_argument("--base", metavar="REV", help="commit or branch new worktrees start from")
    c.add_argument("--allow-dirty", action="store_true", help="accept uncommitted changes")
    c.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="parallel checkouts (default: the number of CPUs)",
    )
    c.set_defaults(handler=_create, command_name="worktree create")

    ls = wsub.add_parser("list", parents=[parent], help="planfleet's worktrees and their health")
    ls.add_argument("plan", nargs="?", metavar="PLAN", help="only this plan")
    ls.add_argument("--all", action="store_true", help="also worktrees planfleet did not make")
    ls.set_defaults(handler=_list, command_name="worktree list")

    for name, helptext in (
        ("remove", "remove a task's worktree and branch, rescuing work"),
        ("rescue", "save a task's uncommitted and unmerged work"),
    ):
        r = wsub.add_parser(name, parents=[parent, dry], help=helptext, description=helptext)
        r.add_argument("plan", metavar="PLAN", help="plan name")
        r.add_argument("task", metavar="TASK", help="task id")
        if name == "remove":
            r.add_argument("--keep-branch", action="store_true", help="keep the task branch")
        r.set_defaults(
            handler=_remove if name == "remove" else _rescue, command_name=f"worktree {name}"
        )

    pr = wsub.add_parser(
        "prune",
        parents=[parent, dry],
        help="drop stale worktree records",
        description="Drop records of worktrees whose folder was deleted (also "
        "locked ones inside the repository), unlock worktrees whose planfleet "
        "owner is gone, and remove stale index.lock files. Healthy worktrees "
        "are never touched.",
    )
    pr.add_argument(
        "--lock-age",
        type=float,
        default=worktrees.STALE_INDEX_LOCK_S,
        metavar="S",
        help="index.lock files older than this many seconds are stale",
    )
    pr.set_defaults(handler=_prune, command_name="worktree prune")


def _repo(ns: argparse.Namespace) -> Path:
    return git.require_repo(ns.repo)


def _print_commands(out: Out, commands: list[str]) -> None:
    for line in commands:
        out.line(f"  $ {line}")


def _create(ns: argparse.Namespace, out: Out) -> int:
    repo = _repo(ns)
    check_id(ns.plan, what="plan name")
    tasks = [check_id(t, what="task id") for t in ns.tasks]
    guards.require_clean(repo, allow_dirty=ns.allow_dirty)
    wts = provision.create_worktrees(
        repo, ns.plan, tasks, base=ns.base, workers=ns.jobs, dry_run=ns.dry_run
    )
    failed = [w for w in wts if w.error]

    def human() -> None:
        for w in wts:
            out.line(f"{w.action:<9} {w.task}  {w.path}  ({w.branch} @ {(w.base or '?')[:12]})")
            if ns.dry_run:
                _print_commands(out, w.commands)
            if w.error:
                out.line(f"  {w.error.render()}")

    data = {"dry_run": ns.dry_run, "worktrees": [w.to_json() for w in wts]}
    errors = [w.error.to_json() for w in failed if w.error]
    out.result(
        "worktree create", data, status="error" if failed else "ok", human=human, errors=errors
    )
    return ExitCode.REFUSED if failed else ExitCode.OK


def _list(ns: argparse.Namespace, out: Out) -> int:
    repo = _repo(ns)
    health = guards.inspect(repo, plan=ns.plan, foreign=ns.all)

    def human() -> None:
        if not health:
            out.line("no planfleet worktrees")
            return
        rows = [
            [
                h.plan or "-",
                h.task or "-",
                h.state,
                h.branch or "(detached)",
                (h.base or "")[:12],
                str(h.path),
            ]
            for h in health
        ]
        out.line(table(rows, ["plan", "task", "state", "branch", "base", "path"]))

    out.result("worktree list", {"worktrees": [h.to_json() for h in health]}, human=human)
    return ExitCode.OK


def _report(
    out: Out, ns: argparse.Namespace, data: dict[str, Any], lines: list[str], commands: list[str]
) -> int:
    """Print a remove/rescue/prune result: its lines, and the commands on a dry run."""

    def human() -> None:
        for line in lines:
            out.line(line)
        if ns.dry_run:
            _print_commands(out, commands)

    out.result(ns.command_name, {"dry_run": ns.dry_run, **data}, human=human)
    return ExitCode.OK


def _remove(ns: argparse.Namespace, out: Out) -> int:
    res = guards.remove(_repo(ns), ns.plan, ns.task, keep_branch=ns.keep_branch, dry_run=ns.dry_run)
    what = [str(res.path)] if res.removed_worktree else []
    what += [worktrees.task_branch(ns.plan, ns.task)] if res.deleted_branch else []
    verb = "would remove" if ns.dry_run else "removed"
    lines = [res.rescue.describe(), f"{verb}: {', '.join(what) or 'nothing'}"]
    return _report(out, ns, res.to_json(), lines, res.commands)


def _rescue(ns: argparse.Namespace, out: Out) -> int:
    res = guards.rescue(_repo(ns), ns.plan, ns.task, dry_run=ns.dry_run)
    lines = [("(dry run) " if ns.dry_run else "") + res.describe()]
    return _report(out, ns, res.to_json(), lines, res.commands)


def _prune(ns: argparse.Namespace, out: Out) -> int:
    rep = guards.prune(_repo(ns), dry_run=ns.dry_run, lock_age_s=ns.lock_age)
    verb = "would " if ns.dry_run else ""
    lines = [f"{verb}prune    {path}" for path in rep.pruned]
    lines += [f"{verb}unlock   {path}" for path in rep.unlocked]
    lines += [f"{verb}remove stale index.lock in {path}" for path in rep.index_locks]
    lines += [f"kept     {kept['path']} ({kept['why']})" for kept in rep.kept]
    return _report(out, ns, rep.to_json(), lines or ["nothing to prune"], rep.commands)
