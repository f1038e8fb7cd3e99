"""Reading TOML: ``tomllib`` on Python 3.11+, its backport ``tomli`` on 3.10.

Used for the manifests of the dependencies gate and for planfleet's repository config.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from planfleet.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as _toml

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def loads(text: str) -> dict[str, Any]:
    """Return the TOML document ``text`` parsed; ValueError (with line) when malformed."""
    return _toml.loads(text)


def load_file(path: Path, *, shown: str | None = None) -> dict[str, Any]:
    """Return the TOML file at ``path`` parsed; InputError naming file and line otherwise."""
    name = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}", file=name) from None
    try:
        return loads(text)
    except ValueError as exc:
        m = _AT_LINE.search(str(exc))
        raise InputError(
            f"not valid TOML: {exc}",
            file=name,
            line=int(m.group(1)) if m else None,
            hint="see https://toml.io for the syntax",
        ) from None
