"""The option objects of `planfleet run`, `resume` and `batch`, and the engine options they give.

:func:`planfleet.cli.runflags.run_args` turns the command line into a :class:`RunArgs` once;
from there on only these frozen objects travel. :class:`RunFlags` are the flags that shape
a run: a run keeps them in ``runs/<plan>/options.json`` (:mod:`planfleet.cli.savedflags`),
and `resume` starts from those, with the flags given to it on top.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.engine import scheduler
from planfleet.engine.options import RunOptions
from planfleet.errors import RefusedError, UsageError
from planfleet.plan import model
from planfleet.runners.claude import claude_binary

MAX_PARALLEL_WITHOUT_CONSENT = 10
CLOUD_BACKOFF = 6  # polls of a cloud task branch back off from S to 6 x S (10 s -> 60 s)
CREDENTIAL_ENV = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")


@dataclass(frozen=True)
class RunFlags:
    """The flags that shape a run, with their defaults (the fields of options.json)."""

    runner: str = "auto"  # saved resolved: a resumed run keeps the runner it had
    max_parallel: int = 3
    max_attempts: int = scheduler.DEFAULT_MAX_ATTEMPTS
    model: str | None = None
    escalate_model: str | None = None
    fail_fast: bool = False
    budget_usd: float | None = None
    task_budget_usd: float | None = None
    timeout_s: float = 600.0
    stall_s: float = 300.0
    post_merge_check: bool = True
    strict_files: bool = False
    strict_model: bool = False
    strict_tests: bool = False
    serialize_undeclared: bool = False
    wait_on_limit: bool | None = None  # None: on for a detached run, off otherwise
    projections: bool = True
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = ()  # extra --allowedTools rules of the claude runner
    agent_command: tuple[str, ...] = ()  # the command runner's template
    test_command: str | None = None  # "": no tests gate
    test_timeout_s: float | None = None
    remote: str = "origin"  # the cloud runner's git remote
    environment: str | None = None  # the cloud runner's self-hosted environment (ccpool_...)
    cloud_poll_s: float = 10.0  # the cloud runner's first poll; it backs off to 6 times this
    cloud_parallel: int = 0  # cloud sessions at once next to the local runner's slots

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the field names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class RunArgs:
    """What the shared run flags asked for: ``flags``, of which ``given`` were on the line."""

    flags: RunFlags
    given: frozenset[str] = frozenset()  # the fields given on the command line
    accept_cost: bool = False
    yes: bool = False
    detach: bool = False

    def over(self, saved: RunFlags) -> RunFlags:
        """Return ``saved`` with the flags given on the command line in their place."""
        return dataclasses.replace(saved, **{n: getattr(self.flags, n) for n in self.given})


@dataclass(frozen=True)
class RunRequest:
    """What `planfleet run` or `resume` was asked to do."""

    repo: Path | None
    plan: str  # a plan file or folder, or a plan name
    format: str | None
    phases: tuple[str, ...]  # phase ids or numbers, as given
    tasks: tuple[str, ...]
    dry_run: bool
    resume: bool  # continue the plan's run with the flags it started with
    args: RunArgs


def effective(args: RunArgs, saved: RunFlags | None = None) -> RunFlags:
    """Return the flags a run uses: ``saved`` (else the defaults), the given ones on top."""
    flags = args.over(saved or RunFlags())
    return dataclasses.replace(flags, runner=choose_runner(flags.runner))


def claude_logged_in() -> bool:
    """Return True if ``claude`` is installed and has credentials we can see."""
    if claude_binary() is None:
        return False
    if any(os.environ.get(k) for k in CREDENTIAL_ENV):
        return True
    home = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return (home / ".credentials.json").is_file()


def choose_runner(name: str) -> str:
    """Return the runner ``auto`` means here (claude when logged in, else shell)."""
    if name != "auto":
        return name
    return "claude" if claude_logged_in() else "shell"


def run_options(
    flags: RunFlags,
    plan: model.Plan,
    *,
    phases: Sequence[str] = (),
    tasks: Sequence[str] = (),
    accept_cost: bool = False,
) -> RunOptions:
    """Return the engine options of ``flags`` on ``plan``; UsageError/RefusedError when unsafe."""
    for flag, n in (
        ("--max-parallel", flags.max_parallel),
        ("--cloud-parallel", flags.cloud_parallel),
    ):
        if n > MAX_PARALLEL_WITHOUT_CONSENT and not accept_cost:
            raise RefusedError(
                f"{flag} {n} runs up to {n} paid agents at once "
                f"(about {n}x the cost per minute of one)",
                reason="cost_consent",
                next_step=f"add --accept-cost, or use {flag} 10 or less",
            )
    runner_options: dict[str, Any] = {"permission_mode": flags.permission_mode}
    if flags.allowed_tools:
        runner_options["extra_allowed_tools"] = list(flags.allowed_tools)
    if flags.agent_command:
        runner_options["command"] = list(flags.agent_command)
    cloud_options: dict[str, Any] = {
        "remote": flags.remote,
        "environment": flags.environment,
        "poll_s": flags.cloud_poll_s,
        "poll_max_s": flags.cloud_poll_s * CLOUD_BACKOFF,
    }
    if flags.runner == "cloud":
        runner_options.update(cloud_options)
    _check_pins(plan, flags)
    if flags.runner == "command" and not flags.agent_command:
        raise UsageError(
            "--runner command needs --agent-command",
            hint="e.g. --agent-command my-agent --prompt-file {prompt_file} --cwd {worktree}",
        )
    phase_ids = tuple(_phase_id(plan, p) for p in phases)
    detached = bool(os.environ.get("PLANFLEET_DETACHED"))  # set for the `--detach` engine
    known_tasks = {t.id for t in plan.tasks}
    for t in tasks:
        if t not in known_tasks:
            raise UsageError(f"no task {t!r} in the plan", field="--tasks")
    return RunOptions(
        runner=flags.runner,
        runner_options=runner_options,
        max_parallel=flags.max_parallel,
        cloud_parallel=0 if flags.runner == "cloud" else flags.cloud_parallel,
        cloud_options=cloud_options if flags.cloud_parallel or flags.runner == "cloud" else {},
        max_attempts=flags.max_attempts,
        phases=phase_ids,
        tasks=tuple(tasks),
        model=flags.model,
        escalate_model=flags.escalate_model,
        fail_fast=flags.fail_fast,
        budget_usd=flags.budget_usd,
        task_budget_usd=flags.task_budget_usd,
        timeout_s=flags.timeout_s,
        stall_s=flags.stall_s,
        post_merge_check=flags.post_merge_check,
        strict_files=flags.strict_files,
        strict_model=flags.strict_model,
        strict_tests=flags.strict_tests,
        serialize_undeclared=flags.serialize_undeclared,
        projections=flags.projections,
        wait_on_limit=detached if flags.wait_on_limit is None else flags.wait_on_limit,
        detached=detached,
        test_command=flags.test_command,
        test_timeout_s=flags.test_timeout_s,
    )


def _check_pins(plan: model.Plan, flags: RunFlags) -> None:
    """Raise UsageError when a task the plan pins to local or cloud could never start."""
    for t in plan.tasks:
        if t.runner == "local" and flags.runner == "cloud":
            raise UsageError(
                f"task {t.id} must run locally (runner: local) but --runner cloud has only "
                "cloud slots",
                field="--runner",
                hint="use a local runner with cloud slots: --runner claude --cloud-parallel M",
            )
        if t.runner == "cloud" and flags.runner != "cloud" and not flags.cloud_parallel:
            raise UsageError(
                f"task {t.id} must run in a cloud session (runner: cloud) but the run has no "
                "cloud slots",
                field="--cloud-parallel",
                hint="add --cloud-parallel M (or --runner cloud)",
            )


def _phase_id(plan: model.Plan, given: str) -> str:
    """Return the id of the phase ``given`` names (its id or its number); UsageError if none."""
    try:
        plan.phase(given)
    except KeyError:
        by_number = [ph.id for ph in plan.phases if str(ph.number) == given]
        if not by_number:
            known = ", ".join(ph.id for ph in plan.phases)
            raise UsageError(f"no phase {given!r} in the plan", hint=f"phases: {known}") from None
        return by_number[0]
    return given


def split(value: str | None) -> tuple[str, ...]:
    """Return the items of a comma-separated flag value (None: none)."""
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())
