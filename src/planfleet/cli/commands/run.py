"""`planfleet run PLAN`: execute a plan with the engine (foreground, or --detach)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli import detach, dryrun, runflags, running, runopts, savedflags
from planfleet.cli.output import Out
from planfleet.cli.runopts import RunFlags
from planfleet.engine import cloudcheck, runcheck
from planfleet.engine.options import run_scope
from planfleet.errors import RefusedError
from planfleet.state.store import StateStore, no_run
from planfleet.verify import testcmd


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[parent],
        help="execute a plan: agents in worktrees, gates, merges, crash-safe state",
        description="Run PLAN (a plan file or folder, or a plan name from `plan list`). A task "
        "starts as soon as its dependencies are merged and a slot is free; each attempt runs "
        "in its own git worktree and is judged by the engine's gates, never by the agent's "
        "report; verified work is merged into planfleet/<plan>/integration, never into your "
        "checkout: bring it home with `planfleet land PLAN`. The plan's own progress files "
        "(checkboxes, checkpoints, logs, execute-state.json) are updated in place; --dry-run "
        "lists them, --no-projections leaves them alone.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan file, folder or name")
    p.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    p.add_argument(
        "--phase", metavar="PHASE", help="only these phases (ids or numbers, comma separated)"
    )
    p.add_argument("--tasks", metavar="IDS", help="only these tasks (comma separated)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print per task the prompt size, commands and checks; start nothing",
    )
    p.add_argument("--resume", action="store_true", help="continue an existing run of PLAN")
    runflags.add_run_flags(p)
    p.set_defaults(handler=_handler, command_name="run")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    return start(request(ns), out, command="run")


def request(ns: argparse.Namespace) -> runopts.RunRequest:
    """Return what `run` or `resume` was asked (the one reader of their namespace)."""
    return runopts.RunRequest(
        repo=ns.repo,
        plan=ns.plan,
        format=ns.format,
        phases=runopts.split(ns.phase),
        tasks=runopts.split(ns.tasks),
        dry_run=bool(ns.dry_run),
        resume=bool(ns.resume),
        args=runflags.run_args(ns),
    )


def start(req: runopts.RunRequest, out: Out, *, command: str) -> int:
    """Shared by run and resume: check, confirm, then run here or detached."""
    repo = git.require_repo(req.repo)
    plan = running.load_plan(repo, req.plan, req.format)
    store = StateStore.for_plan(repo, plan.name)
    # A resumed run keeps the flags it started with unless they are given again.
    saved = _saved(out, repo, plan.name) if req.resume and store.exists() else None
    flags = runopts.effective(req.args, saved)
    opts = runopts.run_options(
        flags, plan, phases=req.phases, tasks=req.tasks, accept_cost=req.args.accept_cost
    )
    if req.dry_run:
        return dryrun.dry_run(out, repo, plan, opts)
    if store.exists() and not req.resume:
        state = store.load()
        done = sum(1 for r in state["tasks"].values() if r["status"] in ("verified", "skipped"))
        raise RefusedError(
            f"plan {plan.name!r} already has a run ({state['status']}, {done}/"
            f"{len(state['tasks'])} done)",
            reason="run_exists",
            next_step=f"continue it with `planfleet resume {plan.name}`, or start over with "
            f"`planfleet state init {plan.name} --from {plan.path} --force`",
        )
    if not store.exists() and req.resume and command == "resume":
        raise no_run(plan.name, f"start it with `planfleet run {req.plan}`")
    tests = testcmd.choose(repo, plan, flag=opts.test_command, flag_timeout=opts.test_timeout_s)
    testcmd.require(plan, tests)  # before anything starts, detached or not
    runcheck.refuse_without_commands(repo, plan, opts)
    unseen = runcheck.unseen_warning(runcheck.unseen_changes(repo, plan))
    if unseen:
        out.warn(unseen)
    if opts.runner == "cloud" or opts.cloud_parallel:
        scope = run_scope(plan, opts)
        found = cloudcheck.checks(
            repo,
            plan.name,
            [t.id for t in plan.tasks if (scope is None or t.id in scope) and t.runner != "local"],
            remote=flags.remote,
            environment=flags.environment,
            fresh=not store.exists(),
        )
        cloudcheck.refuse(found)
        if opts.budget_usd:
            out.warn(
                "cloud sessions report no cost to planfleet: --budget-usd counts only what "
                "local agents report"
            )
    confirm(out, req.args.yes, opts.runner, opts.max_parallel, opts.task_budget_usd)
    if opts.cloud_parallel:
        confirm(out, req.args.yes, "cloud", opts.cloud_parallel, None)
    savedflags.save(repo, plan.name, flags)
    if req.args.detach:
        return detach.launch(out, repo, plan.name, sys.argv[1:])
    return running.execute(out, repo, plan, opts, command)


def _saved(out: Out, repo: Path, plan: str) -> RunFlags | None:
    """Return the flags the plan's run started with, telling about fields ignored."""
    saved = savedflags.load(repo, plan)
    if saved is None:
        return None
    for note in saved.ignored:
        out.warn(note)
    return saved.flags


def confirm(out: Out, yes: bool, runner: str, parallel: int, cap: float | None) -> None:
    """Ask before paid agents start; refuse when nobody can answer and --yes is missing."""
    if runner == "shell" or yes:
        return
    cost = f"${cap * parallel:.2f}" if cap else "no per-task cap (set --task-budget-usd)"
    what = f"{runner} agents"
    if runner == "cloud":
        cost = "cloud sessions share your account's rate limits and report no cost to planfleet"
        what = "Claude Code cloud sessions (one per attempt)"
    question = f"Start up to {parallel} {what} at once ({cost})? [y/N] "
    if not (sys.stdin.isatty() and out.is_tty) or out.json_mode:
        raise RefusedError(
            f"the {runner} runner starts paid agents; confirmation is needed",
            reason="needs_confirmation",
            next_step="add --yes (the dry run shows what would start: --dry-run)",
            details={"max_parallel": parallel, "task_budget_usd": cap},
        )
    answer = input(question).strip().lower()
    if answer not in ("y", "yes"):
        raise RefusedError(
            "not confirmed", reason="not_confirmed", next_step="run again and answer y"
        )
