"""The one JSON reader: every JSON text planfleet reads is parsed here, within limits.

A file from a hostile or damaged repository must give a clear error, never an internal
one: nesting that would exhaust the recursion limit (of the parser, or later of whatever
walks the value), numbers too long to convert or to hand to the OS (a pid of 4,000
digits), ``NaN`` and infinities (not JSON; they cannot be written back), and texts over the
size limit are all refused here, as :class:`JSONError` (a ``ValueError``) or, through
:func:`loads` and :func:`read`, as an InputError naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from planfleet import fsutil
from planfleet.errors import InputError

MAX_DEPTH = 64  # planfleet's own files nest 6 levels deep; agents' events about 12
MAX_DIGITS = 20  # an integer with more digits is no count, size or pid (2**64 has 20)
MAX_BYTES = fsutil.MAX_TEXT_BYTES


class JSONError(ValueError):
    """A text that is not JSON within planfleet's limits; ``line`` when it is known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise JSONError(f"a number with {len(text.lstrip('-'))} digits (more than {MAX_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONError(f"the number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JSONError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)
_CONTAINERS = (dict, list)


def parse(text: str, *, max_depth: int = MAX_DEPTH, limit: int = MAX_BYTES) -> Any:
    """Return the JSON value of ``text``; JSONError for bad JSON or a broken limit."""
    if len(text) > limit:
        raise JSONError(f"the JSON text has {len(text)} characters, over the {limit} limit")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JSONError(f"not valid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise JSONError(f"nested deeper than {max_depth} levels") from None
    if not _depth_within(value, max_depth):
        raise JSONError(f"nested deeper than {max_depth} levels")
    return value


def _depth_within(value: Any, limit: int) -> bool:
    """Return True if ``value`` nests at most ``limit`` containers deep (no recursion)."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return False
        below: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) in _CONTAINERS:
                    below.append(child)
        level = below
    return True


def loads(text: str, *, file: str, hint: str | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """Return the JSON value of ``text``; InputError naming ``file`` (and the line) if bad."""
    try:
        return parse(text, max_depth=max_depth)
    except JSONError as exc:
        raise InputError(exc.message, file=file, line=exc.line, hint=hint) from None


def read(
    path: Path,
    *,
    display: str | None = None,
    hint: str | None = None,
    limit: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Return the JSON value in the file ``path``; InputError naming it for any problem."""
    text = fsutil.read_text(path, limit=limit, display=display)
    return loads(text, file=display or str(path), hint=hint, max_depth=max_depth)
