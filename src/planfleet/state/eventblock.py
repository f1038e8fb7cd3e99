"""The events block of the state text, remembered: a read compares it instead of parsing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from planfleet.state.canonical import ITEM_SEP, dumps, indent, loads
from planfleet.state.migrate import compiled_schema

EVENT_SEP = ITEM_SEP + "{"  # between two events


class EventMemo:
    """The events a codec read or wrote, in order (the list only grows, or loses its oldest)."""

    def __init__(self) -> None:
        self.refs: list[dict[str, Any]] = []  # private copies, all valid
        self.chunks: list[str] = []
        self.pieces: list[str] = []  # the events block as str.split(EVENT_SEP) cuts it
        self.text = ""

    def remember(self, refs: list[dict[str, Any]], chunks: list[str]) -> None:
        self.refs, self.chunks = refs, chunks
        self.pieces = [c[1:] for c in chunks]
        if chunks:
            self.pieces[0] = "    " + chunks[0]
        self.text = ITEM_SEP.join(chunks)

    def _offset(self, first: Any) -> int:
        """Return how many remembered events were dropped before ``first`` (0 if unknown)."""
        try:
            return self.refs.index(first) if self.refs and first != self.refs[0] else 0
        except ValueError:
            return 0

    def walk(self, text: str, pos: int) -> tuple[list[Any], int] | None:
        """Read the events block at ``pos``: remembered entries are compared, new ones parsed."""
        stop = text.find('\n  ],\n  "merge_queue": ', pos)  # sorted keys: it comes next
        if stop < 0:
            stop = text.find("\n  ]", pos)
        if stop < 0 or not text.startswith("    {", pos):
            return None
        pieces = text[pos:stop].split(EVENT_SEP)
        offset = 0
        if self.chunks and pieces[0] != self.pieces[0]:
            try:
                offset = self.chunks.index(pieces[0][4:])
            except ValueError:
                offset = 0
        known = ["    " + self.chunks[offset], *self.pieces[offset + 1 :]] if self.chunks else []
        same = list(map(str.__eq__, pieces, known))
        refs: list[dict[str, Any]] = []
        chunks: list[str] = []
        for i, piece in enumerate(pieces):
            if i < len(same) and same[i]:
                ref, chunk = self.refs[offset + i], self.chunks[offset + i]
            else:
                chunk = piece[4:] if i == 0 else "{" + piece
                ref = loads(chunk)
                if not compiled_schema().ok_def("event", ref) or indent(dumps(ref)) != chunk:
                    return None
            refs.append(ref)
            chunks.append(chunk)
        self.remember(refs, chunks)
        return [r.copy() for r in refs], stop + 4

    def update(self, events: list[Any], check: Callable[[Any], None]) -> bool:
        """Remember ``events`` (``check`` validates each new one); return whether they changed."""
        refs = self.refs
        offset = self._offset(events[0]) if events else 0
        kept = len(refs) - offset
        if kept < 0 or events[:kept] != refs[offset:]:
            offset, kept = 0, 0
        new = events[kept:]
        for event in new:
            check(event)
        if not new and offset == 0 and kept == len(refs):
            return False
        self.remember(
            refs[offset:] + [dict(e) for e in new],
            self.chunks[offset:] + [indent(dumps(e)) for e in new],
        )
        return True
