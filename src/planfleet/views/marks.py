"""Status marks inside Markdown plans: checkboxes, ``Status:`` lines, done marks on headings.

Each mark is written exactly as the format's reader reads it back, on the line the reader
found it (the plan is re-read before rendering). A mark that already reads as the state
says is left as the user wrote it (``[X]`` stays ``[X]``, ``Status: Done`` stays), so a
render changes only what disagrees with the state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from planfleet.plan import model
from planfleet.plan.formats.builder import status_from_word
from planfleet.plan.formats.markdown import (
    Document,
    Section,
    checkbox_mark,
    field_at,
    parse,
    sections_of,
)
from planfleet.plan.formats.planmd import CHECKBOX_STATUS, task_heading
from planfleet.plan.formats.spec import _DONE_MARKS, _TRAILING_STATUS
from planfleet.plan.formats.superpowers import _DONE_MARK, _STEP
from planfleet.views.facts import (
    BOM,
    WORDS,
    Context,
    Edit,
    guarded,
    phase_view,
    read_doc,
    recorded,
    same_import,
)

_CLOSING_HASHES = re.compile(r"(\s+#+)?\s*$")
_BOX = {"done": "x", "skipped": "-"}  # every other status is an empty box
PHASE_DONE_MARK = "✅"


class Doc:
    """A text file as lines that keep their own endings; edited by 1-based line number."""

    def __init__(self, text: str, bom: bool = False) -> None:
        self.lines = text.splitlines(keepends=True)
        self.bom = bom
        self._structure: Document | None = None
        self._secs: list[Section] | None = None

    @classmethod
    def read(cls, path: Path) -> Doc | None:
        found = read_doc(path)
        return None if found is None else cls(*found)

    def get(self, n: int) -> str:
        """Return line ``n`` without its line ending ('' past the end)."""
        if not 1 <= n <= len(self.lines):
            return ""
        line = self.lines[n - 1]
        return line.splitlines()[0] if line.strip("\r\n") else ""

    def set(self, n: int, body: str) -> None:
        line = self.lines[n - 1]
        self.lines[n - 1] = body + line[len(self.get(n)) :]

    def text(self) -> str:
        return (BOM if self.bom else "") + "".join(self.lines)

    @property
    def structure(self) -> Document:
        """Return the block structure of the text as first read (marks do not change it)."""
        if self._structure is None:
            self._structure = parse("".join(self.lines))
        return self._structure

    @property
    def sections(self) -> list[Section]:
        if self._secs is None:
            self._secs = sections_of(self.structure)[1]
        return self._secs

    def outside(self, n: int) -> bool:
        """Return True if line ``n`` is prose: not code, not an HTML block or comment."""
        line = self.structure.line(n)
        return line is not None and line.prose

    def heading(self, n: int) -> Section | None:
        """Return the section headed at line ``n``, or None if ``n`` is not a heading."""
        return next((s for s in self.sections if s.line == n), None)

    def heading_end(self, n: int) -> int:
        """Return the last line of the section headed at line ``n`` (nested ones included)."""
        level = next((s.level for s in self.sections if s.line == n), 6)
        later = (s.line for s in self.sections if s.line > n and s.level <= level)
        return next(later, len(self.lines) + 1) - 1

    def item_end(self, n: int) -> int:
        """Return the last line of the list item that starts at line ``n``."""
        line = self.structure.line(n)
        return (line.item_end if line is not None else None) or n

    def status_line(self, start: int, end: int) -> tuple[int, int] | None:
        """Return ``(line, value index)`` of the first ``Status:`` field in lines start..end."""
        for k in range(start, end + 1):
            found = field_at(self.get(k)) if self.outside(k) else None
            if found and found[0] == "status":
                return k, found[1]
        return None


def plan_file_edit(ctx: Context, kind: str, render: Callable[[Path, Doc], Edit]) -> list[Edit]:
    """Return the Edit ``render(path, doc)`` makes of the plan file, or why it cannot."""
    path = ctx.path(ctx.plan.path)
    if ctx.plan_error:
        return [Edit(path, kind, error=ctx.plan_error)]

    def run() -> Edit:
        doc = Doc.read(path)
        if doc is None:
            return Edit(path, kind, error="the plan file disappeared; nothing rendered")
        return render(path, doc)

    return [guarded(path, kind, run)]


Marker = Callable[[Doc, model.Task, str], None]


def _norm(title: str) -> str:
    return " ".join(title.split()).casefold()


def render_marks(
    ctx: Context, kind: str, mark: Marker, *, phases: Callable[[Doc], None] | None = None
) -> list[Edit]:
    """Return one Edit per plan file, with ``mark(doc, task, recorded status)`` applied.

    Tasks the state does not know are left alone; so is a task whose title differs from
    the state's (the plan was edited: the line may now be another task), with a warning.
    """
    main = ctx.path(ctx.plan.path)
    if ctx.plan_error:
        return [Edit(main, kind, error=ctx.plan_error)]
    files: dict[str, list[model.Task]] = {}
    for task in ctx.plan.tasks:
        files.setdefault(task.source.file, []).append(task)
    edits = []
    for file, tasks in files.items():
        path = ctx.path(file)

        def render(path: Path = path, tasks: list[model.Task] = tasks) -> Edit:
            doc = Doc.read(path)
            if doc is None:
                return Edit(path, kind, error="the plan file disappeared; nothing rendered")
            warnings = []
            for task in tasks:
                rec = ctx.record(task.id)
                if rec is None or not task.source.line:
                    continue
                if _norm(rec["title"]) != _norm(task.title):
                    warnings.append(
                        f"task {task.id} is now {task.title!r} in the plan but "
                        f"{rec['title']!r} in the run state; its mark was left alone"
                    )
                    continue
                mark(doc, task, recorded(rec["status"]))
            if phases is not None and path.resolve() == main.resolve():
                phases(doc)
            return Edit(path, kind, doc.text(), warnings=tuple(warnings))

        edits.append(guarded(path, kind, render))
    return edits


def set_box(doc: Doc, line: int, want: str) -> bool:
    """Tick or clear the checkbox on ``line``; return False if it holds no checkbox."""
    text = doc.get(line)
    found = checkbox_mark(text)
    if found is None:
        return False
    index, mark = found
    if not same_import(CHECKBOX_STATUS[mark], want):
        doc.set(line, text[:index] + _BOX.get(want, " ") + text[index + 1 :])
    return True


def set_status(doc: Doc, start: int, end: int, want: str) -> bool:
    """Rewrite the first ``Status:`` value in lines start..end; False if there is none."""
    found = doc.status_line(start, end)
    if found is None:
        return False
    line, at = found
    text = doc.get(line)
    if status_from_word(text[at:]) != want:  # a status line can say exactly what it is
        doc.set(line, text[:at] + WORDS[want])
    return True


def _is_task_heading(doc: Doc, line: int) -> bool:
    head = doc.heading(line)
    return bool(head and task_heading(head.title))


def _listed(item_status: bool) -> Marker:
    """Return the marker of `.ai/plans` and plan-dir tasks: a checkbox or a Status line."""

    def mark(doc: Doc, task: model.Task, want: str) -> None:
        line = task.source.line or 0
        if set_box(doc, line, want):
            return
        if _is_task_heading(doc, line):
            set_status(doc, line + 1, doc.heading_end(line), want)
        elif item_status and doc.heading(line) is None:
            set_status(doc, line + 1, doc.item_end(line), want)

    return mark


def listed_marks(ctx: Context) -> list[Edit]:
    """`.ai/plans` and plan-dir tasks: ``- [x] Task 2.1`` boxes and task ``Status:`` lines."""
    return render_marks(ctx, "task-marks", _listed(item_status=ctx.plan.format == "plan-dir"))


def spec_marks(ctx: Context) -> list[Edit]:
    """`.spec` plans: ``- [x]`` for verified tasks, ✅ on the heading of a completed phase."""

    def phases(doc: Doc) -> None:
        for phase in ctx.plan.phases:
            view = phase_view(ctx, phase)
            if view.gate is not None and phase.source.line:
                _spec_phase_mark(doc, phase.source.line, view.status == "complete")

    def mark(doc: Doc, task: model.Task, want: str) -> None:
        set_box(doc, task.source.line or 0, want)

    return render_marks(ctx, "checkboxes", mark, phases=phases)


def _spec_phase_mark(doc: Doc, line: int, complete: bool) -> None:
    if doc.heading(line) is None:
        return
    text = doc.get(line)
    trailing = _TRAILING_STATUS.search(text)
    word = status_from_word(trailing.group(1)) if trailing else None
    marked = any(mark in text for mark in _DONE_MARKS)
    word_done = word == "done"
    if complete and not (marked or word_done):
        if trailing and word is not None:  # "(In Progress)" is out of date: the mark replaces it
            text = text[: trailing.start()]
        doc.set(line, _append(text, PHASE_DONE_MARK))
    elif not complete and (marked or word_done):
        if word_done and trailing:
            text = text[: trailing.start()]
        for mark in _DONE_MARKS:
            text = re.sub(rf"\s*{mark}\ufe0f?", "", text)
        doc.set(line, text)


def _append(heading: str, mark: str) -> str:
    """Return ``heading`` with `` mark`` after its title (before any closing ``#``s)."""
    at = _CLOSING_HASHES.search(heading)
    cut = at.start() if at else len(heading)
    return f"{heading[:cut]} {mark}{heading[cut:]}"


def superpowers_marks(ctx: Context) -> list[Edit]:
    """Superpowers plans: step checkboxes, a task's ``Status:`` line, ✅ on its heading."""

    def mark(doc: Doc, task: model.Task, want: str) -> None:
        line = task.source.line or 0
        end = doc.heading_end(line)
        heading = doc.get(line)
        done_mark = _DONE_MARK.search(heading)
        if done_mark and want != "done":
            doc.set(line, heading[: done_mark.start()])
        has_status = set_status(doc, line + 1, end, want)
        steps = [
            (k, m)
            for k in range(line + 1, end + 1)
            if doc.outside(k) and (m := _STEP.match(doc.get(k))) and m.group("mark") is not None
        ]
        ticked = [m.group("mark") in "xX" for _, m in steps]
        if steps and (want == "done" or all(ticked)):
            for k, m in steps:
                if (m.group("mark") in "xX") != (want == "done"):
                    text = doc.get(k)
                    at = m.start("mark")
                    doc.set(k, text[:at] + ("x" if want == "done" else " ") + text[at + 1 :])
        if want == "done" and not (steps or has_status or done_mark):
            doc.set(line, _append(heading, PHASE_DONE_MARK))

    return render_marks(ctx, "task-marks", mark)
