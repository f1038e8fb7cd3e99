"""One XML task file: parsed safely (no DTDs, no entities) and read into a task's fields."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.ids import slugify
from planfleet.plan.formats.builder import PlanBuilder, dedupe
from planfleet.plan.model import TASK_KINDS

_Lines = dict[ET.Element, int]  # the line of every element
MAX_XML_DEPTH = 32
TASK_FILE = re.compile(r"^(?P<id>[A-Za-z][A-Za-z0-9]*-\d+)(?:-.+)?\.xml$")
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
class Parsed:
    """One task file, parsed: the fields PlanBuilder.add_task takes, plus where it came from."""

    id: str
    title: str
    file: Path
    line: int
    layer: str
    phase_source: tuple[Path, int | None]  # the layer folder, or the file naming the layer
    fields: dict[str, Any] = field(default_factory=dict)


def parse_file(b: PlanBuilder, path: Path, folder: Path, root: Path) -> Parsed | None:
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
    m = TASK_FILE.match(path.name)
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
    return Parsed(tid, title, path, line, layer, phase_source, fields)


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
