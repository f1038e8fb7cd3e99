"""Safe YAML for plan files: no aliases (no YAML bombs), line numbers for every value."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import yaml

from planfleet.errors import InputError

MAX_DEPTH = 64
# libyaml's composer when PyYAML was built with it (it is ~10x faster); same nodes, same marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Path_ = tuple[str | int, ...]


def load_yaml(text: str, *, file: str, first_line: int = 1) -> tuple[Any, dict[Path_, int]]:
    """Return ``(data, lines)``: the document and the 1-based line of every value by path.

    Raises InputError (with file and line) for syntax errors, anchors/aliases, tags,
    nesting deeper than MAX_DEPTH, or more than one document.
    """
    try:
        if "*" in text or _could_nest_deeply(text):  # an alias needs a '*'
            _check_depth(text, file, first_line)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise InputError("YAML nested too deeply", file=file) from None
    if node is None:
        return None, {}
    lines: dict[Path_, int] = {}
    data = _Converter(file, first_line, lines).convert(node, (), 0)
    return data, lines


# libyaml's composer recurses in C once per nesting level and crashes the process near
# 100,000 levels; 8,000 is well inside what it handles. Nesting needs a bracket or a line
# per level, so a text with fewer of those than this cannot reach the danger zone.
_SAFE_NESTING = 8000


def _could_nest_deeply(text: str) -> bool:
    return text.count("[") + text.count("{") + text.count("\n") >= _SAFE_NESTING


def _check_depth(text: str, file: str, first_line: int) -> None:
    """Refuse deep nesting from the event stream, before the (recursive) composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = _event_line(event, first_line)
                raise InputError(
                    f"YAML nested deeper than {MAX_DEPTH} levels", file=file, line=line
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            raise InputError(
                "YAML aliases (*name) are not allowed in plans",
                file=file,
                line=_event_line(event, first_line),
            )


def _event_line(event: yaml.Event, first_line: int) -> int | None:
    mark = event.start_mark
    return first_line + mark.line if mark is not None else None


class _Converter:
    """Turns a composed node tree into plain data, refusing aliases (a node seen twice)."""

    def __init__(self, file: str, first: int, lines: dict[Path_, int]) -> None:
        self.file = file
        self.first = first
        self.lines = lines
        self.seen: set[int] = set()
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        return _convert(self, node, path, depth)


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _convert(cv: _Converter, node: yaml.Node, path: Path_, depth: int) -> Any:
    file, first, lines = cv.file, cv.first, cv.lines
    line = first + node.start_mark.line
    lines[path] = line
    if depth > MAX_DEPTH:
        raise InputError(f"YAML nested deeper than {MAX_DEPTH} levels", file=file, line=line)
    if id(node) in cv.seen:
        raise InputError("YAML aliases (*name) are not allowed in plans", file=file, line=line)
    cv.seen.add(id(node))
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
        # e.g. !!python/object/apply:os.system [ls] or !!set: only plain maps and lists
        raise InputError(f"YAML tag {node.tag!r} is not allowed in plans", file=file, line=line)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(
                    "mapping keys must be plain strings",
                    file=file,
                    line=first + key_node.start_mark.line,
                )
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise InputError(
                    "YAML merge keys (<<) are not allowed in plans",
                    file=file,
                    line=first + key_node.start_mark.line,
                )
            key = str(key_node.value)
            if key in out:
                raise InputError(
                    f"duplicate key {key!r}",
                    file=file,
                    line=first + key_node.start_mark.line,
                    field=key,
                )
            out[key] = _convert(cv, value_node, (*path, key), depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(cv, item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
    return _scalar(cv, node, line)


def _scalar(cv: _Converter, node: yaml.Node, line: int) -> Any:
    tag, file = node.tag, cv.file
    if tag == "tag:yaml.org,2002:str":  # the common case, without the constructor's overhead
        return node.value
    if tag.startswith("tag:yaml.org,2002:") or tag == "!":
        try:
            value = cv.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(f"invalid value: {problem}", file=file, line=line) from None
        if isinstance(value, (_dt.date, _dt.datetime)):
            return value.isoformat()
        if isinstance(value, bytes):
            raise InputError("binary values are not allowed in plans", file=file, line=line)
        return value
    raise InputError(f"YAML tag {tag!r} is not allowed in plans", file=file, line=line)


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """Return the line of ``path`` or of its nearest parent that has one."""
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]
