"""The flags of `planfleet run`, `resume` and `batch` on the command line.

:func:`add_run_flags` adds them to a parser, :func:`run_args` reads them, once, into a
:class:`~planfleet.cli.runopts.RunArgs`; nothing else reads the argparse namespace of a run.
Each flag's ``dest`` is the name of its :class:`~planfleet.cli.runopts.RunFlags` field and
its default is None, so what was given is told apart from what was not (a resumed run
keeps its saved flags unless they are given again).
"""

from __future__ import annotations

import argparse

from planfleet.cli.runopts import RunArgs, RunFlags, split
from planfleet.runners import RUNNERS
from planfleet.runners.claude import PERMISSION_MODES


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags that shape a run (shared by run, resume and batch)."""
    p.add_argument(
        "--runner",
        choices=("auto", *RUNNERS),
        help="who does each task: claude (claude -p), shell (the task's own `commands`), "
        "command (your agent CLI template), cloud (a Claude Code cloud session per attempt; "
        "the work comes back through --remote). auto: claude when it is installed and "
        "logged in, else shell",
    )
    p.add_argument(
        "--remote",
        metavar="NAME",
        help="the git remote the cloud runner pushes each task's base to and fetches its "
        "result from (default origin); only planfleet/<plan>/... branches, never forced",
    )
    p.add_argument(
        "--environment",
        metavar="ID",
        help="run the cloud sessions on this self-hosted environment (claude --environment "
        "ID, ids like ccpool_...)",
    )
    p.add_argument(
        "--cloud-parallel",
        type=positive_int,
        metavar="M",
        help="also run up to M tasks at once in Claude Code cloud sessions, next to the "
        "--max-parallel local ones (one ready queue; a plan's `runner: local|cloud` pins a "
        "task to one kind)",
    )
    p.add_argument(
        "--cloud-poll",
        dest="cloud_poll_s",
        type=positive_float,
        metavar="S",
        help="seconds before the cloud runner first looks for a task's pushed branch; it "
        "backs off to 6 x S (default 10, so 10 s to 60 s)",
    )
    p.add_argument(
        "--max-parallel",
        type=positive_int,
        metavar="N",
        help="agents at once (default 3; above 10 needs --accept-cost)",
    )
    p.add_argument(
        "--max-attempts",
        type=positive_int,
        metavar="N",
        help="attempts per task before it is abandoned (default 5; a plan's own max_attempts wins)",
    )
    p.add_argument("--model", metavar="MODEL", help="model for the agents (claude runner)")
    p.add_argument(
        "--escalate-model", metavar="MODEL", help="a stronger model for a task's last two attempts"
    )
    p.add_argument(
        "--fail-fast",
        action="store_true",
        default=None,
        help="after a task is abandoned, start nothing new (running tasks finish)",
    )
    p.add_argument(
        "--budget-usd",
        type=positive_float,
        metavar="USD",
        help="stop starting tasks before spent + running caps would cross this",
    )
    p.add_argument(
        "--task-budget-usd",
        type=positive_float,
        metavar="USD",
        help="spending cap per attempt, passed to the agent (--max-budget-usd)",
    )
    p.add_argument(
        "--timeout",
        dest="timeout_s",
        type=positive_float,
        metavar="S",
        help="seconds per attempt (default 600; a task's own timeout wins)",
    )
    p.add_argument(
        "--stall",
        dest="stall_s",
        type=positive_float,
        metavar="S",
        help="seconds without agent output that count as a stall (default 300)",
    )
    p.add_argument(
        "--no-post-merge-check",
        dest="post_merge_check",
        action="store_false",
        default=None,
        help="do not re-run a task's verify commands on the merged result",
    )
    p.add_argument(
        "--strict-files",
        action="store_true",
        default=None,
        help="fail an attempt that changes files its task does not declare (undeclared_change; "
        "default: report them); the plan's defaults.shared_files are always allowed",
    )
    p.add_argument(
        "--strict-model",
        action="store_true",
        default=None,
        help="fail an attempt when the model that ran is not the one asked for (--model, the "
        "task's model or --escalate-model; model_mismatch; default: a warning in its evidence)",
    )
    p.add_argument(
        "--strict-tests",
        action="store_true",
        default=None,
        help="fail an attempt whose new or changed tests already pass without its code (run on "
        "the base with only the task's test files applied; vacuous_test; default: a warning)",
    )
    p.add_argument(
        "--serialize-undeclared",
        action="store_true",
        default=None,
        help="once two running tasks were seen changing the same file that one of them does "
        "not declare (undeclared_overlap), never run them at the same time again",
    )
    p.add_argument(
        "--wait-on-limit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when an agent hits a usage or rate limit, keep the engine alive and start "
        "tasks again once the limit resets (plus a minute; without a reset time: backoff "
        "from 1 min, doubling, up to 30 min), the attempt not counted; "
        "--no-wait-on-limit pauses the run instead (default: wait with --detach, else pause)",
    )
    p.add_argument(
        "--no-projections",
        dest="projections",
        action="store_false",
        default=None,
        help="do not update the plan's own progress files (checkboxes, checkpoints, logs, "
        "execute-state.json) in your checkout; the run state is kept under .planfleet/ only",
    )
    p.add_argument(
        "--permission-mode",
        choices=PERMISSION_MODES,
        help="claude permission mode (default acceptEdits; never bypass by default)",
    )
    p.add_argument(
        "--allowed-tools",
        type=tool_rules,
        metavar="RULES",
        help="extra --allowedTools rules for the claude runner, comma separated",
    )
    p.add_argument(
        "--agent-command",
        metavar="ARGV",
        nargs="+",
        help="the command runner's template, e.g. my-agent --prompt-file "
        "{prompt_file} --cwd {worktree}",
    )
    p.add_argument(
        "--test-cmd",
        dest="test_command",
        metavar="CMD",
        help="the test command the tests gate runs (wins over the plan's, planfleet.toml, "
        "pyproject.toml [tool.planfleet] and what is detected; '' turns the gate off)",
    )
    p.add_argument(
        "--test-timeout",
        dest="test_timeout_s",
        type=positive_float,
        metavar="S",
        help="seconds per test run, the baseline included (default: the baseline gets "
        "--timeout, later runs 3 x the baseline's duration + 30 s)",
    )
    p.add_argument("--accept-cost", action="store_true", help="allow more than 10 parallel agents")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background; returns at once with how to watch it",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def run_args(ns: argparse.Namespace) -> RunArgs:
    """Return what the run flags of ``ns`` ask for (the one reader of a run's namespace)."""
    given = {n: getattr(ns, n) for n in RunFlags.names() if getattr(ns, n) is not None}
    if "agent_command" in given:
        given["agent_command"] = tuple(given["agent_command"])
    return RunArgs(
        flags=RunFlags(**given),
        given=frozenset(given),
        accept_cost=bool(ns.accept_cost),
        yes=bool(ns.yes),
        detach=bool(ns.detach),
    )


def tool_rules(text: str) -> tuple[str, ...]:
    """Return the comma-separated --allowedTools rules of ``text``."""
    return split(text)
