"""`.maxvision/phase-N/plans/*.md` plan files with YAML frontmatter.

Mapping onto the model:

- The plan is the ``.maxvision`` folder (all phases, name ``maxvision``), one
  ``.maxvision/phase-N`` folder (name ``maxvision-phase-N``) or one plan file (name
  ``maxvision-phase-N-<stem>``).
- Phases are the ``phase-N`` folders (``phase-03`` and ``phase-3-auth`` too), id ``N``,
  in number order; each depends on the phase before it in the plan. A folder without plan
  files is skipped with a warning (it has nothing to run yet).
- Tasks are the ``plans/*.md`` files (not a ``SUMMARY.md`` or ``*-SUMMARY.md`` an executor
  wrote), id ``N.<file stem, slugified>``, independent of each
  other unless their frontmatter says ``depends_on`` (stems, file names or full ids).
  The task's text is the body, its spec file the plan file itself.
- Frontmatter: ``status`` (none/``pending`` → pending, ``completed`` → done, ``blocked``,
  ``in_progress``; an unknown word is a warning), ``title`` (else the first heading, else
  the stem), ``files_modified``/``files_created``, ``depends_on``, ``verify``,
  ``acceptance`` (or a list ``must_haves``), ``owner``/``agent``, ``type``/``kind``,
  ``blast_radius`` and ``commands`` (what the shell runner runs; a ``Commands:`` list or a
  ``## Commands`` section in the body adds to them). Every other key is kept in ``task.meta``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import is_within, read_text
from planfleet.ids import MAX_ID_LENGTH, slugify
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.markdown import Facts, Section, sections, unix_newlines
from planfleet.plan.formats.shellmd import task_commands
from planfleet.plan.formats.yamlfront import read_frontmatter
from planfleet.plan.formats.yamlutil import Path_, line_of
from planfleet.plan.model import Plan

ROOT = ".maxvision"
# what an executor writes next to the plans when it is done ("SUMMARY.md", "plan-001-SUMMARY.md")
_SUMMARY = re.compile(r"(?:^|[-_.])summary$", re.I)
_PHASE_DIR = re.compile(r"^phase-0*(\d{1,6})(?:[-_.](.+))?$", re.I)
_KNOWN = {
    "title": "title",
    "status": "status",
    "files_modified": "files_modify",
    "files_modify": "files_modify",
    "files_created": "files_create",
    "files_create": "files_create",
    "depends_on": "depends_on",
    "verify": "verify",
    "acceptance": "acceptance",
    "acceptance_criteria": "acceptance",
    "owner": "owner",
    "agent": "owner",
    "type": "kind",
    "kind": "kind",
    "blast_radius": "blast_radius",
    "commands": "commands",
}


def _phase_number(folder: Path) -> int | None:
    m = _PHASE_DIR.match(folder.name)
    return int(m.group(1)) if m and folder.is_dir() else None


def _plan_files(phase_dir: Path) -> list[Path]:
    """Return the plan files of a phase: its ``plans/*.md``, but not executors' summaries."""
    plans = phase_dir / "plans"
    if not plans.is_dir():
        return []
    return sorted(
        p
        for p in plans.iterdir()
        if p.suffix == ".md" and p.is_file() and not _SUMMARY.search(p.stem)
    )


def _phase_dirs(root: Path) -> list[tuple[int, Path]]:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    found = [(n, p) for p in entries if (n := _phase_number(p)) is not None]
    return sorted(found, key=lambda item: item[0])


class MaxvisionReader:
    name = "maxvision"
    summary = ".maxvision/phase-N/plans/*.md: one task per plan file, frontmatter status"

    def detect(self, path: Path) -> bool:
        if path.is_dir() and path.name == ROOT:
            return any(_plan_files(p) for _, p in _phase_dirs(path))
        if path.is_dir() and path.parent.name == ROOT:
            return _phase_number(path) is not None
        return (
            path.is_file()
            and path.suffix == ".md"
            and not _SUMMARY.search(path.stem)
            and path.parent.name == "plans"
            and _phase_number(path.parent.parent) is not None
            and path.parent.parent.parent.name == ROOT
        )

    def discover(self, repo: Path) -> Iterator[Path]:
        for path in walk(repo, ROOT):
            if self.detect(path):
                yield path

    def read(self, path: Path, *, repo: Path) -> Plan:
        only: Path | None = None
        if path.is_file():
            only, phase_dir = path, path.parent.parent
            phases = [(_phase_number(phase_dir) or 0, phase_dir)]
            name = f"maxvision-phase-{phases[0][0]}-{path.stem}"
        elif _phase_number(path) is not None:
            phases = [(_phase_number(path) or 0, path)]
            name = f"maxvision-phase-{phases[0][0]}"
        else:
            phases = _phase_dirs(path)
            name = "maxvision"
        b = PlanBuilder(format="maxvision", path=path, repo=repo, name=name, title="")
        if not phases:
            raise InputError(
                "no phase-N folders found",
                file=b.rel(path),
                hint="plans live in .maxvision/phase-N/plans/*.md",
            )
        chosen = [(n, folder, [only] if only else _plan_files(folder)) for n, folder in phases]
        ids = {_task_id(str(n), f.stem) for n, _, files in chosen for f in files}
        # ids of plans on disk but outside what was asked for: dependencies on them are dropped
        outside = {
            _task_id(str(n), f.stem)
            for n, folder in _phase_dirs(phases[0][1].parent)
            for f in _plan_files(folder)
        } - ids
        prev: str | None = None
        for number, folder, files in chosen:
            if not files:
                b.diag(
                    "warning",
                    f"{folder.name} has no plans/*.md files; phase skipped",
                    file=folder,
                    field="phase",
                )
                continue
            pid = b.add_phase(
                str(number),
                _phase_title(number, folder),
                line=None,
                file=folder,
                number=number,
                depends_on=(prev,) if prev else (),
            )
            for file in files:
                # A link out of the repository and the plan folder would feed an agent
                # someone else's file.
                if not (is_within(file, repo) or is_within(file, path) or links.allowed()):
                    b.diag(
                        "error",
                        f"plan file {file.name} links outside the repository",
                        file=file,
                        field="plan",
                        hint=links.HINT,
                    )
                    continue
                _task(b, pid, file, ids, outside)
            prev = pid
        if not b.phases:
            raise InputError(
                "no plan files found in any phase-N/plans folder",
                file=b.rel(path),
                hint="add .maxvision/phase-N/plans/<plan>.md files",
            )
        numbers = [int(p) for p in b.phases]
        b.title = (
            f"maxvision phase {numbers[0]}"
            if len(numbers) == 1
            else f"maxvision phases {numbers[0]}–{numbers[-1]}"
        )
        if only is not None:
            b.title = b.tasks[next(iter(b.tasks))]["title"]
        return b.build()


def _phase_title(number: int, folder: Path) -> str:
    m = _PHASE_DIR.match(folder.name)
    label = m.group(2) if m and m.group(2) else ""
    return f"Phase {number}: {label.replace('-', ' ')}" if label else f"Phase {number}"


def _task_id(pid: str, stem: str) -> str:
    prefix = f"{pid}."
    return prefix + slugify(stem, fallback="plan")[: MAX_ID_LENGTH - len(prefix)].rstrip("-._")


def _task(b: PlanBuilder, pid: str, file: Path, ids: set[str], outside: set[str]) -> None:
    shown = b.rel(file)
    text = read_text(file)
    data, lines, body, body_first = read_frontmatter(text, file=shown)
    got = _Fields(data, lines, shown)
    preamble, secs = sections(body, body_first)
    heading = next((s.title for s in secs if s.level <= 2), None)
    title = got.string("title") or heading or file.stem
    status_line = line_of(lines, ("status",)) or 1
    word = data.get("status")
    status = b.status(None if word is None else str(word), line=status_line, file=file)
    kind = (got.string("type") or got.string("kind") or "implementation").lower()
    if kind not in ("design", "implementation"):
        b.diag(
            "warning",
            f"unknown type {kind!r}; treated as implementation",
            file=file,
            line=line_of(lines, ("type",)) or line_of(lines, ("kind",)),
            field="type",
        )
        kind = "implementation"
    must = data.get("must_haves")
    acceptance = got.strings("acceptance") + got.strings("acceptance_criteria")
    if isinstance(must, list):
        acceptance += got.strings("must_haves")
    b.add_task(
        _task_id(pid, file.stem),
        title,
        phase=pid,
        line=1,
        file=file,
        status=status,
        kind=kind,
        owner=got.string("owner") or got.string("agent"),
        files_modify=dedupe(got.strings("files_modified") + got.strings("files_modify")),
        files_create=dedupe(got.strings("files_created") + got.strings("files_create")),
        depends_on=_deps(b, pid, got, ids, outside, file),
        verify=tuple(got.strings("verify")),
        commands=(
            *got.strings("commands"),
            *task_commands(Facts([Section(0, title, body_first, preamble), *secs])),
        ),
        acceptance=tuple(acceptance),
        blast_radius="" if data.get("blast_radius") == "" else got.string("blast_radius"),
        text=unix_newlines(body).strip(),
        spec_files=(shown,),
        meta={
            k: v
            for k, v in data.items()
            if k not in _KNOWN and not (k == "must_haves" and isinstance(v, list))
        },
    )


def _deps(
    b: PlanBuilder, pid: str, got: _Fields, ids: set[str], outside: set[str], file: Path
) -> tuple[str, ...]:
    """Return the task ids ``depends_on`` names; plans outside this plan are only warned of."""
    out = []
    for dep in got.strings("depends_on"):
        tid = _dep_id(pid, dep, ids)
        if tid in outside:
            b.diag(
                "warning",
                f"depends on {tid!r}, which is outside this plan; not enforced",
                file=file,
                line=line_of(got.lines, ("depends_on",)),
                field="depends_on",
                hint="run the whole .maxvision folder to order it after that plan",
            )
            continue
        out.append(tid)
    return dedupe(out)


def _dep_id(pid: str, dep: str, ids: set[str]) -> str:
    """Return the task id a ``depends_on`` entry names (same phase unless a full id)."""
    dep = dep.strip()
    if dep in ids:
        return dep
    m = re.match(r"^(?:\.maxvision/)?phase-0*(\d+)[^/]*/(?:plans/)?(.+?)(?:\.md)?$", dep)
    if m:
        return _task_id(str(int(m.group(1))), m.group(2))
    if re.match(r"^\d+\.", dep):
        return dep
    return _task_id(pid, dep.removesuffix(".md"))


class _Fields:
    """Typed access to frontmatter values: wrong types raise InputError with the line."""

    def __init__(self, data: dict[str, Any], lines: dict[Path_, int], file: str) -> None:
        self.data, self.lines, self.file = data, lines, file

    def _bad(self, key: str, what: str) -> InputError:
        return InputError(
            f"{key!r} must be {what}", file=self.file, line=line_of(self.lines, (key,)), field=key
        )

    def string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value).strip() or None
        raise self._bad(key, "a string")

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value.strip() else []
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value if str(v).strip()]
        raise self._bad(key, "a string or a list of strings")


READER = MaxvisionReader()
