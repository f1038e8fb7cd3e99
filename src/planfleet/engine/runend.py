"""How a run ends: its status, the reason in words, and tidying the worktrees it used.

The engine asks this once, when nothing runs any more. A run is ``completed`` only when
every node of the plan is merged or skipped; ``failed`` when a node was given up on (the
reason names them); otherwise ``paused``: by a request or a limit (its reason), with tasks
held by ``stop --task`` (named), with the selected work done, or with work left that nothing
can start now (named, and an error).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from planfleet.engine import scheduler
from planfleet.errors import PlanfleetError
from planfleet.repo import guards, pool, worktrees
from planfleet.repo.scratch import remove_checkout
from planfleet.state.ops import holder_text
from planfleet.state.records import State, ordered_ids, unmet_dependencies

SELECTION_DONE = "the selected tasks are done"
COMPLETED = "every task verified and merged"
HELD = "held by planfleet stop --task: "


@dataclass(frozen=True)
class RunEnd:
    """The run's final status, why, and whether work it should have done is left undone."""

    status: str  # completed | paused | failed
    reason: str
    stuck: bool = False  # paused with selected work that nothing can start


def classify(
    state: State,
    scope: frozenset[str] | None,
    *,
    pause_reason: str | None = None,
    stop_reason: str | None = None,
) -> RunEnd:
    """Return how a run over ``scope`` (None: the whole plan) ends in ``state``.

    ``pause_reason``: the run was told to stop (planfleet stop, a signal, a usage limit, a
    failed merge); ``stop_reason``: it stopped dispatching on its own (budget, fail-fast).
    """
    if pause_reason is not None:
        return RunEnd("paused", pause_reason)
    tasks = state["tasks"]
    ids = ordered_ids(state)
    abandoned = [n for n in ids if tasks[n]["status"] == "abandoned"]
    blocked = [n for n in ids if tasks[n]["status"] == "blocked"]
    if abandoned or blocked:
        reason = f"{len(abandoned)} abandoned, {len(blocked)} blocked"
        if abandoned:
            reason = "abandoned: " + ", ".join(abandoned) + f" ({reason})"
        return RunEnd("failed", reason)
    if not scheduler.unfinished(state):
        return RunEnd("completed", COMPLETED)
    held = [n for n in ids if tasks[n]["status"] == "held" and (scope is None or n in scope)]
    if held:
        return RunEnd("paused", HELD + ", ".join(held))
    if stop_reason:
        return RunEnd("paused", stop_reason)
    left = scheduler.unfinished(state, [n for n in ids if scope is None or n in scope])
    if not left:
        return RunEnd("paused", SELECTION_DONE)
    shown = ", ".join(_why_waiting(state, n) for n in left[:5])
    more = f" and {len(left) - 5} more" if len(left) > 5 else ""
    return RunEnd("paused", f"not finished and nothing can start now: {shown}{more}", True)


def _why_waiting(state: State, node: str) -> str:
    record = state["tasks"][node]
    status = record["status"]
    if status == "in_progress":
        return f"{node} (in progress elsewhere: {holder_text(record)})"
    if status == "verified":
        return f"{node} (verified, not merged)"
    unmet = unmet_dependencies(state, node)
    if unmet:
        return f"{node} ({status}, waits for {', '.join(unmet)})"
    return f"{node} ({status})"


def tidy_worktrees(repo: Path, plan: str, state: State) -> None:
    """Remove what a finished run no longer needs: merged tasks' worktrees, spares, merging."""
    # Worktrees of merged tasks hold nothing more (an engine killed between merging
    # and cleaning up leaves one behind).
    for tid in state["order"]:
        record = state["tasks"][tid]
        if (
            record.get("merged_at")
            and record["kind"] == "task"
            and worktrees.task_worktree(repo, plan, tid).exists()
        ):
            with contextlib.suppress(PlanfleetError):
                guards.remove(repo, plan, tid)
                # a folder git no longer knows: its files go to a rescue branch
                pool.set_aside(repo, plan, tid)
    # Spares and the merge worktree only speed up work within a run.
    with contextlib.suppress(PlanfleetError):
        pool.drain(repo, plan)
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        remove_checkout(repo, worktrees.merge_worktree(repo, plan))
