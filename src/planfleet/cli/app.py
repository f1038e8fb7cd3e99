"""The command line: parser building, dispatch, and the one top-level error handler."""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from planfleet import __version__
from planfleet.cli.output import Out, dumps, envelope
from planfleet.errors import ExitCode, PlanfleetError, UsageError
from planfleet.plan import links

# One module per subcommand under planfleet.cli.commands; each exposes register(sub, parent).
COMMAND_MODULES: tuple[str, ...] = (
    "plan",
    "preflight",
    "state",
    "worktree",
    "merge",
    "land",
    "clean",
    "checkpoint",
    "dispatch",
    "agents",
    "run",
    "resume",
    "status",
    "report",
    "stop",
    "logs",
    "verify",
    "batch",
    "orchestrate",
    "phase_runner",
    "context",
)

EPILOG = """\
exit codes (the same in every command):
  0    success
  1    the work was done and some of it failed: tasks failed or were abandoned,
       a gate of `verify` or a merge of `merge` failed
  2    bad usage or bad input: the message names the file, line and field; a
       plan, task or attempt that does not exist is bad input too
  3    refused by preflight or a guard: the message says why and what to do
       (errors[].reason and next_step); so is a command that needs what has not
       happened yet: a plan with no run (reason no_state), a task with no
       branch (no_branch), a task with no log (no_log)
  4    internal error (a short message and the path of a log with the traceback)
  130  interrupted

Every command takes --json and then prints one envelope:
  {"version": 1, "command": ..., "status": ..., "data": ..., "errors": [...]}
"""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become UsageError (so --json gets an envelope)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def common_parent() -> argparse.ArgumentParser:
    """Return the parent parser with the options every subcommand takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="print one JSON envelope instead of text"
    )
    parent.add_argument(
        "-C",
        "--repo",
        metavar="DIR",
        type=Path,
        default=None,
        help="the repository to work in (default: the one holding the current directory)",
    )
    parent.add_argument(
        links.FLAG,
        action="store_true",
        help="read plan files, folders and specs that are symbolic links out of the "
        "repository (refused by default)",
    )
    return parent


def build_parser(only: str | None = None) -> Parser:
    """Return the parser; with ``only``, just that subcommand's module is imported.

    Importing every command module (state, worktrees, ...) costs more than most commands
    take to run, so ``main`` builds the full parser only for help and unknown commands.
    """
    parser = Parser(
        prog="planfleet",
        description=(
            "Execute multi-phase coding plans with a fleet of Claude Code agents: "
            "dependency-driven scheduling, one git worktree per task, results checked "
            "by the filesystem and the tests, crash-safe state."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"planfleet {__version__}")
    parser.add_argument(
        "-C",
        dest="repo_top",
        metavar="DIR",
        type=Path,
        default=None,
        help="the repository to work in (also accepted after the subcommand)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parent = common_parent()
    for name in COMMAND_MODULES if only is None else (only,):
        module = importlib.import_module(f"planfleet.cli.commands.{name}")
        module.register(sub, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run planfleet with ``argv`` and return the exit code; never raises for user errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # asked by every skill: answered before any parser is built
        print(f"planfleet {__version__}")
        return ExitCode.OK
    json_mode = "--json" in args
    out = Out(json_mode=json_mode)
    command = "planfleet"
    try:
        parser = build_parser(_command_word(args))
        command = _command_name(parser, args)  # an argparse error names it, not the arguments
        ns = parser.parse_args(args)
        handler = getattr(ns, "handler", None)
        if handler is None:
            parser.print_help()
            return ExitCode.USAGE
        out.json_mode = bool(getattr(ns, "json", False))
        if getattr(ns, "repo", None) is None:
            ns.repo = ns.repo_top
        command = getattr(ns, "command_name", command)
        with links.allowing(bool(getattr(ns, "allow_outside_links", False))):
            return int(handler(ns, out))
    except PlanfleetError as exc:
        return report_error(out, command, exc)
    except KeyboardInterrupt:
        if out.json_mode:
            print(dumps(envelope(command, "interrupted", None, [])))
        else:
            print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return ExitCode.OK
    except Exception:
        log = write_crash_log(args)
        message = f"internal error: {sys.exc_info()[1]!r}"
        if out.json_mode:
            err = {"type": "internal", "message": message, "log": str(log)}
            print(dumps(envelope(command, "error", None, [err])))
        print(f"planfleet: {message}\n  the traceback is in {log}", file=sys.stderr)
        return ExitCode.INTERNAL


def _words(args: Sequence[str]) -> Iterator[str]:
    """Yield the arguments that are not options (nor the folder of ``-C``/``--repo``)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-C", "--repo"):
            skip = True
        elif not arg.startswith("-"):
            yield arg


def _command_word(args: Sequence[str]) -> str | None:
    """Return the subcommand named in ``args`` when it is a known one and help is not asked."""
    if "-h" in args or "--help" in args:
        return None
    for arg in _words(args):
        module = arg.replace("-", "_")  # `phase-runner` lives in commands/phase_runner.py
        return module if module in COMMAND_MODULES else None
    return None


def _command_name(parser: argparse.ArgumentParser, args: Sequence[str]) -> str:
    """Return the (sub)command ``args`` name, e.g. ``run`` or ``state show``."""
    names: list[str] = []
    values = iter(args)
    for arg in values:
        if arg.startswith("-"):
            action = parser._option_string_actions.get(arg)
            if action is not None and action.nargs != 0:
                next(values, None)  # the option's value is not a command
            continue
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or arg not in subs[0].choices:
            break
        names.append(arg)
        parser = subs[0].choices[arg]
    return " ".join(names) or "planfleet"


def report_error(out: Out, command: str, exc: PlanfleetError) -> int:
    """Print a user-facing error (envelope on stdout in JSON mode, text on stderr always)."""
    status = "aborted" if exc.exit_code == ExitCode.REFUSED else "error"
    if out.json_mode:
        print(dumps(envelope(command, status, None, [exc.to_json()])))
    print(f"planfleet: {exc.render()}", file=sys.stderr)
    return int(exc.exit_code)


def write_crash_log(argv: Sequence[str]) -> Path:
    """Write versions and the current traceback to a log file and return its path."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(tempfile.gettempdir()) / f"planfleet-crash-{stamp}-{os.getpid()}.log"
    text = (
        f"planfleet {__version__}\n"
        f"python {sys.version.split()[0]} on {platform.platform()}\n"
        f"argv: {list(argv)!r}\n"
        f"cwd: {os.getcwd()}\n\n{traceback.format_exc()}"
    )
    path.write_text(text, encoding="utf-8")
    return path


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
