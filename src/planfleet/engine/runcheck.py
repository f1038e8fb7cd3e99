"""What a run checks before it dispatches, and what it touches in the checkout.

The shell runner runs only a task's own commands: a run that would give it a task without
any is refused up front. The projections update the plan's own progress files in place:
the dry run lists them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from planfleet.engine.options import RunOptions, run_scope
from planfleet.errors import RefusedError
from planfleet.plan import model
from planfleet.state.store import StateStore


def without_commands(repo: Path, plan: model.Plan, opts: RunOptions) -> list[str]:
    """Return the tasks the shell runner would run that have no commands ([] for others)."""
    if opts.runner != "shell":
        return []
    store = StateStore.for_plan(repo, plan.name)
    settled: set[str] = set()
    if store.exists():  # a resumed run does not run what it verified or skipped
        tasks = store.load()["tasks"]
        settled = {t for t, rec in tasks.items() if rec["status"] in ("verified", "skipped")}
    scope = run_scope(plan, opts)
    return [
        t.id
        for t in plan.tasks
        if not t.commands
        and t.runner != "cloud"  # a cloud session does it, not the shell runner
        and t.status not in ("done", "skipped")
        and t.id not in settled
        and (scope is None or t.id in scope)
    ]


def refuse_without_commands(repo: Path, plan: model.Plan, opts: RunOptions) -> None:
    """RefusedError naming the tasks the shell runner would run that have no commands."""
    missing = without_commands(repo, plan, opts)
    if not missing:
        return
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    raise RefusedError(
        f"the shell runner runs only a task's own commands, and {len(missing)} of the tasks "
        f"it would run have none: {', '.join(missing[:10])}{more}",
        reason="no_commands",
        next_step=f"write the commands into the plan (a `Commands:` list or a fenced sh block "
        f"under each task; see 'Commands' in the README for the {plan.format} format), "
        "choose tasks that have them with --tasks, or use --runner claude",
        details={"tasks": missing},
    )


def in_place_files(repo: Path, plan: model.Plan, opts: RunOptions) -> list[str]:
    """Return the files in the checkout a run updates (the plan's progress files), sorted."""
    if not opts.projections:
        return []
    # only the dry run lists them: a run does not pay for importing every reader up front
    from planfleet.state import create
    from planfleet.views import render

    store = StateStore.for_plan(repo, plan.name)
    state = store.load() if store.exists() else create.init_from_plan(plan)
    shown = []
    for path in render.files(repo, plan, state):
        with contextlib.suppress(ValueError):
            shown.append(path.resolve().relative_to(repo.resolve()).as_posix())
    return sorted(shown)
