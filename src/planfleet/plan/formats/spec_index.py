"""The `.spec/plans/README.md` index: each plan's status and when it was last updated.

The engine uses it to pick the most recently updated plan when none is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from planfleet.fsutil import read_text
from planfleet.plan.formats.markdown import (
    Line,
    Section,
    fields,
    link_target,
    normalize_key,
    prose,
    sections,
    strip_code,
)


@dataclass(frozen=True)
class IndexEntry:
    """One plan's row in ``.spec/plans/README.md``."""

    name: str
    status: str | None
    last_updated: str | None
    line: int


def read_index(repo: Path, plans_dir: Path | None = None) -> list[IndexEntry]:
    """Return the entries of ``.spec/plans/README.md`` ([] when there is none).

    Tolerant of a Markdown table (columns named like Plan/Name, Status, Last Updated), a
    list (``- [name](name/plan.md) - Status: X - Last Updated: Y``) or one heading per plan
    with ``- **Status**:`` lines. Raises InputError only if the file cannot be read.
    """
    readme = (plans_dir or repo / ".spec" / "plans") / "README.md"
    if not readme.is_file():
        return []
    text = read_text(readme)
    _, secs = sections(text)
    lines = [Line(i, t) for i, t in enumerate(text.splitlines(), start=1)]
    entries = _index_table(prose(lines)) or _index_list(prose(lines))
    if not entries:
        entries = _index_headings(secs)
    first: dict[str, IndexEntry] = {}
    for entry in entries:
        first.setdefault(entry.name, entry)
    return list(first.values())


_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_INLINE_STATUS = re.compile(r"\bstatus\b\**\s*[:=]\s*\**\s*([^,|;()—–]+)", re.I)
_INLINE_UPDATED = re.compile(
    r"\b(?:last[ _-]?updated|updated)\b\**\s*[:=]\s*\**\s*([^,|;()]+)", re.I
)


def _cells(text: str) -> list[str]:
    inner = text.strip()
    inner = inner.removeprefix("|").removesuffix("|")
    return [c.strip() for c in _CELL_SPLIT.split(inner)]


def _entry_name(cell: str) -> str:
    """Return the plan name a cell names: a link's folder, else its text without markup."""
    target = link_target(cell)
    if target:
        parts = [p for p in target.strip("./").split("/") if p and p not in (".", "plan.md")]
        if parts:
            return parts[-1]
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)
    return strip_code(cell.strip().strip("*_`").strip())


def _index_table(lines: list[Line]) -> list[IndexEntry]:
    out: list[IndexEntry] = []
    cols: dict[str, int] | None = None
    for ln in lines:
        if not ln.text.strip().startswith("|"):
            cols = None
            continue
        cells = _cells(ln.text)
        if cols is None:
            cols = _columns(cells)
            continue
        if all(set(c) <= set(":- ") for c in cells):
            continue
        if "name" not in cols or len(cells) <= cols["name"]:
            continue
        name = _entry_name(cells[cols["name"]])
        if not name:
            continue
        status = _cell(cells, cols.get("status"))
        updated = _cell(cells, cols.get("updated"))
        out.append(IndexEntry(name, status, updated, ln.number))
    return out


def _columns(header: list[str]) -> dict[str, int]:
    cols: dict[str, int] = {}
    for i, cell in enumerate(header):
        key = normalize_key(cell)
        if "name" not in cols and key in ("plan", "name", "plan name", "plans", "folder"):
            cols["name"] = i
        elif "status" not in cols and key in ("status", "state"):
            cols["status"] = i
        elif "updated" not in cols and "updated" in key:
            cols["updated"] = i
    return cols


def _cell(cells: list[str], index: int | None) -> str | None:
    if index is None or index >= len(cells):
        return None
    value = strip_code(cells[index])
    return value or None


def _index_list(lines: list[Line]) -> list[IndexEntry]:
    out: list[IndexEntry] = []
    for ln in lines:
        m = re.match(r"^\s*[-*+]\s+(.*)$", ln.text)
        if not m or not _INLINE_STATUS.search(m.group(1)):
            continue
        item = m.group(1)
        if set(fields([ln])) & {"status", "last updated", "updated"}:
            continue  # "- **Status**: X" under a per-plan heading, not a plan of its own
        link = re.match(r"\s*\[[^\]]*\]\([^)]*\)", item)
        head = link.group(0) if link else re.split(r"\s+[-—–:]\s+|\s*[(|]", item, maxsplit=1)[0]
        name = _entry_name(head)
        status = _INLINE_STATUS.search(item)
        updated = _INLINE_UPDATED.search(item)
        if name:
            out.append(
                IndexEntry(
                    name,
                    strip_code(status.group(1)) if status else None,
                    strip_code(updated.group(1)) if updated else None,
                    ln.number,
                )
            )
    return out


def _index_headings(secs: list[Section]) -> list[IndexEntry]:
    out: list[IndexEntry] = []
    for sec in secs:
        info = fields(sec.body)
        if "status" not in info:
            continue
        updated = info.get("last updated") or info.get("updated")
        out.append(
            IndexEntry(
                _entry_name(sec.title),
                strip_code(info["status"].text) or None,
                (strip_code(updated.text) or None) if updated else None,
                sec.line,
            )
        )
    return out
