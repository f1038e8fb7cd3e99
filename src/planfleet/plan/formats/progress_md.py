"""``progress.md`` next to a plan directory's plan file: statuses an earlier run recorded.

Read from its tables: one whose first column is ``Task`` (or ``ID``) and one whose first
column is ``Phase``, each with a ``Status`` column (for a phase, its ``Gate`` column wins:
the phase-boundary check is what a phase's status stands for). Status words are the
builder's (``verified`` and ``complete`` mean done). A task or phase the plan file itself records
as anything but pending keeps that status: the plan file wins.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.plan.formats.builder import status_from_word
from planfleet.plan.formats.markdown import lines_of, normalize_key, prose, strip_code
from planfleet.plan.formats.spec_index import _cells
from planfleet.plan.model import Diagnostic, Plan

PROGRESS_FILE = "progress.md"
PHASE_HEADER = ("Phase", "Title", "Tasks", "Gate", "Status")
TASK_HEADER = ("Task", "Phase", "Title", "Status", "Attempts", "Updated", "Note")
_TASK_KEYS = ("task", "id", "task id")


def read_progress(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Return ``(phase id -> recorded status, task id -> recorded status)``."""
    phases: dict[str, str] = {}
    tasks: dict[str, str] = {}
    header: list[str] | None = None
    for ln in prose(lines_of(text)):
        row = ln.text.strip()
        if not row.startswith("|"):
            header = None
            continue
        cells = _cells(row)
        if header is None:
            header = [normalize_key(c) for c in cells]
            continue
        if all(set(c) <= set(":- ") for c in cells) or "status" not in header:
            continue
        target = tasks if header[0] in _TASK_KEYS else phases if header[0] == "phase" else None
        at = header.index("gate" if target is phases and "gate" in header else "status")
        if target is None or at >= len(cells):
            continue
        node = strip_code(cells[0])
        word = status_from_word(cells[at]) if cells[at].strip() else None
        if node and word is not None:
            target.setdefault(node, word)
    return phases, tasks


def apply_progress(plan: Plan, path: Path, shown: str) -> Plan:
    """Return ``plan`` with what ``path`` records for its pending tasks and phases."""
    if not path.is_file():
        return plan
    try:
        phases, tasks = read_progress(read_text(path, display=shown))
    except InputError as exc:
        warning = Diagnostic("warning", f"progress not read: {exc.message}", shown, exc.line)
        return dataclasses.replace(plan, diagnostics=(*plan.diagnostics, warning))
    return dataclasses.replace(
        plan,
        phases=tuple(
            dataclasses.replace(p, status=phases[p.id])  # type: ignore[arg-type]
            if p.status == "pending" and p.id in phases
            else p
            for p in plan.phases
        ),
        tasks=tuple(
            dataclasses.replace(t, status=tasks[t.id])  # type: ignore[arg-type]
            if t.status == "pending" and t.id in tasks
            else t
            for t in plan.tasks
        ),
    )
