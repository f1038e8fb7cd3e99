"""XML task directories: ``<ID>-<slug>.xml`` files in layer folders, plus ``execute-state.json``.

Layout (the PLAN path is the tasks directory, or one task file)::

    docs/tasks/billing/
      1-foundation/L1-001-create-enums.xml
      1-foundation/L1-002-invoice-model.xml
      2-api/L2-001-invoice-routes.xml
      execute-state.json                  optional: what an earlier batch run recorded

Each layer folder ``N-name`` is a phase; layer N depends on the layer before it (so the
phase gate runs between layers). Task-level dependencies come only from the task files.
A task file (read by ``xml_taskfile``; elements in any order; unknown ones give a warning
but stay in the text)::

    <task id="L1-002" kind="implementation">       id must match the file name prefix
      <title>Invoice model</title>
      <layer>1-foundation</layer>                   checked against the folder
      <agent>backend</agent>                        or <owner>
      <kind>implementation</kind>                   or design (also an attribute)
      <estimate>2h</estimate>                       a number, optionally m / h / d
      <timeout>900</timeout>                        seconds
      <max-attempts>3</max-attempts>
      <status>pending</status>                      execute-state.json overrides it
      <description>...</description>  <context>...</context>
      <dependencies><task>L1-001</task><package>pydantic>=2</package></dependencies>
      <depends-on>L1-001, L1-003</depends-on>       the same, as a list
      <files><create>app/invoice.py</create><modify>app/__init__.py</modify></files>
      <packages><package>...</package></packages>   or <dependencies-to-add>
      <acceptance-criteria><criterion>...</criterion></acceptance-criteria>
      <verification><command>pytest tests/invoice -q</command><check>prose</check></verification>
      <test-scope>tests/invoice</test-scope>        the blast radius
      <commands><command>make models</command></commands>   what the shell runner runs
    </task>

``execute-state.json`` (see ``execute_state``) sets the recorded statuses, and its worktree,
attempts and retry feedback go into ``task.meta``. Reading one task file keeps only the
dependencies on tasks recorded as completed out of the graph; any other is an error.
DTDs and entities are refused (no entity expansion, no external files are read).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from planfleet.errors import InputError
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder
from planfleet.plan.formats.execute_state import STATE_FILE, apply_state, drop_external, read_state
from planfleet.plan.formats.xml_taskfile import TASK_FILE, Parsed, parse_file
from planfleet.plan.model import Plan

LAYER = re.compile(r"^(\d+)(?:-(.+))?$")
_TASK_ROOT = re.compile(r"<task[\s>]")


class XmlTasksReader:
    name = "xml-tasks"
    summary = "a tasks directory of <ID>-<slug>.xml files in layer folders, execute-state.json"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix == ".xml" and _has_task_root(path)
        if not path.is_dir():
            return False
        if (path / STATE_FILE).is_file():
            return True
        return any(TASK_FILE.match(f.name) and _has_task_root(f) for _, f in _xml_files(path))

    def discover(self, repo: Path) -> Iterator[Path]:
        seen: set[Path] = set()
        for path in walk(repo, "*.xml"):
            if not TASK_FILE.match(path.name):
                continue
            root = path.parent.parent if LAYER.match(path.parent.name) else path.parent
            if root not in seen:
                seen.add(root)
                if self.detect(root):
                    yield root

    def read(self, path: Path, *, repo: Path) -> Plan:
        single = path.is_file()
        root = path.parent if single else path
        if single and LAYER.match(root.name):
            root = root.parent
        b = PlanBuilder(
            format=self.name,
            path=path,
            repo=repo,
            name=path.stem if single else path.name,
            title=path.name,
        )
        files = [(path.parent, path)] if single else list(_xml_files(path, repo))
        parsed = [p for folder, f in files if (p := parse_file(b, f, folder, root)) is not None]
        if not parsed:
            raise InputError(
                "no task files (<ID>-<slug>.xml with a <task> root) found",
                file=b.rel(path),
                hint="put task files in layer folders like 1-foundation/L1-001-create-enums.xml",
            )
        state_path = links.check(root / STATE_FILE, repo, what=STATE_FILE, root=root)
        state = read_state(state_path, b.rel(state_path)) if state_path.is_file() else None
        _add_all(b, parsed)
        if state is not None:
            apply_state(b, state, state_path, partial=single)
        if single:
            drop_external(b, state)
        return b.build()


def _has_task_root(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return bool(_TASK_ROOT.search(head))


def _xml_files(root: Path, repo: Path | None = None) -> Iterator[tuple[Path, Path]]:
    """Yield ``(folder, file)`` for XML files in ``root`` and its layer folders, in order.

    Symbolic links are skipped, or refused when they lead out (see links.follow).
    """
    try:
        entries = sorted(root.iterdir(), key=lambda p: _layer_key(p.name))
    except OSError:
        return
    for entry in entries:
        what = "task file" if entry.suffix == ".xml" else "layer folder"
        if entry.is_symlink() and not (
            (entry.suffix == ".xml" or LAYER.match(entry.name))
            and links.follow(entry, repo, what=what, root=root)
        ):
            continue
        if entry.is_file() and entry.suffix == ".xml":
            yield root, entry
        elif entry.is_dir() and LAYER.match(entry.name):
            for f in sorted(entry.glob("*.xml")):
                if f.is_symlink() and not links.follow(f, repo, what="task file", root=root):
                    continue
                if f.is_file():
                    yield entry, f


def _layer_key(name: str) -> tuple[int, str]:
    m = LAYER.match(name)
    return (int(m.group(1)) if m else -1, name)


def _add_all(b: PlanBuilder, parsed: list[Parsed]) -> None:
    """Add one phase per layer (each after the previous one), then the tasks in file order."""
    first: dict[str, Parsed] = {}
    for p in parsed:
        first.setdefault(p.layer, p)
    order = sorted(first, key=_layer_key)
    for k, layer in enumerate(order):
        m = LAYER.match(layer)
        where, line = first[layer].phase_source
        b.add_phase(
            layer,
            (m.group(2) or layer).replace("-", " ") if m else layer,
            line=line,
            file=where,
            number=int(m.group(1)) if m else None,
            depends_on=(order[k - 1],) if k else (),
        )
    by_layer: dict[str, list[Parsed]] = {}
    for p in parsed:
        by_layer.setdefault(p.layer, []).append(p)
    for layer in order:
        for p in by_layer[layer]:
            b.add_task(p.id, p.title, phase=layer, line=p.line, file=p.file, **p.fields)


READER = XmlTasksReader()
