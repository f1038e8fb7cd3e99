"""The one internal model every plan format is read into: Plan, Phase, Task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from planfleet.plan.declared import declared_set

TaskKind = Literal["design", "implementation"]
TASK_KINDS: tuple[str, ...] = ("design", "implementation")

# What a plan file itself may say about a task or phase (imported on first run).
RecordedStatus = Literal["pending", "in_progress", "done", "failed", "blocked", "skipped"]
RECORDED_STATUSES: tuple[str, ...] = (
    "pending",
    "in_progress",
    "done",
    "failed",
    "blocked",
    "skipped",
)

GATE_SUFFIX = ":gate"


def gate_id(phase_id: str) -> str:
    """Return the graph node id of a phase's gate (``:`` never occurs in task ids)."""
    return f"{phase_id}{GATE_SUFFIX}"


def is_gate(node_id: str) -> bool:
    return node_id.endswith(GATE_SUFFIX)


@dataclass(frozen=True)
class Source:
    """Where something was read from: a file (relative to the repo when possible) and line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Diagnostic:
    """A problem found in a plan: ``error`` stops a run, ``warning`` does not."""

    level: Literal["error", "warning"]
    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    hint: str | None = None

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        if self.field:
            where += f"{self.field}: "
        text = f"{self.level}: {where}{self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Task:
    """The schedulable unit: one agent, one worktree, one branch."""

    id: str
    title: str
    phase: str
    source: Source
    kind: TaskKind = "implementation"
    owner: str | None = None
    depends_on: tuple[str, ...] = ()
    files_create: tuple[str, ...] = ()
    files_modify: tuple[str, ...] = ()
    add_dependencies: tuple[str, ...] = ()  # packages the task must add to the manifest
    acceptance: tuple[str, ...] = ()
    verify: tuple[str, ...] = ()  # the user's own commands that must pass
    removes_tests: tuple[str, ...] = ()  # tests it may remove or change (ids, files, globs)
    commands: tuple[str, ...] = ()  # mechanical steps, run by the shell runner
    blast_radius: str | None = None  # test scope; "" means all tests, None means not given
    timeout_s: float | None = None
    max_attempts: int | None = None
    estimate: float | None = None  # relative duration, used for the critical path
    runner: str | None = None  # "local" or "cloud": where it must run (None: either slot)
    text: str = ""  # the slice of the plan this task's agent needs
    spec_files: tuple[str, ...] = ()  # implementation/spec files, relative to the repo
    status: RecordedStatus = "pending"
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def writes(self) -> frozenset[str]:
        """Return the declared write-set (files to create or modify), normalized.

        The one declared set: the scheduler's write clashes, the gate on undeclared
        changes and the merge's deletion guard all read it.
        """
        return declared_set((*self.files_create, *self.files_modify))


@dataclass(frozen=True)
class Phase:
    """A group of tasks with a gate that runs after all of them are merged."""

    id: str
    title: str
    source: Source
    number: int | None = None
    depends_on: tuple[str, ...] = ()  # phase ids
    owner: str | None = None
    kind: TaskKind = "implementation"
    acceptance: tuple[str, ...] = ()
    blast_radius: str | None = None
    gate_commands: tuple[str, ...] = ()  # phase-boundary test commands
    parallel_group: str | None = None
    status: RecordedStatus = "pending"
    task_ids: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Plan:
    """A whole plan, whatever format it was written in."""

    name: str  # a safe id: used in branch names and state file names
    title: str
    format: str
    path: str  # the plan file or directory that was read
    phases: tuple[Phase, ...]
    tasks: tuple[Task, ...]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    diagnostics: tuple[Diagnostic, ...] = ()

    def task(self, task_id: str) -> Task:
        return self._index[0][task_id]

    def phase(self, phase_id: str) -> Phase:
        return self._index[1][phase_id]

    def tasks_of(self, phase_id: str) -> tuple[Task, ...]:
        return self._index[2].get(phase_id, ())

    @cached_property
    def _index(self) -> tuple[dict[str, Task], dict[str, Phase], dict[str, tuple[Task, ...]]]:
        """Tasks and phases by id (the first of a repeated id) and each phase's tasks.

        Built once: looking them up by scanning made reading a plan quadratic.
        """
        tasks: dict[str, Task] = {}
        groups: dict[str, list[Task]] = {}
        for t in self.tasks:
            tasks.setdefault(t.id, t)
            groups.setdefault(t.phase, []).append(t)
        phases: dict[str, Phase] = {}
        for p in self.phases:
            phases.setdefault(p.id, p)
        return tasks, phases, {k: tuple(v) for k, v in groups.items()}

    def first_open_task(self) -> Task | None:
        """Return the first task (in plan order) not recorded as done or skipped."""
        for t in self.tasks:
            if t.status not in ("done", "skipped"):
                return t
        return None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.level == "error")

    @property
    def shared_files(self) -> tuple[str, ...]:
        """Return the paths or globs any task may change (``defaults.shared_files``)."""
        found = self.meta.get("shared_files") or ()
        return tuple(str(f) for f in found) if isinstance(found, (list, tuple)) else ()

    @property
    def strict_files(self) -> bool:
        """Return True if changing an undeclared file fails an attempt (plan default)."""
        return self.meta.get("strict_files") is True

    @property
    def strict_model(self) -> bool:
        """Return True if another model than the one asked for fails an attempt (plan default)."""
        return self.meta.get("strict_model") is True

    @property
    def strict_tests(self) -> bool:
        """Return True if a test that passes without the task's code fails an attempt."""
        return self.meta.get("strict_tests") is True

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.level == "warning")
