"""`planfleet checkpoint PLAN`: render the plan's human-facing files from its run state now."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planfleet import git, jsonread, paths
from planfleet.cli.output import Out
from planfleet.errors import ExitCode, RefusedError
from planfleet.ids import id_problem
from planfleet.plan import formats
from planfleet.plan.model import Plan
from planfleet.state.records import State
from planfleet.state.store import StateStore
from planfleet.views import render


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "checkpoint",
        parents=[parent],
        help="render checkboxes, checkpoints and logs from the run state",
        description="Render the plan's human-facing files from its run state: checkboxes "
        "and phase marks, the Execution Checkpoints section, execution-log.md, "
        "progress.md, the .spec/plans index, frontmatter statuses, execute-state.json - "
        "whichever the plan's format has. Only files whose bytes change are written; text "
        "outside planfleet's marks and sections is kept as it is.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan run's name, or a plan file or folder")
    p.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    p.set_defaults(handler=_handler, command_name="checkpoint")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    return checkpoint(out, repo=repo, arg=ns.plan, fmt=ns.format, dry_run=ns.dry_run)


def checkpoint(out: Out, *, repo: Path, arg: str, fmt: str | None, dry_run: bool) -> int:
    plan, state, store = load(repo, arg, fmt)
    results = render.render_all(repo, plan, state, dry_run=dry_run)
    data = {
        "plan": state["plan"]["name"],
        "state_file": str(store.path),
        "dry_run": dry_run,
        "files": [r.to_json(repo) for r in results],
        "changed": sum(1 for r in results if r.changed),
    }

    def human() -> None:
        verb = "would update" if dry_run else "updated"
        for r in results:
            shown = r.to_json(repo)["path"]
            if r.error:
                continue
            out.line(f"{verb if r.changed else 'unchanged':12} {shown} ({r.kind})")
        if not data["changed"]:
            out.line("everything already matches the run state")

    out.result("checkpoint", data, human=human)
    for r in results:
        shown = r.to_json(repo)["path"]
        if r.error:
            out.warn(f"{shown}: {r.error}")
        for w in r.warnings:
            out.warn(f"{shown}: {w}")
    return ExitCode.OK


def load(repo: Path, arg: str, fmt: str | None) -> tuple[Plan, State, StateStore]:
    """Return the plan, its run state and store for ``arg`` (a run name or a plan path/name).

    Raises RefusedError (naming ``planfleet state init``) when the plan has no run state.
    """
    if id_problem(arg) is None and paths.state_path(repo, arg).is_file():
        store = StateStore.for_plan(repo, arg)
        state = store.load()
        where = Path(state["plan"]["path"])
        path = where if where.is_absolute() else repo / where
        plan = formats.load_plan(path, repo=repo, format=fmt or state["plan"]["format"] or None)
        return plan, state, store
    path = formats.resolve(arg, repo=repo, format=fmt)
    plan = formats.load_plan(path, repo=repo, format=fmt)
    for name in _state_names(repo, plan):
        store = StateStore.for_plan(repo, name)
        return plan, store.load(), store
    raise RefusedError(
        f"plan {plan.name!r} has no run state yet",
        reason="no_state",
        next_step=f"planfleet state init {plan.name} --from {arg}",
    )


def _state_names(repo: Path, plan: Plan) -> list[str]:
    """Return the runs of ``plan``: the one named after it, else any started from its path."""
    if paths.state_path(repo, plan.name).is_file():
        return [plan.name]
    target = Path(plan.path).resolve()
    found = []
    for file in sorted(paths.state_dir(repo).glob("*.json")):
        try:
            recorded = jsonread.parse(file.read_text(encoding="utf-8"))["plan"]["path"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        where = Path(str(recorded))
        if (where if where.is_absolute() else repo / where).resolve() == target:
            found.append(file.stem)
    return found
