"""`planfleet orchestrate PLAN_DIR`: ingest, review, skill-match, research, user gate, execute."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.cli import view
from planfleet.cli.commands.phase_runner import add_phase_flags, locate, phase_flags
from planfleet.cli.output import Out
from planfleet.errors import ExitCode, RefusedError
from planfleet.orchestrate import execplan
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.pipeline import Pipeline, PipelineOptions, PipelineResult
from planfleet.orchestrate.record import STAGES, Doc, PipelineStore


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "orchestrate",
        parents=[parent],
        help="run a plan directory through review, skill-match, research, a gate, phases",
        description="Take a plan directory (task_plan.md or manifest.md plus specs) through "
        "six stages: ingest, an LLM review of the plan (its revision shown as a diff), "
        "skill-match per task, research cheat sheets per technology (kept in "
        ".planfleet/knowledge and reused), a user gate showing the whole execution plan, "
        "and phased execution (see `planfleet phase-runner`). Every stage is recorded in "
        ".planfleet/runs/<plan>/pipeline.json; a second run skips what is done.",
    )
    p.add_argument("plan_dir", metavar="PLAN_DIR", help="the plan directory")
    p.add_argument("--dry-run", action="store_true", help="run stages 1-4, show the plan, stop")
    p.add_argument("--yes", "-y", action="store_true", help="confirm the execution plan")
    p.add_argument(
        "--resume", action="store_true", help="skip the plan review stage and phases already done"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="forget the recorded stages (kept as pipeline.json.bak) and start over",
    )
    p.add_argument("--phase", metavar="PHASE", help="execute only this phase")
    add_phase_flags(p)
    p.set_defaults(handler=_handler, command_name="orchestrate")


@dataclass(frozen=True)
class OrchestrateRequest:
    """What `planfleet orchestrate` was asked to do."""

    repo: Path | None
    plan_dir: str
    dry_run: bool
    yes: bool
    resume: bool
    restart: bool
    only_phase: str | None
    phase: PhaseOptions  # the phase flags; the check command is added


def request(ns: argparse.Namespace) -> OrchestrateRequest:
    """Return what `orchestrate` was asked (the one reader of its namespace)."""
    return OrchestrateRequest(
        repo=ns.repo,
        plan_dir=ns.plan_dir,
        dry_run=bool(ns.dry_run),
        yes=bool(ns.yes),
        resume=bool(ns.resume),
        restart=bool(ns.restart),
        only_phase=ns.phase,
        phase=phase_flags(ns),
    )


def _handler(ns: argparse.Namespace, out: Out) -> int:
    return run(request(ns), out)


def run(req: OrchestrateRequest, out: Out) -> int:
    """Take the plan directory through the stages; print them; return the exit code."""
    pdir = locate(req.repo, req.plan_dir)
    store = PipelineStore(pdir)
    check = ["planfleet", "orchestrate", str(pdir.folder), "--no-subprocess"]
    check += ["--phase", req.only_phase] if req.only_phase else []
    opts = PipelineOptions(
        phase=dataclasses.replace(req.phase, check_command=tuple(check)),
        dry_run=req.dry_run,
        resume=req.resume,
        only_phase=req.only_phase,
        confirm=lambda shown: _confirm(out, req.yes, shown),
    )
    listener = None if out.json_mode else view.LineReporter(out.err_stream)
    with store.running("orchestrate"):
        if req.restart:
            backup = store.restart()
            if backup is not None:
                out.line(f"earlier stages set aside in {pdir.rel(backup)}")
        result = Pipeline(pdir, opts, say=out.line, listener=listener).run()
    _show(out, result)
    return ExitCode.FAILED if result.exit_code else ExitCode.OK


def _confirm(out: Out, yes: bool, shown: Doc) -> bool:
    """Show the execution plan; return True once the user (or --yes) confirmed it."""
    for line in execplan.render(shown):
        out.line(line)
    if yes:
        return True
    if out.json_mode or not (sys.stdin.isatty() and out.is_tty):
        raise RefusedError(
            "nothing runs without confirmation of the execution plan",
            reason="needs_confirmation",
            next_step="read the plan (--dry-run shows it), then run again with --yes",
            details={"execution_plan": shown},
        )
    answer = input("\nRun this plan? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise RefusedError(
            "not confirmed", reason="not_confirmed", next_step="run again and answer y"
        )
    return True


def _show(out: Out, result: PipelineResult) -> None:
    for w in result.data.get("warnings", []):
        out.warn(w)

    def human() -> None:
        shown = result.data.get("execution_plan")
        if result.status == "dry_run" and shown:
            out.line("")
            for line in execplan.render(shown):
                out.line(line)
        out.line("")
        for name in STAGES:
            rec = result.data["stages"][name]
            note = f": {rec['message']}" if rec.get("message") else ""
            out.line(f"  {name:<12} {rec['status']}{note}")
        nxt = result.data.get("next")
        if nxt:
            out.line(f"\nnext: {nxt['text']}")
        out.line(result.message)

    status = {"failed": "failed", "needs_agent": "needs_agent", "dry_run": "dry_run"}
    out.result("orchestrate", result.data, status=status.get(result.status, "ok"), human=human)
    if result.status == "failed" and not out.json_mode:
        out.err_stream.write(f"planfleet: {result.message}\n")
