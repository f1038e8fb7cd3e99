"""Agent runners: how one attempt of one task is carried out (a Protocol and a registry).

The engine builds an :class:`AgentRequest`, calls ``runner.run(request, stop)`` in a worker
thread and gets an :class:`AgentResult` back. A runner never decides whether the task
succeeded: it reports what the process did (exit code, cost, session, limits hit, what the
agent *claimed*), and the engine's gates (:mod:`planfleet.verify.gates`) decide.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from planfleet.errors import UsageError
from planfleet.plan import model

RUNNERS: tuple[str, ...] = ("claude", "shell", "command", "cloud")

# How an attempt's process ended, as seen by the supervisor.
Ending = Literal["exited", "timeout", "stall", "stopped", "not_started"]


@dataclass(frozen=True)
class AgentRequest:
    """Everything a runner needs for one attempt of one task."""

    repo: Path  # the user's repository root
    plan: model.Plan
    task: model.Task
    worktree: Path  # the task's own worktree (the agent's cwd)
    branch: str  # the task branch checked out in ``worktree``
    base_commit: str  # the integration commit the attempt starts from
    attempt: int  # 1-based
    max_attempts: int
    prompt: str  # built by planfleet.engine.prompts: only this task's slice of the plan
    log_path: Path  # this attempt's log (JSONL event stream for claude)
    timeout_s: float
    stall_s: float  # no output for this long is a stall
    feedback: str | None = None  # what the last failed attempt was told
    resume_session: str | None = None  # a session id to resume (claude)
    model: str | None = None
    budget_usd: float | None = None  # per-task spending cap
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for the agent
    options: Mapping[str, Any] = field(default_factory=dict)  # runner settings
    # What the resumed session had already spent: the CLI's total on --resume includes it.
    prior_cost_usd: float = 0.0
    # Told the process group of each process the runner starts, as soon as it runs (the
    # engine records it, so that a later resume can stop it if the engine dies).
    on_start: Callable[[int], None] | None = None
    # Told a remote session's id and URL as soon as the runner knows them (cloud runner).
    on_session: Callable[[str, str | None], None] | None = None


@dataclass
class AgentResult:
    """What one attempt's process did. ``claims`` is the agent's own report: never trusted."""

    ending: Ending
    exit_code: int | None
    duration_s: float
    cost_usd: float = 0.0
    session_id: str | None = None
    session_url: str | None = None  # where a remote (cloud) session can be watched
    turns: int | None = None
    limit: str | None = None  # "usage_limit" or "rate_limit" when the agent hit one
    limit_detail: str | None = None  # e.g. when the limit resets, as the CLI said it
    error_kind: str | None = None  # crash | budget | max_turns | permission | start_failed
    message: str = ""  # one line for humans
    claims: dict[str, Any] | None = None  # the structured result the agent returned
    output_tail: str = ""  # the end of the agent's output, for feedback and reports
    argv: tuple[str, ...] = ()
    models: dict[str, float] | None = None  # model id -> cost USD of the models that ran

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", ())}


class Runner(Protocol):
    """One way of carrying out an attempt."""

    name: str

    def describe(self, request: AgentRequest) -> list[str]:
        """Return the commands this runner would run for ``request`` (for --dry-run)."""
        ...

    def run(self, request: AgentRequest, stop: threading.Event) -> AgentResult:
        """Carry out the attempt; return early (ending ``stopped``) once ``stop`` is set."""
        ...


def get_runner(name: str, options: Mapping[str, Any] | None = None) -> Runner:
    """Return the runner called ``name``; UsageError naming the known ones otherwise."""
    if name not in RUNNERS:
        raise UsageError(
            f"unknown runner {name!r}", field="runner", hint=f"use one of: {', '.join(RUNNERS)}"
        )
    module = importlib.import_module(f"planfleet.runners.{name}")
    runner: Runner = module.make(dict(options or {}))
    return runner
