"""Safe YAML for plan files: no aliases (no YAML bombs), line numbers for every value."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
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
        lines: dict[Path_, int] = {}
        data = _Builder(file, first_line, lines).run(yaml.parse(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=file) from None
    return data, lines


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_STR, _MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
_NO_KEY = object()
# The safe resolver's implicit tags (null, bool, int, float, timestamp, ...) by first
# character. Looked up here while it has no wildcard or path rules (as in PyYAML 6).
_IMPLICIT: dict[Any, list[tuple[str, Any]]] = yaml.resolver.Resolver.yaml_implicit_resolvers
_BY_FIRST_CHAR = None not in _IMPLICIT and not yaml.resolver.Resolver.yaml_path_resolvers


class _MergeKey:
    """A ``<<`` key seen: refused with the next event (an alias value says "alias")."""

    def __init__(self, line: int) -> None:
        self.line = line


class _Builder:
    """Builds plain data from the event stream in one pass, no node tree, no recursion.

    The nesting depth, aliases, tags and keys are checked on the way, so the deepest or
    biggest text never reaches a recursive composer (libyaml's crashes near 100,000 levels).
    """

    def __init__(self, file: str, first: int, lines: dict[Path_, int]) -> None:
        self.file = file
        self.first = first
        self.lines = lines
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()

    def run(self, events: Iterator[Any]) -> Any:
        file, first, lines = self.file, self.first, self.lines
        # open collections: [container, its path, the pending key of a mapping or _NO_KEY]
        stack: list[list[Any]] = []
        root: Any = None
        documents = 0
        for event in events:
            kind = type(event)
            if kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    line = first + event.start_mark.line
                    problem = "expected a single document in the stream"
                    raise InputError(f"invalid YAML: {problem}", file=file, line=line)
                continue
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                stack.pop()
                continue
            if kind is yaml.AliasEvent:
                line = first + event.start_mark.line
                raise InputError(
                    "YAML aliases (*name) are not allowed in plans", file=file, line=line
                )
            if kind is not yaml.ScalarEvent and kind not in _STARTS:
                continue  # stream start and end, document end
            line = first + event.start_mark.line
            top = stack[-1] if stack else None
            if top is not None and type(top[0]) is dict and top[2] is _NO_KEY:
                top[2] = self._key(event, top[0], line)
                continue
            if top is not None and isinstance(top[2], _MergeKey):
                raise InputError(
                    "YAML merge keys (<<) are not allowed in plans", file=file, line=top[2].line
                )
            if top is None:
                path: Path_ = ()
            elif type(top[0]) is list:
                path = (*top[1], len(top[0]))
            else:
                path = (*top[1], top[2])
            lines[path] = line
            if kind is yaml.ScalarEvent:
                value = self._scalar(event, line)
            else:
                if len(stack) >= MAX_DEPTH:
                    raise InputError(
                        f"YAML nested deeper than {MAX_DEPTH} levels", file=file, line=line
                    )
                tag = event.tag
                if tag is not None and tag != "!" and tag not in _COLLECTION_TAGS:
                    # e.g. !!python/object/apply:os.system [ls] or !!set: only maps and lists
                    raise InputError(
                        f"YAML tag {tag!r} is not allowed in plans", file=file, line=line
                    )
                value = {} if kind is yaml.MappingStartEvent else []
            if top is None:
                root = value
            elif type(top[0]) is list:
                top[0].append(value)
            else:
                top[0][top[2]] = value
                top[2] = _NO_KEY
            if kind is not yaml.ScalarEvent:
                stack.append([value, path, _NO_KEY])
        return root

    def _key(self, event: Any, out: dict[str, Any], line: int) -> str | _MergeKey:
        if type(event) is not yaml.ScalarEvent:
            raise InputError("mapping keys must be plain strings", file=self.file, line=line)
        if self._tag(event) == _MERGE:
            return _MergeKey(line)
        key = str(event.value)
        if key in out:
            raise InputError(f"duplicate key {key!r}", file=self.file, line=line, field=key)
        return key

    def _tag(self, event: Any) -> str:
        tag = event.tag
        if tag is not None and tag != "!":
            return str(tag)
        if not _BY_FIRST_CHAR:
            resolve = self.resolver.resolve
            return str(resolve(yaml.ScalarNode, event.value, event.implicit))  # type: ignore[no-untyped-call]
        if not event.implicit[0]:  # quoted or a block scalar: a string (as Resolver.resolve)
            return _STR
        value = event.value
        # Resolver.resolve's implicit rules, by first character, without its call overhead
        for found, regexp in _IMPLICIT.get(value[:1], ()):
            if regexp.match(value):
                return str(found)
        return _STR

    def _scalar(self, event: Any, line: int) -> Any:
        tag = self._tag(event)
        if tag == _STR:  # the common case, without the constructor's overhead
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return _scalar(self, node, line)


_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)


def _scalar(cv: _Builder, node: yaml.Node, line: int) -> Any:
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
