"""XML task directories: ``<ID>-<slug>.xml`` files in layer folders, plus ``execute-state.json``.

Layout (the PLAN path is the tasks directory, or one task file)::

    docs/tasks/billing/
      1-foundation/L1-001-create-enums.xml
      1-foundation/L1-002-invoice-model.xml
      2-api/L2-001-invoice-routes.xml
      execute-state.json                  optional: what an earlier batch run recorded

Each layer folder ``N-name`` is a phase; layer N depends on the layer before it (so the
phase gate runs between layers). Task-level dependencies come only from the task files.
A task file (elements in any order; unknown ones give a warning but stay in the text)::

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
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.ids import slugify
from planfleet.plan import links
from planfleet.plan.formats import walk
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.formats.execute_state import STATE_FILE, apply_state, drop_external, read_state
from planfleet.plan.model import TASK_KINDS, Plan

_Lines = dict[ET.Element, int]  # the line of every element
MAX_XML_DEPTH = 32
_LAYER = re.compile(r"^(\d+)(?:-(.+))?$")
_TASK_FILE = re.compile(r"^(?P<id>[A-Za-z][A-Za-z0-9]*-\d+)(?:-.+)?\.xml$")
_TASK_ROOT = re.compile(r"<task[\s>]")
_IDS = re.compile(r"[,\s]+")  # ids and paths: split on commas and blanks
_LIST = re.compile(r"\n")  # prose and commands: one per line
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?)?$")
_UNIT_HOURS = {"m": 1 / 60, "h": 1.0, "d": 8.0}
# The child elements of <task> this reader knows; a word list reads better than 20 literals.
_KNOWN = frozenset(
    "title layer agent owner kind estimate timeout max-attempts status description context "  # noqa: SIM905
    "notes dependencies depends-on files packages dependencies-to-add acceptance-criteria "
    "verification test-scope commands".split()
)


def parse_xml(text: str, *, file: str) -> tuple[ET.Element, _Lines]:
    """Return ``(root, line of every element)``; InputError for DTDs, entities, bad XML."""
    builder = ET.TreeBuilder()
    lines: _Lines = {}
    parser = expat.ParserCreate(encoding="utf-8")
    depth = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise InputError(
                f"XML nested deeper than {MAX_XML_DEPTH} levels",
                file=file,
                line=parser.CurrentLineNumber,
            )
        lines[builder.start(tag, attrs)] = parser.CurrentLineNumber

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag)

    def refuse(*_: Any) -> None:
        # Raised before the internal subset is read: no entity is ever declared or expanded.
        raise InputError(
            "DTDs and entity declarations (<!DOCTYPE>, <!ENTITY>) are not allowed in task files",
            file=file,
            line=parser.CurrentLineNumber,
            hint="remove the DOCTYPE; entities can expand without bound or read other files",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code]
        raise InputError(
            f"invalid XML: {message} (column {exc.offset + 1})", file=file, line=exc.lineno
        ) from None
    return builder.close(), lines


@dataclass
class _Parsed:
    """One task file, parsed: the fields PlanBuilder.add_task takes, plus where it came from."""

    id: str
    title: str
    file: Path
    line: int
    layer: str
    phase_source: tuple[Path, int | None]  # the layer folder, or the file naming the layer
    fields: dict[str, Any] = field(default_factory=dict)


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
        return any(_TASK_FILE.match(f.name) and _has_task_root(f) for _, f in _xml_files(path))

    def discover(self, repo: Path) -> Iterator[Path]:
        seen: set[Path] = set()
        for path in walk(repo, "*.xml"):
            if not _TASK_FILE.match(path.name):
                continue
            root = path.parent.parent if _LAYER.match(path.parent.name) else path.parent
            if root not in seen:
                seen.add(root)
                if self.detect(root):
                    yield root

    def read(self, path: Path, *, repo: Path) -> Plan:
        single = path.is_file()
        root = path.parent if single else path
        if single and _LAYER.match(root.name):
            root = root.parent
        b = PlanBuilder(
            format=self.name,
            path=path,
            repo=repo,
            name=path.stem if single else path.name,
            title=path.name,
        )
        files = [(path.parent, path)] if single else list(_xml_files(path, repo))
        parsed = [p for folder, f in files if (p := _parse_file(b, f, folder, root)) is not None]
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
            (entry.suffix == ".xml" or _LAYER.match(entry.name))
            and links.follow(entry, repo, what=what, root=root)
        ):
            continue
        if entry.is_file() and entry.suffix == ".xml":
            yield root, entry
        elif entry.is_dir() and _LAYER.match(entry.name):
            for f in sorted(entry.glob("*.xml")):
                if f.is_symlink() and not links.follow(f, repo, what="task file", root=root):
                    continue
                if f.is_file():
                    yield entry, f


def _layer_key(name: str) -> tuple[int, str]:
    m = _LAYER.match(name)
    return (int(m.group(1)) if m else -1, name)


def _parse_file(b: PlanBuilder, path: Path, folder: Path, root: Path) -> _Parsed | None:
    shown = b.rel(path)
    text = read_text(path)
    el, lines = parse_xml(text, file=shown)
    if el.tag != "task":
        b.diag(
            "warning",
            f"not a task file (root element <{el.tag}>, expected <task>); skipped",
            file=path,
            line=lines.get(el),
        )
        return None
    line = lines.get(el, 1)
    m = _TASK_FILE.match(path.name)
    tid = (el.get("id") or _child_text(el, "id") or (m.group("id") if m else "")).strip()
    if not tid:
        raise InputError(
            "task has no id",
            file=shown,
            line=line,
            field="id",
            hint='write <task id="L1-001"> or name the file L1-001-<slug>.xml',
        )
    b.check(tid, "task id", line, path)
    if not (path.name.startswith(tid + "-") or path.name == tid + ".xml"):
        b.diag(
            "error",
            f"task id {tid!r} does not match the file name {path.name!r}",
            file=path,
            line=line,
            field="id",
            hint=f"rename the file to {tid}-<slug>.xml",
        )
    layer = _child_text(el, "layer") or None
    phase_source: tuple[Path, int | None] = (path, _line(lines, el, "layer"))
    if folder != root:
        phase_source = (folder, None)
        if layer and layer not in (folder.name, *folder.name.split("-", 1)):
            _warn(
                b,
                path,
                _line(lines, el, "layer"),
                "layer",
                f"<layer> {layer!r} differs from the folder {folder.name!r}; the folder wins",
            )
        layer = folder.name
    for child in el:
        if child.tag not in _KNOWN:
            _warn(
                b,
                path,
                lines.get(child),
                child.tag,
                f"unknown element <{child.tag}>; ignored (it stays in the task text)",
            )
    title = _child_text(el, "title") or path.stem.removeprefix(tid).strip("-").replace("-", " ")
    layer = slugify(layer or "tasks", fallback="tasks")
    fields = _task_fields(b, el, lines, path, text)
    return _Parsed(tid, title, path, line, layer, phase_source, fields)


def _task_fields(
    b: PlanBuilder, el: ET.Element, lines: _Lines, path: Path, text: str
) -> dict[str, Any]:
    deps_el = el.find("dependencies")
    deps = _items(deps_el, "task", _IDS) + _items(el.find("depends-on"), "task", _IDS)
    packages = _items(deps_el, "package", None)
    for tag in ("packages", "dependencies-to-add"):
        packages += _items(el.find(tag), "package", _LIST)
    files = el.find("files")
    verification = el.find("verification")
    checks = [] if verification is None else [_flat(c) for c in verification if c.tag != "command"]
    kind = (el.get("kind") or _child_text(el, "kind") or "implementation").lower()
    if kind not in TASK_KINDS:
        _warn(
            b,
            path,
            _line(lines, el, "kind"),
            "kind",
            f"unknown kind {kind!r}",
            hint="use design or implementation",
            level="error",
        )
        kind = "implementation"
    status = el.get("status") or _child_text(el, "status") or None
    return {
        "kind": kind,
        "owner": _child_text(el, "agent") or _child_text(el, "owner") or None,
        "depends_on": dedupe(deps),
        "files_create": dedupe(_items(files, "create", None)),
        "files_modify": dedupe(_items(files, "modify", None)),
        "add_dependencies": dedupe(packages),
        "acceptance": dedupe(
            [*_items(el.find("acceptance-criteria"), "criterion", _LIST), *checks]
        ),
        "verify": dedupe(_items(verification, "command", _LIST)),
        "commands": tuple(_items(el.find("commands"), "command", _LIST)),
        "blast_radius": " ".join(_items(el.find("test-scope"), "path", _IDS)) or None,
        "estimate": _number(b, el, lines, path, "estimate", hours=True),
        "timeout_s": _number(b, el, lines, path, "timeout"),
        "max_attempts": _attempts(b, el, lines, path),
        "text": text,
        "spec_files": (b.rel(path),),
        "status": b.status(status, line=_line(lines, el, "status"), file=path),
    }


def _flat(el: ET.Element) -> str:
    """Return the text of ``el`` and its children with whitespace collapsed."""
    return " ".join("".join(el.itertext()).split())


def _child_text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    return _flat(child) if child is not None else ""


def _items(el: ET.Element | None, tag: str, split: re.Pattern[str] | None) -> list[str]:
    """Return the texts of ``el``'s ``<tag>`` children; without children, its text ``split``."""
    if el is None:
        return []
    if len(el):
        return [t for c in el if c.tag == tag and (t := _flat(c))]
    if split is None:
        return []
    items = (part.strip().removeprefix("- ").strip() for part in split.split(el.text or ""))
    return [item for item in items if item]


def _line(lines: _Lines, el: ET.Element, tag: str) -> int | None:
    child = el.find(tag)
    return lines.get(child) if child is not None else lines.get(el)


def _number(
    b: PlanBuilder, el: ET.Element, lines: _Lines, path: Path, tag: str, *, hours: bool = False
) -> float | None:
    """Return ``<tag>`` as seconds (or hours for estimates); a warning if it is not a number."""
    value = _child_text(el, tag)
    m = _DURATION.match(value.lower())
    if m:
        unit = (m.group(2) or "")[:1]
        scale = _UNIT_HOURS if hours else {"m": 60.0, "h": 3600.0, "d": 86400.0}
        return float(m.group(1)) * scale.get(unit, 1.0)
    if value:
        _warn(
            b,
            path,
            _line(lines, el, tag),
            tag,
            f"<{tag}> {value!r} is not a number; ignored",
            hint="write e.g. 90, 30m, 2h or 1d",
        )
    return None


def _attempts(b: PlanBuilder, el: ET.Element, lines: _Lines, path: Path) -> int | None:
    value = _child_text(el, "max-attempts")
    if re.fullmatch(r"[0-9]{1,2}", value) and 1 <= int(value) <= 50:
        return int(value)
    if value:
        _warn(
            b,
            path,
            _line(lines, el, "max-attempts"),
            "max-attempts",
            f"<max-attempts> {value!r} is not a whole number from 1 to 50; ignored",
        )
    return None


def _warn(
    b: PlanBuilder,
    path: Path,
    line: int | None,
    tag: str,
    message: str,
    *,
    hint: str | None = None,
    level: str = "warning",
) -> None:
    b.diag(level, message, file=path, line=line, field=tag, hint=hint)


def _add_all(b: PlanBuilder, parsed: list[_Parsed]) -> None:
    """Add one phase per layer (each after the previous one), then the tasks in file order."""
    first: dict[str, _Parsed] = {}
    for p in parsed:
        first.setdefault(p.layer, p)
    order = sorted(first, key=_layer_key)
    for k, layer in enumerate(order):
        m = _LAYER.match(layer)
        where, line = first[layer].phase_source
        b.add_phase(
            layer,
            (m.group(2) or layer).replace("-", " ") if m else layer,
            line=line,
            file=where,
            number=int(m.group(1)) if m else None,
            depends_on=(order[k - 1],) if k else (),
        )
    by_layer: dict[str, list[_Parsed]] = {}
    for p in parsed:
        by_layer.setdefault(p.layer, []).append(p)
    for layer in order:
        for p in by_layer[layer]:
            b.add_task(p.id, p.title, phase=layer, line=p.line, file=p.file, **p.fields)


READER = XmlTasksReader()
