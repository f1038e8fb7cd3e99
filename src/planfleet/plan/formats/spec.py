"""`.spec/plans/<name>/plan.md` plans (the /bg workflow) and their README index.

Mapping onto the model:

- The plan is the folder ``.spec/plans/<name>/`` (``plan.md`` or the folder may be passed);
  its name is the folder name, its title the first ``# `` heading.
- Phases are ``### Phase N: Title`` (or ``## Phase N``) headings; the id is ``N``. A ✅ in
  the heading, or a trailing ``(Done)``-style status word, is the phase's status.
- Tasks are the outermost ``- [ ]`` checkboxes under a phase (nested headings included), ids
  ``N.M`` in listed order unless the item starts with its own ``N.M`` number. ``[x]`` is
  done, ``[~]`` in progress, ``[-]`` skipped. Indented lines under a task are its details;
  a ``Commands:``/``Run:`` list or a fenced ``sh`` block in them is what the shell runner
  runs (``shellmd``).
  Tasks of a phase run in listed order; phase N depends on the phase before it unless it
  has a ``- **Depends on**:`` line (``none`` makes it independent).
- ``implementation/phase-N.md`` is every task's spec file and text (after the task's own
  details). A missing file, or one under 100 bytes, is a warning.
- ``- **Verify**:`` / ``- **Tests**:`` code spans in a phase (on the line or in a list under
  it) are its gate commands; such a value in plain words is an acceptance check.
- Plan meta: ``branch`` and ``worktree`` from the metadata lines (``(none)`` gives None),
  ``status`` and ``last_updated`` from the plan's row in ``.spec/plans/README.md`` (else
  from the plan's own ``Status``/``Last Updated`` lines), ``objective`` when stated.
  The index itself is read by ``spec_index.read_index`` (re-exported here).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from planfleet.errors import InputError
from planfleet.fsutil import is_within, read_text
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe, status_from_word
from planfleet.plan.formats.markdown import (
    Checkbox,
    Facts,
    Line,
    Section,
    checkboxes,
    code_spans,
    fields,
    fields_outside,
    list_under,
    sections,
    strip_code,
    subtree,
    unix_newlines,
)
from planfleet.plan.formats.planmd import (
    CHECKBOX_STATUS,
    no_value,
    phase_blocks,
    phase_refs,
)
from planfleet.plan.formats.shellmd import task_commands
from planfleet.plan.formats.spec_index import IndexEntry as IndexEntry
from planfleet.plan.formats.spec_index import read_index
from planfleet.plan.model import Plan

MIN_IMPLEMENTATION_BYTES = 100
_DONE_MARKS = ("✅", "✔", "☑")
_TRAILING_STATUS = re.compile(r"\s*[(\[]([A-Za-z _-]{2,20})[)\]]\s*$")
VERIFY = ("verify", "tests", "test", "test command")
_TASK_NUMBER = re.compile(r"^(?:\*\*)?(?:task\s+)?(\d+\.\d+)(?:\*\*)?[:.)]?\s+(.*)$", re.I)


def plan_root(path: Path) -> Path | None:
    """Return the ``.spec/plans/<name>`` folder ``path`` names (folder or plan.md), or None."""
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name != "plan.md":
        return None
    if not (folder / "plan.md").is_file():
        return None
    if folder.parent.name == "plans" and folder.parent.parent.name == ".spec":
        return folder
    return None


class SpecReader:
    name = "spec"
    summary = ".spec/plans/<name>/plan.md: ### Phase N, - [ ] tasks, implementation/phase-N.md"

    def detect(self, path: Path) -> bool:
        return plan_root(path) is not None

    def discover(self, repo: Path) -> Iterator[Path]:
        for path in walk(repo, ".spec/plans/*/plan.md"):
            if path.is_file():
                yield path

    def read(self, path: Path, *, repo: Path) -> Plan:
        # --format spec may force a plan.md that lives elsewhere: read it all the same
        plan_file = path / "plan.md" if path.is_dir() else path
        return _read(plan_file, plan_file.parent, repo)


def _read(plan_file: Path, root: Path, repo: Path) -> Plan:
    text = read_text(links.check(plan_file, repo, what="plan file", root=plan_file.parent))
    preamble, secs = sections(text)
    title = next((s.title for s in secs if s.level == 1), "")
    blocks = phase_blocks(secs)
    info = fields_outside(preamble, secs, [blk.at for blk in blocks])
    b = PlanBuilder(format="spec", path=plan_file, repo=repo, name=root.name, title=title)
    _plan_meta(b, info, root, repo)
    if not blocks:
        raise InputError(
            "no phases found: expected headings like '### Phase 1: Title'",
            file=b.rel(plan_file),
            hint="each phase is a '### Phase N: Title' heading followed by '- [ ] task' lines",
        )
    prev: str | None = None
    for blk in blocks:
        prev = _phase(b, blk.secs, _phase_status(blk.number, blk.title), prev, root)
    return b.build()


def _phase_status(number: int, rest: str) -> tuple[int, str, str | None]:
    """Return ``(number, title, status word)``: a ✅ or ``(Done)`` in a heading is a status."""
    word: str | None = None
    for mark in _DONE_MARKS:
        if mark in rest:
            rest, word = rest.replace(mark, ""), "done"
    m = _TRAILING_STATUS.search(rest)
    if m and status_from_word(m.group(1)) is not None:
        rest, word = rest[: m.start()], word or m.group(1)
    return number, rest.strip(" -:–—"), word


def _plan_meta(b: PlanBuilder, info: dict[str, Line], root: Path, repo: Path) -> None:
    """Fill ``b.meta``: branch/worktree lines, then status/last update (the index wins)."""
    for key in ("branch", "worktree"):
        value = info.get(key)
        cleaned = strip_code(value.text) if value else ""
        b.meta[key] = None if no_value(cleaned) else cleaned
    for key, names in (("status", ("status",)), ("last_updated", ("last updated", "updated"))):
        found = next((info[n] for n in names if n in info), None)
        if found is not None and found.text.strip():
            b.meta[key] = strip_code(found.text)
    if "objective" in info:
        b.meta["objective"] = info["objective"].text
    try:
        # only a real .spec/plans folder has an index; a forced plan.md elsewhere has none
        entries = read_index(repo, root.parent) if plan_root(root) else []
    except InputError as exc:
        b.diag("warning", f"plan index not read: {exc.message}", file=exc.file, line=exc.line)
        return
    for entry in entries:
        if entry.name == root.name:
            if entry.status:
                b.meta["status"] = entry.status
            if entry.last_updated:
                b.meta["last_updated"] = entry.last_updated
            break


def _phase(
    b: PlanBuilder,
    secs: list[Section],
    parsed: tuple[int, str, str | None],
    prev: str | None,
    root: Path,
) -> str:
    """Add the phase ``secs[0]`` (``secs`` ends before the next phase) and its tasks."""
    sec = secs[0]
    number, title, word = parsed
    body = [ln for s in (sec, *subtree(secs, 0)) for ln in s.body]
    info = fields(body)
    pid = str(number)
    depends: tuple[str, ...] = (prev,) if prev else ()
    dep_line = info.get("depends on") or info.get("dependencies")
    if dep_line is not None:
        depends = tuple(str(n) for n in phase_refs(dep_line.text))
    gate, checks = _verify(body, info)
    spec_rel, spec_text = _implementation(b, root, number, sec.line)
    pid = b.add_phase(
        pid,
        title or f"Phase {number}",
        line=sec.line,
        number=number,
        depends_on=depends,
        gate_commands=gate,
        acceptance=checks,
        status=b.status(word, line=sec.line),
        chain_tasks=True,
        task_fields={"text": spec_text, "spec_files": spec_rel},
    )
    for m, (cb, details, own) in enumerate(_tasks(body), start=1):
        num = _TASK_NUMBER.match(cb.text)
        tid, task_title = (num.group(1), num.group(2)) if num else (f"{pid}.{m}", cb.text)
        text = "\n\n".join(part for part in (details, spec_text) if part)
        b.add_task(
            tid,
            strip_code(task_title),
            phase=pid,
            line=cb.line,
            text=text,
            spec_files=spec_rel,
            status=CHECKBOX_STATUS[cb.mark],
            commands=task_commands(Facts([Section(6, cb.text, cb.line, own)]), own_fences=True),
        )
    return pid


def _verify(body: list[Line], info: dict[str, Line]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return ``(gate commands, checks)`` of a phase's ``- **Verify**:`` lines.

    Code spans are commands; a value or item in plain words is a check for the agent.
    """
    gate: list[str] = []
    checks: list[str] = []
    for key in VERIFY:
        line = info.get(key)
        if line is None:
            continue
        for item in [line] if line.text.strip() else list_under(body, key):
            spans = code_spans(item.text)
            if spans:
                gate.extend(spans)
            elif not no_value(item.text):
                checks.append(strip_code(item.text))
    return dedupe(gate), dedupe(checks)


def _tasks(body: list[Line]) -> list[tuple[Checkbox, str, list[Line]]]:
    """Return the outermost checkboxes of ``body``, each with its details (text and lines)."""
    boxes = checkboxes(body)
    if not boxes:
        return []
    base = min(cb.indent for cb in boxes)
    out = []
    for cb in (cb for cb in boxes if cb.indent == base):
        own = [ln for ln in body if cb.line < ln.number <= cb.end]
        details = textwrap.dedent("\n".join(ln.text[base:] for ln in own)).strip("\n")
        out.append((cb, details, own))
    return out


def _implementation(
    b: PlanBuilder, root: Path, number: int, line: int
) -> tuple[tuple[str, ...], str]:
    """Return ``(spec_files, text)`` of ``implementation/phase-N.md``; warn when unusable."""
    path = root / "implementation" / f"phase-{number}.md"
    shown = f"implementation/phase-{number}.md"
    hint = f"write the phase's implementation spec in {b.rel(path)}"
    if not path.is_file():
        b.diag(
            "warning",
            f"implementation file {shown} is missing",
            line=line,
            field="implementation",
            hint=hint,
        )
        return (), ""
    # A link out of the repository and the plan folder would feed an agent someone else's file.
    if not (is_within(path, b.repo) or is_within(path, root) or links.allowed()):
        b.diag(
            "error",
            f"implementation file {shown} links outside the repository",
            file=path,
            field="implementation",
            hint=links.HINT,
        )
        return (), ""
    try:
        text = read_text(path)
    except InputError as exc:
        b.diag(
            "error",
            f"implementation file {shown}: {exc.message}",
            file=path,
            line=exc.line,
            field="implementation",
            hint=exc.hint,
        )
        return (), ""
    size = len(text.encode("utf-8"))
    if size < MIN_IMPLEMENTATION_BYTES:
        b.diag(
            "warning",
            f"implementation file {shown} has only {size} bytes "
            f"(at least {MIN_IMPLEMENTATION_BYTES} expected)",
            line=line,
            field="implementation",
            hint=hint,
        )
    return (b.rel(path),), unix_newlines(text).strip()


READER = SpecReader()
