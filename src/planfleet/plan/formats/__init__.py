"""Plan readers: one per format, a registry, detection, discovery and loading."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from planfleet.errors import InputError
from planfleet.fsutil import exists
from planfleet.plan import gcpause, links
from planfleet.plan.model import Plan

# Detection order: the most specific shapes first, the loosest (Superpowers) last.
READER_MODULES: tuple[str, ...] = (
    "native",
    "gsd",
    "xml_tasks",
    "maxvision",
    "spec",
    "ai_plans",
    "plan_dir",
    "superpowers",
)

# Folders never searched for plans.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".planfleet",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        "target",
        "dist",
        "build",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".claude",
    }
)


class Reader(Protocol):
    """A plan format: ``name`` is what ``--format`` takes."""

    name: str
    summary: str

    def detect(self, path: Path) -> bool:
        """Return True if ``path`` (a file or folder) is a plan of this format."""
        ...

    def discover(self, repo: Path) -> Iterator[Path]:
        """Yield every plan of this format in ``repo``."""
        ...

    def read(self, path: Path, *, repo: Path) -> Plan:
        """Return the Plan at ``path``; raise InputError naming file and line."""
        ...


@cache
def readers() -> tuple[Reader, ...]:
    """Return every reader, in detection order."""
    # While a reader is being written it may be missing; test_formats checks all 8 exist.
    return tuple(_reader(name) for name in READER_MODULES if _importable(name))


@cache
def _reader(module: str) -> Reader:
    reader: Reader = importlib.import_module(f"planfleet.plan.formats.{module}").READER
    return reader


def _importable(name: str) -> bool:
    return importlib.util.find_spec(f"planfleet.plan.formats.{name}") is not None


def reader_names() -> list[str]:
    return [r.name for r in readers()]


def get_reader(name: str) -> Reader:
    for r in readers():
        if r.name == name:
            return r
    raise InputError(
        f"unknown plan format {name!r}",
        field="--format",
        hint="use one of: " + ", ".join(reader_names()),
    )


def detect(path: Path) -> Reader:
    """Return the reader for ``path``; InputError listing the formats when none fits.

    Readers are imported one at a time, so a plan of an early format never pays for
    importing the rest.
    """
    for name in READER_MODULES:
        if not _importable(name):
            continue
        reader = _reader(name)
        if reader.detect(path):
            return reader
    raise InputError(
        "not a plan in any format planfleet reads",
        file=str(path),
        hint="formats: " + ", ".join(reader_names()) + "; force one with --format",
    )


def load_plan(path: Path, *, repo: Path, format: str | None = None) -> Plan:
    """Read the plan at ``path`` (a file or a plan folder) with the given or detected format."""
    if not exists(path):
        raise InputError("no such file or folder", file=str(path))
    links.check(path, repo, what="plan")
    reader = get_reader(format) if format else detect(path)
    with gcpause.paused():
        return reader.read(path, repo=repo)


@dataclass(frozen=True)
class PlanRef:
    format: str
    path: Path


def discover(repo: Path) -> list[PlanRef]:
    """Return every plan found in ``repo``, each once (the first reader that claims it)."""
    seen: set[Path] = set()
    found: list[PlanRef] = []
    for r in readers():
        for path in r.discover(repo):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(PlanRef(r.name, path))
    return found


def walk(repo: Path, pattern: str, *, max_depth: int = 8) -> Iterator[Path]:
    """Yield paths under ``repo`` matching the glob ``pattern`` by name, skipping SKIP_DIRS."""
    stack = [(repo, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir() and entry.name not in SKIP_DIRS and depth < max_depth:
                stack.append((entry, depth + 1))
            if entry.match(pattern):
                yield entry


def resolve(arg: str, *, repo: Path, format: str | None = None) -> Path:
    """Return the plan path for ``arg``: a path, or a plan name found by discovery."""
    candidate = Path(arg)
    if not candidate.is_absolute():
        for base in (Path.cwd(), repo):
            if exists(base / candidate):
                found = Path(os.path.abspath(base / candidate))
                if links.target(found, repo) is None:
                    return found.resolve()
                # A link out: refused, or (allowed) kept as named, for its format's layout.
                return links.check(found, repo, what="plan")
    elif exists(candidate):
        return candidate
    matches = []
    for ref in discover(repo):
        if format and ref.format != format:
            continue
        names = {
            ref.path.name,
            ref.path.stem,
            ref.path.parent.name
            if ref.path.name in ("plan.md", "task_plan.md", "manifest.md")
            else ref.path.stem,
        }
        if arg in names:
            matches.append(ref)
        else:
            try:
                if load_plan(ref.path, repo=repo, format=ref.format).name == arg:
                    matches.append(ref)
            except InputError:
                continue
    if len(matches) == 1:
        return matches[0].path
    if len(matches) > 1:
        shown = ", ".join(str(m.path) for m in matches[:5])
        raise InputError(f"plan name {arg!r} is ambiguous: {shown}", hint="pass the path instead")
    raise InputError(
        f"no plan file or plan named {arg!r}",
        hint="run `planfleet plan list` to see the plans in this repository",
    )
