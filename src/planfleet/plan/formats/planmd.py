"""Plan vocabulary in Markdown: ``Phase N`` headings and references, ``Task N.M`` titles,
checkbox statuses, and the paths a list item names. Shared by the Markdown plan readers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from planfleet.fsutil import is_file
from planfleet.plan.formats.builder import PlanBuilder
from planfleet.plan.formats.markdown import (
    Line,
    Section,
    code_spans,
    link_target,
    strip_code,
    subtree,
)

# What a checkbox mark records: ``[x]`` done, ``[~]`` in progress, ``[-]`` skipped.
CHECKBOX_STATUS = {"x": "done", "X": "done", "~": "in_progress", "-": "skipped", " ": "pending"}


_PHASE_TITLE = re.compile(
    r"^(?:\*\*|__)?phase\s+(\d{1,6})(?!\.\d)(?:\*\*|__)?(?=$|[\s:.)\-–—])\s*(?:[:.)\-–—]+\s*)?(.*)$",
    re.IGNORECASE,
)
# "Phase 1, Phase 2", "Phases 1-3", "Phase #2", "Phases [1, 2]" (the seed's execution groups)
_PHASE_REF = re.compile(r"\bphases?\s*[#\[]?\s*((?:\d+(?:\s*(?:,|&|and|or|to|-|–)\s*)?)+)", re.I)
_NUMBER_RANGE = re.compile(r"(\d+)(?:\s*(?:-|–|to)\s*(\d+))?")
_NONE_WORDS = ("", "none", "n/a", "-", "(none)", "—", "nothing", "no dependencies")
_MAX_RANGE = 1000  # "Phases 1-9999999" is a typo, not a request for a million ids


def phase_heading(title: str) -> tuple[int, str] | None:
    """Return ``(number, rest)`` for a title like ``Phase 3: Name`` or ``Phase 3 - Name``."""
    m = _PHASE_TITLE.match(title.strip())
    if not m:
        return None
    return int(m.group(1)), m.group(2).strip()


def no_value(value: str) -> bool:
    """Return True for values that say "nothing": ``None``, ``n/a``, ``-``, ``(none)``, blank."""
    return value.strip().strip("`*_").strip().lower().rstrip(".") in _NONE_WORDS


def phase_refs(value: str) -> list[int]:
    """Return the phase numbers ``value`` names: ``Phase 1, Phase 2``, ``Phases 1-3``, ``1, 2``.

    ``None`` (and other "no dependency" words) give []. Numbers outside a ``Phase`` word
    count only when the value is nothing but numbers and separators.
    """
    if no_value(value):
        return []
    text = value.strip().strip("`*_").strip()
    groups = [m.group(1) for m in _PHASE_REF.finditer(text)]
    if not groups and re.fullmatch(r"[\d\s,&;–-]+|[\d\s]+(?:and|or|to)[\d\s]+", text):
        groups = [text]
    out: list[int] = []
    for group in groups:
        for m in _NUMBER_RANGE.finditer(group):
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            span = range(lo, hi + 1) if lo <= hi and hi - lo < _MAX_RANGE else (lo, hi)
            out.extend(n for n in span if n not in out)
    return out


def item_path(text: str) -> str:
    """Return the path an item names: its first code span, link target, or first word."""
    spans = code_spans(text)
    if spans:
        return spans[0]
    target = link_target(text)
    if target:
        return target
    words = text.strip().strip("*_").split()
    return words[0].strip("*_,;:`") if words else ""


_NEW_FILE = re.compile(r"\((?:new|create[sd]?)\b|\bnew file\b|^\s*(?:new|create)\s*:", re.I)
_CHANGED_FILE = re.compile(
    r"\((?:modif(?:y|ied)|existing|edit(?:ed)?|update[sd]?|change[sd]?)\b"
    r"|^\s*(?:modify|edit|update)\s*:",
    re.I,
)
# "**Files to create/modify:**" and its spellings: one list of files to create and to modify
CREATE_OR_MODIFY = (
    "files to create/modify",
    "files to create / modify",
    "files to create or modify",
    "files to create and modify",
    "files to create/update",
    "files to modify/create",
    "files to create/change",
)


def split_files(items: list[Line], repo: Path | None = None) -> tuple[list[Line], list[Line]]:
    """Split a list of files into ``(create, modify)``: ``(new)`` items are created.

    ``(modify)``-style items are modified. Any other item is modified, or, given ``repo``
    (a list that says both, like ``Files to create/modify``), created when no such file
    exists in ``repo`` yet.
    """
    create: list[Line] = []
    modify: list[Line] = []
    for item in items:
        path = item_path(item.text)
        if not path:
            continue
        if _NEW_FILE.search(item.text):
            new = True
        elif _CHANGED_FILE.search(item.text) or repo is None:
            new = False
        else:
            new = not is_file(repo / path)
        (create if new else modify).append(Line(item.number, path))
    return create, modify


_TASK_TITLE = re.compile(
    r"^(?:\*\*|__)?task\s+(\d{1,6}(?:\.\d{1,6})?)(?:\*\*|__)?\s*(?:[:.)\-–—]+\s*)?(?:\*\*|__)?\s*(.*)$",
    re.IGNORECASE,
)


def task_heading(title: str) -> tuple[str, str] | None:
    """Return ``(number, rest)`` for ``Task 2.1: Name`` / ``**Task 3** - Name``, else None."""
    m = _TASK_TITLE.match(title.strip())
    if not m:
        return None
    return m.group(1), m.group(2).strip().strip("*_").strip()


class PhaseBlock(NamedTuple):
    at: int  # index of the phase heading in the list of all sections
    number: int
    title: str  # the heading after "Phase N:"
    secs: list[Section]  # the heading's section first, then the sections nested in it


def phase_blocks(all_sections: list[Section], levels: tuple[int, ...] = (2, 3)) -> list[PhaseBlock]:
    """Return every ``Phase N`` heading (at ``levels``) with the sections that belong to it.

    A phase ends at the next phase heading or where its nested sections end.
    """
    heads = [(i, phase_heading(s.title)) for i, s in enumerate(all_sections) if s.level in levels]
    found = [(i, parsed) for i, parsed in heads if parsed is not None]
    starts = [i for i, _ in found] + [len(all_sections)]
    out = []
    for n, (i, (number, title)) in enumerate(found):
        end = min(starts[n + 1], i + 1 + len(subtree(all_sections, i)))
        out.append(PhaseBlock(i, number, title, all_sections[i:end]))
    return out


def field_texts(info: dict[str, Line], keys: tuple[str, ...]) -> dict[str, str]:
    """Return ``key -> value`` (backticks and emphasis removed) for the ``keys`` given a value."""
    return {k: strip_code(info[k].text) for k in keys if k in info and info[k].text.strip()}


def listed_task_id(phase: str, number: str, position: int) -> str:
    """Return a listed task's id: ``2.1`` as written, ``3`` → ``<phase>.3``, else by position."""
    return number if "." in number else f"{phase}.{number or position}"


def listed_status(b: PlanBuilder, mark: str | None, status: Line | None) -> str:
    """Return a listed task's recorded status: its checkbox, else its ``Status:`` line."""
    if mark:
        return CHECKBOX_STATUS[mark]
    return b.status(status.text, line=status.number) if status else "pending"
