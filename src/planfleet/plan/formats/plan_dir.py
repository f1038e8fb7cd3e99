"""Plan directories: ``task_plan.md`` or ``manifest.md`` plus the spec files they name.

Mapping onto the model:

- The plan is the folder (name = folder name); ``task_plan.md`` is read when both files
  exist. The title is the first ``# `` heading; ``meta`` keeps ``goal``, ``mode``,
  ``status`` and ``confidence`` lines written above the phases.
- Phases are ``## Phase N: Title`` headings (``###`` too), id ``N``; without any, the whole
  file is one phase ``1``. A phase depends on the one before it (phases run in order)
  unless it says ``Depends on: Phase 1`` / ``none``. Phase fields: ``Confidence``
  (high/medium/low, in ``phase.meta``; anything else is a warning), ``Agent``/``Owner``
  (the default for its tasks), ``Verify`` (gate commands).
- Tasks are ``### Task N.M: Title`` headings, else the phase's top-level ``- [ ]`` or
  ``1.`` items (details in indented lines under them); ids ``N.M`` (``Task 3`` → ``N.3``,
  unnumbered items count up). Tasks of a phase are independent unless they say
  ``Depends on: 1.2, Task 1.3``. Task fields: ``Spec``/``Specs`` (or a link in the item),
  ``Files`` (``(new)`` items are created), ``Create``/``Modify`` or ``Files to
  create/modify`` (files not in the repository yet are created), ``Skill``/``Agent``
  (kept in ``task.meta``; the agent is the owner), ``Acceptance``, ``Confidence``,
  ``Verify``, ``Status``, ``Commands``/``Run`` (or a fenced ``sh`` block in the task's own
  text: what the shell runner runs, see ``shellmd``).
- A spec path is looked up in the plan folder, then the repository; each found spec is a
  spec file and is appended to the task's text. A missing spec is an error diagnostic.
- ``progress.md`` in the plan folder (what an earlier run recorded, see ``progress_md``)
  sets the status of tasks and phases the plan file leaves pending.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import is_file, is_within, read_text
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import (
    Facts,
    Line,
    Section,
    code_spans,
    fields,
    fields_outside,
    link_target,
    prose,
    section_text,
    sections,
    split_inline_list,
    strip_code,
    subtree,
    unix_newlines,
)
from planfleet.plan.formats.planmd import (
    CREATE_OR_MODIFY,
    field_texts,
    item_path,
    listed_status,
    listed_task_id,
    phase_blocks,
    phase_refs,
    split_files,
    task_heading,
)
from planfleet.plan.formats.progress_md import PROGRESS_FILE, apply_progress
from planfleet.plan.formats.shellmd import task_commands
from planfleet.plan.model import Plan

PLAN_FILES = ("task_plan.md", "manifest.md")
_EXCLUDED = (".spec", ".ai")  # those folders belong to their own formats
_HEAD = re.compile(r"^ {0,3}#{2,4}\s+(?:phase|task)\s+\d", re.I | re.M)
_ITEM = re.compile(r"^(\s*)(?:[-*+]\s+\[([ xX~-])\]|(\d+)[.)])\s+(.*)$")
_DOTTED = re.compile(r"^(\d+\.\d+)[:.)]?\s+(.*)$")
_TASK_REF = re.compile(r"\b(?:task\s+)?(\d+(?:\.\d+)?)\b", re.I)
CONFIDENCE = ("high", "medium", "low")
SPEC = ("spec", "specs", "spec file", "spec files")
AGENT = ("agent", "owner")
DEPENDS = ("depends on", "dependencies", "depends")


def plan_file(path: Path) -> Path | None:
    """Return the task_plan.md/manifest.md that ``path`` (a folder or that file) names."""
    if path.is_dir():
        return next((path / n for n in PLAN_FILES if (path / n).is_file()), None)
    return path if path.name in PLAN_FILES and path.is_file() else None


class PlanDirReader:
    name = "plan-dir"
    summary = "a folder with task_plan.md or manifest.md plus spec files"

    def detect(self, path: Path) -> bool:
        found = plan_file(path)
        if found is None or any(part in _EXCLUDED for part in found.parts):
            return False
        if found.name == "task_plan.md":
            return True
        try:  # manifest.md is a common name: only one that lists phases or tasks is a plan
            head = found.read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError:
            return False
        return bool(_HEAD.search(head))

    def discover(self, repo: Path) -> Iterator[Path]:
        seen: set[Path] = set()
        for name in PLAN_FILES:
            for path in walk(repo, name):
                folder = path.parent
                rel = folder.relative_to(repo).parts if is_within(folder, repo) else ()
                if folder in seen or any(p in _EXCLUDED for p in rel):
                    continue
                if self.detect(folder):
                    seen.add(folder)
                    yield folder

    def read(self, path: Path, *, repo: Path) -> Plan:
        found = plan_file(path) or (path if path.is_file() else None)
        if found is None:
            raise InputError(
                "no task_plan.md or manifest.md in this folder",
                file=str(path),
                hint="a plan directory holds task_plan.md (or manifest.md) and specs",
            )
        text = read_text(links.check(found, repo, what="plan file", root=path))
        preamble, secs = sections(text)
        title = next((s.title for s in secs if s.level == 1), found.parent.name)
        b = PlanBuilder(
            format="plan-dir", path=found, repo=repo, name=found.parent.name, title=title
        )
        phases = phase_blocks(secs)
        info = fields_outside(preamble, secs, [blk.at for blk in phases])
        b.meta.update(field_texts(info, ("goal", "mode", "status", "confidence")))
        ctx = _Ctx(b, found.parent, repo)
        if not phases:  # a plan without phases is one phase holding every task
            whole = [Section(0, title, 1, list(preamble)), *secs]
            if not _heading_tasks(whole) and not _item_tasks(Facts(whole).body):
                raise InputError(
                    "no phases or tasks found: expected '## Phase 1: Title' "
                    "headings or '### Task 1.1: Title' tasks",
                    file=b.rel(found),
                    hint="see the plan-dir format in the README",
                )
            _phase(ctx, whole, 1, title, None, line=1)
        else:
            prev: str | None = None
            for blk in phases:
                prev = _phase(ctx, blk.secs, blk.number, blk.title, prev, line=blk.secs[0].line)
        progress = found.parent / PROGRESS_FILE
        return apply_progress(b.build(), progress, b.rel(progress))


@dataclass
class _Ctx:
    b: PlanBuilder
    root: Path  # the plan folder
    repo: Path


@dataclass
class _Task:
    number: str
    title: str
    line: int
    text: str
    facts: Facts
    own: list[Line]  # the task's own lines (its heading's text, or its item's details)
    mark: str | None = None


def _phase(
    ctx: _Ctx,
    secs: list[Section],
    number: int,
    title: str,
    prev: str | None,
    *,
    line: int | None,
) -> str:
    """Add the phase ``secs[0]`` (with its nested sections) and its tasks; return its id."""
    b = ctx.b
    task_idx = [n for n, s in enumerate(secs) if n and task_heading(s.title)]
    own: set[int] = set()
    for n in task_idx:
        own.update(range(n, n + 1 + len(subtree(secs, n))))
    facts = Facts(secs, exclude=own)
    deps_line = facts.value(DEPENDS)
    deps = (
        ((prev,) if prev else ())
        if deps_line is None
        else tuple(str(n) for n in phase_refs(deps_line.text))
    )
    agent = facts.value(AGENT)
    meta: dict[str, Any] = {}
    conf = _confidence(b, facts)
    if conf:
        meta["confidence"] = conf
    listed = _heading_tasks(secs) or _item_tasks(facts.body)
    pid = b.add_phase(
        str(number),
        title or f"Phase {number}",
        line=line,
        number=number,
        depends_on=deps,
        owner=strip_code(agent.text) if agent else None,
        gate_commands=_verify(facts),
        acceptance=_acceptance(facts) if listed else (),
        meta=meta,
        task_fields=(
            {} if listed else _task_fields(ctx, facts, section_text(secs, 0), line, secs[0].body)
        ),
    )
    for n, t in enumerate(listed, start=1):
        tid = listed_task_id(pid, t.number, n)
        fields_ = _task_fields(ctx, t.facts, t.text, t.line, t.own)
        status = listed_status(b, t.mark, t.facts.value(("status",)))
        dep_line = t.facts.value(DEPENDS)
        refs = _TASK_REF.findall(dep_line.text) if dep_line else []
        b.add_task(
            tid,
            t.title,
            phase=pid,
            line=t.line,
            status=status,
            depends_on=dedupe(r if "." in r else f"{pid}.{r}" for r in refs),
            owner=fields_.get("meta", {}).get("agent")
            or (strip_code(agent.text) if agent else None),
            **fields_,
        )
    return pid


def _task_fields(
    ctx: _Ctx, facts: Facts, text: str, line: int | None, own: list[Line]
) -> dict[str, Any]:
    """Return a task's files, acceptance, verify, commands, specs (read into its text), meta.

    ``own`` are the task's own lines: a fenced ``sh`` block there is a command.
    """
    create = [ln.text for ln in facts.items(("create", "files to create"))]
    modify = [ln.text for ln in facts.items(("modify", "files to modify"))]
    new, changed = split_files(facts.items(("files",)))
    new_too, changed_too = split_files(facts.items(CREATE_OR_MODIFY), ctx.repo)
    new, changed = new + new_too, changed + changed_too
    # "Spec:" may be written more than once; the first may also carry a list under it
    spec_items = facts.items(SPEC) + [
        Line(v.number, part) for v in facts.every(SPEC)[1:] for part in split_inline_list(v.text)
    ]
    specs = [(item_path(i.text), i.number) for i in spec_items]
    title_link = link_target(text.splitlines()[0]) if text else None
    if title_link and title_link.endswith(".md"):
        specs.insert(0, (title_link, line or 1))
    spec_files, parts = [], [text]
    for spec, sline in specs:
        found = _spec(ctx, spec, sline)
        if found is not None:
            rel, content = found
            spec_files.append(rel)
            parts.append(f"## Spec: {rel}\n\n{unix_newlines(content).strip()}")
    meta: dict[str, Any] = {}
    for key in ("skill", "agent", "confidence"):
        value = facts.value((key,))
        if value is not None and strip_code(value.text):
            meta[key] = strip_code(value.text)
    return {
        "files_create": dedupe([*(item_path(c) for c in create), *(ln.text for ln in new)]),
        "files_modify": dedupe([*(item_path(m) for m in modify), *(ln.text for ln in changed)]),
        "acceptance": _acceptance(facts),
        "verify": _verify(facts),
        "commands": task_commands(facts, own, own_fences=True),
        "spec_files": dedupe(spec_files),
        "text": "\n\n".join(p for p in parts if p),
        "meta": meta,
    }


def _spec(ctx: _Ctx, spec: str, line: int) -> tuple[str, str] | None:
    """Return ``(path relative to the repo, text)`` of a spec; an error diagnostic if absent."""
    b = ctx.b
    for base in (ctx.root, ctx.repo):
        candidate = base / spec
        if not is_file(candidate):
            continue
        # a plan may not feed an agent files from outside (unless the user said so)
        if not is_within(candidate, ctx.repo) and not links.allowed():
            b.diag(
                "error",
                f"spec file {spec} is outside the repository",
                line=line,
                field="spec",
                hint=links.HINT,
            )
            return None
        try:
            return b.rel(candidate), read_text(candidate)
        except InputError as exc:
            b.diag(
                "error", f"spec file {spec}: {exc.message}", line=line, field="spec", hint=exc.hint
            )
            return None
    b.diag(
        "error",
        f"spec file {spec} not found",
        line=line,
        field="spec",
        hint=f"looked in {b.rel(ctx.root)}/ and the repository root",
    )
    return None


def _acceptance(facts: Facts) -> tuple[str, ...]:
    items = facts.items(("acceptance", "acceptance criteria"), split_inline=False)
    return tuple(i.text for i in items if i.text)


def _confidence(b: PlanBuilder, facts: Facts) -> str | None:
    line = facts.value(("confidence",))
    if line is None:
        return None
    word = strip_code(line.text).lower()
    if word not in CONFIDENCE:
        b.diag(
            "warning",
            f"unknown confidence {line.text!r}",
            line=line.number,
            field="confidence",
            hint="use high, medium or low",
        )
    return word or None


def _verify(facts: Facts) -> tuple[str, ...]:
    items = facts.items(("verify", "verification", "test", "tests"))
    return dedupe(c for i in items for c in (code_spans(i.text) or [strip_code(i.text)]))


def _heading_tasks(secs: list[Section]) -> list[_Task]:
    out = []
    for n, sec in enumerate(secs):
        parsed = task_heading(sec.title) if n else None
        if parsed is not None:
            part = [sec, *subtree(secs, n)]
            text = section_text(secs, n)
            out.append(_Task(parsed[0], parsed[1], sec.line, text, Facts(part), sec.body))
    return out


def _item_tasks(body: list[Line]) -> list[_Task]:
    """Return the top-level checkbox or numbered items of ``body`` with their detail lines."""
    out: list[_Task] = []
    after_label = False  # items right under "Acceptance:" belong to that field, not tasks
    for ln in prose(body):
        m = _ITEM.match(ln.text)
        if not ln.text.strip():
            after_label = False
            continue
        if m is None or m.group(1):
            field = fields([ln])
            after_label = after_label or any(not v.text for v in field.values())
            continue
        if after_label:
            continue
        # the item's own lines, as markdown-it ends it (code blocks in it included)
        end = ln.item_end or ln.number
        details = [d for d in body if ln.number < d.number <= end]
        text = m.group(4).strip()
        parsed = task_heading(text)
        dotted = _DOTTED.match(text)
        if parsed:
            number, title = parsed
        elif dotted:  # "- [ ] 2.1 Parse the query"
            number, title = dotted.group(1), dotted.group(2)
        else:  # "3. Add command" numbers within the phase; "- [ ] Foo" counts up
            number, title = m.group(3) or "", text
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).strip()
        detail = Section(6, title, ln.number, details)
        body_text = "\n".join([ln.text.strip(), *(d.text for d in details)]).rstrip()
        out.append(
            _Task(
                number,
                strip_code(title),
                ln.number,
                body_text,
                Facts([Section(6, title, ln.number, []), detail]),
                details,
                mark=m.group(2),
            )
        )
    return out


READER = PlanDirReader()
