"""``execute-state.json``: what a batch run recorded about an xml-tasks plan, imported as statuses.

Shape: ``{"tasks": {ID: {"status", "attempt" (or "attempts"), "worktree" (or
"worktree_path"), "retry_feedback", "branch", "commit_hash", "errors", "final_error",
...}}, "merge_queue": [{"task_id", "priority", "status"}], "abandoned": [ID]}``.
Statuses map through the builder's status words (completed/verified -> done, abandoned ->
blocked); unknown words are warnings. A malformed file is an InputError with its line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from planfleet import jsonread
from planfleet.errors import InputError
from planfleet.fsutil import read_text
from planfleet.plan.formats.builder import PlanBuilder, status_from_word

STATE_FILE = "execute-state.json"


def read_state(path: Path, shown: str) -> dict[str, Any]:
    """Return execute-state.json checked for shape; InputError with the line otherwise."""
    text = read_text(path)
    data = jsonread.loads(text, file=shown)
    if not isinstance(data, dict):
        raise InputError(
            'execute-state.json must be a JSON object with a "tasks" map', file=shown, line=1
        )
    checks = (
        ("tasks", dict, "an object mapping task ids to their state"),
        ("merge_queue", list, "a list"),
        ("abandoned", list, "a list of task ids"),
    )
    for key, kind, what in checks:
        if key in data and not isinstance(data[key], kind):
            raise InputError(
                f"{key!r} must be {what}", file=shown, line=_key_line(text, key), field=key
            )
    for tid, entry in data.get("tasks", {}).items():
        if not isinstance(entry, dict):
            raise InputError(
                f"the state of task {tid!r} must be an object",
                file=shown,
                line=_key_line(text, tid),
                field=f"tasks.{tid}",
            )
    return {"text": text, **data}


def _key_line(text: str, key: str) -> int | None:
    return KeyLines(text)(key)


class KeyLines:
    """The line of every key of a JSON text (its first occurrence), found in one pass.

    Looking each task id up in the whole text made a big state file quadratic to read.
    """

    # Every string is consumed, so a match never starts inside one; a colon makes it a key.
    _STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"(\s*:)?')

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        line, pos = 1, 0
        for m in self._STRING.finditer(text):
            if m.group(1) is None:
                continue
            line += text.count("\n", pos, m.start())
            pos = m.start()
            self.lines.setdefault(text[m.start() : m.start(1)], line)

    def __call__(self, key: str) -> int | None:
        found = self.lines.get(json.dumps(key))
        return found if found is not None else self.lines.get(json.dumps(key, ensure_ascii=False))


_STATE_META = (
    ("worktree", "worktree"),
    ("worktree_path", "worktree"),
    ("attempts", "attempts"),
    ("attempt", "attempts"),
    ("retry_feedback", "retry_feedback"),
    ("branch", "branch"),
    ("commit_hash", "commit"),
    ("commit", "commit"),
    ("errors", "errors"),
    ("completed_at", "completed_at"),
    ("final_error", "final_error"),
)


def apply_state(b: PlanBuilder, state: dict[str, Any], path: Path, *, partial: bool) -> None:
    """Import recorded statuses and run details of execute-state.json into the tasks."""
    key_line = KeyLines(state["text"])
    queue = {
        str(e.get("task_id")): e.get("status", "queued")
        for e in state.get("merge_queue", [])
        if isinstance(e, dict)
    }
    abandoned = {str(t) for t in state.get("abandoned", [])}
    for tid, entry in state.get("tasks", {}).items():
        task = b.tasks.get(tid)
        if task is None:
            if not partial:
                b.diag(
                    "warning",
                    f"execute-state.json names task {tid!r}, which has no task file",
                    file=path,
                    line=key_line(tid),
                    field=f"tasks.{tid}",
                )
            continue
        word = entry.get("status")
        if not isinstance(word, (str, type(None))):
            word = str(word)
        task["status"] = b.status(word, line=key_line(tid), file=path)
        meta = {new: entry[old] for old, new in _STATE_META if entry.get(old) is not None}
        meta["state_status"] = word or "pending"
        if tid in queue:
            meta["merge_queue"] = queue[tid]
        task["meta"] = meta
    for tid in abandoned & b.tasks.keys():
        task = b.tasks[tid]
        task["meta"] = {**task.get("meta", {}), "abandoned": True}
        if task.get("status", "pending") in ("pending", "in_progress", "failed"):
            task["status"] = "blocked"
    b.meta.update(state_file=b.rel(path), merge_queue=sorted(queue), abandoned=sorted(abandoned))


def drop_external(b: PlanBuilder, state: dict[str, Any] | None) -> None:
    """Reading one task file: drop dependencies on other tasks that are recorded done."""
    recorded = (state or {}).get("tasks", {})
    for tid, task in b.tasks.items():
        kept = []
        for dep in task.get("depends_on", ()):
            if dep in b.tasks:
                kept.append(dep)
                continue
            word = recorded.get(dep, {}).get("status")
            if not isinstance(word, str) or status_from_word(word) != "done":
                b.diag(
                    "error",
                    f"task {tid!r} depends on {dep!r}, which is not recorded as "
                    "completed in execute-state.json",
                    file=b.repo / task["source"].file,
                    line=task["source"].line,
                    field="dependencies",
                    hint="run the whole tasks directory, or finish that task first",
                )
        task["depends_on"] = tuple(kept)
