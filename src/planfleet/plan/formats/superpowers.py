"""Superpowers-style implementation plans: a Markdown file of ``### Task N: Title`` sections.

Shape (``docs/plans/2026-03-02-rate-limiter.md``, ``docs/superpowers/plans/*.md``)::

    # Rate Limiter Implementation Plan
    **Goal:** ...   **Architecture:** ...   **Tech Stack:** ...
    ## Chunk 1: Storage                      optional; ``## Phase N`` works too
    ### Task 1: Token bucket
    **Files:**
    - Create: `src/limiter/bucket.py`
    - Modify: `src/limiter/__init__.py:12-40`   (the line range is dropped)
    - Test: `tests/limiter/test_bucket.py`
    **Depends on:** Task 0                   optional; tasks otherwise run in listed order
    - [ ] **Step 1: Write the failing test**  (checkboxes optional; ``- [x]`` = step done)
    Run: `pytest tests/limiter/test_bucket.py -v`
    Expected: FAIL with ...
    ...
    Run: `pytest tests/limiter/test_bucket.py -v`
    Expected: PASS

Mapping: tasks run in order inside one phase (or one phase per ``## Phase``/``## Chunk``
heading, each after the previous). ``Run:`` commands whose ``Expected:`` is not a failure
(and whose step is not "verify it fails") are verify commands; ``git`` commands are not.
A ``**Commands:**`` list (or the fenced ``sh`` block under it) is what the shell runner
runs. ``Test:`` paths are the blast radius (space-joined) and files to create when they do not
exist yet (to modify when they do). All step checkboxes checked = done, some = in progress;
a ``**Status:**`` line or a heading ending in ✅ / "(done)" also records the status.
The agent's text is the plan's Goal/Architecture/Tech Stack lines plus the task section.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import is_file, read_text
from planfleet.ids import slugify
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import (
    Facts,
    Line,
    Section,
    code_spans,
    fenced_blocks,
    fields,
    list_under,
    parse,
    prose,
    sections,
    sections_of,
    strip_code,
)
from planfleet.plan.formats.shellmd import task_commands
from planfleet.plan.model import Plan

# "Task 3: Title", "Task 2. Title", "Task 4 — Title", "Task 1.2: Title", "Task 5"
_SEP = r"\s*(?:(?::|\.(?=\s)|\s[\u2013\u2014-])\s*(?P<title>.*))?$"
_TASK = re.compile(r"^Task\s+(?P<n>\d[\w.-]*?)" + _SEP)
_TASK_LINE = re.compile(r"^ {0,3}#{2,4}\s+Task\s+\d[\w.-]*\s*(?:[:.\u2013\u2014-]|$)", re.M)
_PHASE = re.compile(
    r"^(?P<word>Phase|Chunk|Part|Stage|Milestone)\s+(?P<n>\d[\w.-]*?)" + _SEP,
    re.I,
)
_STEP = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\[(?P<mark>[ xX])\]\s+)?\*\*Step\s+(?P<n>\w+)\s*[:.]?\s*"
    r"(?P<title>[^*]*?)\s*:?\*\*(?P<rest>.*)$",
    re.I,
)
_RUN = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*)?Run(?:\*\*)?\s*:\s*(?:\*\*)?\s*(?P<cmd>.*)$")
_EXPECTED = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*)?Expected(?:\*\*)?\s*:\s*(?:\*\*)?\s*(?P<x>.*)$")
_FILE = re.compile(r"^(?P<verb>[A-Za-z]+)\s*:\s*(?P<rest>.+)$")
_FILES = re.compile(r"^\s*(?:\*\*|__)?Files\s*(?::(?:\*\*|__)|(?:\*\*|__)?:)\s*$", re.I)
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_LINE_RANGE = re.compile(r":\d+(?:-\d+)?$")
# An Expected: line announcing a failure (the red step of test-first), but not "0 failed".
_FAILS = re.compile(r"\bFAIL(?:S|ED|URE)?\b|(?i:\b(?:should|will|to|must)\s+fail\b|^\s*fails?\b)")
_COMMIT = re.compile(r"git\s+commit\b.*?-m\s+(?P<q>[\"'])(?P<msg>.+?)(?P=q)")
_TASK_REF = re.compile(r"^\s*Task\s+", re.I)
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}[-_.]")
_ACTIONS = {"create": "create", "new": "create", "add": "create", "modify": "modify",
            "update": "modify", "edit": "modify", "delete": "modify", "remove": "modify",
            "test": "test", "tests": "test"}  # fmt: skip
# A task heading marked done by hand: "### Task 3: Title ✅" or "... (done)".
_DONE_MARK = re.compile(r"\s*(?:\u2705|\u2714\ufe0f?|\((?:done|complete|completed)\))\s*$", re.I)
_HEADER_KEYS = ("goal", "architecture", "tech stack")
_COMMANDS = ("commands", "shell commands", "commands to run")
_FOREIGN = (".spec", ".ai")  # those readers own plans under .spec/plans and .ai/plans


class SuperpowersReader:
    name = "superpowers"
    summary = "Superpowers-style Markdown plans: ### Task N sections with files, steps, Run:"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix != ".md" or _foreign(path):
            return False
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                head = fh.read(262144)
        except OSError:
            return False
        if not _TASK_LINE.search(head):  # cheap test first; then headings outside fences
            return False
        return any(_TASK.match(sec.title) for sec in sections(head)[1])

    def discover(self, repo: Path) -> Iterator[Path]:
        for path in walk(repo, "*.md"):
            if path.parent.name == "plans" and self.detect(path):
                yield path

    def read(self, path: Path, *, repo: Path) -> Plan:
        text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
        doc = parse(text)
        _, secs = sections_of(doc)
        tasks = [(i, m) for i, s in enumerate(secs) if (m := _TASK.match(s.title))]
        top = next((s for s in secs if s.level == 1), None)
        b = PlanBuilder(
            format=self.name,
            path=path,
            repo=repo,
            name=_DATE_PREFIX.sub("", path.stem),
            title=top.title if top else path.stem,
        )
        if not tasks:
            raise InputError(
                "no '### Task N: title' sections found",
                file=b.rel(path),
                hint="a Superpowers plan has one '### Task N:' heading per task",
            )
        header = fields(top.body) if top else {}
        b.meta.update({k: header[k].text for k in _HEADER_KEYS if k in header})
        context = "\n".join(
            f"**{k.title()}:** {header[k].text}" for k in _HEADER_KEYS if k in header
        )
        all_lines = [ln.text for ln in doc.lines]
        task_level = secs[tasks[0][0]].level
        created: set[str] = set()
        phase_of = _phases(b, secs, tasks, task_level, top.title if top else path.stem)
        for i, m in tasks:
            sec = secs[i]
            if sec.level != task_level:
                b.diag(
                    "warning",
                    f"task heading level {sec.level} differs from the first task's "
                    f"({task_level}); read as a task anyway",
                    line=sec.line,
                    field="heading",
                )
            end = next((s.line for s in secs[i + 1 :] if s.level <= sec.level), len(all_lines) + 1)
            body = doc.lines[sec.line : end - 1]
            section_text = "\n".join(all_lines[sec.line - 1 : end - 1]).strip("\n")
            title = (m.group("title") or "").strip() or sec.title
            task = _task_fields(b, body, repo, f"{context}\n\n{section_text}".strip(), created)
            if _DONE_MARK.search(title):
                title, task["status"] = _DONE_MARK.sub("", title), "done"
            b.add_task(
                f"task-{slugify(m.group('n'))}", title, phase=phase_of[i], line=sec.line, **task
            )
        return b.build()


def _foreign(path: Path) -> bool:
    """Return True for files under ``.spec/plans`` or ``.ai/plans`` (other readers' plans)."""
    return any(p in _FOREIGN and nxt == "plans" for p, nxt in pairwise(path.resolve().parts))


def _phases(
    b: PlanBuilder,
    secs: list[Section],
    tasks: list[tuple[int, re.Match[str]]],
    task_level: int,
    plan_title: str,
) -> dict[int, str]:
    """Add the phases (in order, each after the previous); return task index -> phase id."""
    phase_of: dict[int, str] = {}
    current: str | None = None
    previous: str | None = None
    task_index = {i for i, _ in tasks}
    for i, sec in enumerate(secs):
        m = _PHASE.match(sec.title) if sec.level < task_level else None
        if m:
            pid = f"{m.group('word').lower()}-{slugify(m.group('n'))}"
            current = previous = b.add_phase(
                pid,
                (m.group("title") or "").strip() or sec.title,
                line=sec.line,
                chain_tasks=True,
                depends_on=(previous,) if previous else (),
            )
        elif i in task_index:
            if current is None:
                current = previous = b.add_phase("tasks", plan_title, line=None, chain_tasks=True)
            phase_of[i] = current
    return phase_of


def _task_fields(
    b: PlanBuilder, body: list[Line], repo: Path, text: str, created_before: set[str]
) -> dict[str, Any]:
    create: list[str] = []
    modify: list[str] = []
    tests: list[str] = []
    for item in _files_list(body):
        _file_item(b, item, create, modify, tests)
    for t in tests:  # a test file that exists, or an earlier task creates, is modified
        (modify if t in created_before or is_file(repo / t) else create).append(t)
    created_before.update(create)
    steps = [m for ln in prose(body) if (m := _STEP.match(ln.text))]
    marks = [m.group("mark") for m in steps if m.group("mark") is not None]
    status = "pending"
    if marks and all(mark in "xX" for mark in marks):
        status = "done"
    elif any(mark in "xX" for mark in marks):
        status = "in_progress"
    given = fields(body).get("status")
    if given is not None:
        status = b.status(given.text, line=given.number)
    deps = [f"task-{slugify(_TASK_REF.sub('', d.text))}" for d in list_under(body, "Depends on")]
    commits = [m.group("msg") for _, _, code in fenced_blocks(body) if (m := _COMMIT.search(code))]
    accept = [
        ln.text
        for label in ("Acceptance criteria", "Acceptance", "Success criteria")
        for ln in list_under(body, label)
    ]
    return {
        "files_create": dedupe(create),
        "files_modify": tuple(f for f in dedupe(modify) if f not in create),
        "blast_radius": " ".join(dedupe(tests)) or None,
        "verify": dedupe(_verify_commands(body)),
        # "Run:" lines are verify commands here; the shell runner's are under "Commands:"
        "commands": task_commands(Facts([Section(6, "", 0, body)]), labels=_COMMANDS),
        "acceptance": dedupe(accept),
        "depends_on": dedupe(deps),
        "status": status,
        "text": text,
        "spec_files": (b.rel(b.path),),
        "meta": {
            "steps": [(m.group("title") or m.group("rest")).strip(" *:") for m in steps],
            "steps_done": sum(1 for mark in marks if mark in "xX"),
            **({"commit_message": commits[-1]} if commits else {}),
        },
    }


def _files_list(body: list[Line]) -> list[Line]:
    """Return the bullets under ``**Files:**`` (``list_under`` reads ``- Create: x`` as fields)."""
    lines = prose(body)
    start = next((k for k, ln in enumerate(lines) if _FILES.match(ln.text)), None)
    items: list[Line] = []
    for ln in lines[start + 1 :] if start is not None else ():
        bullet = _BULLET.match(ln.text)
        if bullet:
            items.append(Line(ln.number, bullet.group(1).strip()))
        elif ln.text.strip() or items:
            break
    return items


def _file_item(
    b: PlanBuilder, item: Line, create: list[str], modify: list[str], tests: list[str]
) -> None:
    """Sort one ``- Create: `path``` line into the create, modify or test list."""
    m = _FILE.match(item.text)
    verb, rest = (m.group("verb").lower(), m.group("rest")) if m else ("modify", item.text)
    paths = code_spans(rest) or [strip_code(rest.split(" (")[0])]
    paths = [_LINE_RANGE.sub("", p.split("::")[0]).strip() for p in paths]
    target = {"create": create, "modify": modify, "test": tests}.get(_ACTIONS.get(verb, ""))
    if target is None:
        b.diag(
            "warning",
            f"unknown file action {verb!r}; read as Modify",
            line=item.number,
            field="Files",
            hint="use Create:, Modify: or Test:",
        )
        target = modify
    target.extend(p for p in paths if p)


def _verify_commands(body: list[Line]) -> list[str]:
    """Return the ``Run:`` commands expected to pass (not the red step of a test-first cycle)."""
    blocks = {line: code for line, _, code in fenced_blocks(body)}
    visible = prose(body)
    out: list[str] = []
    step_title = ""
    for k, ln in enumerate(visible):
        step = _STEP.match(ln.text)
        if step:
            step_title = step.group("title") or step.group("rest")
        run = _RUN.match(ln.text)
        if not run:
            continue
        spans = code_spans(run.group("cmd"))
        cmds = spans[:1] or ([run.group("cmd").strip()] if run.group("cmd").strip() else [])
        if not cmds:  # the command is in the fenced block right below
            nxt = next((line for line in blocks if ln.number < line <= ln.number + 2), None)
            cmds = [
                c.strip()
                for c in blocks.get(nxt or -1, "").splitlines()
                if c.strip() and not c.lstrip().startswith("#")
            ]
        expected = ""
        for later in visible[k + 1 : k + 4]:
            if _RUN.match(later.text) or _STEP.match(later.text):
                break
            exp = _EXPECTED.match(later.text)
            if exp:
                expected = exp.group("x")
                break
        red = _FAILS.search(expected) if expected else re.search(r"(?i)\bfail", step_title)
        if not red:
            out += [c for c in cmds if not c.startswith("git ")]
    return out


READER = SuperpowersReader()
