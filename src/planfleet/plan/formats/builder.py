"""PlanBuilder: what every reader uses to turn what it parsed into a checked Plan."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.ids import check_id, slugify
from planfleet.plan.model import RECORDED_STATUSES, Diagnostic, Phase, Plan, Source, Task

# Words plans use for a status, mapped onto the recorded statuses of the model.
STATUS_WORDS: dict[str, str] = {
    "pending": "pending",
    "todo": "pending",
    "to do": "pending",
    "not started": "pending",
    "planned": "pending",
    "ready": "pending",
    "open": "pending",
    "queued": "pending",
    "in_progress": "in_progress",
    "in progress": "in_progress",
    "in-progress": "in_progress",
    "executing": "in_progress",
    "running": "in_progress",
    "started": "in_progress",
    "active": "in_progress",
    "wip": "in_progress",
    "done": "done",
    "complete": "done",
    "completed": "done",
    "finished": "done",
    "verified": "done",
    "merged": "done",
    "passed": "done",
    "failed": "failed",
    "error": "failed",
    "timeout": "failed",
    "blocked": "blocked",
    "abandoned": "blocked",
    "skipped": "skipped",
    "skip": "skipped",
    "cancelled": "skipped",
    "canceled": "skipped",
}


def status_from_word(word: str | None) -> str | None:
    """Return the recorded status a status word means, or None if it is unknown."""
    if word is None:
        return "pending"
    key = word.strip().strip("`*_").strip().lower().replace("✅", "").strip()
    if not key:
        return "pending"
    return STATUS_WORDS.get(key)


class PlanBuilder:
    """Collects phases and tasks with their sources; ``build()`` returns the Plan.

    Ids are checked as they arrive (InputError naming file and line). Semantic problems
    (duplicates, unknown statuses) become diagnostics so ``plan validate`` can list all.
    """

    def __init__(
        self,
        *,
        format: str,
        path: Path,
        repo: Path,
        name: str,
        title: str,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.format = format
        self.path = path
        self.repo = repo
        self.name = slugify(name)
        self.title = title.strip() or self.name
        self.meta: dict[str, Any] = dict(meta or {})
        self.phases: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.diagnostics: list[Diagnostic] = []
        self._chained: set[str] = set()
        self._rel_cache: dict[str, str] = {}
        self._repo_resolved = repo.resolve()
        self._phase_task_fields: dict[str, dict[str, Any]] = {}

    def rel(self, path: Path | str) -> str:
        """Return ``path`` relative to the repository when it is inside it (memoized)."""
        key = str(path)
        shown = self._rel_cache.get(key)
        if shown is None:
            try:
                shown = str(Path(path).resolve().relative_to(self._repo_resolved))
            except (ValueError, OSError):
                shown = key
            self._rel_cache[key] = shown
        return shown

    def source(self, line: int | None, file: Path | str | None = None) -> Source:
        return Source(self.rel(file if file is not None else self.path), line)

    def diag(
        self,
        level: str,
        message: str,
        *,
        line: int | None = None,
        file: Path | str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        f = self.rel(file if file is not None else self.path)
        self.diagnostics.append(Diagnostic(level, message, f, line, field, hint))  # type: ignore[arg-type]

    def status(self, word: str | None, *, line: int | None, file: Path | str | None = None) -> str:
        """Return the recorded status for ``word``; an unknown word becomes a warning."""
        found = status_from_word(word)
        if found is None:
            self.diag(
                "warning",
                f"unknown status {word!r}; treated as pending",
                line=line,
                file=file,
                field="status",
                hint="use one of: " + ", ".join(RECORDED_STATUSES),
            )
            return "pending"
        return found

    def check(self, value: str, what: str, line: int | None, file: Path | str | None) -> str:
        return check_id(value, what=what, file=self.rel(file or self.path), line=line)

    def add_phase(
        self,
        phase_id: str,
        title: str,
        *,
        line: int | None,
        file: Path | str | None = None,
        chain_tasks: bool = False,
        task_fields: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Add a phase; ``chain_tasks`` makes its tasks run in listed order.

        ``task_fields`` (files, verify commands, text, ...) are used for the one task the
        phase becomes when it lists no tasks of its own.
        """
        pid = self.check(phase_id, "phase id", line, file)
        if pid in self.phases:
            self.diag("error", f"duplicate phase id {pid!r}", line=line, file=file, field="phase")
            return pid
        self.phases[pid] = {
            "id": pid,
            "title": title.strip() or pid,
            "source": self.source(line, file),
            **fields,
        }
        if chain_tasks:
            self._chained.add(pid)
        self._phase_task_fields[pid] = dict(task_fields or {})
        return pid

    def add_task(
        self,
        task_id: str,
        title: str,
        *,
        phase: str,
        line: int | None,
        file: Path | str | None = None,
        **fields: Any,
    ) -> str:
        tid = self.check(task_id, "task id", line, file)
        if phase not in self.phases:
            raise InputError(
                f"task {tid!r} names unknown phase {phase!r}",
                file=self.rel(file or self.path),
                line=line,
            )
        if tid in self.tasks:
            first = self.tasks[tid]["source"]
            self.diag(
                "error",
                f"duplicate task id {tid!r} (first defined at {first})",
                line=line,
                file=file,
                field="id",
                hint="give every task its own id",
            )
            return tid
        self.tasks[tid] = {
            "id": tid,
            "title": title.strip() or tid,
            "phase": phase,
            "source": self.source(line, file),
            **fields,
        }
        return tid

    def build(self) -> Plan:
        """Return the Plan: empty phases become one task; chained phases get order edges."""
        phase_tasks: dict[str, list[str]] = {pid: [] for pid in self.phases}
        for tid, t in self.tasks.items():
            phase_tasks[t["phase"]].append(tid)
        for pid, ph in self.phases.items():
            if not phase_tasks[pid] and pid not in self.tasks:
                self.tasks[pid] = _task_from_phase(ph, self._phase_task_fields[pid])
                phase_tasks[pid].append(pid)
            if pid in self._chained:
                ids = phase_tasks[pid]
                for prev, cur in itertools.pairwise(ids):
                    t = self.tasks[cur]
                    if not t.get("depends_on"):
                        t["depends_on"] = (prev,)
        phases = tuple(
            Phase(**{**ph, "task_ids": tuple(phase_tasks[pid])}) for pid, ph in self.phases.items()
        )
        # plan order: a phase's own tasks (or the task it became) sit in that phase's place
        tasks = tuple(
            Task(**_tuples(self.tasks[tid])) for pid in self.phases for tid in phase_tasks[pid]
        )
        return Plan(
            name=self.name,
            title=self.title,
            format=self.format,
            path=str(self.path),
            phases=phases,
            tasks=tasks,
            meta=self.meta,
            diagnostics=tuple(self.diagnostics),
        )


_TASK_FIELDS_FROM_PHASE = ("owner", "kind", "acceptance", "blast_radius", "status")


def _task_from_phase(ph: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": ph["id"],
        "title": ph["title"],
        "phase": ph["id"],
        "source": ph["source"],
    }
    for key in _TASK_FIELDS_FROM_PHASE:
        if key in ph:
            task[key] = ph[key]
    task.update(fields)
    return task


def _tuples(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``fields`` with lists turned into tuples (the model is frozen)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    """Return ``items`` without blanks or repeats, in first-seen order."""
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if item:
            seen.setdefault(item, None)
    return tuple(seen)
