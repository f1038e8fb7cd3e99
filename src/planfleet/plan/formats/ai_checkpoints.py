"""The `## Execution Checkpoints` YAML of `.ai/plans` files: how far a plan already ran.

Accepted shapes: a list of ``- phase_1: {status: ...}`` entries, a mapping ``phase_1: ...``,
or a list of ``{phase: 1, status: ...}``; fenced or plain YAML, the heading possibly written
inside the fence. Keys ``phase_1``, ``phase-1``, ``Phase 1`` and ``1`` all name phase ``1``.
"""

from __future__ import annotations

import re
from typing import Any

from planfleet.errors import InputError
from planfleet.ids import slugify
from planfleet.plan.formats.builder import PlanBuilder, status_from_word
from planfleet.plan.formats.markdown import (
    Section,
    fenced_blocks,
)
from planfleet.plan.formats.yamlutil import line_of, load_yaml

_CHECKPOINTS = re.compile(r"^\s*#{1,6}\s*execution checkpoints\s*$", re.I)
_YAMLISH = re.compile(r"^\s*(?:-\s+)?[\w\"'-][\w \"'-]*:(?:\s|$)")
# words executors write that the shared status words do not know
_CHECKPOINT_WORDS = {"partial": "in_progress", "success": "done", "succeeded": "done"}


def is_checkpoints_heading(title: str) -> bool:
    """Return True for the title of an ``Execution Checkpoints`` heading."""
    return bool(_CHECKPOINTS.match("# " + title))


def _checkpoint_yaml(secs: list[Section]) -> tuple[str, int] | None:
    """Return ``(yaml, first line)`` of the Execution Checkpoints, wherever they were written."""
    for sec in secs:
        for line, _, code in fenced_blocks(sec.body):
            lines = code.splitlines()
            first = next((k for k, t in enumerate(lines) if t.strip()), None)
            if first is not None and _CHECKPOINTS.match(lines[first]):
                return "\n".join(lines[first + 1 :]), line + first + 2
    for sec in secs:
        if not is_checkpoints_heading(sec.title):
            continue
        for line, info, code in fenced_blocks(sec.body):
            if info.split()[:1] in ([], ["yaml"], ["yml"]):
                return code, line + 1
        body = sec.body
        start = next((k for k, ln in enumerate(body) if _YAMLISH.match(ln.text)), None)
        if start is None:
            return None
        return "\n".join(ln.text for ln in body[start:]), body[start].number
    return None


def read_checkpoints(b: PlanBuilder, secs: list[Section]) -> dict[str, tuple[Any, int]]:
    """Return ``phase id -> (checkpoint entry, line)``; InputError for malformed YAML."""
    found = _checkpoint_yaml(secs)
    if found is None:
        return {}
    code, first = found
    shown = b.rel(b.path)
    data, lines = load_yaml(code, file=shown, first_line=first)
    if data is None:
        return {}
    entries: list[tuple[Any, Any, tuple[str | int, ...]]] = []  # key, entry, YAML path
    if isinstance(data, dict):
        entries = [(k, v, (k,)) for k, v in data.items()]
    elif isinstance(data, list):
        for n, item in enumerate(data):
            line = line_of(lines, (n,))
            if isinstance(item, dict) and "phase" in item:
                entries.append((item["phase"], item, (n,)))
            elif isinstance(item, dict) and len(item) == 1:
                ((k, v),) = item.items()
                entries.append((k, v, (n, k)))
            else:
                raise InputError(
                    "each checkpoint must be 'phase_N:' with its status under it",
                    file=shown,
                    line=line,
                    field="Execution Checkpoints",
                )
    else:
        raise InputError(
            "Execution Checkpoints must be a YAML list or mapping of phases",
            file=shown,
            line=first,
            field="Execution Checkpoints",
        )
    out: dict[str, tuple[Any, int]] = {}
    for key, value, path in entries:
        m = re.fullmatch(r"(?:phase)?[\s_-]*0*(\d+)", str(key).strip(), re.I)
        pid = str(int(m.group(1))) if m else slugify(str(key))
        # point at the status line when there is one: that is what a warning is about
        out.setdefault(pid, (value, line_of(lines, (*path, "status")) or first))
    return out


def checkpoint_word(word: str) -> str | None:
    """Return the recorded status a checkpoint's status word means, or None if unknown."""
    return _CHECKPOINT_WORDS.get(word.strip().lower()) or status_from_word(word)


def checkpoint_status(b: PlanBuilder, entry: tuple[Any, int] | None) -> tuple[str, dict[str, Any]]:
    """Return the phase status and meta a checkpoint entry records (pending, {} without one)."""
    if entry is None:
        return "pending", {}
    value, line = entry
    record = value if isinstance(value, dict) else {"status": value}
    word = record.get("status")
    if word is None or isinstance(word, (dict, list)):
        b.diag("warning", "checkpoint has no status; treated as pending", line=line, field="status")
        return "pending", {"checkpoint": record}
    word = str(word)
    status = checkpoint_word(word) or b.status(word, line=line)
    meta: dict[str, Any] = {"checkpoint": record}
    if "error" in record:
        meta["error"] = str(record["error"])
    return status, meta
