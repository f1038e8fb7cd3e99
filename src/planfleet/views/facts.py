"""What every projection reads from a run state: statuses in plan words, phases, evidence.

The projections (``planfleet.views.render``) render human-facing files from the state. This module
holds what they share: the Edit each returns, the render context, the status vocabulary a
plan file can express, a summary of each phase, the verification record of a task, times,
and where the log goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread
from planfleet.errors import PlanfleetError
from planfleet.plan import model
from planfleet.state.records import SATISFIED, State, TaskRecord, ordered_ids

# The status a plan file records for each task status of the state (model.RecordedStatus).
RECORDED: dict[str, str] = {
    "pending": "pending",
    "in_progress": "in_progress",
    "verified": "done",
    "failed": "failed",
    "timeout": "failed",
    "blocked": "blocked",
    "abandoned": "blocked",
    "skipped": "skipped",
    "held": "pending",  # stopped by request: it runs again after the next resume
}
# What a recorded status becomes when a state is imported from the plan (state.create):
# "in progress" starts again, so it is the same as pending.
_IMPORTS_AS = {
    "pending": "pending",
    "in_progress": "pending",
    "done": "done",
    "failed": "failed",
    "blocked": "blocked",
    "skipped": "skipped",
}
# A status in words, for status lines and frontmatter (builder.STATUS_WORDS reads them back).
WORDS = {
    "pending": "pending",
    "in_progress": "in progress",
    "done": "done",
    "failed": "failed",
    "blocked": "blocked",
    "skipped": "skipped",
}
BOM = "\ufeff"
RUN_WORDS = {"running": "RUNNING", "paused": "PAUSED", "completed": "COMPLETE", "failed": "FAILED"}
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Edit:
    """What one projection wants a file to be: its new text, deleted, or an error."""

    path: Path
    kind: str
    text: str | None = None  # None with delete=False: nothing to write
    delete: bool = False
    error: str | None = None
    warnings: tuple[str, ...] = ()


def guarded(path: Path, kind: str, render: Callable[[], Edit]) -> Edit:
    """Return ``render()``; a problem with the user's file becomes an Edit with an error."""
    try:
        return render()
    except PlanfleetError as exc:
        return Edit(path, kind, error=exc.render())
    except (OSError, ValueError) as exc:
        return Edit(path, kind, error=f"{type(exc).__name__}: {exc}")


def read_doc(path: Path) -> tuple[str, bool] | None:
    """Return ``(text, has_bom)`` of a UTF-8 file, None if it does not exist.

    Raises InputError for a file that is too large, not UTF-8, or binary.
    """
    if not path.exists():
        return None
    text = fsutil.read_text(path)
    with path.open("rb") as fh:
        bom = fh.read(3) == BOM.encode()
    return text, bom


def recorded(status: str) -> str:
    """Return the recorded status (done, failed, ...) a plan file shows for a task status."""
    return RECORDED[status]


def same_import(a: str | None, b: str) -> bool:
    """Return True if recorded statuses ``a`` and ``b`` import into the same task status."""
    return a is not None and _IMPORTS_AS.get(a) == _IMPORTS_AS[b]


def short_time(ts: str | None) -> str:
    """Return an ISO-8601 UTC time to the second (``2025-01-02T03:04:05Z``), or ``-``."""
    if not ts:
        return "-"
    return ts[:19] + "Z" if len(ts) >= 19 else ts


def one_line(text: str | None, limit: int = 300) -> str:
    """Return ``text`` on one line (whitespace collapsed), cut to ``limit`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Evidence:
    """What a task's verification record says: files it created or changed, tests run."""

    created: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return self.created + tuple(f for f in self.modified if f not in self.created)


@dataclass
class Context:
    """One rendering: the repository, the plan (re-read from disk when possible), the state."""

    repo: Path
    plan: model.Plan
    state: State
    plan_error: str | None = None  # why the plan could not be re-read (files then left alone)
    _evidence: dict[str, Evidence | None] = field(default_factory=dict)

    def record(self, node: str) -> TaskRecord | None:
        """Return the state record of a task or gate, or None if the state has none."""
        rec: TaskRecord | None = self.state["tasks"].get(node)
        return rec

    def status(self, node: str) -> str | None:
        rec = self.record(node)
        return None if rec is None else str(rec["status"])

    def path(self, rel: str | Path) -> Path:
        """Return ``rel`` (relative to the repository, or absolute) as an absolute path."""
        p = Path(rel)
        return p if p.is_absolute() else self.repo / p

    def evidence(self, node: str) -> Evidence | None:
        """Return the verification record of ``node``; None when absent or unreadable."""
        if node not in self._evidence:
            rec = self.record(node)
            ref = rec.get("verification") if rec else None
            self._evidence[node] = _load_evidence(self.path(ref)) if ref else None
        return self._evidence[node]

    def task_ids(self, kind: str = "task") -> list[str]:
        """Return the state's task (or gate) ids in plan order."""
        tasks = self.state["tasks"]
        return [t for t in ordered_ids(self.state) if tasks[t]["kind"] == kind]

    def last_change(self) -> str:
        """Return when the run last changed meaningfully (its latest event, else creation)."""
        events = self.state["events"]
        return str(events[-1]["ts"] if events else self.state["created_at"])


def _load_evidence(path: Path) -> Evidence | None:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None
        data = jsonread.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return Evidence(
        created=_strings(data.get("files_created")),
        modified=_strings(data.get("files_modified")),
        tests=tuple(_test_text(t) for t in _list(data.get("tests")) if _test_text(t)),
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(value) if isinstance(v, (str, int, float)) and str(v))


def _test_text(item: Any) -> str:
    """Return one test run as text: its command and, when recorded, its outcome."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    name = next((item[k] for k in ("command", "cmd", "name", "test") if item.get(k)), "")
    outcome = ""
    if isinstance(item.get("passed"), bool):
        outcome = "passed" if item["passed"] else "failed"
    elif isinstance(item.get("status"), str):
        outcome = item["status"]
    elif isinstance(item.get("exit_code"), int):
        outcome = "passed" if item["exit_code"] == 0 else f"exit {item['exit_code']}"
    text = one_line(str(name), 200)
    return f"{text} ({outcome})" if text and outcome else text


@dataclass(frozen=True)
class PhaseView:
    """One phase as the state sees it."""

    phase: model.Phase
    tasks: tuple[tuple[str, TaskRecord], ...]  # the phase's tasks that the state knows
    gate: TaskRecord | None

    @property
    def counts(self) -> Counter[str]:
        return Counter(str(rec["status"]) for _, rec in self.tasks)

    @property
    def done(self) -> int:
        return sum(1 for _, rec in self.tasks if rec["status"] in SATISFIED)

    @property
    def status(self) -> str:
        """Return complete, skipped, failed, blocked, in_progress or pending."""
        gate = self.gate["status"] if self.gate else "pending"
        statuses = [str(rec["status"]) for _, rec in self.tasks]
        if statuses and all(s == "skipped" for s in statuses) and gate == "skipped":
            return "skipped"
        if self.done == len(statuses) and gate in SATISFIED:
            return "complete"
        if gate in ("failed", "timeout") or any(s in ("failed", "timeout") for s in statuses):
            return "failed"
        if gate in ("blocked", "abandoned") or any(s in ("blocked", "abandoned") for s in statuses):
            return "blocked"
        if self.done or gate == "in_progress" or "in_progress" in statuses:
            return "in_progress"
        return "pending"


def phase_view(ctx: Context, phase: model.Phase) -> PhaseView:
    """Return the state's view of ``phase`` (tasks of the plan the state does not know left out)."""
    tasks = tuple(
        (t.id, rec) for t in ctx.plan.tasks_of(phase.id) if (rec := ctx.record(t.id)) is not None
    )
    return PhaseView(phase, tasks, ctx.record(model.gate_id(phase.id)))


def log_path(repo: Path, plan: model.Plan) -> Path:
    """Return where a plan's ``execution-log.md`` goes: next to the plan, in its own name.

    A plan folder (or a plan file with a folder of its own) gets ``execution-log.md``;
    a plan file among others gets ``<stem>.execution-log.md``. `.ai/plans` files log to
    ``.ai/logs`` (a dated file in ``.ai/plans`` would be read as a plan).
    """
    path = Path(plan.path) if Path(plan.path).is_absolute() else repo / plan.path
    if path.is_dir():
        return path / "execution-log.md"
    if path.name in ("plan.md", "task_plan.md", "manifest.md"):
        return path.parent / "execution-log.md"
    if plan.format == "ai" and path.parent.name == "plans":
        return path.parent.parent / "logs" / f"{path.stem}.execution-log.md"
    stem = path.name.split(".")[0] if plan.format == "planfleet" else path.stem
    return path.parent / f"{stem}.execution-log.md"
