"""`planfleet preflight`: check the environment and answer with a structured verdict."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planfleet.cli.output import Out
from planfleet.engine import preflight
from planfleet.errors import ExitCode


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "preflight",
        parents=[parent],
        help="check claude, the repository and your commands before a run",
        description="Check that a run can start: claude installed and recent enough, inside a "
        "git repository, a clean working tree, the plan present, which test command a run "
        "would use and why (refused when the plan declares a blast radius and none is "
        "found), and optionally that your test, build and lint commands pass. Exit 3 with a "
        "reason and a next step when not.",
    )
    p.add_argument("--plan", type=Path, metavar="PLAN", help="plan file or folder that must exist")
    p.add_argument(
        "--background",
        action="store_true",
        help=f"require claude >= {preflight.MIN_CLAUDE_BACKGROUND} (for --bg sessions)",
    )
    p.add_argument("--min-claude", metavar="X.Y.Z", help="require at least this claude version")
    p.add_argument("--no-claude", action="store_true", help="skip the claude check (shell runner)")
    p.add_argument("--allow-dirty", action="store_true", help="accept uncommitted changes")
    p.add_argument(
        "--test-cmd",
        metavar="CMD",
        help="a test command that must pass (without it: the command a run would use, "
        "and why, is shown)",
    )
    p.add_argument("--build-cmd", metavar="CMD", help="a build command that must pass")
    p.add_argument("--lint-cmd", metavar="CMD", help="a lint command that must pass")
    p.add_argument(
        "--timeout", type=float, default=600, metavar="S", help="seconds per command (default 600)"
    )
    p.set_defaults(handler=_handler, command_name="preflight")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    minimum = ns.min_claude or (
        preflight.MIN_CLAUDE_BACKGROUND if ns.background else preflight.MIN_CLAUDE_FOREGROUND
    )
    commands = [
        (name, cmd)
        for name, cmd in (("build", ns.build_cmd), ("lint", ns.lint_cmd), ("test", ns.test_cmd))
        if cmd
    ]
    return run(
        out,
        start=(ns.repo or Path.cwd()).resolve(),
        minimum_claude=minimum,
        require_claude=not ns.no_claude,
        allow_dirty=ns.allow_dirty,
        plan=ns.plan,
        commands=commands,
        timeout=ns.timeout,
        test_cmd=ns.test_cmd,
    )


def run(
    out: Out,
    *,
    start: Path,
    minimum_claude: str,
    require_claude: bool,
    allow_dirty: bool,
    plan: Path | None,
    commands: list[tuple[str, str]],
    timeout: float,
    test_cmd: str | None = None,
) -> int:
    paths = [("plan", plan, "no_plan")] if plan else []
    verdict = preflight.run_preflight(
        start=start,
        minimum_claude=minimum_claude,
        require_claude=require_claude,
        allow_dirty=allow_dirty,
        paths=paths,
        commands=commands,
        timeout=timeout,
        tests=(plan, test_cmd),
    )
    data = verdict.to_json()

    def human() -> None:
        for c in verdict.checks:
            mark = "ok  " if c.ok else "FAIL"
            first, *rest = c.detail.splitlines() or [""]
            out.line(f"{mark} {c.name:<11} {first}")
            for extra in rest[-10:]:
                out.line(f"     {'':<11} {extra}")
        bad = verdict.failed
        if bad:
            out.line(f"\naborted: {bad.reason}")
            if bad.next_step:
                out.line(f"next step: {bad.next_step}")
        else:
            out.line("\npreflight ok")

    out.result("preflight", data, status=data["status"], human=human)
    return ExitCode.REFUSED if verdict.failed else ExitCode.OK
