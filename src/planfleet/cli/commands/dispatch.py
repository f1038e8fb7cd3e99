"""`planfleet dispatch --phase N`: one `claude --bg` session per open plan of a phase."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.background import agents, dispatch, launch
from planfleet.cli.output import Out
from planfleet.errors import ExitCode
from planfleet.runners.claude import PERMISSION_MODES, claude_binary


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "dispatch",
        parents=[parent],
        help="start one background Claude Code session per open plan of a .maxvision phase",
        description="Resolve the plans of .maxvision/phase-N/plans/*.md (those recorded "
        "completed or blocked are skipped), check the environment, show the dispatch plan "
        "with the exact `claude --bg` command of each session, and after confirmation start "
        "the sessions one after another, each in its own worktree "
        "(.planfleet/worktrees/maxvision-phase-N/<task>, on the task branch `run` uses) "
        "where it commits. Each session is recorded at once in "
        ".maxvision/phase-N/bg-dispatch.json; watch them with `planfleet agents`, then "
        "verify and merge their work with `planfleet agents collect`. "
        "Refusals exit 3 with a reason (missing, too_old, dirty, no_phase, cost, "
        "not_confirmed, engine_running) and a next step.",
    )
    p.add_argument("--phase", type=int, required=True, metavar="PHASE", help="the phase number")
    p.add_argument(
        "--limit",
        type=int,
        default=dispatch.DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N sessions (default {dispatch.DEFAULT_LIMIT}; more than "
        f"{dispatch.MAX_LIMIT_WITHOUT_ACCEPT} needs --accept-cost)",
    )
    p.add_argument(
        "--accept-cost",
        action="store_true",
        help="allow a --limit above 10 (N sessions cost about N times one)",
    )
    p.add_argument("--yes", "-y", action="store_true", help="dispatch without asking")
    p.add_argument("--dry-run", action="store_true", help="print the dispatch plan only")
    p.add_argument("--model", metavar="MODEL", help="model of every session (claude --model)")
    p.add_argument(
        "--permission-mode",
        choices=PERMISSION_MODES,
        help="permission mode of every session (claude --permission-mode; default "
        f"{dispatch.DEFAULT_PERMISSION_MODE}, with the plan's own git, verify and test "
        "commands allowed)",
    )
    p.add_argument(
        "--plugin-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="load a plugin from DIR in every session (repeatable)",
    )
    p.set_defaults(handler=_handler, command_name="dispatch")


@dataclass(frozen=True)
class DispatchOptions:
    """What `planfleet dispatch` was asked to do."""

    start: Path | None  # where to look for the repository (-C, else here)
    phase: int
    limit: int = dispatch.DEFAULT_LIMIT
    accept_cost: bool = False
    yes: bool = False
    dry_run: bool = False
    model: str | None = None
    permission_mode: str | None = None
    plugin_dirs: tuple[str, ...] = ()  # absolute paths


def options(ns: argparse.Namespace) -> DispatchOptions:
    """Return what `dispatch` was asked (the one reader of its namespace)."""
    return DispatchOptions(
        start=ns.repo,
        phase=ns.phase,
        limit=ns.limit,
        accept_cost=bool(ns.accept_cost),
        yes=bool(ns.yes),
        dry_run=bool(ns.dry_run),
        model=ns.model,
        permission_mode=ns.permission_mode,
        plugin_dirs=tuple(str(Path(d).resolve()) for d in ns.plugin_dir),
    )


def _handler(ns: argparse.Namespace, out: Out) -> int:
    interactive = not out.json_mode and sys.stdin.isatty() and out.is_tty
    return run(out, options(ns), ask=input if interactive else None)


def run(out: Out, opts: DispatchOptions, *, ask: Callable[[str], str] | None) -> int:
    """Resolve, check, show and (once confirmed) dispatch; return the exit code."""
    phase = opts.phase
    dispatch.check_limit(opts.limit, opts.accept_cost)
    dispatch.check_permission_mode(opts.permission_mode)
    repo = git.require_repo(opts.start)
    verdict = dispatch.run_preflight(repo, phase)
    bad = verdict.failed
    if bad is not None:
        reason = bad.reason or "preflight"
        return _abort(out, verdict.to_json(), reason, bad.detail, bad.next_step or "")
    exe = claude_binary() or "claude"
    previous = agents.manifest_sessions(repo, phase)
    states = agents.session_states(agents.claude_entries(repo, exe)) if previous else {}
    plan = dispatch.resolve(
        repo,
        phase,
        limit=opts.limit,
        exe=exe,
        live=dispatch.live_plans(repo, phase, states),
        model=opts.model,
        permission_mode=opts.permission_mode,
        plugin_dirs=opts.plugin_dirs,
    )
    for warning in plan.warnings:
        out.warn(warning)
    shown = plan.to_json(repo)
    if not plan.planned:
        return _nothing(out, plan, shown)
    if opts.dry_run:
        out.result(
            "dispatch", {"status": "dry_run", **shown}, human=lambda: _show(out, plan, shown)
        )
        return ExitCode.OK
    _show(out, plan, shown)
    if not opts.yes:
        answer = ask("Start these sessions? [y/N] ") if ask else None
        if answer is None:
            return _abort(
                out,
                shown,
                "not_confirmed",
                "dispatching starts paid sessions, so it needs an explicit yes",
                "review the plan above and run again with --yes (or run it in a terminal "
                "to be asked)",
            )
        if answer.strip().lower() not in ("y", "yes"):
            out.result("dispatch", {"status": "skipped", **shown}, status="skipped")
            out.line("nothing dispatched")
            return ExitCode.OK
    outcome = launch.dispatch(repo, plan)
    return _report(out, repo, plan, outcome, shown)


def _show(out: Out, plan: dispatch.DispatchPlan, shown: dict[str, Any]) -> None:
    """Print the dispatch plan for a person."""
    k = len(plan.planned)
    out.line(
        f"Dispatch plan for phase {plan.phase}: {k} background session(s) "
        f"({k} of {plan.open_plans} open plan(s), cap {plan.limit})"
    )
    for p, row in zip(plan.planned, shown["plans"], strict=True):
        out.line(f"  {p.name}  {p.plan}")
        out.line(f"    worktree {row['worktree']}  branch {p.branch}")
        out.line(f"    $ {p.command}")
    for s in plan.skipped:
        out.line(f"  skipped  {s['plan']}  ({s['reason']})")
    out.line(f"Worktrees: {plan.worktrees_note()}")
    out.line(f"Cost: {plan.cost_note()}")
    out.line(f"Manifest: {shown['manifest_path']}")


def _nothing(out: Out, plan: dispatch.DispatchPlan, shown: dict[str, Any]) -> int:
    def human() -> None:
        out.line(f"phase {plan.phase}: no open plans to dispatch")
        for s in plan.skipped:
            out.line(f"  skipped  {s['plan']}  ({s['reason']})")

    out.result("dispatch", {"status": "nothing", **shown}, status="nothing", human=human)
    return ExitCode.OK


def _abort(out: Out, data: dict[str, Any], reason: str, message: str, next_step: str) -> int:
    """Print a structured refusal and return exit 3."""
    body = {**data, "status": "aborted", "reason": reason, "next_step": next_step}
    error = {"type": "refused", "reason": reason, "message": message, "next_step": next_step}

    def human() -> None:
        out.err_stream.write(
            f"planfleet: aborted ({reason}): {message}\n  next step: {next_step}\n"
        )

    out.result("dispatch", body, status="aborted", errors=[error], human=human)
    return ExitCode.REFUSED


def _report(
    out: Out,
    repo: Path,
    plan: dispatch.DispatchPlan,
    outcome: launch.Outcome,
    shown: dict[str, Any],
) -> int:
    manifest = str(plan.manifest.relative_to(repo))
    watch = f"planfleet agents --phase {plan.phase}"
    ok = outcome.failure is None and not outcome.problems
    data = {
        **shown,
        "status": "dispatched" if ok else "failed",
        "session_count": len(outcome.sessions),
        "sessions": outcome.sessions,
        "failure": outcome.failure,
        "not_dispatched": outcome.not_dispatched,
        "problems": outcome.problems,
        "warnings": [*shown["warnings"], *outcome.warnings],
        "next_step": f"watch them with `{watch}`; when they are done, verify and merge their "
        f"work with `planfleet agents collect --phase {plan.phase}`",
    }
    for warning in outcome.warnings:
        out.warn(warning)

    def human() -> None:
        out.line(f"dispatched {len(outcome.sessions)} session(s) for phase {plan.phase}")
        for s in outcome.sessions:
            out.line(f"  {s['session_id']}  {s['name']}  {s['path']}  in {s['worktree']}")
        if outcome.sessions:
            out.line(f"manifest: {manifest}")
            out.line(f"watch:   {watch}")
            out.line("logs:    planfleet agents logs ID    attach: planfleet agents attach ID")
            out.line(f"collect: planfleet agents collect --phase {plan.phase}")
            out.line(f"stop:    planfleet agents stop --all --phase {plan.phase}")
        for pr in outcome.problems:
            out.line(f"PROBLEM {pr['session_id']} {pr['name']} ({pr['reason']}): {pr['message']}")
            out.line(f"  next step: {pr['next_step']}")
        if outcome.failure is not None:
            f = outcome.failure
            out.line(f"FAILED to start {f['name']} ({f['reason']}): {f['output'][-500:]}")
            out.line(f"not dispatched: {', '.join(outcome.not_dispatched)}")

    if ok:
        out.result("dispatch", data, status="dispatched", human=human)
        return ExitCode.OK
    # started sessions that cannot do their work where they run
    errors = [{"type": "dispatch", **pr} for pr in outcome.problems]
    if outcome.failure is None:
        data["next_step"] = outcome.problems[0]["next_step"]
        out.result("dispatch", data, status="failed", errors=errors, human=human)
        return ExitCode.FAILED
    reason = outcome.failure["reason"]
    if reason == "no_session_id":
        data["next_step"] = (
            "claude printed no session id, so this session cannot be tracked: look for it "
            f"in `{watch}` or `claude agents`, stop it if it runs, then dispatch again"
        )
    else:
        data["next_step"] = (
            f"fix the cause shown, then run `planfleet dispatch --phase {plan.phase}` again "
            "(plans already dispatched are not started twice)"
        )
    error = {"type": "dispatch", "reason": reason, "message": outcome.failure["output"][-2000:]}
    out.result("dispatch", data, status="failed", errors=[*errors, error], human=human)
    out.line(f"next step: {data['next_step']}")
    return ExitCode.REFUSED if reason == "no_session_id" else ExitCode.FAILED
