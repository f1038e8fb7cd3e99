"""Canonical state JSON: the one way it is written, entry indentation, a parse that never raises."""

from __future__ import annotations

import json
from typing import Any

from planfleet import jsonread

ITEM_SEP = ",\n    "  # between two entries of "tasks" or "events"


def dumps(value: Any) -> str:
    """Return ``value`` as canonical JSON (indent 2, sorted keys, no NaN), without a newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


def indent(text: str) -> str:
    """Return JSON text re-indented to sit at depth 2 (inside "tasks" or "events")."""
    return text.replace("\n", "\n    ")


def loads(text: str) -> Any:
    """Return the JSON value of ``text``, or None when it is not JSON."""
    try:
        return jsonread.parse(text)
    except ValueError:
        return None
