"""`.ai/plans/YYYY-MM-DD.<name>.md` plans: phases with principal owners and checkpoints.

Mapping onto the model:

- The plan name is the ``<name>`` part of the file name, the title its ``# `` heading, and
  ``meta`` holds ``date`` (from the file name), ``status`` (``**Status:** Reviewed - Ready
  for Implementation``), ``created``/``author`` when given, and ``parallel_groups``.
- Phases are ``## Phase N: Title`` (or ``###``) headings, id ``N``. A phase's facts are
  ``**Key:** value`` lines in its body, or sub-headings with a list under them:
  owner (``Principal Owner``/``Owner``/``Agent``), ``Type`` (design/implementation; else a
  title with "design", "architecture" or "research" is design), ``Dependencies``/``Depends
  on`` (``Phase 1, Phase 2``; ``None``), ``Parallel Group`` (else a ``Parallelization``
  section with ``Group A: Phase 1, Phase 2`` lines), ``Acceptance Criteria``, ``Files to
  Create``/``Files to Modify``, ``Files to create/modify`` (``(new)`` items, and files not
  in the repository yet, are created; the others modified), a plain ``Files`` list (only
  ``(new)`` items are created),
  ``Dependencies to Add``, ``Commands``/``Run`` (or a fenced ``sh`` block in the phase's own
  text: what the shell runner runs, see ``shellmd``), ``Blast Radius`` (a code span;
  ``""``, ``all`` or an empty value mean all tests, i.e. ``""``) and ``Verify`` commands.
- A phase becomes one task with all of the above, unless it lists tasks clearly marked as
  such (``#### Task 2.1: Title`` headings or ``- [ ] Task 2.1: Title`` items): those run in
  listed order and inherit the phase's owner, kind and blast radius.
- ``## Execution Checkpoints`` (fenced or plain YAML; the heading may sit inside the fence)
  records partial execution: each ``phase_N`` entry's ``status`` becomes the phase's status
  (``complete`` → done, ``failed`` → failed), the entry is kept in ``phase.meta
  ["checkpoint"]`` and its ``error`` in ``meta["error"]`` of the phase and its one task.
  A ``completed_tasks: [2.1]`` list in an entry records tasks done in a phase that is not
  complete yet (for a phase that is one task, its id: the work is done, the gate is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.plan.formats import walk
from planfleet.plan.formats.ai_checkpoints import (
    checkpoint_status,
    is_checkpoints_heading,
    read_checkpoints,
)
from planfleet.plan.formats.ai_groups import by_group, group_name, parallel_groups
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import (
    Facts,
    Line,
    Section,
    code_spans,
    fenced_blocks,
    fields_outside,
    prose,
    section_text,
    sections,
    strip_code,
    subtree,
)
from planfleet.plan.formats.planmd import (
    CREATE_OR_MODIFY,
    field_texts,
    item_path,
    listed_status,
    listed_task_id,
    no_value,
    phase_blocks,
    phase_refs,
    split_files,
    task_heading,
)
from planfleet.plan.formats.shellmd import task_commands
from planfleet.plan.model import Plan

_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(.+)\.md$")
_DESIGN_TITLE = re.compile(r"\b(design|architecture|research)\b", re.I)
_TASK_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[([ xX~-])\]\s+)?(.*)$")
_TASK_REF = re.compile(r"\b(\d+\.\d+)\b")
_ALL_TESTS = ('""', "''", "all", "all tests", "everything", "*", "full suite", "(all tests)")

_PLAN_FIELDS = ("status", "created", "author", "date")
OWNER = ("principal owner", "owner", "owners", "agent", "assigned to")
KIND = ("type", "phase type", "kind")
DEPENDS = ("dependencies", "depends on", "depends", "prerequisites")
GROUP = ("parallel group", "parallelization group", "parallelization", "group")
ACCEPTANCE = ("acceptance criteria", "acceptance", "success criteria", "done when")
CREATE = ("files to create", "new files", "create")
MODIFY = ("files to modify", "files to change", "modified files", "modify")
ADD_DEPS = ("dependencies to add", "new dependencies", "add dependencies", "packages to add")
BLAST = ("blast radius", "test scope")
VERIFY = ("verify", "verification", "verify commands", "test command", "test commands")


class AiPlansReader:
    name = "ai"
    summary = ".ai/plans/YYYY-MM-DD.<name>.md: phases with owners, groups, checkpoints"

    def detect(self, path: Path) -> bool:
        return (
            path.is_file()
            and bool(_FILE.match(path.name))
            and path.parent.name == "plans"
            and path.parent.parent.name == ".ai"
        )

    def discover(self, repo: Path) -> Iterator[Path]:
        for path in walk(repo, ".ai/plans/*.md"):
            if path.is_file() and _FILE.match(path.name):
                yield path

    def read(self, path: Path, *, repo: Path) -> Plan:
        text = read_text(path)
        m = _FILE.match(path.name)
        name = m.group(2) if m else path.stem
        preamble, secs = sections(text)
        title = next((s.title for s in secs if s.level == 1), name)
        b = PlanBuilder(format="ai", path=path, repo=repo, name=name, title=title)
        phases = phase_blocks(secs)
        if not phases:
            raise InputError(
                "no phases found: expected headings like '## Phase 1: Title'",
                file=b.rel(path),
                hint="each phase is a '## Phase N: Title' heading with its owner, "
                "dependencies and acceptance criteria under it",
            )
        cp_index = next((i for i, s in enumerate(secs) if is_checkpoints_heading(s.title)), None)
        skip = [blk.at for blk in phases] + ([cp_index] if cp_index is not None else [])
        b.meta.update(field_texts(fields_outside(preamble, secs, skip), _PLAN_FIELDS))
        if m:
            b.meta.setdefault("date", m.group(1))
        groups = parallel_groups(b, secs)
        b.meta["parallel_groups"] = {
            g: sorted(set(ids), key=ids.index) for g, ids in by_group(groups).items()
        }
        checkpoints = read_checkpoints(b, secs)
        for blk in phases:
            _phase(b, blk.secs, blk.number, blk.title, groups, checkpoints)
        for key, (_, line) in checkpoints.items():
            if key not in b.phases:
                b.diag(
                    "warning",
                    f"checkpoint for unknown phase {key!r}",
                    line=line,
                    field="Execution Checkpoints",
                )
        return b.build()


@dataclass
class _ListedTask:
    number: str  # "2.1", or "3" (numbered inside its phase)
    title: str
    line: int
    text: str
    facts: Facts | None = None  # a ``#### Task`` heading's own fields
    mark: str | None = None  # a ``- [x] Task`` item's checkbox


def _phase(
    b: PlanBuilder,
    secs: list[Section],
    number: int,
    title: str,
    groups: dict[str, tuple[str, int]],
    checkpoints: dict[str, tuple[Any, int]],
) -> None:
    """Add the phase ``secs[0]`` (``secs`` holds its nested sections) and its tasks."""
    sec, pid = secs[0], str(number)
    task_secs = [n for n, s in enumerate(secs) if n and task_heading(s.title)]
    task_parts: set[int] = set()
    for n in task_secs:
        task_parts.update(range(n, n + 1 + len(subtree(secs, n))))
    facts = Facts(secs, exclude=task_parts)
    kind = _kind(b, facts, title)
    owner_line = facts.value(OWNER)
    owner = (strip_code(owner_line.text) or None) if owner_line else None
    blast = _blast(facts)
    status, meta = checkpoint_status(b, checkpoints.get(pid))
    completed = _completed_tasks(meta.get("checkpoint"))
    own_group = facts.value(GROUP)
    group = (group_name(own_group.text) if own_group else None) or (
        groups[pid][0] if pid in groups else None
    )
    work = _work(facts, b.repo)
    listed = _heading_tasks(secs, task_secs) or _item_tasks(facts.body)
    b.add_phase(
        pid,
        title or f"Phase {number}",
        line=sec.line,
        number=number,
        depends_on=_phase_deps(b, facts, pid),
        owner=owner,
        kind=kind,
        acceptance=_acceptance(facts),
        blast_radius=blast,
        parallel_group=group,
        status=status,
        chain_tasks=True,
        # files a phase lists above its own tasks cannot be split among them: kept as meta
        meta={**meta, **work} if listed else meta,
        task_fields={
            **work,
            "text": section_text(secs, 0),
            "meta": {k: v for k, v in meta.items() if k == "error"},
            # the phase's one task done while its gate is not (the phase tests failed)
            **({"status": "done"} if pid in completed and status != "done" else {}),
        },
    )
    for n, t in enumerate(listed, start=1):
        tfacts = t.facts
        own = listed_status(b, t.mark, tfacts.value(("status",)) if tfacts else None)
        towner = tfacts.value(OWNER) if tfacts else None
        deps = tfacts.value(DEPENDS) if tfacts else None
        tid = listed_task_id(pid, t.number, n)
        if own == "pending" and (status in ("done", "skipped") or tid in completed):
            # a checkpoint that records the phase (or this task) done covers unticked tasks
            own = status if status in ("done", "skipped") else "done"
        b.add_task(
            tid,
            t.title,
            phase=pid,
            line=t.line,
            kind=kind,
            blast_radius=blast,
            text=t.text,
            status=own,
            owner=strip_code(towner.text) if towner else owner,
            acceptance=_acceptance(tfacts) if tfacts else (),
            depends_on=dedupe(_TASK_REF.findall(deps.text)) if deps else (),
            **(_work(tfacts, b.repo) if tfacts else {}),
        )


def _completed_tasks(checkpoint: Any) -> set[str]:
    """Return the task ids a checkpoint's ``completed_tasks`` list names (a partial phase)."""
    listed = checkpoint.get("completed_tasks") if isinstance(checkpoint, dict) else None
    if isinstance(listed, (str, int, float)):
        listed = [listed]
    return {str(t).strip() for t in listed} if isinstance(listed, list) else set()


def _kind(b: PlanBuilder, facts: Facts, title: str) -> str:
    line = facts.value(KIND)
    if line is not None:
        word = strip_code(line.text).lower()
        if "design" in word:
            return "design"
        if "implement" in word or word in ("impl", "code", "build"):
            return "implementation"
        b.diag(
            "warning",
            f"unknown phase type {line.text!r}; treated as implementation",
            line=line.number,
            field="type",
            hint="use Design or Implementation",
        )
    return "design" if _DESIGN_TITLE.search(title) else "implementation"


def _blast(facts: Facts) -> str | None:
    """Return the blast radius: a pattern, ``""`` for all tests, or None when not given."""
    line = facts.value(BLAST)
    if line is None:
        items = facts.items(BLAST)
        if not items:
            return None
        line = items[0]
    spans = code_spans(line.text)
    value = spans[0] if spans else line.text.strip()
    if value.lower() in _ALL_TESTS or value.lower().startswith(("(empty", "empty")):
        return ""
    value = value.strip("\"'") if not spans else value
    return re.split(r"\s+(?:\(|-\s|—|–)", value, maxsplit=1)[0].strip()


def _phase_deps(b: PlanBuilder, facts: Facts, pid: str) -> tuple[str, ...]:
    line = facts.value(DEPENDS)
    items = [line] if line is not None and line.text.strip() else facts.items(DEPENDS)
    deps: list[str] = []
    for item in items:
        refs = phase_refs(item.text)
        if not refs and not no_value(item.text):
            b.diag(
                "warning",
                f"no phase named in dependencies {item.text!r}",
                line=item.number,
                field="dependencies",
                hint="write e.g. 'Phase 1, Phase 2' or 'None'",
            )
        deps.extend(str(n) for n in refs if str(n) != pid)
    return dedupe(deps)


def _acceptance(facts: Facts) -> tuple[str, ...]:
    return tuple(item.text for item in facts.items(ACCEPTANCE, split_inline=False) if item.text)


def _work(facts: Facts, repo: Path) -> dict[str, Any]:
    """Return the files, packages and verify commands ``facts`` lists (only those given)."""
    create = [ln.text for ln in _paths(facts.items(CREATE))]
    modify = [ln.text for ln in _paths(facts.items(MODIFY))]
    new, changed = split_files(facts.items(("files",)))
    new_too, changed_too = split_files(facts.items(CREATE_OR_MODIFY), repo)
    out: dict[str, Any] = {
        "files_create": dedupe([*create, *(ln.text for ln in new + new_too)]),
        "files_modify": dedupe([*modify, *(ln.text for ln in changed + changed_too)]),
        "add_dependencies": dedupe(item_path(i.text) for i in facts.items(ADD_DEPS)),
        "verify": _verify(facts),
        # the phase's (or task heading's) own text, not its sub-sections, may hold a sh block
        "commands": task_commands(facts, facts.secs[0].body, own_fences=True),
    }
    return {k: v for k, v in out.items() if v}


def _paths(items: list[Line]) -> list[Line]:
    return [Line(i.number, p) for i in items if (p := item_path(i.text))]


def _verify(facts: Facts) -> tuple[str, ...]:
    cmds = [c for i in facts.items(VERIFY) for c in (code_spans(i.text) or [strip_code(i.text)])]
    sec = facts.section(VERIFY)
    for _, _, code in fenced_blocks(sec.body) if sec else ():
        cmds.extend(
            ln.strip() for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")
        )
    return dedupe(cmds)


def _heading_tasks(secs: list[Section], idx: list[int]) -> list[_ListedTask]:
    out = []
    for n in idx:
        parsed = task_heading(secs[n].title)
        if parsed is not None:
            part = [secs[n], *subtree(secs, n)]
            out.append(
                _ListedTask(
                    parsed[0], parsed[1], secs[n].line, section_text(secs, n), facts=Facts(part)
                )
            )
    return out


def _item_tasks(body: list[Line]) -> list[_ListedTask]:
    out = []
    for ln in prose(body):
        m = _TASK_ITEM.match(ln.text)
        parsed = task_heading(m.group(2)) if m else None
        if m and parsed:
            out.append(
                _ListedTask(
                    parsed[0], parsed[1], ln.number, ln.text.strip(), mark=m.group(1) or " "
                )
            )
    return out


READER = AiPlansReader()
