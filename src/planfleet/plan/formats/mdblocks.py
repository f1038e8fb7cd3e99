"""The block structure of a Markdown file, from markdown-it-py's CommonMark parser.

Which lines are headings, which belong to fenced or indented code, HTML blocks or comments,
where each list item ends: what a line-by-line regex gets wrong (a four-backtick fence
holding a three-backtick one, ``C#`` at the end of a heading, a ``## Task`` inside
``<!-- -->``). Every line keeps its 1-based number, so readers can point at it.

markdown-it is imported on the first parse, so a command that reads no Markdown plan never
pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# What a line that is not prose belongs to (``Line.block``).
FENCE, CODE, HTML, COMMENT = "fence", "code", "html", "comment"


@dataclass(frozen=True)
class Fence:
    """A fenced code block: its opening line, last line, info string and code."""

    line: int
    end: int  # the closing fence's line; for a fence never closed, its container's last line
    info: str
    code: str
    closed: bool


@dataclass
class Line:
    number: int  # 1-based
    text: str
    block: str = ""  # "" for prose, else FENCE, CODE, HTML or COMMENT
    fence: Fence | None = None  # on the opening line of a fenced block
    item_end: int | None = None  # on the first line of a list item: the item's last line

    @property
    def prose(self) -> bool:
        return not self.block


@dataclass(frozen=True)
class Heading:
    level: int
    title: str
    line: int


@dataclass
class Document:
    """A file's lines (with what block each belongs to) and its headings, in order."""

    lines: list[Line]
    headings: list[Heading] = field(default_factory=list)
    first_line: int = 1

    def line(self, number: int) -> Line | None:
        """Return the line with 1-based ``number``, or None past either end."""
        at = number - self.first_line
        return self.lines[at] if 0 <= at < len(self.lines) else None


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # Block structure only: inline parsing is most of the cost and nothing here needs it.
    # Setext headings are off: plans put "---" under a paragraph as a separator, and the
    # projections edit headings as "#" lines.
    return MarkdownIt("commonmark").disable(["lheading", "inline", "text_join"])


def parse(text: str, first_line: int = 1) -> Document:
    """Return the Document of ``text``; its first line is numbered ``first_line``."""
    raw = text.splitlines()
    doc = Document([Line(first_line + i, t) for i, t in enumerate(raw)], first_line=first_line)
    # Lines are joined with "\n" so that markdown-it counts lines as splitlines() does
    # (it would not split at U+2028 or a form feed).
    tokens = _parser().parse("\n".join(raw))
    quoted = 0
    for n, tok in enumerate(tokens):
        if tok.type == "blockquote_open":
            quoted += 1
        elif tok.type == "blockquote_close":
            quoted -= 1
        if tok.map is None:
            continue
        start, end = tok.map
        if tok.type in ("fence", "code_block", "html_block"):
            kind = {"fence": FENCE, "code_block": CODE}.get(tok.type, HTML)
            if kind == HTML and tok.content.lstrip().startswith("<!--"):
                kind = COMMENT
            for ln in doc.lines[start:end]:
                ln.block = kind
            if tok.type == "fence":
                code = tok.content.removesuffix("\n")
                # closed: the opening line, the code lines, and a closing line
                closed = end - start == tok.content.count("\n") + 2
                doc.lines[start].fence = Fence(
                    first_line + start, first_line + end - 1, tok.info.strip(), code, closed
                )
        elif tok.type == "heading_open" and not quoted:
            title = tokens[n + 1].content.strip() if n + 1 < len(tokens) else ""
            doc.headings.append(Heading(int(tok.tag[1:]), title, first_line + start))
        elif tok.type == "list_item_open":
            last = end - 1
            while last > start and not raw[last].strip():
                last -= 1
            doc.lines[start].item_end = first_line + last
    return doc


def without_examples(text: str) -> str:
    """Return ``text`` with the lines of fenced code blocks and HTML comments left empty.

    For readers that look for tags in Markdown (GSD's ``<task>``): a tag shown in a fenced
    example or commented out is not there. Line numbers stay as they were.
    """
    if "```" not in text and "~~~" not in text and "<!--" not in text:
        return text
    return "\n".join("" if ln.block in (FENCE, COMMENT) else ln.text for ln in parse(text).lines)
