"""Builders for the runner and prompt tests: model objects, task worktrees, requests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import git, wait_for
from planfleet import proc
from planfleet.plan import model
from planfleet.runners import AgentRequest

FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude" / "claude"
PLAN_NAME = "demo"


def make_task(task_id: str, **fields: Any) -> model.Task:
    """Return a task of phase ``p1`` with a default title."""
    fields.setdefault("title", f"Task {task_id}")
    fields.setdefault("phase", "p1")
    return model.Task(id=task_id, source=model.Source("plan.yaml", 1), **fields)


def make_plan(*tasks: model.Task, meta: dict[str, Any] | None = None) -> model.Plan:
    """Return a one-phase plan holding ``tasks``."""
    phase = model.Phase(
        id="p1",
        title="Phase one",
        source=model.Source("plan.yaml", 1),
        task_ids=tuple(t.id for t in tasks),
    )
    return model.Plan(
        name=PLAN_NAME,
        title="Demo plan",
        format="planfleet",
        path="plan.yaml",
        phases=(phase,),
        tasks=tasks,
        meta=meta or {},
    )


def add_worktree(repo: Path, task_id: str) -> Path:
    """Create the task's worktree and branch next to ``repo``; return its path."""
    path = repo.parent / "worktrees" / task_id
    git(repo, "worktree", "add", "-q", "-b", f"planfleet/{PLAN_NAME}/tasks/{task_id}", str(path))
    return path


def head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD").strip()


def make_request(
    repo: Path,
    plan: model.Plan,
    task_id: str,
    *,
    worktree: Path | None = None,
    attempt: int = 1,
    prompt: str = "Do the task.\n",
    timeout_s: float = 30.0,
    stall_s: float = 20.0,
    **fields: Any,
) -> AgentRequest:
    """Return a request for ``task_id`` (its worktree is created unless given)."""
    wt = worktree or add_worktree(repo, task_id)
    return AgentRequest(
        repo=repo,
        plan=plan,
        task=plan.task(task_id),
        worktree=wt,
        branch=f"planfleet/{PLAN_NAME}/tasks/{task_id}",
        base_commit=head(wt),
        attempt=attempt,
        max_attempts=5,
        prompt=prompt,
        log_path=repo.parent / "logs" / f"{task_id}.{attempt}.log",
        timeout_s=timeout_s,
        stall_s=stall_s,
        **fields,
    )


def write_scenario(path: Path, tasks: dict[str, dict[str, Any]]) -> Path:
    """Write a fake-claude scenario file and return it."""
    path.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    return path


def argv_log(path: Path) -> list[dict[str, Any]]:
    """Return the fake claude's recorded invocations."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def watch_once_ready(
    monkeypatch: pytest.MonkeyPatch,
    ready: Callable[[Path], object],
    then: Callable[[], None] | None = None,
) -> None:
    """Let the supervisor start watching an agent only once ``ready(its log)`` holds.

    A test's short timeout, stall or stop otherwise races the agent's start-up, which can
    take seconds on a loaded machine: the agent would be killed before it logged its argv
    or printed anything. ``then`` runs once it is ready (e.g. to set the stop event).
    """
    real_spawn = proc.spawn

    def spawn(argv: Any, **kwargs: Any) -> Any:
        child = real_spawn(argv, **kwargs)
        log = Path(kwargs["stdout"].name)
        try:
            wait_for(f"{argv[0]} to be ready", lambda: child.poll() is not None or ready(log))
        except BaseException:
            proc.stop_group(child)
            raise
        if then is not None:
            then()
        return child

    monkeypatch.setattr(proc, "spawn", spawn)


def printed(needle: str) -> Callable[[Path], bool]:
    """Return a readiness check: the agent's log holds ``needle``."""
    return lambda log: needle in log.read_text(encoding="utf-8", errors="replace")
