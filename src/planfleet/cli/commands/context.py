"""`planfleet context`: everything a skill's or command's preflight needs, in one call.

A skill's `!` preflight lines run one after another before the model sees the skill, and
each `planfleet` call pays for a Python start and the engine's imports (the first one in a
new environment also installs it). This command runs the asked-for commands in one process
and prints their envelopes side by side, each exactly as the command prints it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planfleet import __version__
from planfleet.cli import app
from planfleet.cli.output import Out
from planfleet.errors import ExitCode

# "<pid> <venv>": the launcher (bin/planfleet) has just built planfleet's private environment
# and then became process <pid>.
INSTALLED_ENV = "PLANFLEET_INSTALLED_NOW"
PREFLIGHTS = {
    "run": ["preflight"],
    "background": ["preflight", "--background"],
    "authoring": ["preflight", "--no-claude", "--allow-dirty"],  # writing plans, no agents
}
# section -> the command it runs, from the flag's value (None: the flag was not given)
Build = Callable[[Any], list[str] | None]
SECTIONS: dict[str, Build] = {
    "preflight": lambda v: PREFLIGHTS[v] if v else None,
    "plans": lambda v: ["plan", "list"] if v else None,
    "runs": lambda v: ["status"] if v else None,
    "run": lambda v: ["status", v] if v else None,
    "plan": lambda v: ["plan", "show", v] if v else None,
    "agents": lambda v: ["agents"] if v else None,
    "dispatch": lambda v: ["dispatch", "--phase", v, "--dry-run"] if v else None,
}


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "context",
        parents=[parent],
        help="print what a skill needs before it starts (preflight, plans, runs, ...) at once",
        description="Run the asked-for read-only commands in one process and print their "
        "JSON envelopes under data.<section>, each with its exit_code: --preflight "
        "(preflight; MODE background adds the --bg version check, authoring skips claude "
        "and the clean-tree check), --plans (plan list), --runs (status), --run PLAN "
        "(status PLAN), --plan PLAN (plan show PLAN), --agents (agents), --dispatch N "
        "(dispatch --phase N --dry-run). An empty PLAN or N leaves its section out (null). "
        "data.environment says whether this call has just installed planfleet's "
        "environment. Exits 0 whatever the sections say.",
    )
    p.add_argument(
        "--preflight",
        nargs="?",
        const="run",
        choices=sorted(PREFLIGHTS),
        metavar="MODE",
        help="the preflight verdict (MODE: run, the default; background; authoring)",
    )
    p.add_argument("--plans", action="store_true", help="the plans of the repository")
    p.add_argument("--runs", action="store_true", help="every run's status")
    p.add_argument("--run", metavar="PLAN", help="one run's status (empty: none)")
    p.add_argument("--plan", metavar="PLAN", help="one plan as the engine reads it (empty: none)")
    p.add_argument("--agents", action="store_true", help="the background sessions")
    p.add_argument("--dispatch", metavar="N", help="the dispatch preview of phase N (empty: none)")
    p.set_defaults(handler=_handler, command_name="context")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    asked = {name: build(getattr(ns, name)) for name, build in SECTIONS.items()}
    return run(out, repo=ns.repo, asked=asked)


def run(out: Out, *, repo: Path | None, asked: dict[str, list[str] | None]) -> int:
    """Run every asked-for command and print their envelopes in one; return 0."""
    data: dict[str, Any] = {"environment": environment()}
    for name, argv in asked.items():
        data[name] = None if argv is None else section(argv, repo)
        if data[name] and data[name]["exit_code"] == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt

    def human() -> None:
        for name, found in data.items():
            if name != "environment" and found is not None:
                out.line(f"{name}: {found['status']} (exit {found['exit_code']})")

    out.result("context", data, human=human)
    return ExitCode.OK


def environment() -> dict[str, Any]:
    """Return planfleet's version, its Python, and whether this call just installed it."""
    pid, _, venv = os.environ.get(INSTALLED_ENV, "").partition(" ")
    mine = pid == str(os.getpid())  # not one inherited from a planfleet that started us
    return {
        "planfleet": __version__,
        "python": sys.executable,
        "installed_now": mine,
        "installed_into": venv if mine else None,
    }


def section(argv: list[str], repo: Path | None) -> dict[str, Any]:
    """Return the envelope ``planfleet <argv> --json`` prints, with its exit code and warnings."""
    args = [*argv, "--json", *(["-C", str(repo)] if repo else [])]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = app.main(args)
    lines = stderr.getvalue().splitlines()
    try:
        found = json.loads(stdout.getvalue())
    except json.JSONDecodeError:  # every command prints an envelope with --json: a bug
        message = "\n".join(lines[-5:]) or "no output"
        found = {"command": " ".join(argv), "status": "error", "data": None}
        found["errors"] = [{"type": "internal", "message": message}]
    found["exit_code"] = code
    found["warnings"] = [x.removeprefix("warning: ") for x in lines if x.startswith("warning: ")]
    return dict(found)
