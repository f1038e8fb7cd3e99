"""The orchestrate pipeline's own state: ``.planfleet/runs/<plan>/pipeline.json``.

It records each stage of ``planfleet orchestrate`` and each protocol step of each phase,
so a later run skips what is done and restarts at the step that was interrupted. Writes
happen under a file lock, are validated against ``pipeline.schema.json`` and replace the
file atomically. The engine's task state (``.planfleet/state/<plan>.json``) stays separate.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from planfleet import fsutil, git, jsonread, paths, proc, schemas
from planfleet.errors import InputError, RefusedError, UsageError
from planfleet.plan import formats, model
from planfleet.plan.formats.plan_dir import PLAN_FILES, plan_file
from planfleet.state.records import now_iso

SCHEMA = "pipeline"
SCHEMA_VERSION = 1
STAGES: tuple[str, ...] = ("ingest", "review", "skill_match", "research", "gate", "execute")
# The protocol of a phase, in order (the fix step is three passes: P0+P1, P2, P3).
STEPS: tuple[str, ...] = ("implement", "test", "review", "fix-1", "fix-2", "fix-3", "commit")
FINISHED = ("done", "skipped")
LOCK_TIMEOUT_S = 30.0

Doc = dict[str, Any]


@dataclass(frozen=True)
class PlanDir:
    """A plan directory inside a repository: the folder, its plan file and the plan name."""

    repo: Path
    folder: Path
    file: Path

    @property
    def name(self) -> str:
        return self.folder.name

    def rel(self, path: Path) -> str:
        """Return ``path`` relative to the repository when it is inside it."""
        try:
            return str(path.relative_to(self.repo))
        except ValueError:
            return str(path)


def resolve_plan_dir(arg: str | Path, repo: Path | None = None) -> PlanDir:
    """Return the plan directory ``arg`` names (absolute) in ``repo`` (default: the
    repository holding it); InputError when it is not one."""
    folder = Path(arg).expanduser()
    folder = (folder if folder.is_absolute() else Path.cwd() / folder).resolve()
    if folder.is_file() and folder.name in PLAN_FILES:
        folder = folder.parent
    if not folder.exists():
        raise InputError(
            "plan directory not found",
            file=str(folder),
            hint="pass the folder that holds task_plan.md or manifest.md",
        )
    if not folder.is_dir():
        raise InputError("not a folder", file=str(folder), hint="pass the plan directory")
    found = plan_file(folder)
    if found is None:
        raise InputError(
            "no task_plan.md or manifest.md in this folder",
            file=str(folder),
            hint="a plan directory holds task_plan.md (or manifest.md) plus its spec files",
        )
    repo = repo if repo is not None else git.require_repo(folder)
    if not fsutil.is_within(folder, repo):
        raise InputError(
            f"the plan directory is outside the repository {repo}",
            file=str(folder),
            hint="run planfleet in the repository that holds the plan (-C DIR)",
        )
    return PlanDir(repo, folder, found)


def load_plan(pdir: PlanDir, folder: Path | None = None) -> model.Plan:
    """Return the plan read from ``folder`` (default: the plan directory); InputError on errors."""
    plan = formats.load_plan(folder or pdir.folder, repo=pdir.repo, format="plan-dir")
    if plan.errors:
        d = plan.errors[0]
        raise InputError(d.message, file=d.file, line=d.line, field=d.field, hint=d.hint)
    return plan


def find_phase(plan: model.Plan, wanted: str) -> model.Phase:
    """Return the phase with id or number ``wanted``; UsageError naming the phases otherwise."""
    for phase in plan.phases:
        if phase.id == wanted or str(phase.number) == wanted:
            return phase
    known = ", ".join(p.id for p in plan.phases)
    raise UsageError(f"no phase {wanted!r} in the plan", field="--phase", hint=f"phases: {known}")


def new_record() -> Doc:
    return {"status": "pending", "attempts": 0}


class PipelineStore:
    """``pipeline.json`` of one plan, read and changed under its lock."""

    def __init__(self, pdir: PlanDir) -> None:
        self.pdir = pdir
        self.folder = paths.runs_dir(pdir.repo, pdir.name)
        self.path = self.folder / "pipeline.json"
        self._lock = filelock.FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S)

    def load(self) -> Doc:
        """Return the validated document, or a fresh one when there is none yet."""
        if not self.path.exists():
            return self._fresh()
        doc = jsonread.read(self.path)
        _check(doc, self.path)
        return dict(doc)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Doc]:
        """Yield the document under the lock; validate and write it back afterwards."""
        paths.writable(self.pdir.repo, self.folder, folder=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise RefusedError(
                f"{self.path} stayed locked for {LOCK_TIMEOUT_S:g} s",
                reason="pipeline_locked",
                next_step="another planfleet orchestrate or phase-runner is writing it; wait",
            ) from None
        try:
            doc = self.load()
            yield doc
            doc["updated_at"] = now_iso()
            _check(doc, self.path)
            fsutil.atomic_write(self.path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def running(self, what: str) -> Iterator[None]:
        """Hold the plan's pipeline run lock for ``what``; RefusedError when another holds it."""
        paths.writable(self.pdir.repo, self.folder, folder=True)
        lock = filelock.FileLock(str(self.folder / "pipeline.run.lock"), timeout=0)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RefusedError(
                f"another planfleet orchestrate or phase-runner is working on {self.pdir.name}",
                reason="pipeline_running",
                next_step=f"wait for it; its progress is in {self.pdir.rel(self.path)}",
            ) from None
        try:
            fsutil.atomic_write(
                self.folder / "pipeline.run.json",
                json.dumps({"pid": os.getpid(), "what": what, "since": now_iso()}) + "\n",
            )
            yield
        finally:
            lock.release()

    def restart(self) -> Path | None:
        """Set the current document aside (``pipeline.json.bak``); return the backup path."""
        if not self.path.exists():
            return None
        backup = self.path.with_name(self.path.name + ".bak")
        fsutil.atomic_write(backup, fsutil.read_text(self.path))
        self.path.unlink()
        return backup

    def _fresh(self) -> Doc:
        now = now_iso()
        return {
            "schema_version": SCHEMA_VERSION,
            "plan": {
                "name": self.pdir.name,
                "dir": self.pdir.rel(self.pdir.folder),
                "file": self.pdir.rel(self.pdir.file),
            },
            "created_at": now,
            "updated_at": now,
            "stages": {s: new_record() for s in STAGES},
            "phases": {},
        }

    # -- records --------------------------------------------------------------------------

    def start(self, doc: Doc, record: Doc, *, start: str | None = None) -> None:
        """Mark ``record`` in progress by this process."""
        record.update(
            status="in_progress",
            attempts=int(record.get("attempts", 0)) + 1,
            pid=_pid(),
            started_at=now_iso(),
            finished_at=None,
            message="",
        )
        if start is not None:
            record["start"] = start


def finish(record: Doc, status: str, message: str = "", **extra: Any) -> None:
    """Set ``record`` to a final status with a message and extra fields."""
    record.update(status=status, pid=None, finished_at=now_iso(), message=message, **extra)


def phase_record(doc: Doc, phase: str, mode: str = "classic") -> Doc:
    """Return (created if missing) the record of ``phase``."""
    rec: Doc = doc["phases"].setdefault(
        phase,
        {"status": "pending", "mode": mode, "steps": {}, "findings": {}, "base": None},
    )
    return rec


def step_record(doc: Doc, phase: str, step: str) -> Doc:
    """Return (created if missing) the record of ``step`` of ``phase``."""
    rec: Doc = phase_record(doc, phase)["steps"].setdefault(step, new_record())
    return rec


def live_elsewhere(record: Doc) -> bool:
    """Return True if ``record`` is in progress in another process that still runs."""
    pid = record.get("pid")
    return (
        record.get("status") == "in_progress"
        and isinstance(pid, int)
        and pid != _pid()
        and proc.pid_alive(pid)
    )


def _pid() -> int:
    return os.getpid()


def _check(doc: Any, path: Path) -> None:
    error = schemas.first_error(SCHEMA, doc)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise InputError(
            f"pipeline state does not match its schema at {where}: {error.message}",
            file=str(path),
            hint="restore pipeline.json.bak, or start over with --restart",
        )
