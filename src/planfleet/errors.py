"""The one user-facing error type, its subclasses, and the documented exit codes."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes, documented in ``planfleet --help`` and the README."""

    OK = 0
    FAILED = 1  # the run finished, but some tasks failed or were abandoned
    USAGE = 2  # bad usage or bad input (plan file, flag, id)
    REFUSED = 3  # refused by preflight or a guard
    INTERNAL = 4  # a bug or an unexpected failure of a tool we call
    INTERRUPTED = 130


class PlanfleetError(Exception):
    """An error meant for the user: printed without a traceback.

    ``file``/``line``/``field`` locate bad input; ``hint`` says what to do next.
    """

    exit_code: ExitCode = ExitCode.USAGE
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.hint = hint

    def location(self) -> str:
        """Return ``file:line: field: `` (the parts that are known), or ``""``."""
        parts = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            parts.append(self.field)
        return "".join(f"{p}: " for p in parts)

    def render(self) -> str:
        """Return the one- or two-line message shown to a person."""
        text = f"{self.location()}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        """Return the error as an entry of the JSON envelope's ``errors`` list."""
        out: dict[str, Any] = {"type": self.kind, "message": self.message}
        for key in ("file", "line", "field", "hint"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def __str__(self) -> str:
        return self.render()


class InputError(PlanfleetError):
    """A plan, state or config file (or a flag value) is malformed."""

    kind = "input"


class UsageError(PlanfleetError):
    """The command line itself is wrong."""

    kind = "usage"


class RefusedError(PlanfleetError):
    """A guard or preflight check refused to go on; ``reason`` is a stable code."""

    exit_code = ExitCode.REFUSED
    kind = "refused"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        next_step: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint=next_step)
        self.reason = reason
        self.next_step = next_step
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["reason"] = self.reason
        if self.next_step:
            out["next_step"] = self.next_step
        if self.details:
            out["details"] = self.details
        return out


class CommandError(PlanfleetError):
    """An external command we rely on (git, claude, ...) failed unexpectedly."""

    exit_code = ExitCode.INTERNAL
    kind = "command"

    def __init__(
        self, argv: list[str], returncode: int | None, stdout: str, stderr: str, cwd: str | None
    ) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.cwd = cwd
        shown = " ".join(argv)
        code = "timed out" if returncode is None else f"exit {returncode}"
        message = f"command failed ({code}): {shown}"
        tail = _tail(stderr) or _tail(stdout)
        if tail:
            message += "\n" + "\n".join(f"    {line}" for line in tail.splitlines())
        super().__init__(message)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
