"""Line-aware Markdown helpers shared by the Markdown plan readers.

The block structure (headings, fenced and indented code, HTML blocks and comments, list
items) comes from markdown-it-py (``mdblocks``); the small regexes here read only what sits
on prose lines: checkboxes, ``- **Key**: value`` fields, bullet lists and code spans. Every
item keeps the 1-based line it came from, so every reader can point at a problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from planfleet.plan.formats.mdblocks import Document as Document
from planfleet.plan.formats.mdblocks import Line as Line
from planfleet.plan.formats.mdblocks import parse as parse

_CHECKBOX = re.compile(r"^(\s*)[-*+]\s+\[([ xX~-])\]\s+(.*)$")
_BULLET = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
# "- **Key**: value", "**Key:** value", "- Key: value" (the key is short, no sentence)
_FIELD = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?(?P<key>[A-Za-z][A-Za-z0-9 /_()-]{0,40}?)"
    r"(?::(?:\*\*|__)|(?:\*\*|__)?:)\s*(?P<value>.*)$"
)
_CODE_SPAN = re.compile(r"`([^`]+)`")


@dataclass
class Section:
    """A heading and the lines under it, up to the next heading of any level."""

    level: int
    title: str
    line: int
    body: list[Line] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(ln.text for ln in self.body).strip("\n")


@dataclass
class Checkbox:
    line: int
    checked: bool
    text: str
    indent: int
    mark: str
    end: int  # the last line of its list item (its details end there)


def unix_newlines(text: str) -> str:
    """Return ``text`` with CRLF/CR line ends as ``\n`` (task text is the same either way)."""
    return "\n".join(text.splitlines())


def lines_of(text: str, first_line: int = 1) -> list[Line]:
    """Return the lines of ``text``, each knowing whether it is prose or in a code block."""
    return parse(text, first_line).lines


def sections(text: str, first_line: int = 1) -> tuple[list[Line], list[Section]]:
    """Split ``text`` into the preamble (lines before any heading) and heading sections.

    Headings inside code blocks, HTML comments or block quotes are not headings.
    """
    return sections_of(parse(text, first_line))


def sections_of(doc: Document) -> tuple[list[Line], list[Section]]:
    """Return the preamble and the heading sections of a parsed Document."""
    preamble: list[Line] = []
    out: list[Section] = []
    heads = {h.line: h for h in doc.headings}
    for ln in doc.lines:
        head = heads.get(ln.number)
        if head is not None:
            out.append(Section(head.level, head.title, ln.number))
        elif out:
            out[-1].body.append(ln)
        else:
            preamble.append(ln)
    return preamble, out


def subtree(all_sections: list[Section], index: int) -> list[Section]:
    """Return the sections nested under ``all_sections[index]`` (deeper levels, contiguous)."""
    level = all_sections[index].level
    end = index + 1
    # walk by index: slicing the rest of the list for every section made this quadratic
    while end < len(all_sections) and all_sections[end].level > level:
        end += 1
    return all_sections[index + 1 : end]


def prose(body: list[Line]) -> list[Line]:
    """Return the lines of ``body`` that are prose (not code, not HTML blocks or comments)."""
    return [ln for ln in body if ln.prose]


def checkboxes(body: list[Line]) -> list[Checkbox]:
    """Return the ``- [ ]`` / ``- [x]`` items of ``body`` (prose lines only)."""
    out = []
    for ln in prose(body):
        m = _CHECKBOX.match(ln.text)
        if m:
            mark = m.group(2)
            end = ln.item_end or ln.number
            out.append(
                Checkbox(ln.number, mark in "xX", m.group(3).strip(), len(m.group(1)), mark, end)
            )
    return out


def checkbox_mark(text: str) -> tuple[int, str] | None:
    """Return ``(index, mark)`` of the mark character of a ``- [x] item`` line, or None."""
    m = _CHECKBOX.match(text)
    return (m.start(2), m.group(2)) if m else None


def field_at(text: str) -> tuple[str, int] | None:
    """Return ``(key, index where its value starts)`` for a field line, else None.

    Keys are normalised like :func:`fields`; a checkbox line is never a field.
    """
    if _CHECKBOX.match(text):
        return None
    m = _FIELD.match(text)
    return (normalize_key(m.group("key")), m.start("value")) if m else None


def fields(body: list[Line]) -> dict[str, Line]:
    """Return ``key -> Line(value)`` for lines like ``- **Branch**: main`` (keys lowercased).

    The first occurrence of a key wins; keys are normalised (lowercase, single spaces).
    """
    out: dict[str, Line] = {}
    for ln in prose(body):
        if _CHECKBOX.match(ln.text):
            continue
        m = _FIELD.match(ln.text)
        if not m:
            continue
        key = normalize_key(m.group("key"))
        out.setdefault(key, Line(ln.number, m.group("value").strip()))
    return out


def normalize_key(key: str) -> str:
    return re.sub(r"\s+", " ", key.strip().strip("*_").strip()).lower()


def list_under(body: list[Line], label: str) -> list[Line]:
    """Return the bullet items that follow a ``label`` field line (e.g. ``**Files**:``).

    An inline value on the label line counts as items too (comma-separated).
    The list ends at the first line that is neither a bullet, blank, nor indented.
    """
    label = normalize_key(label)
    items: list[Line] = []
    lines = prose(body)
    for i, ln in enumerate(lines):
        m = _FIELD.match(ln.text)
        if not m or normalize_key(m.group("key")) != label:
            continue
        base_indent = len(ln.text) - len(ln.text.lstrip())
        inline = m.group("value").strip()
        if inline:
            items.extend(Line(ln.number, part) for part in split_inline_list(inline))
        for nxt in lines[i + 1 :]:
            if not nxt.text.strip():
                if items:
                    break
                continue
            indent = len(nxt.text) - len(nxt.text.lstrip())
            b = _BULLET.match(nxt.text)
            if b and (indent > base_indent or not _FIELD.match(b.group(2))):
                if _FIELD.match(nxt.text) and indent <= base_indent and items:
                    break
                cb = _CHECKBOX.match(nxt.text)  # "- [ ] item" under a label: the item's text
                items.append(Line(nxt.number, (cb.group(3) if cb else b.group(2)).strip()))
            else:
                break
        break
    return items


def split_inline_list(value: str) -> list[str]:
    """Split ``a.py, b.py`` or ``\u0060a\u0060, \u0060b\u0060`` into items; ``none`` gives []."""
    if value.strip().lower() in ("", "none", "n/a", "-", "(none)", "—"):
        return []
    spans = _CODE_SPAN.findall(value)
    if spans and _CODE_SPAN.sub("", value).strip(" ,;") == "":
        return [s.strip() for s in spans if s.strip()]
    return [part.strip().strip("`").strip() for part in re.split(r"[,;]", value) if part.strip()]


def strip_code(value: str) -> str:
    """Return ``value`` without surrounding backticks or emphasis."""
    value = value.strip()
    m = _CODE_SPAN.fullmatch(value)
    if m:
        return m.group(1).strip()
    return value.strip("*_ ").strip()


def code_spans(value: str) -> list[str]:
    return [s.strip() for s in _CODE_SPAN.findall(value)]


def fenced_blocks(body: list[Line]) -> list[tuple[int, str, str]]:
    """Return ``(line, info, code)`` for every closed fenced block that opens in ``body``."""
    return [(f.line, f.info, f.code) for ln in body if (f := ln.fence) is not None and f.closed]


def fence_spans(body: list[Line]) -> list[tuple[int, int]]:
    """Return ``(opening line, closing line)`` of every closed fenced block in ``body``."""
    return [(f.line, f.end) for ln in body if (f := ln.fence) is not None and f.closed]


_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def link_target(text: str) -> str | None:
    """Return the target of the first ``[text](target)`` link in ``text``, or None."""
    link = _LINK.search(text)
    return link.group(2).strip() if link else None


def bullet_items(body: list[Line]) -> list[Line]:
    """Return the outermost list items of ``body`` (bullets, numbers, checkboxes), unmarked.

    Deeper-indented items (sub-points of an item) are left out.
    """
    items: list[Line] = []
    base: int | None = None
    for ln in prose(body):
        m = _BULLET.match(ln.text)
        if not m:
            continue
        indent = len(m.group(1))
        if base is None or indent < base:
            base = indent
        if indent == base:
            cb = _CHECKBOX.match(ln.text)
            items.append(Line(ln.number, (cb.group(3) if cb else m.group(2)).strip()))
    return items


def section_text(all_sections: list[Section], index: int) -> str:
    """Return a section's heading, body and nested sections as Markdown text."""
    parts = []
    for sec in [all_sections[index], *subtree(all_sections, index)]:
        parts.append("#" * sec.level + " " + sec.title)
        parts.extend(ln.text for ln in sec.body)
    return "\n".join(parts).strip("\n")


def fields_outside(preamble: list[Line], secs: list[Section], skip: list[int]) -> dict[str, Line]:
    """Return the fields of the preamble and of every section not under ``skip`` indexes."""
    inside: set[int] = set()
    for i in skip:
        inside.update(range(i, i + 1 + len(subtree(secs, i))))
    body = list(preamble)
    for i, sec in enumerate(secs):
        if i not in inside:
            body.extend(sec.body)
    return fields(body)


class Facts:
    """The ``**Key:** value`` fields of some sections, and lists under a key or a heading.

    ``secs[0]`` is the owner (a phase or task heading); ``exclude`` drops nested sections
    (by index) that belong to someone else, e.g. a phase's own task headings.
    """

    def __init__(self, secs: list[Section], *, exclude: set[int] | None = None) -> None:
        self.secs = [s for n, s in enumerate(secs) if n not in (exclude or set())]
        self.body = [ln for s in self.secs for ln in s.body]
        self.fields = fields(self.body)

    def value(self, keys: tuple[str, ...]) -> Line | None:
        """Return the value line of the first of ``keys`` that is present, or None."""
        return next((self.fields[k] for k in keys if k in self.fields), None)

    def items(self, keys: tuple[str, ...], *, split_inline: bool = True) -> list[Line]:
        """Return the list under a ``**Key:**`` line or a ``### Key`` heading, else [].

        ``split_inline=False`` keeps an inline value whole (a sentence with commas).
        """
        for key in keys:
            if key in self.fields:
                inline = self.fields[key]
                items = list_under(self.body, key)
                if split_inline or not inline.text:
                    return items
                return [inline, *(i for i in items if i.number != inline.number)]
        sec = self.section(keys)
        if sec is None:
            return []
        return bullet_items(sec.body) or [
            Line(ln.number, ln.text.strip()) for ln in prose(sec.body) if ln.text.strip()
        ]

    def every(self, keys: tuple[str, ...]) -> list[Line]:
        """Return the value of every ``Key: value`` line for ``keys`` (not just the first)."""
        out = []
        for ln in prose(self.body):
            m = None if _CHECKBOX.match(ln.text) else _FIELD.match(ln.text)
            if m and normalize_key(m.group("key")) in keys:
                out.append(Line(ln.number, m.group("value").strip()))
        return out

    def section(self, keys: tuple[str, ...]) -> Section | None:
        """Return the nested section titled like one of ``keys`` (``### Acceptance``), or None."""
        return next((s for s in self.secs[1:] if normalize_key(s.title.rstrip(":")) in keys), None)
