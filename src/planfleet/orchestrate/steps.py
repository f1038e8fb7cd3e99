"""One LLM step of the pipeline: its own ``claude -p`` subprocess, or the in-session path.

A step (plan review, research, or a phase's test/review/fix/commit) has a prompt, a
working folder and an artifact file the agent must write. In subprocess mode the step is
one ``claude -p`` run through the claude runner (one supervised process, its own context,
its own log). In the in-session mode (``--no-subprocess``, or ``claude -p`` could not
start) planfleet writes the prompt to a file and returns instructions: the conversation's
phase-runner agent does the step and calls planfleet again, which then checks the
artifact. Either way the artifact gate (:func:`read_artifact`, then the caller's checks
against git and the tests) decides whether the next step may run.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths, schemas
from planfleet.plan import model
from planfleet.runners import AgentRequest, AgentResult
from planfleet.runners.base import prompt_path
from planfleet.runners.claude import ClaudeRunner, claude_binary, plugin_root

READ_TOOLS = ("Read", "Glob", "Grep")
GIT_READ = ("Bash(git status *)", "Bash(git diff *)", "Bash(git log *)", "Bash(git show *)")
GIT_WRITE = ("Bash(git add *)", "Bash(git commit *)")


class GateFailed(Exception):
    """An artifact gate refused a step: the next step must not run."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass(frozen=True)
class StepSpec:
    """What one step is: its id, prompt, working folder, artifact and the tools it may use."""

    key: str  # a safe id: the log name and the agent's PLANFLEET_TASK
    kind: str  # plan-review | research | implement | test | review | fix | commit
    title: str
    prompt: str
    cwd: Path
    artifact: Path
    schema: str
    tools: tuple[str, ...]
    agent: str | None = None  # a plugin agent used when the plugin ships it
    phase: str | None = None
    commands: tuple[str, ...] = ()  # commands the agent may run (its Bash allow-list)


@dataclass
class StepContext:
    """How steps run in this invocation."""

    repo: Path
    plan: model.Plan
    subprocess: bool = True
    model: str | None = None
    timeout_s: float = 1200.0
    stall_s: float = 300.0
    budget_usd: float | None = None
    permission_mode: str = "acceptEdits"
    check_command: tuple[str, ...] = ()  # what the in-session agent runs when it is done
    stop: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)


@dataclass
class StepRun:
    """How a step's agent ran: ``ran``, or ``needs_agent`` with instructions to follow."""

    status: str  # ran | needs_agent
    prompt_file: Path
    agent: AgentResult | None = None
    log: Path | None = None
    instructions: dict[str, Any] | None = None

    def describe_agent(self) -> str:
        """Return one line on how the agent process ended (for a failed gate's message)."""
        a = self.agent
        if a is None:
            return ""
        parts = [a.message] if a.message else []
        if a.exit_code not in (0, None):
            parts.append(f"exit code {a.exit_code}")
        if self.log is not None:
            parts.append(f"log: {self.log}")
        return "; ".join(parts)


def artifact_waiting(artifact: Path, ctx: StepContext) -> bool:
    """Return True when the in-session agent has written ``artifact``: gate it now."""
    return not ctx.subprocess and artifact.is_file()


def run_step(spec: StepSpec, ctx: StepContext, attempt: int) -> StepRun:
    """Run ``spec``'s agent (or hand it to the session); the caller then gates the artifact."""
    log = paths.attempt_log(ctx.repo, ctx.plan.name, spec.key, attempt)
    prompt_file = prompt_path(paths.writable(ctx.repo, log))
    fsutil.atomic_write(prompt_file, spec.prompt, fsync_dir=False)
    set_aside(spec.artifact)  # an old artifact must not pass for this attempt's
    # The artifact is in the .planfleet/ of the step's folder (a checkout's is shaped by
    # the commits merged into it).
    paths.writable(spec.cwd, spec.artifact, prepare=False)
    if not ctx.subprocess:
        return StepRun(
            "needs_agent", prompt_file, instructions=instructions(spec, ctx, prompt_file)
        )
    binary = claude_binary()
    if binary is None:
        return _fallback(
            spec, ctx, prompt_file, "claude not found (install it or set PLANFLEET_CLAUDE)"
        )
    request = _request(spec, ctx, attempt, log)
    result = ClaudeRunner(_options(spec, ctx)).run(request, ctx.stop)
    if result.ending == "not_started":
        return _fallback(spec, ctx, prompt_file, result.message)
    return StepRun("ran", prompt_file, agent=result, log=log)


def describe(spec: StepSpec, ctx: StepContext) -> list[str]:
    """Return the command line the step would run (for --dry-run)."""
    log = paths.attempt_log(ctx.repo, ctx.plan.name, spec.key, 1)
    return ClaudeRunner(_options(spec, ctx)).describe(_request(spec, ctx, 1, log))


def instructions(spec: StepSpec, ctx: StepContext, prompt_file: Path) -> dict[str, Any]:
    """Return what the in-session phase-runner agent must do for ``spec``."""
    check = shlex.join(ctx.check_command) if ctx.check_command else ""
    return {
        "step": spec.key,
        "kind": spec.kind,
        "title": spec.title,
        "phase": spec.phase,
        "cwd": str(spec.cwd),
        "prompt_file": str(prompt_file),
        "artifact": str(spec.artifact),
        "schema": f"planfleet/schemas/{spec.schema}.schema.json",
        "then_run": check,
        "text": (
            f"Do step {spec.key} ({spec.title}) in a fresh subagent: work in {spec.cwd}, "
            f"follow the prompt in {prompt_file}, and write the artifact to {spec.artifact}. "
            f"Then run `{check}`: planfleet checks the artifact (gate) and records the step; "
            "the next step is refused until the gate passes."
        ),
    }


def _fallback(spec: StepSpec, ctx: StepContext, prompt_file: Path, why: str) -> StepRun:
    ctx.warnings.append(
        f"claude -p could not start ({why}); step {spec.key} falls back to the in-session "
        "phase-runner agent"
    )
    ctx.subprocess = False
    return StepRun("needs_agent", prompt_file, instructions=instructions(spec, ctx, prompt_file))


def set_aside(artifact: Path, suffix: str = ".stale") -> None:
    """Move an existing artifact out of the way (kept next to it for a person to read)."""
    if artifact.exists():
        with contextlib.suppress(OSError):
            artifact.replace(artifact.with_name(artifact.name + suffix))


def read_artifact(step: str, path: Path, schema: str) -> dict[str, Any]:
    """Return the artifact at ``path`` when it exists, parses and fits ``schema``.

    Raises GateFailed saying which of the three it is not.
    """
    if not path.is_file():
        raise GateFailed(step, f"the step wrote no artifact ({path} does not exist)")
    try:
        data = jsonread.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise GateFailed(step, f"the artifact {path} cannot be read: {exc}") from None
    except ValueError as exc:
        raise GateFailed(step, f"the artifact {path} is not valid JSON: {exc}") from None
    error = schemas.first_error(schema, data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise GateFailed(
            step,
            f"the artifact {path} does not match {schema}.schema.json at {where}: {error.message}",
        )
    if not isinstance(data, dict):  # pragma: no cover - every schema wants an object
        raise GateFailed(step, "the artifact is not a JSON object")
    return data


def keep(artifact: Path, folder: Path, repo: Path) -> Path:
    """Copy an accepted artifact into the run's records (``folder`` in ``repo``); return it."""
    target = paths.writable(repo, folder / artifact.name)
    fsutil.atomic_write(target, artifact.read_text(encoding="utf-8"), fsync_dir=False)
    return target


def _options(spec: StepSpec, ctx: StepContext) -> dict[str, Any]:
    root = plugin_root()
    shipped = spec.agent and root is not None and (root / "agents" / f"{spec.agent}.md").is_file()
    return {
        "permission_mode": ctx.permission_mode,
        "allowed_tools": list(spec.tools),
        "agent": f"planfleet:{spec.agent}" if shipped else None,
    }


def _request(spec: StepSpec, ctx: StepContext, attempt: int, log: Path) -> AgentRequest:
    task = model.Task(
        id=spec.key,
        title=spec.title,
        phase=spec.phase or "",
        source=model.Source(ctx.plan.path),
        verify=spec.commands,
    )
    return AgentRequest(
        repo=ctx.repo,
        plan=ctx.plan,
        task=task,
        worktree=spec.cwd,
        branch="",
        base_commit="",
        attempt=attempt,
        max_attempts=attempt,
        prompt=spec.prompt,
        log_path=log,
        timeout_s=ctx.timeout_s,
        stall_s=ctx.stall_s,
        model=ctx.model,
        budget_usd=ctx.budget_usd,
        env={
            "PLANFLEET_STEP": spec.kind,
            "PLANFLEET_PHASE": spec.phase or "",
            "PLANFLEET_ARTIFACT": str(spec.artifact),
        },
    )
