"""What the engine is given and what it returns: run options, the result, the listener.

The command line builds :class:`RunOptions` from its flags (``planfleet.cli.runopts``);
the orchestrate pipeline builds one per phase. Nothing here knows about argparse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet.plan import model
from planfleet.state.records import State


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan (the ``planfleet run`` flags, resolved and checked)."""

    runner: str = "claude"
    runner_options: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 3
    cloud_parallel: int = 0  # cloud sessions at once next to the local slots
    cloud_options: dict[str, Any] = field(default_factory=dict)  # the cloud runner's options
    max_attempts: int = 5
    phases: tuple[str, ...] = ()  # only these phases (empty: all)
    tasks: tuple[str, ...] = ()  # only these tasks (empty: all)
    model: str | None = None
    escalate_model: str | None = None
    fail_fast: bool = False
    budget_usd: float | None = None  # the whole run
    task_budget_usd: float | None = None  # per attempt, passed to the agent
    timeout_s: float = 600.0
    stall_s: float = 300.0
    post_merge_check: bool = True
    strict_files: bool = False  # undeclared changes fail an attempt (else: reported)
    strict_model: bool = False  # another model than the requested one fails an attempt
    strict_tests: bool = False  # a new test that passes without the task's code fails it
    serialize_undeclared: bool = False  # tasks seen changing the same undeclared files
    projections: bool = True  # update the plan's own progress files in the checkout
    wait_on_limit: bool = False  # a usage/rate limit: wait for its reset instead of pausing
    base: str | None = None  # where the integration branch starts (default HEAD)
    detached: bool = False
    log: Path | None = None
    test_command: str | None = None  # --test-cmd: wins over the plan's ("": no tests gate)
    test_timeout_s: float | None = None  # --test-timeout: a fixed limit per test run


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    plan: str
    status: str  # the run status: completed | paused | failed
    reason: str  # why it stopped, in words
    state: State
    cost_usd: float
    elapsed_s: float
    stuck: bool = False  # paused with selected work left that nothing could start

    @property
    def exit_code(self) -> int:
        if self.stuck or self.status not in ("completed", "paused"):
            return 1
        return 0 if "abandoned" not in self.reason else 1


Listener = Callable[[State, list[dict[str, Any]]], None]


def run_scope(plan: model.Plan, opts: RunOptions) -> frozenset[str] | None:
    """Return the nodes ``--phase``/``--tasks`` limit a run to, None for the whole plan."""
    if not opts.phases and not opts.tasks:
        return None
    chosen = {t.id for t in plan.tasks if t.phase in opts.phases}
    chosen |= set(opts.tasks)
    chosen |= {model.gate_id(p) for p in opts.phases}
    return frozenset(chosen)
