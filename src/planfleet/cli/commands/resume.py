"""`planfleet resume PLAN`: continue a paused, failed or interrupted run where it stopped."""

from __future__ import annotations

import argparse
from typing import Any

from planfleet.cli import runflags
from planfleet.cli.commands.run import request, start
from planfleet.cli.output import Out


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "resume",
        parents=[parent],
        help="continue a run: orphans requeued, verified work kept, nothing re-run",
        description="Continue the run of PLAN. What an interrupted engine left running is "
        "stopped first (its agents' process groups and everything they started); the tasks "
        "it left in progress go back to the queue with their worktrees, the interrupted "
        "attempt not counted; tasks held by `planfleet stop --task` are released (with "
        "--tasks or --phase, the selected ones); verified tasks are re-checked against git "
        "and are not run again; queued merges are finished first.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan name, file or folder")
    p.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    p.add_argument("--phase", metavar="PHASE", help="only these phases (ids or numbers)")
    p.add_argument("--tasks", metavar="IDS", help="only these tasks (comma separated)")
    runflags.add_run_flags(p)
    p.set_defaults(handler=_handler, command_name="resume", dry_run=False, resume=True)


def _handler(ns: argparse.Namespace, out: Out) -> int:
    return start(request(ns), out, command="resume")
