"""`planfleet phase-runner --phase N --plan-dir D`: one phase's protocol, or one step of it."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli import runflags, view
from planfleet.cli.output import Out, table
from planfleet.errors import ExitCode
from planfleet.orchestrate.execplan import execution_view
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.phaserunner import STEP_CHOICES, PhaseOutcome, PhaseRunner
from planfleet.orchestrate.record import PipelineStore, PlanDir, find_phase, resolve_plan_dir
from planfleet.runners.claude import PERMISSION_MODES


def add_phase_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags that shape how phases run (shared with orchestrate)."""
    team = p.add_mutually_exclusive_group()
    team.add_argument(
        "--team",
        dest="team",
        action="store_const",
        const=True,
        help="force team mode (falls back to classic: agent teams are unavailable)",
    )
    team.add_argument(
        "--no-team",
        dest="team",
        action="store_const",
        const=False,
        help="force classic mode (independent task agents)",
    )
    sub = p.add_mutually_exclusive_group()
    sub.add_argument(
        "--subprocess",
        dest="subprocess",
        action="store_true",
        default=True,
        help="run every step as its own claude -p subprocess (default)",
    )
    sub.add_argument(
        "--no-subprocess",
        dest="subprocess",
        action="store_false",
        help="hand each step to the in-session phase-runner agent; planfleet "
        "still checks every artifact before the next step",
    )
    p.add_argument(
        "--max-parallel",
        type=runflags.positive_int,
        default=3,
        metavar="N",
        help="task agents at once in the implement step (default 3)",
    )
    p.add_argument(
        "--model", metavar="MODEL", help="model for the agents: sonnet, opus, haiku or a model id"
    )
    p.add_argument(
        "--timeout",
        type=runflags.positive_float,
        default=1200.0,
        metavar="S",
        help="seconds per agent (default 1200)",
    )
    p.add_argument(
        "--stall",
        type=runflags.positive_float,
        default=300.0,
        metavar="S",
        help="seconds without agent output that count as a stall (default 300)",
    )
    p.add_argument(
        "--task-budget-usd",
        type=runflags.positive_float,
        metavar="USD",
        help="spending cap per agent run (--max-budget-usd)",
    )
    p.add_argument(
        "--permission-mode",
        default="acceptEdits",
        choices=PERMISSION_MODES,
        help="claude permission mode (default acceptEdits; never bypass by default)",
    )


def phase_flags(ns: argparse.Namespace) -> PhaseOptions:
    """Return the PhaseOptions the phase flags ask for (the one reader of those flags)."""
    return PhaseOptions(
        subprocess=ns.subprocess,
        team=ns.team,
        max_parallel=ns.max_parallel,
        model=ns.model,
        timeout_s=ns.timeout,
        stall_s=ns.stall,
        task_budget_usd=ns.task_budget_usd,
        permission_mode=ns.permission_mode,
    )


def locate(repo: Path | None, arg: str) -> PlanDir:
    """Return the plan directory ``arg`` inside the repository (-C, else the folder's own)."""
    return resolve_plan_dir(arg, git.require_repo(repo) if repo is not None else None)


@dataclass(frozen=True)
class PhaseRunnerRequest:
    """What `planfleet phase-runner` was asked to do."""

    repo: Path | None
    plan_dir: str
    phase: str  # its id or number
    step: str | None
    dry_run: bool
    options: PhaseOptions  # the phase flags; step, dry run and check command are added


def request(ns: argparse.Namespace) -> PhaseRunnerRequest:
    """Return what `phase-runner` was asked (the one reader of its namespace)."""
    return PhaseRunnerRequest(
        repo=ns.repo,
        plan_dir=ns.plan_dir,
        phase=ns.phase,
        step=ns.step,
        dry_run=bool(ns.dry_run),
        options=phase_flags(ns),
    )


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "phase-runner",
        parents=[parent],
        help="run one phase of a plan directory: implement, test, review, fix, commit",
        description="Run the protocol of one phase of a plan directory: implement (the "
        "engine, one claude -p per task), test, review, three fix passes (P0+P1, then P2, "
        "then P3) and commit, each step its own claude -p subprocess. After each step an "
        "artifact gate (the file exists, parses, fits its schema, and planfleet's own "
        "checks agree) decides whether the next may run. Done steps are skipped; the "
        "failed or interrupted one runs again. Exit 1 when a gate fails.",
    )
    p.add_argument("--phase", required=True, metavar="PHASE", help="the phase id or number")
    p.add_argument("--plan-dir", required=True, metavar="DIR", help="the plan directory")
    p.add_argument(
        "--step",
        choices=STEP_CHOICES,
        metavar="STEP",
        help=f"run only this step (again): {', '.join(STEP_CHOICES)}; fix means the three passes",
    )
    p.add_argument("--dry-run", action="store_true", help="show the steps; start nothing")
    add_phase_flags(p)
    p.set_defaults(handler=_handler, command_name="phase-runner")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    return run(request(ns), out)


def run(req: PhaseRunnerRequest, out: Out) -> int:
    """Run the phase (or its one step); print the outcome; return the exit code."""
    pdir = locate(req.repo, req.plan_dir)
    store = PipelineStore(pdir)
    plan = execution_view(pdir, store.load())
    phase = find_phase(plan, req.phase)
    check = ["planfleet", "phase-runner", "--phase", phase.id, "--plan-dir", str(pdir.folder)]
    check += ["--no-subprocess"] + (["--step", req.step] if req.step else [])
    opts = dataclasses.replace(
        req.options, step=req.step, dry_run=req.dry_run, check_command=tuple(check)
    )
    listener = None if out.json_mode else view.LineReporter(out.err_stream)
    runner = PhaseRunner(pdir, plan, phase, store, opts, say=out.line, listener=listener)
    with store.running(f"phase-runner --phase {phase.id}"):
        outcome = runner.run()
    show(out, outcome, "phase-runner")
    return ExitCode.FAILED if outcome.status == "failed" else ExitCode.OK


def show(out: Out, outcome: PhaseOutcome, command: str) -> None:
    """Print a phase outcome: warnings, steps, the failing gate or the hand-over."""
    for w in outcome.warnings:
        out.warn(w)

    def human() -> None:
        if outcome.status == "dry_run":
            out.line(f"phase {outcome.phase}: {outcome.mode.mode} mode ({outcome.mode.reason})")
            for row in outcome.steps:
                out.line(f"  {row['step']} [{row['status']}]")
                for c in row["runs"]:
                    out.line(f"    $ {c}")
                out.line(f"    artifact: {row['artifact']}")
            return
        rows = [
            [n, r["status"], str(r["attempts"]), r.get("message", "")[:70]]
            for n, r in outcome.steps.items()
        ]
        if rows:
            out.line(table(rows, ["step", "status", "attempts", "note"]))
        if outcome.instructions:
            out.line(f"\nnext: {outcome.instructions['text']}")
        out.line(outcome.message)

    status = {"failed": "failed", "needs_agent": "needs_agent"}.get(outcome.status, "ok")
    out.result(command, outcome.to_json(), status=status, human=human)
    if outcome.status == "failed" and not out.json_mode:
        out.err_stream.write(f"planfleet: {outcome.message}\n")
