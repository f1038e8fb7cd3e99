"""State file text <-> state document, validated, in canonical JSON.

The text is always ``json.dumps(state, indent=2, sort_keys=True, ensure_ascii=False)`` plus
a newline, with unset (None) optional task fields left out; in memory they are present. A
:class:`Codec` remembers the text of every task record and event it read or wrote, so a
transaction that changes one task of a 500-task state parses, validates and indents that
one task, not the 499 others. In canonical text a line that starts with exactly two
spaces and a quote is a top-level key, and one that starts with exactly four spaces begins
an entry of "tasks" or "events" (string values never hold a raw newline): that is how the
codec finds the parts it knows. The canonical form is written by ``state.canonical``; the
remembered events block is ``state.eventblock``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from planfleet.errors import InputError
from planfleet.state.canonical import ITEM_SEP, dumps, indent, loads
from planfleet.state.eventblock import EventMemo
from planfleet.state.migrate import (
    DAMAGED_HINT,
    MIGRATIONS,
    Migration,
    compiled_schema,
    migrate,
    parse,
)
from planfleet.state.records import SCHEMA_VERSION, State, with_defaults, without_defaults

_TASK_SEP = ITEM_SEP + '"'  # between two task entries


def _shell(state: State) -> dict[str, Any]:
    """Return ``state`` without its large members (checked and serialized apart)."""
    return {**state, "tasks": {}, "events": [], "order": []}


@dataclass
class _Entry:
    """A valid task record this codec read or wrote: a private copy and its text chunk."""

    ref: dict[str, Any]
    chunk: str  # '"<id>": {...}' exactly as it sits in the file, without the first indent

    def __post_init__(self) -> None:
        self.nested = tuple(k for k, v in self.ref.items() if isinstance(v, (list, dict)))
        self.tail = self.chunk[1:]  # as it follows an entry separator in the file


class Blocks(NamedTuple):
    """The inner text of the three large top-level members, and whether any changed."""

    tasks: str
    events: str
    order: str
    changed: bool | None  # None: not known (the document was parsed whole)


Walker = Callable[[str, int], "tuple[Any, int] | None"]


class Codec:
    """Validates and serializes state documents, remembering the parts it has seen."""

    def __init__(self, migrations: Mapping[int, Migration] = MIGRATIONS) -> None:
        self.migrations = migrations
        self._tasks: dict[str, _Entry] = {}
        self._pieces: list[str] = []
        self._piece_ids: list[str] = []
        self._events = EventMemo()
        self._order: list[str] = []
        self._order_text = ""
        # The top level of the last document decoded from known text (None: not known).
        self._shell: dict[str, Any] | None = None

    # -- reading -------------------------------------------------------------------------

    def decode(self, text: str, *, file: str) -> tuple[State, int]:
        """Return the validated state in ``text`` and the schema version the file had."""
        doc = self._decode_known(text) if self._tasks else None
        if doc is not None:
            return doc, SCHEMA_VERSION
        self._shell = None
        doc, version = migrate(parse(text, file=file), file=file, migrations=self.migrations)
        self.validate(doc, file=file)
        doc["tasks"] = {tid: with_defaults(rec) for tid, rec in doc["tasks"].items()}
        return doc, version

    def validate(self, state: State, *, file: str) -> None:
        """Raise InputError naming the first problem if ``state`` breaks the schema."""
        schema = compiled_schema()
        if (
            self._shape_ok(state)
            and all(
                schema.ok_def("node_id", t) and schema.ok_def("task", r)
                for t, r in state["tasks"].items()
            )
            and all(schema.ok_def("event", e) for e in state["events"])
            and all(schema.ok_def("node_id", t) for t in state["order"])
        ):
            return
        # The reference validator decides, and says what is wrong.
        problem = schema.error(state)
        if problem is not None:
            raise InputError(f"invalid state: {problem}", file=file, hint=DAMAGED_HINT)

    @staticmethod
    def _shape_ok(state: State) -> bool:
        return (
            isinstance(state.get("tasks"), dict)
            and isinstance(state.get("events"), list)
            and isinstance(state.get("order"), list)
            and compiled_schema().ok(_shell(state))
        )

    def _decode_known(self, text: str) -> State | None:
        """Return the state rebuilt from remembered parts, or None to parse it all.

        Succeeds only for canonical text of the current version whose new parts are valid;
        then the result equals ``json.loads(text)`` with unset task fields filled in.
        """
        members: list[tuple[str, str, str, Walker]] = [
            ("events", '\n  "events": [\n', '\n  "events": []', self._events.walk),
            ("order", '\n  "order": [\n', '\n  "order": []', self._walk_order),
            ("tasks", '\n  "tasks": {\n', '\n  "tasks": {}', self._walk_tasks),
        ]
        pieces, values, pos = [], {}, 0
        for name, head, placeholder, walk in members:
            at = text.find(head, pos)
            if at < 0:
                continue  # an empty member: it stays in the shell as it is
            walked = walk(text, at + len(head))
            if walked is None:
                return None
            values[name], after = walked
            pieces += [text[pos:at], placeholder]
            pos = after
        pieces.append(text[pos:])
        rest = "".join(pieces)
        shell = loads(rest)
        # The shell must be canonical too, with the placeholders as its large members:
        # then the whole text is the canonical form of the rebuilt document.
        if not (
            isinstance(shell, dict)
            and shell.get("schema_version") == SCHEMA_VERSION
            and dumps(shell) + "\n" == rest
            and shell.get("tasks") == {}
            and shell.get("events") == []
            and shell.get("order") == []
            and self._shape_ok(shell)
        ):
            return None
        shell.update(values)
        self._remember_tasks({t: self._tasks[t] for t in shell["tasks"]})
        if "events" not in values:
            self._events.remember([], [])
        self._shell = loads(rest)  # a private copy, to tell later what changed
        return shell

    def _walk_tasks(self, text: str, pos: int) -> tuple[dict[str, Any], int] | None:
        # The block ends at the first line of two spaces; "totals" follows it (sorted keys),
        # so look for that from the end, which is near. A stray "\n  }" inside the block
        # would fail the checks below (no canonical entry holds one).
        stop = text.rfind('\n  },\n  "totals": {', pos)
        if stop < 0:
            stop = text.find("\n  }", pos)
        if stop < 0 or not text.startswith("    ", pos):
            return None
        # Cut into entries in C, and compare them with the remembered ones in C too.
        pieces = text[pos:stop].split(_TASK_SEP)
        same: list[bool] = (
            list(map(str.__eq__, pieces, self._pieces))
            if len(pieces) == len(self._pieces)
            else [False] * len(pieces)
        )
        known = self._tasks
        tasks: dict[str, Any] = {}
        previous = ""
        for i, piece in enumerate(pieces):
            if same[i]:
                tid = self._piece_ids[i]
                entry = known[tid]
            else:
                chunk = piece[4:] if i == 0 else '"' + piece  # what the cut took off
                tid = chunk[1 : chunk.find('"', 1)]
                maybe = known.get(tid)
                if maybe is not None and maybe.chunk == chunk:
                    entry = maybe
                else:
                    found = _new_task_entry(chunk)
                    if found is None:
                        return None
                    tid, entry = found
                    known[tid] = entry
            if tid <= previous:  # canonical text has unique ids in sorted order
                return None
            previous = tid
            # A copy the caller may change: a valid record nests containers one level deep.
            record = entry.ref.copy()
            for key in entry.nested:
                record[key] = record[key].copy()
            tasks[tid] = record
        return tasks, stop + 4

    def _walk_order(self, text: str, pos: int) -> tuple[list[str], int] | None:
        known = self._order_text
        if known and text.startswith(known, pos) and text.startswith("\n  ]", pos + len(known)):
            return self._order.copy(), pos + len(known) + 4
        end = text.find("\n  ]", pos)
        order = loads("[" + text[pos:end] + "]") if end > pos else None
        schema = compiled_schema()
        if not (isinstance(order, list) and all(schema.ok_def("node_id", t) for t in order)):
            return None
        if _order_block(order) != text[pos:end]:
            return None
        self._order, self._order_text = order.copy(), text[pos:end]
        return order, end + 4

    def _remember_tasks(self, entries: dict[str, _Entry]) -> None:
        """Remember ``entries`` (in id order) as the document's tasks, and nothing else."""
        self._tasks = entries
        # The tasks block as str.split(_TASK_SEP) cuts it, to compare a file's with.
        self._piece_ids = list(entries)
        self._pieces = [e.tail for e in entries.values()]
        if self._pieces:
            self._pieces[0] = "    " + entries[self._piece_ids[0]].chunk

    # -- writing -------------------------------------------------------------------------

    def encode(self, state: State, *, file: str) -> str:
        """Return the canonical text of ``state``; raise InputError if it is invalid."""
        return self.assemble(state, self.blocks(state, file=file))

    def blocks(self, state: State, *, file: str) -> Blocks:
        """Return the large members' text; validate and serialize only what changed.

        ``changed`` says whether the document differs from the one last decoded (None
        after a full parse, when that is not known). A record equal to a remembered one
        (Python equality, so ``1`` stands for ``True``) is written as the text already
        validated for it.
        """
        schema = compiled_schema()
        if not self._shape_ok(state):
            self.validate(state, file=file)
        baseline = self._shell is not None
        changed = not baseline or _shell(state) != self._shell
        entries: dict[str, _Entry] = {}
        for tid in sorted(state["tasks"]):
            rec = state["tasks"][tid]
            entry = self._tasks.get(tid)
            if entry is None or entry.ref != rec:
                if not (schema.ok_def("node_id", tid) and schema.ok_def("task", rec)):
                    self.validate(state, file=file)
                entry = _task_entry(tid, json.loads(dumps(rec)))
                changed = True
            entries[tid] = entry
        changed = changed or len(entries) != len(self._tasks)
        order = state["order"]
        if order != self._order and not all(schema.ok_def("node_id", t) for t in order):
            self.validate(state, file=file)

        def check_event(event: Any) -> None:
            if not schema.ok_def("event", event):
                self.validate(state, file=file)

        changed = self._events.update(state["events"], check_event) or changed
        self._remember_tasks(entries)
        if order != self._order:
            self._order, self._order_text = list(order), _order_block(order)
            changed = True
        tasks_text = ITEM_SEP.join(e.chunk for e in entries.values())
        return Blocks(
            tasks_text, self._events.text, self._order_text, changed if baseline else None
        )

    @staticmethod
    def assemble(state: State, blocks: Blocks) -> str:
        """Return the full text from the small top level and the prepared blocks."""
        text = dumps(_shell(state))
        # The small blocks first: every replace copies the text so far.
        if blocks.order:
            text = text.replace('\n  "order": []', f'\n  "order": [\n{blocks.order}\n  ]', 1)
        if blocks.events:
            text = text.replace('\n  "events": []', f'\n  "events": [\n    {blocks.events}\n  ]', 1)
        if blocks.tasks:
            text = text.replace('\n  "tasks": {}', f'\n  "tasks": {{\n    {blocks.tasks}\n  }}', 1)
        return text + "\n"


def _task_entry(tid: str, rec: dict[str, Any]) -> _Entry:
    """Return the entry of a record (all fields in memory, unset ones left out on disk)."""
    ref = with_defaults(rec)
    return _Entry(ref, f"{dumps(tid)}: {indent(dumps(without_defaults(ref)))}")


def _new_task_entry(chunk: str) -> tuple[str, _Entry] | None:
    """Return the id and entry of a task chunk not seen before, if valid and canonical."""
    parsed = loads("{" + chunk + "}")
    if not (isinstance(parsed, dict) and len(parsed) == 1):
        return None
    ((tid, rec),) = parsed.items()
    schema = compiled_schema()
    if not (schema.ok_def("node_id", tid) and schema.ok_def("task", rec)):
        return None
    entry = _task_entry(tid, rec)
    return (tid, entry) if entry.chunk == chunk else None


def _order_block(order: list[str]) -> str:
    return "    " + ITEM_SEP.join(dumps(t) for t in order) if order else ""
