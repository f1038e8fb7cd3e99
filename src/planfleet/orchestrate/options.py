"""How a phase runs: the options the phase-runner and orchestrate flags become."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseOptions:
    """How to run a phase (the phase-runner and orchestrate flags)."""

    subprocess: bool = True
    team: bool | None = None  # True: --team, False: --no-team, None: by rule
    max_parallel: int = 3
    model: str | None = None
    timeout_s: float = 1200.0
    stall_s: float = 300.0
    task_budget_usd: float | None = None
    permission_mode: str = "acceptEdits"
    step: str | None = None  # only this step (fix: the three passes)
    dry_run: bool = False
    engine_runner: str = "claude"
    check_command: tuple[str, ...] = ()  # what the in-session agent runs after a step
