"""The ``## Execution Checkpoints`` section of `.ai/plans` files, rendered from the state.

One YAML entry per phase that has started (``formats.ai_checkpoints`` reads it back)::

    - phase_1:
        status: complete
        completed_at: 2025-03-03T09:12:00Z
        artifacts: [crates/invoice/src/model.rs]
    - phase_2:
        status: failed
        failed_at: 2025-03-03T11:40:00Z
        error: "test_failure at cargo test: 2 failed"
        last_successful_step: "Task 2.1: Renderer skeleton"
        completed_tasks: [2.1]

The section is replaced whole, in the form the user has (a heading with a fenced block, or
the heading written inside the fence); without one it is appended at the end of the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from planfleet.plan import model
from planfleet.plan.formats.ai_checkpoints import checkpoint_word, is_checkpoints_heading
from planfleet.plan.formats.markdown import fence_spans, lines_of
from planfleet.state.records import TaskRecord
from planfleet.views.facts import (
    Context,
    Edit,
    PhaseView,
    one_line,
    phase_view,
    same_import,
    short_time,
)
from planfleet.views.marks import Doc, plan_file_edit

KIND = "checkpoints"
HEADING = "## Execution Checkpoints"
_PLAIN = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+ -]*$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?)?$")
# The recorded status of each phase status, to compare with what a checkpoint says.
PHASE_RECORDED = {
    "complete": "done",
    "skipped": "skipped",
    "failed": "failed",
    "blocked": "blocked",
    "in_progress": "in_progress",
    "pending": "pending",
}
_HEADING_LINE = re.compile(r"^\s*#{1,6}\s*(.*?)\s*$")


def checkpoints(ctx: Context) -> list[Edit]:
    """Return the Edit of the plan file's ``## Execution Checkpoints`` section."""
    return plan_file_edit(ctx, KIND, lambda path, doc: _render(ctx, path, doc))


def _render(ctx: Context, path: Path, doc: Doc) -> Edit:
    entries = [e for p in ctx.plan.phases for e in _entry(ctx, phase_view(ctx, p))]
    body = entries or ["[]"]
    name = ctx.state["plan"]["name"]
    comment = f"written by planfleet from its run state ({name}); edits here are replaced"
    fenced = _fenced_heading(doc)
    if fenced is not None:
        heading, close = fenced
        _splice(doc, heading + 1, close - 1, ["", f"# {comment}", *body])
        return Edit(path, KIND, doc.text())
    at = _heading(doc)
    if at is not None:
        end = doc.heading_end(at)
        while end > at and not doc.get(end).strip():
            end -= 1
        _splice(doc, at + 1, end, ["", f"<!-- {comment} -->", "", "```yaml", *body, "```"])
        return Edit(path, KIND, doc.text())
    if entries:
        ending = _ending(doc)
        if doc.lines and not doc.lines[-1].endswith(("\n", "\r")):
            doc.lines[-1] += ending
        lead = [""] if doc.lines and doc.get(len(doc.lines)).strip() else []
        block = [*lead, HEADING, "", f"<!-- {comment} -->", "", "```yaml", *entries, "```"]
        doc.lines.extend(line + ending for line in block)
    return Edit(path, KIND, doc.text())


def _ending(doc: Doc) -> str:
    first = doc.lines[0] if doc.lines else "\n"
    return first[len(doc.get(1)) :] or "\n"


def _splice(doc: Doc, start: int, end: int, lines: list[str]) -> None:
    """Replace lines start..end (1-based, inclusive; end < start inserts) with ``lines``."""
    ending = _ending(doc)
    doc.lines[start - 1 : max(end, start - 1)] = [line + ending for line in lines]


def _fenced_heading(doc: Doc) -> tuple[int, int] | None:
    """Return ``(heading line, closing fence line)`` of a fence that opens with the heading."""
    for start, close in fence_spans(lines_of("".join(doc.lines))):
        first = next((k for k in range(start + 1, close) if doc.get(k).strip()), None)
        if first is not None and _is_heading(doc.get(first)):
            return first, close
    return None


def _heading(doc: Doc) -> int | None:
    for k in range(1, len(doc.lines) + 1):
        if doc.outside(k) and _is_heading(doc.get(k)):
            return k
    return None


def _is_heading(text: str) -> bool:
    m = _HEADING_LINE.match(text)
    return bool(m and text.lstrip().startswith("#") and is_checkpoints_heading(m.group(1)))


def scalar(value: str) -> str:
    """Return ``value`` as a YAML scalar: plain when it reads back as the same string."""
    if _TIME.match(value):  # read back as a time, which the reader turns into this text
        return value.replace("+00:00", "Z")
    if _PLAIN.match(value) and not value.endswith(" "):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)


def value(data: Any) -> str:
    """Return ``data`` (what a checkpoint entry holds) as a one-line YAML value."""
    if isinstance(data, bool):
        return "true" if data else "false"
    if data is None:
        return "null"
    if isinstance(data, (int, float)):
        return repr(data)
    if isinstance(data, list):
        return "[" + ", ".join(value(v) for v in data) + "]"
    if isinstance(data, dict):
        return "{" + ", ".join(f"{scalar(str(k))}: {value(v)}" for k, v in data.items()) + "}"
    return scalar(str(data))


def _when(rec: TaskRecord) -> str:
    return str(rec.get("finished_at") or rec["updated_at"])


def _ran(rec: TaskRecord) -> bool:
    """Return True if planfleet worked on the task (it was not only imported)."""
    return bool(rec["attempts"] or rec.get("started_at"))


def _entry(ctx: Context, view: PhaseView) -> list[str]:
    """Return the YAML lines of one phase's checkpoint ([] for a phase not started)."""
    status = view.status
    phase = view.phase
    existing = phase.meta.get("checkpoint")
    records = [rec for _, rec in view.tasks] + ([view.gate] if view.gate else [])
    if isinstance(existing, dict) and not any(_ran(r) for r in records):
        word = existing.get("status")
        said = None if word is None else checkpoint_word(str(word))
        if same_import(said, PHASE_RECORDED[status]):
            # imported and untouched since: the entry another run wrote stays as it was
            return [f"- phase_{phase.id}:", *(f"    {k}: {value(v)}" for k, v in existing.items())]
    if status == "pending":
        return []
    fields = {"status": status, **_details(ctx, view, existing)}
    return [f"- phase_{phase.id}:", *(f"    {k}: {v}" for k, v in fields.items())]


def _details(ctx: Context, view: PhaseView, existing: Any) -> dict[str, str]:
    """Return the entry's fields after ``status``, as YAML values."""
    phase, status = view.phase, view.status
    multi = len(view.tasks) > 1 or any(tid != phase.id for tid, _ in view.tasks)
    nodes = [*view.tasks, *([(model.gate_id(phase.id), view.gate)] if view.gate else [])]
    verified = [(tid, r) for tid, r in view.tasks if r["status"] == "verified"]
    out: dict[str, str] = {}
    if status == "complete":
        out["completed_at"] = short_time(max(_when(r) for _, r in nodes))
        out["artifacts"] = value(_artifacts(ctx, phase, verified))
    elif status == "failed":
        node, rec = max(
            ((t, r) for t, r in nodes if r["status"] in ("failed", "timeout")),
            key=lambda tr: _when(tr[1]),
        )
        said = existing if isinstance(existing, dict) and not _ran(rec) else {}
        out["failed_at"] = (
            value(said["failed_at"]) if "failed_at" in said else short_time(_when(rec))
        )
        err = rec.get("error") or {}
        if "error" in said:  # imported: what the checkpoint said is the best account of it
            out["error"] = value(said["error"])
        else:
            text = f"{err.get('type')} at {err.get('step')}: {err.get('message')}"
            who = "gate" if model.is_gate(node) else f"task {node}" if multi else ""
            out["error"] = scalar(one_line(f"{who}: {text}" if who else text))
        if verified:
            last = max(verified, key=lambda tr: str(tr[1].get("finished_at") or ""))
            out["last_successful_step"] = scalar(_step(last, multi))
    elif status == "blocked":
        rec = next(r for _, r in nodes if r["status"] in ("blocked", "abandoned"))
        out["reason"] = scalar(one_line(rec.get("note") or rec["status"]))
    elif status == "in_progress":
        started = [str(r["started_at"]) for _, r in view.tasks if r.get("started_at")]
        if started:
            out["started_at"] = short_time(min(started))
    if verified and status != "complete":
        out["completed_tasks"] = value([tid for tid, _ in verified])
    return out


def _step(item: tuple[str, TaskRecord], multi: bool) -> str:
    tid, rec = item
    return f"Task {tid}: {one_line(rec['title'], 120)}" if multi else one_line(rec["title"], 120)


def _artifacts(
    ctx: Context, phase: model.Phase, verified: list[tuple[str, TaskRecord]]
) -> list[str]:
    """Return the files the phase's tasks made: from their verification records, else planned."""
    out: dict[str, None] = {}
    for tid, _ in verified:
        evidence = ctx.evidence(tid)
        if evidence is not None:
            files = evidence.files
        else:
            task = next((t for t in ctx.plan.tasks_of(phase.id) if t.id == tid), None)
            files = (task.files_create + task.files_modify) if task else ()
        out.update(dict.fromkeys(files))
    return list(out)
