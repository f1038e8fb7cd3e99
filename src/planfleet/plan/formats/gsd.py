"""GSD-style phase plans: ``.planning/phases/<NN-slug>/<NN>-<MM>-PLAN.md`` with YAML frontmatter.

One PLAN.md is one planfleet task (GSD runs a whole PLAN per executor agent); its id is the
plan id (``02-01``) and its phase is the phase folder. The PLAN path may be one PLAN.md, a
phase folder, or the ``.planning`` root (then phase K depends on phase K-1). This module finds
the plans and orders them; ``gsd_plan`` reads each PLAN.md.

Mapping:

- ``depends_on`` (``["02-01"]``, or ``["01"]`` for a plan of the same phase) is authoritative.
  Without it, a plan of ``wave`` W depends on every plan of a lower wave in its phase.
  Dependencies on plans outside what was read are dropped when that plan has a SUMMARY, and
  are an error otherwise.
- ``files_modified`` and the ``<files>`` of the ``<task>`` blocks become files to modify;
  ``must_haves.artifacts`` paths become files to create (they must exist afterwards, which
  is what the file gate checks) and are not listed twice.
- ``must_haves.truths``, ``<acceptance_criteria>``, ``<done>``, prose ``<verify>`` lines, the
  ``<verification>`` checklist and ``<success_criteria>`` become acceptance criteria;
  ``<automated>`` commands and code spans in ``<verify>``/``<verification>`` become verify
  commands.
- ``autonomous: false`` (or any ``checkpoint:*`` task) sets ``meta["autonomous"] = False``:
  such a plan needs a person and is never run unattended.
- A sibling ``<NN>-<MM>-SUMMARY.md`` means the plan was executed: status done.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.ids import id_problem, slugify
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder
from planfleet.plan.formats.gsd_plan import read_plan
from planfleet.plan.formats.yamlfront import read_frontmatter
from planfleet.plan.model import Plan

_PLAN_FILE = re.compile(r"^(?P<phase>\d+(?:\.\d+)*)-(?P<plan>\d+)-PLAN\.md$")
_PHASE_DIR = re.compile(r"^(?P<num>\d+(?:\.\d+)*)(?:-(?P<slug>.+))?$")


def _number_key(number: str) -> tuple[int, ...]:
    return tuple(int(part) for part in number.split("."))


def _plan_files(folder: Path) -> list[Path]:
    """Return the ``NN-MM-PLAN.md`` files of ``folder`` that start with frontmatter."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if _PLAN_FILE.match(p.name) and p.is_file() and _opens_fm(p)]


def _opens_fm(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline().lstrip("\ufeff").rstrip() == "---"
    except OSError:
        return False


def _phase_dirs(path: Path, repo: Path | None = None) -> list[Path]:
    """Return the phase folders ``path`` stands for, in phase order (links: see links.follow)."""
    if (path / "phases").is_dir():
        path = path / "phases"
    if _plan_files(path):
        return [path]
    try:
        subs = [
            d
            for d in path.iterdir()
            if d.is_dir()
            and (not d.is_symlink() or links.follow(d, repo, what="phase folder", root=path))
        ]
    except OSError:
        return []
    found = [
        (m.group("num"), d) for d in subs if (m := _PHASE_DIR.match(d.name)) and _plan_files(d)
    ]
    return [d for _, d in sorted(found, key=lambda pair: (_number_key(pair[0]), pair[1].name))]


class GsdReader:
    name = "gsd"
    summary = "GSD phase plans: .planning/phases/*/NN-MM-PLAN.md (wave, depends_on, must_haves)"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return bool(_PLAN_FILE.match(path.name)) and _opens_fm(path)
        return path.is_dir() and bool(_phase_dirs(path))

    def discover(self, repo: Path) -> Iterator[Path]:
        seen: set[Path] = set()
        for path in walk(repo, "*-PLAN.md"):
            folder = path.parent
            if folder not in seen:
                seen.add(folder)
                if _plan_files(folder):
                    yield folder

    def read(self, path: Path, *, repo: Path) -> Plan:
        root = path.resolve()
        name = root.parent.name if root.name == ".planning" else root.name
        if path.is_file():
            name = _PLAN_FILE.sub(r"\g<phase>-\g<plan>", path.name).removesuffix(".md")
        b = PlanBuilder(format=self.name, path=path, repo=repo, name=name, title=name)
        if path.is_file():
            if not _PLAN_FILE.match(path.name):
                raise InputError(
                    "not a GSD plan file name",
                    file=b.rel(path),
                    hint="GSD plans are named <phase>-<plan>-PLAN.md, e.g. 02-01-PLAN.md",
                )
            folders, files = [path.parent], {path.parent: [path]}
        else:
            folders = _phase_dirs(path, repo)
            if not folders:
                raise InputError(
                    "no <phase>-<plan>-PLAN.md files with frontmatter found",
                    file=b.rel(path),
                    hint="expected .planning/phases/NN-name/NN-MM-PLAN.md",
                )
            files = {f: _plan_files(f) for f in folders}
            b.title = _project_title(path) or b.title
        previous: str | None = None
        for folder in folders:
            pid = _add_phase(b, folder, previous)
            plans = [read_plan(b, f) for f in files[folder]]
            _wave_dependencies(plans, folder)
            for plan in plans:
                b.add_task(
                    plan.pop("id"),
                    plan.pop("title"),
                    phase=pid,
                    line=1,
                    file=plan.pop("file"),
                    **{k: v for k, v in plan.items() if not k.startswith("_")},
                )
            previous = pid
        _external_dependencies(b, folders[0].parent)
        return b.build()


def _project_title(path: Path) -> str:
    """Return the first heading of ``.planning/PROJECT.md`` when reading a ``.planning`` root."""
    project = path / "PROJECT.md"
    if not project.is_file():
        return ""
    for line in read_text(project).splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _add_phase(b: PlanBuilder, folder: Path, previous: str | None) -> str:
    m = _PHASE_DIR.match(folder.name)
    number = m.group("num") if m else ""
    pid = folder.name if id_problem(folder.name) is None else slugify(folder.name)
    title = (m.group("slug") or folder.name).replace("-", " ") if m else folder.name
    return b.add_phase(
        pid,
        title,
        line=None,
        file=folder,
        number=int(number) if number.isdigit() else None,
        depends_on=(previous,) if previous else (),
        meta={"gsd_phase": number} if number else {},
    )


def _wave_dependencies(plans: list[dict[str, Any]], folder: Path) -> None:
    """Plans without depends_on wait for every plan of a lower wave of their phase folder."""
    waves = {p["id"]: p["_wave"] for p in plans}
    if len(plans) == 1:  # one PLAN.md was read: its siblings' waves still order it
        waves = {**_sibling_waves(folder), **waves}
    for plan in plans:
        if not plan["_deps_given"]:
            plan["depends_on"] = tuple(i for i, w in waves.items() if w < plan["_wave"])


def _sibling_waves(folder: Path) -> dict[str, int]:
    """Return ``plan id -> wave`` for the readable plans of ``folder`` (broken ones are skipped)."""
    out = {}
    for path in _plan_files(folder):
        try:
            data, _, _, _ = read_frontmatter(read_text(path), file=str(path))
        except InputError:
            continue
        wave = data.get("wave", 1)
        if isinstance(wave, int) and not isinstance(wave, bool):
            out[path.name.removesuffix("-PLAN.md")] = wave
    return out


def _external_dependencies(b: PlanBuilder, phases_dir: Path) -> None:
    """Drop dependencies on plans outside the read set; an error unless they have a SUMMARY."""
    for tid, task in b.tasks.items():
        kept = []
        for dep in task.get("depends_on", ()):
            if dep in b.tasks:
                kept.append(dep)
            elif not any(phases_dir.glob(f"*/{_glob_safe(dep)}-SUMMARY.md")):
                b.diag(
                    "error",
                    f"plan {tid!r} depends on plan {dep!r}, which is not part of "
                    "this plan and has no SUMMARY (not executed yet)",
                    file=b.repo / task["source"].file,
                    line=1,
                    field="depends_on",
                    hint="read the whole .planning folder, or execute that plan first",
                )
        task["depends_on"] = tuple(kept)


def _glob_safe(text: str) -> str:
    return re.sub(r"[\[\]*?]", "_", text)


READER = GsdReader()
