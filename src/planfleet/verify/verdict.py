"""What the gates decide about an attempt: each Gate, the Verification, the git facts judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.plan import model


@dataclass(frozen=True)
class Gate:
    """One check and its result; ``evidence`` holds the command, exit code and output tail."""

    name: str
    ok: bool
    message: str
    evidence: dict[str, Any] | None = None
    error_type: str | None = None  # what a failure of this gate is classified as

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "message": self.message}
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if not self.ok and self.error_type:
            out["error_type"] = self.error_type
        return out


@dataclass
class Verification:
    """Everything the gates found about one attempt."""

    ok: bool
    commit: str | None
    gates: list[Gate]
    base: str | None = None  # the commit the attempt started from
    error: dict[str, str] | None = None  # {type, step, message} of the first failing gate
    feedback: str | None = None  # what the next attempt is told
    tests: dict[str, Any] | None = None
    files_created: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)  # changed, but not declared
    warnings: list[str] = field(default_factory=list)
    models: dict[str, float] | None = None  # model id -> cost USD, when the runner knew
    model_mismatch: dict[str, Any] | None = None  # {requested, ran}: another model ran
    vacuous: dict[str, Any] | None = None  # {tests, files}: new tests green without the code
    timings: dict[str, float] | None = None  # {agent_s, gates_s} of the attempt

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "gates"}
        for key in ("models", "model_mismatch", "vacuous", "timings"):
            if data[key] is None:
                del data[key]
        data["gates"] = [g.to_json() for g in self.gates]
        return data


@dataclass
class Attempt:
    """What git says about the attempt, gathered once before any command runs."""

    task: model.Task
    worktree: Path
    branch: str
    base: str
    head: str | None
    commits: int
    changes: list[git.Change]
    dirty: list[str]

    @property
    def design(self) -> bool:
        return self.task.kind == "design"
