"""What `planfleet run`, `resume` and `batch` share: flags, plan lookup, runner choice,
the dry run, and running the engine with the right view."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet import fsutil, paths
from planfleet.cli import view as report
from planfleet.cli.output import Out, table
from planfleet.engine import attempt, preflight, prompts, runcheck, runinfo, scheduler
from planfleet.engine.loop import Engine, Listener, RunOptions, RunResult
from planfleet.errors import ExitCode, InputError, RefusedError, UsageError
from planfleet.ids import check_id
from planfleet.plan import formats, graph, model
from planfleet.repo import worktrees
from planfleet.runners import RUNNERS, AgentRequest, get_runner
from planfleet.runners.claude import PERMISSION_MODES
from planfleet.state.store import StateStore
from planfleet.verify import testcmd

MAX_PARALLEL_WITHOUT_CONSENT = 10
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")


# The flags that shape a run, with their defaults. A run keeps the values it started with
# in runs/<plan>/options.json; `resume` takes them from there unless given again.
RUN_DEFAULTS: dict[str, Any] = {
    "runner": "auto",
    "max_parallel": 3,
    "max_attempts": scheduler.DEFAULT_MAX_ATTEMPTS,
    "model": None,
    "escalate_model": None,
    "fail_fast": False,
    "budget_usd": None,
    "task_budget_usd": None,
    "timeout": 600.0,
    "stall": 300.0,
    "no_post_merge_check": False,
    "strict_files": False,
    "no_projections": False,
    "permission_mode": "acceptEdits",
    "allowed_tools": None,
    "agent_command": None,
    "test_cmd": None,
    "test_timeout": None,
}


def fill_run_flags(ns: argparse.Namespace, saved: dict[str, Any] | None = None) -> None:
    """Give every run flag not on the command line its saved value, else its default."""
    for key, default in RUN_DEFAULTS.items():
        if getattr(ns, key, None) is None:
            setattr(ns, key, (saved or {}).get(key, default))
    ns.runner = choose_runner(ns.runner)


def saved_run_flags(repo: Path, plan: str) -> dict[str, Any]:
    """Return the run flags the plan's run started with ({} if none were saved)."""
    return {k: v for k, v in runinfo.saved_flags(repo, plan).items() if k in RUN_DEFAULTS}


def save_run_flags(ns: argparse.Namespace, repo: Path, plan: str) -> None:
    """Keep the effective run flags for a later `resume`."""
    folder = paths.writable(repo, paths.runs_dir(repo, plan), folder=True)
    values = {key: getattr(ns, key) for key in RUN_DEFAULTS}
    fsutil.atomic_write(folder / runinfo.OPTIONS_FILE, json.dumps(values, indent=1) + "\n")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags that shape a run (shared by run, resume and batch)."""
    p.add_argument(
        "--runner",
        choices=("auto", *RUNNERS),
        help="who does each task: claude (claude -p), shell (the task's own `commands`), "
        "command (your agent CLI template). auto: claude when it is installed and logged "
        "in, else shell",
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
        type=positive_float,
        metavar="S",
        help="seconds per attempt (default 600; a task's own timeout wins)",
    )
    p.add_argument(
        "--stall",
        type=positive_float,
        metavar="S",
        help="seconds without agent output that count as a stall (default 300)",
    )
    p.add_argument(
        "--no-post-merge-check",
        action="store_true",
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
        "--no-projections",
        action="store_true",
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
        metavar="CMD",
        help="the test command the tests gate runs (wins over the plan's, planfleet.toml, "
        "pyproject.toml [tool.planfleet] and what is detected; '' turns the gate off)",
    )
    p.add_argument(
        "--test-timeout",
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


def claude_logged_in() -> bool:
    """Return True if ``claude`` is installed and has credentials we can see."""
    if preflight.claude_binary() is None:
        return False
    if any(os.environ.get(k) for k in CREDENTIAL_ENV):
        return True
    home = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return (home / ".credentials.json").is_file()


def choose_runner(name: str) -> str:
    if name != "auto":
        return name
    return "claude" if claude_logged_in() else "shell"


def load_plan(repo: Path, arg: str, fmt: str | None = None) -> model.Plan:
    """Return the plan named by ``arg``: a path, a plan name, or the name of a state."""
    store_path = None
    with contextlib.suppress(InputError):
        store_path = StateStore.for_plan(repo, arg).path if _safe(arg) else None
    try:
        path = formats.resolve(arg, repo=repo, format=fmt)
    except InputError:
        if store_path is None or not store_path.exists():
            raise
        state = StateStore.for_plan(repo, arg).load()
        path = Path(state["plan"]["path"])
        if not path.is_absolute():
            path = repo / path
        fmt = fmt or state["plan"]["format"] or None
    plan = formats.load_plan(path, repo=repo, format=fmt)
    if plan.errors:
        d = plan.errors[0]
        raise InputError(d.message, file=d.file, line=d.line, field=d.field, hint=d.hint)
    return plan


def _safe(arg: str) -> bool:
    try:
        check_id(arg, what="plan name")
    except InputError:
        return False
    return True


def options_from(ns: argparse.Namespace, plan: model.Plan) -> RunOptions:
    """Return the engine options the flags ask for; UsageError/RefusedError when unsafe."""
    fill_run_flags(ns)
    runner = ns.runner
    if ns.max_parallel > MAX_PARALLEL_WITHOUT_CONSENT and not ns.accept_cost:
        raise RefusedError(
            f"--max-parallel {ns.max_parallel} runs up to {ns.max_parallel} paid agents at once "
            f"(about {ns.max_parallel}x the cost per minute of one)",
            reason="cost_consent",
            next_step="add --accept-cost, or use --max-parallel 10 or less",
        )
    runner_options: dict[str, Any] = {"permission_mode": ns.permission_mode}
    if ns.allowed_tools:
        runner_options["extra_allowed_tools"] = [
            r.strip() for r in ns.allowed_tools.split(",") if r.strip()
        ]
    if ns.agent_command:
        runner_options["command"] = list(ns.agent_command)
    if runner == "command" and not ns.agent_command:
        raise UsageError(
            "--runner command needs --agent-command",
            hint="e.g. --agent-command my-agent --prompt-file {prompt_file} --cwd {worktree}",
        )
    phases = tuple(_split(getattr(ns, "phase", None)))
    for p in phases:
        try:
            plan.phase(p)
        except KeyError:
            by_number = [ph.id for ph in plan.phases if str(ph.number) == p]
            if not by_number:
                known = ", ".join(ph.id for ph in plan.phases)
                raise UsageError(f"no phase {p!r} in the plan", hint=f"phases: {known}") from None
            phases = tuple(by_number[0] if x == p else x for x in phases)
    tasks = tuple(_split(getattr(ns, "tasks", None)))
    known_tasks = {t.id for t in plan.tasks}
    for t in tasks:
        if t not in known_tasks:
            raise UsageError(f"no task {t!r} in the plan", field="--tasks")
    return RunOptions(
        runner=runner,
        runner_options=runner_options,
        max_parallel=ns.max_parallel,
        max_attempts=ns.max_attempts,
        phases=phases,
        tasks=tasks,
        model=ns.model,
        escalate_model=ns.escalate_model,
        fail_fast=ns.fail_fast,
        budget_usd=ns.budget_usd,
        task_budget_usd=ns.task_budget_usd,
        timeout_s=ns.timeout,
        stall_s=ns.stall,
        post_merge_check=not ns.no_post_merge_check,
        strict_files=bool(ns.strict_files),
        projections=not ns.no_projections,
        detached=bool(os.environ.get("PLANFLEET_DETACHED")),
        test_command=ns.test_cmd,
        test_timeout_s=ns.test_timeout,
    )


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def dry_run(out: Out, repo: Path, plan: model.Plan, opts: RunOptions) -> int:
    """Print, per task, the prompt size and commands; plus parallelism and the cost cap."""
    tests = testcmd.choose(repo, plan, flag=opts.test_command, flag_timeout=opts.test_timeout_s)
    plan = testcmd.apply(plan, tests)
    g = graph.build(plan)
    runner = get_runner(opts.runner, opts.runner_options)
    rows: list[dict[str, Any]] = []
    for t in plan.tasks:
        if (opts.tasks or opts.phases) and t.id not in opts.tasks and t.phase not in opts.phases:
            continue
        checks = attempt.engine_checks(plan, t, strict=opts.strict_files)
        prompt = prompts.build_prompt(plan, t, repo=repo, attempt=1, feedback=None, checks=checks)
        rows.append(
            {
                "task": t.id,
                "phase": t.phase,
                "depends_on": list(g.deps.get(t.id, ())),
                "prompt_chars": len(prompt),
                "agent_commands": runner.describe(_dry_request(repo, plan, t, prompt, opts)),
                "engine_checks": checks,
                "verify": list(t.verify),
                "timeout_s": t.timeout_s or opts.timeout_s,
            }
        )
    widest = max((len(level) for level in graph.levels(g)), default=0)
    no_commands = runcheck.without_commands(repo, plan, opts)
    updates = runcheck.in_place_files(repo, plan, opts)
    cap = None
    if opts.task_budget_usd:
        cap = opts.task_budget_usd * min(opts.max_parallel, widest)
    data = {
        "plan": plan.name,
        "runner": opts.runner,
        "max_parallel": opts.max_parallel,
        "projected_parallelism": min(opts.max_parallel, widest),
        "widest_level": widest,
        "cost_cap_running_usd": cap,
        "budget_usd": opts.budget_usd,
        "tests": testcmd.summary(plan, tests, opts.timeout_s),
        "tasks": rows,
        "tasks_without_commands": no_commands,
        "updates_in_place": updates,
    }

    def human() -> None:
        out.line(f"dry run of {plan.name} with the {opts.runner} runner (nothing is started)")
        for line in testcmd.summary_lines(plan, tests, opts.timeout_s):
            out.line(line)
        out.line(
            table(
                [
                    [
                        r["task"],
                        r["phase"],
                        ",".join(r["depends_on"]) or "-",
                        str(r["prompt_chars"]),
                    ]
                    for r in rows
                ],
                ["task", "phase", "after", "prompt chars"],
            )
        )
        for r in rows:
            out.line(f"\n{r['task']}:")
            for c in r["agent_commands"]:
                out.line(f"  agent $ {c}")
            for c in r["engine_checks"]:
                out.line(f"  check: {c}")
        out.line(
            f"\nparallelism: up to {data['projected_parallelism']} at once "
            f"(--max-parallel {opts.max_parallel}, widest level {widest})"
        )
        out.line(
            "cost cap of running agents: "
            + (f"${cap:.2f}" if cap is not None else "none (set --task-budget-usd)")
            + (f"; run budget ${opts.budget_usd:g}" if opts.budget_usd else "")
        )
        if updates:
            out.line("updates these files in place: " + ", ".join(updates))
        else:
            off = " (--no-projections)" if not opts.projections else ""
            out.line(f"updates no file in your checkout{off}")
        if no_commands:
            out.line(
                "the shell runner would refuse to start: no commands in " + ", ".join(no_commands)
            )

    out.result("run", {"dry_run": True, **data}, human=human)
    return ExitCode.OK


def _dry_request(
    repo: Path, plan: model.Plan, t: model.Task, prompt: str, opts: RunOptions
) -> AgentRequest:
    """Return the request the first attempt of ``t`` would get (for --dry-run's commands)."""
    return AgentRequest(
        repo=repo,
        plan=plan,
        task=t,
        worktree=worktrees.task_worktree(repo, plan.name, t.id),
        branch=worktrees.task_branch(plan.name, t.id),
        base_commit="<integration>",
        attempt=1,
        max_attempts=t.max_attempts or opts.max_attempts,
        prompt=prompt,
        log_path=paths.attempt_log(repo, plan.name, t.id, 1),
        timeout_s=t.timeout_s or opts.timeout_s,
        stall_s=opts.stall_s,
        model=opts.model,
        budget_usd=opts.task_budget_usd,
        options=opts.runner_options,
    )


@contextlib.contextmanager
def view(out: Out, plan: model.Plan, *, quiet: bool = False) -> Iterator[Listener | None]:
    """Yield the listener that shows progress: rich on a terminal, lines when piped."""
    if out.json_mode or quiet:
        yield None
        return
    if out.is_tty and sys.stderr.isatty():
        live = report.LiveReporter(out.stream, f"planfleet run {plan.name}")
        with live:
            yield live
        return
    yield report.LineReporter(out.stream)


def execute(out: Out, repo: Path, plan: model.Plan, opts: RunOptions, command: str) -> int:
    """Run the engine and print the final report; return the exit code."""
    with view(out, plan) as listener:
        result = Engine(repo, plan, opts, listener).run()
    return finish(out, result, command, {t.id: t.owner for t in plan.tasks})


def finish(
    out: Out, result: RunResult, command: str, owners: dict[str, str | None] | None = None
) -> int:
    rows = report.final_rows(result.state, owners)
    data = {
        "plan": result.plan,
        "status": result.status,
        "reason": result.reason,
        "cost_usd": result.cost_usd,
        "elapsed_s": round(result.elapsed_s, 3),
        "tasks": rows,
    }

    def human() -> None:
        out.line("")
        if out.is_tty:
            from rich.console import Console

            Console(file=out.stream).print(report.rich_final(rows))
        else:
            out.line(report.render_final(rows))
        out.line(
            f"\n{result.plan}: {result.status} ({result.reason}) in "
            f"{report.fmt_s(result.elapsed_s)}, cost ${result.cost_usd:.2f}"
        )
        if result.status == "completed":
            out.line(
                f"the work is on planfleet/{result.plan}/integration; bring it home with "
                f"`planfleet land {result.plan}`"
            )
        elif result.status == "paused":
            out.line(f"continue with `planfleet resume {result.plan}`")
        else:
            out.line(
                f"see `planfleet status {result.plan}`; fix or reset the abandoned tasks "
                f"(`planfleet state reset {result.plan} TASK`), then `planfleet resume "
                f"{result.plan}`"
            )

    out.result(command, data, status="ok" if result.exit_code == 0 else "failed", human=human)
    return result.exit_code
