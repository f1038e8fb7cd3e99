"""`.spec` plans' own records: the plan's entry in `.spec/plans/README.md` (its status,
progress and last update), and the ``Status``/``Last Updated`` lines of ``plan.md``.

The index may be a table (``| Plan | Status | Progress | Last Updated |``), a list
(``- [name](name/plan.md) - Status: X - Last Updated: Y``) or a heading per plan with
``- **Status**:`` lines, as ``formats.spec_index`` reads it. Only the values of the plan's
own entry change; a table without a row for the plan gets one.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from planfleet.plan.formats.markdown import field_at, normalize_key
from planfleet.plan.formats.spec import plan_root
from planfleet.plan.formats.spec_index import (
    _CELL_SPLIT,
    _INLINE_STATUS,
    _INLINE_UPDATED,
    _columns,
    read_index,
)
from planfleet.views.facts import (
    RUN_WORDS,
    Context,
    Edit,
    guarded,
    phase_view,
    short_time,
)
from planfleet.views.marks import Doc, plan_file_edit

KIND = "plan-index"
STATUS_KIND = "plan-status"
# How the index words a run's status (the /bg workflow's own words).
INDEX_WORDS = {
    "running": "Executing",
    "paused": "Paused",
    "completed": "Complete",
    "failed": "Failed",
}


def plan_status(ctx: Context) -> list[Edit]:
    """Return the Edit of ``plan.md``'s own ``Status`` and ``Last Updated`` lines.

    Those are the metadata lines above the first section (with ``Branch``/``Worktree``),
    and the ``Status`` of a ``Background Execution`` section, which the /bg workflow keeps
    under ``## Insights``. A plan without such lines is left as it is.
    """
    return plan_file_edit(ctx, STATUS_KIND, lambda path, doc: _render_status(ctx, path, doc))


def _render_status(ctx: Context, path: Path, doc: Doc) -> Edit:
    values = _values(ctx)
    secs = doc.sections
    # the metadata block: the lines before the first heading, and under a "# Title" heading
    top = secs[1:2] if secs and secs[0].level == 1 else secs[:1]
    end = top[0].line - 1 if top else len(doc.lines)
    updated = values["updated"]
    wanted = {"status": values["status"], "last updated": updated, "updated": updated}
    _set_fields(doc, range(1, end + 1), wanted)
    for sec in secs:
        if normalize_key(sec.title) == "background execution":
            run = {"status": RUN_WORDS[ctx.state["status"]]}
            _set_fields(doc, range(sec.line + 1, doc.heading_end(sec.line) + 1), run)
    return Edit(path, STATUS_KIND, doc.text())


def _set_fields(doc: Doc, lines: range, values: dict[str, str]) -> None:
    """Set the value of the first field line of each key of ``values`` among ``lines``."""
    done: set[str] = set()
    for k in lines:
        field = field_at(doc.get(k)) if doc.outside(k) else None
        if field is None or field[0] not in values:
            continue
        key, at = field
        same = "last updated" if key == "updated" else key  # two spellings of one field
        if same in done:
            continue
        done.add(same)
        text = doc.get(k)
        if text[at:].strip().strip("*_`") != values[key]:
            doc.set(k, text[:at] + values[key])


def index(ctx: Context) -> list[Edit]:
    """Return the Edit of `.spec/plans/README.md` ([] when the plan has no index)."""
    root = plan_root(ctx.path(ctx.plan.path))
    if root is None:
        return []
    readme = root.parent / "README.md"
    if not readme.is_file():
        return []
    return [guarded(readme, KIND, lambda: _render(ctx, readme, root.name))]


def _values(ctx: Context) -> dict[str, str]:
    views = [phase_view(ctx, p) for p in ctx.plan.phases]
    done = sum(v.done for v in views)
    total = sum(len(v.tasks) for v in views)
    return {
        "status": INDEX_WORDS[ctx.state["status"]],
        "updated": short_time(ctx.last_change()),
        "progress": f"{done}/{total}",
    }


def _render(ctx: Context, readme: Path, name: str) -> Edit:
    doc = Doc.read(readme)
    if doc is None:
        return Edit(readme, KIND)
    entry = next((e for e in read_index(ctx.repo, readme.parent) if e.name == name), None)
    values = _values(ctx)
    if entry is not None and _update_row(doc, entry.line, values):
        return Edit(readme, KIND, doc.text())
    if entry is not None and _update_item(doc, entry.line, values):
        return Edit(readme, KIND, doc.text())
    if entry is not None and _update_fields(doc, entry.line, values):
        return Edit(readme, KIND, doc.text())
    if entry is None and _add_row(doc, name, values):
        return Edit(readme, KIND, doc.text())
    return Edit(
        readme, KIND, error=f"no entry for plan {name!r} that can be updated safely; left alone"
    )


def _cell_spans(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` of every cell of a table row (inside the outer pipes)."""
    pipes = [m.start() for m in _CELL_SPLIT.finditer(text)]
    lead = text.lstrip()
    bounds = pipes if lead.startswith("|") else [-1, *pipes]
    if not text.rstrip().endswith("|") or len(bounds) < 2:
        bounds = [*bounds, len(text.rstrip())]
    return [(a + 1, b) for a, b in itertools.pairwise(bounds)]


def _header(doc: Doc, line: int) -> dict[str, int] | None:
    """Return the columns of the table holding row ``line`` (found by walking up), or None."""
    k = line
    while k > 1 and doc.get(k - 1).strip().startswith("|"):
        k -= 1
    cells = [doc.get(k)[a:b].strip() for a, b in _cell_spans(doc.get(k))]
    cols = _columns(cells)
    for i, cell in enumerate(cells):
        if "progress" not in cols and normalize_key(cell) == "progress":
            cols["progress"] = i
    return cols if k != line else None


def _update_row(doc: Doc, line: int, values: dict[str, str]) -> bool:
    text = doc.get(line)
    if not text.strip().startswith("|"):
        return False
    cols = _header(doc, line)
    if cols is None:
        return False
    spans = _cell_spans(text)
    for key in sorted(("status", "updated", "progress"), key=lambda k: -cols.get(k, -1)):
        i = cols.get(key)
        if i is None or i >= len(spans):
            continue
        a, b = spans[i]
        if text[a:b].strip() != values[key]:
            text = f"{text[:a]} {values[key]} {text[b:]}"
    doc.set(line, text)
    return True


def _replace_value(text: str, pattern: re.Pattern[str], value: str) -> str:
    m = pattern.search(text)
    if m is None or m.group(1).strip() == value:
        return text
    end = m.start(1) + len(m.group(1).rstrip())
    return text[: m.start(1)] + value + text[end:]


def _update_item(doc: Doc, line: int, values: dict[str, str]) -> bool:
    text = doc.get(line)
    if not re.match(r"^\s*[-*+]\s+", text) or not _INLINE_STATUS.search(text):
        return False
    text = _replace_value(text, _INLINE_STATUS, values["status"])
    if _INLINE_UPDATED.search(text):
        text = _replace_value(text, _INLINE_UPDATED, values["updated"])
    else:
        text = f"{text.rstrip()} — Last Updated: {values['updated']}"
    doc.set(line, text)
    return True


def _update_fields(doc: Doc, line: int, values: dict[str, str]) -> bool:
    """A heading per plan: rewrite its ``Status`` and ``Last Updated`` field lines."""
    found = False
    for k in range(line + 1, doc.heading_end(line) + 1):
        field = field_at(doc.get(k)) if doc.outside(k) else None
        if field is None or field[0] not in ("status", "last updated", "updated"):
            continue
        key, at = field
        value = values["status"] if key == "status" else values["updated"]
        if doc.get(k)[at:].strip() != value:
            doc.set(k, doc.get(k)[:at] + value)
        found = found or key == "status"
    return found


def _add_row(doc: Doc, name: str, values: dict[str, str]) -> bool:
    """Append a row for the plan to the index table; False if the index has no table."""
    rows = [k for k in range(1, len(doc.lines) + 1) if doc.get(k).strip().startswith("|")]
    if len(rows) < 2 or not doc.outside(rows[0]):
        return False
    cols = _header(doc, rows[1])
    if cols is None or "name" not in cols:
        return False
    last = rows[0]
    while last + 1 in rows:
        last += 1
    width = len(_cell_spans(doc.get(rows[0])))
    cells = [""] * width
    cells[cols["name"]] = f"[{name}]({name}/plan.md)"
    for key in ("status", "updated", "progress"):
        if key in cols and cols[key] < width:
            cells[cols[key]] = values[key]
    ending = doc.lines[last - 1][len(doc.get(last)) :] or "\n"
    if not doc.lines[last - 1].endswith(("\n", "\r")):
        doc.lines[last - 1] += ending
    doc.lines.insert(last, "| " + " | ".join(cells) + " |" + ending)
    return True
