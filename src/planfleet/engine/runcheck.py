"""What a run checks before it dispatches, and what it touches in the checkout.

The shell runner runs only a task's own commands: a run that would give it a task without
any is refused up front. The projections update the plan's own progress files in place:
the dry run lists them. Uncommitted changes to the files the plan reads or changes are
named before dispatch: no agent sees them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from planfleet import git
from planfleet.engine.options import RunOptions, run_scope
from planfleet.errors import RefusedError
from planfleet.plan import model
from planfleet.plan.declared import matches
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
    """Return the files in the checkout a run updates (the plan's progress files), sorted.

    ``plan`` is taken as just read from disk (the dry run's): it is not read again.
    """
    if not opts.projections:
        return []
    # only the dry run lists them: a run does not pay for importing every reader up front
    from planfleet.state import create
    from planfleet.views import render

    store = StateStore.for_plan(repo, plan.name)
    state = store.load() if store.exists() else create.init_from_plan(plan)
    shown = []
    for path in render.files(repo, plan, state, reread=False):
        with contextlib.suppress(ValueError):
            shown.append(path.resolve().relative_to(repo.resolve()).as_posix())
    return sorted(shown)


def unseen_changes(repo: Path, plan: model.Plan) -> list[dict[str, str]]:
    """Return the checkout's uncommitted changes to files the plan reads or its tasks change.

    Agents start from committed code: none of them sees these. Each entry is ``{path, why}``.
    """
    dirty = [
        p for p in git.status_porcelain(repo, each_file=True) if not p.startswith(".planfleet/")
    ]
    if not dirty:
        return []
    reads: dict[str, str] = {}
    folder = plan.path.rstrip("/") + "/"
    for t in plan.tasks:
        reads.setdefault(t.source.file, "the plan")
        for spec in t.spec_files:
            reads.setdefault(spec, f"task {t.id} reads it")
    found = []
    for path in dirty:
        why = reads.get(path) or (
            "the plan" if path == plan.path or path.startswith(folder) else ""
        )
        if not why:
            writers = [t.id for t in plan.tasks if t.writes and matches(path, t.writes)]
            who = ", ".join(writers[:3]) + (" and more" if len(writers) > 3 else "")
            why = f"tasks {who} change it" if len(writers) > 1 else f"task {who} changes it"
            why = why if writers else ""
        if why:
            found.append({"path": path, "why": why})
    return sorted(found, key=lambda f: f["path"])


def unseen_warning(found: list[dict[str, str]], shown: int = 10) -> str | None:
    """Return the warning a run prints before dispatch for :func:`unseen_changes`."""
    if not found:
        return None
    listed = "; ".join(f"{f['path']} ({f['why']})" for f in found[:shown])
    more = f"; and {len(found) - shown} more" if len(found) > shown else ""
    return (
        f"uncommitted changes the agents will not see (they start from the last commit): "
        f"{listed}{more}; commit or stash them before the run if the agents need them"
    )
