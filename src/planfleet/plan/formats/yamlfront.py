"""YAML frontmatter of Markdown plans: python-frontmatter's split, planfleet's safe loader.

python-frontmatter finds the ``---`` block; its YAML is read by ``yamlutil.load_yaml``, not
PyYAML's loader, so aliases, tags and deep nesting stay refused and every value keeps its
line.
"""

from __future__ import annotations

from typing import Any

from frontmatter.default_handlers import YAMLHandler

from planfleet.errors import InputError
from planfleet.plan.formats.yamlutil import Path_, load_yaml


class SafeYAMLHandler(YAMLHandler):
    """python-frontmatter's YAML handler with planfleet's loader (no aliases, tags, bombs)."""

    def __init__(self, file: str, first_line: int = 1) -> None:
        super().__init__()
        self.file = file
        self.first_line = first_line  # the line the frontmatter text starts on
        self.lines: dict[Path_, int] = {}

    def load(self, fm: str, **kwargs: object) -> Any:
        """Return the frontmatter's data; InputError (file, line) for what plans may not use."""
        data, self.lines = load_yaml(fm, file=self.file, first_line=self.first_line)
        return data


def frontmatter_block(text: str) -> tuple[str, int, str, int] | None:
    """Return ``(yaml, yaml_first_line, body, body_first_line)``, or None without frontmatter.

    Frontmatter opens with a ``---`` line 1 and closes with the next ``---`` line; opened and
    never closed is None too (``read_frontmatter`` says that is an error). Line ends are
    ``\\n`` in what is returned, and lines are counted as ``str.splitlines`` counts them.
    """
    text = "\n".join(text.splitlines())
    handler = SafeYAMLHandler("")
    opening = handler.FM_BOUNDARY.match(text) if handler.FM_BOUNDARY else None
    if opening is None:
        return None
    try:
        fm, body = handler.split(text)
    except ValueError:  # only the opening line
        return None
    body_at = len(text) - len(body)
    if body_at and text[body_at - 1] != "\n":  # the body starts on the next line
        body, body_at = body.partition("\n")[2], body_at + len(body.partition("\n")[0]) + 1
    return fm, _line_at(text, opening.end()), body, _line_at(text, body_at)


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def read_frontmatter(text: str, *, file: str) -> tuple[dict[str, Any], dict[Path_, int], str, int]:
    """Return ``(data, lines, body, body_first_line)`` of a Markdown file with frontmatter.

    Without frontmatter ``data`` is ``{}`` and the body is the whole text from line 1.
    Raises InputError (file, line) for unclosed frontmatter, invalid or unsafe YAML, or
    YAML that is not a mapping.
    """
    block = frontmatter_block(text)
    if block is None:
        if text.splitlines()[:1] and text.splitlines()[0].rstrip() == "---":
            raise InputError(
                "frontmatter opened with '---' on line 1 is never closed",
                file=file,
                line=1,
                hint="end the frontmatter with a line containing only '---'",
            )
        return {}, {}, text, 1
    yaml_text, yaml_first, body, body_first = block
    handler = SafeYAMLHandler(file, yaml_first)
    data = handler.load(yaml_text)
    if data is None:
        return {}, {}, body, body_first
    if not isinstance(data, dict):
        raise InputError(
            "frontmatter must be a YAML mapping (key: value lines)",
            file=file,
            line=handler.lines.get((), yaml_first),
        )
    return data, handler.lines, body, body_first
