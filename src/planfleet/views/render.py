"""Human-facing files rendered from the run state: checkboxes, checkpoints, logs, indexes.

The state is the truth; these files are views of it, in each plan format's own shape, so
a person (or the format's own tools) can follow a run and a later import can resume it.
Rendering is idempotent (twice gives the same bytes), touches only our markers and
sections (everything else stays byte for byte), writes only files whose bytes change, and
never raises on a user's odd file: such a file is reported in ``Rendered.error`` and left
alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import fsutil
from planfleet.errors import PlanfleetError
from planfleet.plan import formats, model
from planfleet.state.records import State
from planfleet.views import checkpoints, log, marks
from planfleet.views import files as projections_files
from planfleet.views import spec_readme as spec
from planfleet.views.facts import Context, Edit

DEFAULT_MODE = 0o644


@dataclass(frozen=True)
class Rendered:
    """One file a projection rendered: whether its bytes changed, or why it was left alone."""

    path: Path
    kind: str
    changed: bool
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self, repo: Path | None = None) -> dict[str, Any]:
        shown = self.path
        if repo is not None:
            with contextlib.suppress(ValueError):
                shown = self.path.relative_to(repo)
        out: dict[str, Any] = {"path": str(shown), "kind": self.kind, "changed": self.changed}
        if self.error:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


Projection = Callable[[Context], list[Edit]]


# The projections of each format, in the order they run (the log comes last for all).
PROJECTIONS: dict[str, tuple[Projection, ...]] = {
    "spec": (marks.spec_marks, spec.plan_status, spec.index),
    "ai": (marks.listed_marks, checkpoints.checkpoints),
    "plan-dir": (marks.listed_marks, log.progress),
    "maxvision": (projections_files.maxvision_status,),
    "xml-tasks": (projections_files.execute_state,),
    "gsd": (projections_files.gsd_summaries,),
    "superpowers": (marks.superpowers_marks,),
}


def render_all(
    repo: Path, plan: model.Plan, state: State, *, dry_run: bool = False
) -> list[Rendered]:
    """Render every projection of ``plan``'s format from ``state``; write changed files.

    The plan is re-read from disk first, so a plan the user edited since it was loaded is
    rendered at its current lines. With ``dry_run`` nothing is written; ``changed`` then
    says what would change. A projection with nothing to do is not reported.
    """
    return [_apply(edit, dry_run=dry_run) for edit in _edits(repo, plan, state) if _acts(edit)]


def files(repo: Path, plan: model.Plan, state: State, *, reread: bool = True) -> list[Path]:
    """Return the files a run of ``plan`` updates in place (the projections' targets).

    ``reread=False`` is for a ``plan`` just read from disk: it is not read a second time.
    """
    edits = _edits(repo, plan, state, reread=reread)
    return list(dict.fromkeys(e.path for e in edits if e.error is None))


def _edits(repo: Path, plan: model.Plan, state: State, *, reread: bool = True) -> Iterator[Edit]:
    """Yield what every projection of ``plan``'s format wants its files to be.

    A projection runs only when the next Edit is asked for, so one that edits a file an
    earlier projection wrote (the plan file) sees what that one wrote.
    """
    ctx = Context(repo=repo, plan=plan, state=state)
    try:
        if reread:
            ctx.plan = formats.load_plan(_abs(repo, plan.path), repo=repo, format=plan.format)
    except PlanfleetError as exc:
        ctx.plan_error = f"the plan cannot be read now, so it was left alone: {exc.render()}"
    for projection in (*PROJECTIONS.get(plan.format, ()), log.execution_log):
        yield from (_guard(repo, edit) for edit in projection(ctx))


def _acts(edit: Edit) -> bool:
    """Return False for an Edit with nothing to write, delete or report."""
    return edit.text is not None or edit.delete or edit.error is not None or bool(edit.warnings)


def _guard(repo: Path, edit: Edit) -> Edit:
    """Return ``edit``, or an error Edit when its file is outside ``repo`` or a link."""
    if edit.error is None and not fsutil.is_within(edit.path, repo):
        return Edit(edit.path, edit.kind, error="outside the repository; left alone")
    if edit.error is None and edit.path.is_symlink():
        return Edit(edit.path, edit.kind, error="a symbolic link; left alone")
    return edit


def _abs(repo: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo / p


def _apply(edit: Edit, *, dry_run: bool) -> Rendered:
    """Write (or delete) ``edit``'s file when its bytes change; report what happened."""
    path = edit.path
    if edit.error is not None:
        return Rendered(path, edit.kind, False, edit.error, edit.warnings)
    try:
        current = path.read_bytes() if path.exists() else None
    except OSError as exc:
        return Rendered(path, edit.kind, False, f"cannot read: {exc.strerror}", edit.warnings)
    if edit.delete:
        changed = current is not None
        if changed and not dry_run:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                return Rendered(path, edit.kind, False, f"cannot delete: {exc}", edit.warnings)
        return Rendered(path, edit.kind, changed, None, edit.warnings)
    if edit.text is None:
        return Rendered(path, edit.kind, False, None, edit.warnings)
    changed = current != edit.text.encode("utf-8")
    if changed and not dry_run:
        try:
            mode = os.stat(path).st_mode & 0o7777 if current is not None else DEFAULT_MODE
            fsutil.atomic_write(path, edit.text, mode=mode)
        except OSError as exc:
            return Rendered(path, edit.kind, False, f"cannot write: {exc}", edit.warnings)
    return Rendered(path, edit.kind, changed, None, edit.warnings)
