"""Human and machine output: one versioned JSON envelope for every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

ENVELOPE_VERSION = 1


def envelope(
    command: str, status: str, data: Any = None, errors: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Return the ``--json`` envelope every command prints."""
    return {
        "version": ENVELOPE_VERSION,
        "command": command,
        "status": status,
        "data": data,
        "errors": list(errors),
    }


def dumps(obj: Any, *, pretty: bool = True) -> str:
    """Return ``obj`` as JSON: indented for a person, compact (and 5x faster) for a pipe."""
    if pretty:
        return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


@dataclass
class Out:
    """Where a command writes: JSON on ``--json``, otherwise text for a person."""

    json_mode: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    err_stream: TextIO = field(default_factory=lambda: sys.stderr)

    def result(
        self,
        command: str,
        data: Any,
        *,
        status: str = "ok",
        human: Callable[[], None] | None = None,
        errors: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Print a command's result: the envelope in JSON mode, else call ``human()``."""
        if self.json_mode:
            text = dumps(envelope(command, status, data, errors), pretty=self.is_tty)
            self.stream.write(text + "\n")
            self.stream.flush()
        elif human is not None:
            human()

    def line(self, text: str = "") -> None:
        """Print a line for a person (suppressed in JSON mode)."""
        if not self.json_mode:
            self.stream.write(text + "\n")
            self.stream.flush()

    def warn(self, text: str) -> None:
        """Print a warning on stderr (in both modes: stdout stays machine-readable)."""
        self.err_stream.write(f"warning: {text}\n")
        self.err_stream.flush()

    @property
    def is_tty(self) -> bool:
        return hasattr(self.stream, "isatty") and self.stream.isatty()


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Return a plain aligned text table (no colours; safe when piped)."""
    cols = [list(map(str, headers)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cols) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cols]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
