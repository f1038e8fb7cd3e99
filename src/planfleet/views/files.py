"""Projections into files of their own: maxvision frontmatter, execute-state.json, GSD summaries."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

from planfleet.plan import model
from planfleet.plan.formats.builder import status_from_word
from planfleet.plan.formats.execute_state import STATE_FILE, read_state
from planfleet.plan.formats.xml_tasks import LAYER
from planfleet.plan.formats.yamlfront import frontmatter_block, read_frontmatter
from planfleet.state.records import TaskRecord, merge_order
from planfleet.views.facts import (
    BOM,
    Context,
    Edit,
    guarded,
    one_line,
    read_doc,
    recorded,
    short_time,
)
from planfleet.views.marks import Doc

# How maxvision plan frontmatter words each recorded status.
MAXVISION_WORDS = {
    "pending": "pending",
    "in_progress": "in_progress",
    "done": "completed",
    "failed": "failed",
    "blocked": "blocked",
    "skipped": "skipped",
}
_STATUS_KEY = re.compile(r"^(status\s*:[ \t]*)([^#\r\n]*?)([ \t]+#.*)?$")
SUMMARY_MARK = "<!-- planfleet:summary"
ATTEMPT_KEYS = ("attempt", "attempts")  # the batch workflow's word first
WORKTREE_KEYS = ("worktree", "worktree_path")


def _plan_error(ctx: Context, kind: str) -> list[Edit]:
    return [Edit(ctx.path(ctx.plan.path), kind, error=ctx.plan_error)] if ctx.plan_error else []


def maxvision_status(ctx: Context) -> list[Edit]:
    """Return one Edit per maxvision plan file: its frontmatter ``status``."""
    if ctx.plan_error:
        return _plan_error(ctx, "frontmatter")
    edits = []
    for task in ctx.plan.tasks:
        rec = ctx.record(task.id)
        if rec is not None:
            path = ctx.path(task.source.file)
            want = recorded(rec["status"])
            edits.append(guarded(path, "frontmatter", partial(_frontmatter, path, want)))
    return edits


def _frontmatter(path: Path, want: str) -> Edit:
    found = read_doc(path)
    if found is None:
        return Edit(path, "frontmatter", error="the plan file disappeared; nothing rendered")
    text, bom = found
    data, _, _, body_first = read_frontmatter(text, file=str(path))
    current = data.get("status")
    if status_from_word(None if current is None else str(current)) == want:
        return Edit(path, "frontmatter", (BOM if bom else "") + text)
    word = MAXVISION_WORDS[want]
    doc = Doc(text, bom)
    ending = (doc.lines[0][len(doc.get(1)) :] if doc.lines else "") or "\n"
    if frontmatter_block(text) is None:
        doc.lines[0:0] = [f"---{ending}", f"status: {word}{ending}", f"---{ending}"]
    else:
        keys = ((k, m) for k in range(2, body_first - 1) if (m := _STATUS_KEY.match(doc.get(k))))
        at = next(keys, None)
        if at is None:
            doc.lines.insert(body_first - 2, f"status: {word}{ending}")
        else:
            line, m = at
            doc.set(line, f"{m.group(1)}{word}{m.group(3) or ''}")
    new = doc.text().removeprefix(BOM)
    # the edit is kept only if the frontmatter still reads the same, status aside
    after, _, _, _ = read_frontmatter(new, file=str(path))
    if after.get("status") != word or {k: v for k, v in after.items() if k != "status"} != {
        k: v for k, v in data.items() if k != "status"
    }:
        return Edit(path, "frontmatter", error="its frontmatter status cannot be updated safely")
    return Edit(path, "frontmatter", doc.text())


def _xml_root(ctx: Context) -> Path:
    path = ctx.path(ctx.plan.path)
    if not path.is_file():
        return path
    root = path.parent
    return root.parent if LAYER.match(root.name) else root


def execute_state(ctx: Context) -> list[Edit]:
    """Return the Edit of ``execute-state.json`` in an XML tasks directory."""
    path = _xml_root(ctx) / STATE_FILE
    return [guarded(path, "execute-state", lambda: _execute_state(ctx, path))]


def _execute_state(ctx: Context, path: Path) -> Edit:
    old: dict[str, Any] = {}
    text = ""
    if path.exists():
        old = read_state(path, str(path))
        text = old.pop("text")
    data = json.loads(json.dumps(old)) or {
        "plan": ctx.state["plan"]["name"],
        "started_at": short_time(ctx.state["created_at"]),
    }
    records = {t.id: rec for t in ctx.plan.tasks if (rec := ctx.record(t.id)) is not None}
    ours = set(records)
    tasks = data.setdefault("tasks", {})
    for tid, rec in records.items():
        _task_entry(tasks.setdefault(tid, {}), rec, ctx.repo)
    data["merge_queue"] = _queue(ctx, data.get("merge_queue", []), ours)
    abandoned = [str(a) for a in data.get("abandoned", [])]
    wanted = [a for a in ctx.state["abandoned"] if a in ours]
    data["abandoned"] = [a for a in abandoned if a not in ours or a in wanted] + [
        a for a in wanted if a not in abandoned
    ]
    if old and data == old:
        return Edit(path, "execute-state", text)
    return Edit(path, "execute-state", json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _task_entry(entry: dict[str, Any], rec: TaskRecord, repo: Path) -> None:
    """Update one task's entry in place, in its own words; keys this run does not know stay.

    The batch workflow counts ``attempt`` and may name the worktree ``worktree_path``: the
    fields an entry already has are the ones kept in step (``attempt`` and ``worktree``
    when it has neither). A worktree is written relative to the repository.
    """
    status = str(rec["status"])
    word = entry.get("status")
    if "status" not in entry or status_from_word(
        word if isinstance(word, str) else None
    ) != recorded(status):
        entry["status"] = status
    if rec["attempts"]:  # attempts another tool made are not in the state: keep its count
        for key in [k for k in ATTEMPT_KEYS if k in entry] or ATTEMPT_KEYS[:1]:
            entry[key] = rec["attempts"]
    if rec.get("worktree"):
        for key in [k for k in WORKTREE_KEYS if k in entry] or WORKTREE_KEYS[:1]:
            entry[key] = _in_repo(repo, str(rec["worktree"]))
    for key, field in (("branch", "branch"), ("commit_hash", "commit")):
        if rec.get(field):
            entry[key] = rec[field]
    if status == "verified" and rec.get("finished_at"):
        entry["completed_at"] = short_time(rec["finished_at"])
    if rec.get("feedback"):
        entry["retry_feedback"] = rec["feedback"]
    err = rec.get("error")
    if err and status in ("failed", "timeout"):
        errors = entry.get("errors")
        errors = errors if isinstance(errors, list) else []
        if dict(err) not in errors:
            entry["errors"] = [*errors, dict(err)]
    if status == "abandoned":
        reason = rec.get("note") or (err or {}).get("message") or "abandoned"
        entry["final_error"] = one_line(str(reason), 300)


def _in_repo(repo: Path, path: str) -> str:
    """Return ``path`` relative to ``repo`` (posix) when it is inside it, else unchanged."""
    try:
        return Path(path).resolve().relative_to(repo.resolve()).as_posix()
    except (ValueError, OSError):
        return path


def _queue(ctx: Context, queue: list[Any], ours: set[str]) -> list[Any]:
    """Return the merge queue: other tasks' entries, our merged ones, then ours waiting."""
    old = {str(e.get("task_id")): e for e in queue if isinstance(e, dict)}
    out = [e for e in queue if not (isinstance(e, dict) and str(e.get("task_id")) in ours)]
    waiting = merge_order(ctx.state)
    for t in ctx.plan.tasks:
        rec = ctx.record(t.id)
        if t.id in waiting or rec is None or rec["status"] != "verified":
            continue
        if rec.get("merged_at"):
            out.append({**old.get(t.id, {}), "task_id": t.id, "status": "merged"})
        elif old.get(t.id, {}).get("status") == "merged":
            out.append(old[t.id])
    priority = {e["task"]: e["priority"] for e in ctx.state["merge_queue"]}
    for tid in (t for t in waiting if t in ours):
        out.append(
            {**old.get(tid, {}), "task_id": tid, "priority": priority[tid], "status": "ready"}
        )
    return out


def gsd_summaries(ctx: Context) -> list[Edit]:
    """Return the Edits of ``NN-MM-SUMMARY.md`` files: GSD's mark that a plan was executed.

    A verified task gets one (unless it has its own); ours is removed when the task is not
    verified any more. A SUMMARY we did not write is never touched.
    """
    if ctx.plan_error:
        return _plan_error(ctx, "summary")
    edits = []
    for task in ctx.plan.tasks:
        rec = ctx.record(task.id)
        if rec is None:
            continue
        path = ctx.path(task.source.file).with_name(f"{task.id}-SUMMARY.md")
        edits.append(guarded(path, "summary", partial(_summary, ctx, task, rec, path)))
    return edits


def _summary(ctx: Context, task: model.Task, rec: TaskRecord, path: Path) -> Edit:
    found = read_doc(path)
    ours = found is not None and SUMMARY_MARK in found[0]
    if rec["status"] != "verified":
        if ours:
            return Edit(path, "summary", delete=True)
        if found is not None:
            note = (
                f"{path.name} says the plan was executed, but the run state has it {rec['status']}"
            )
            return Edit(path, "summary", warnings=(note,))
        return Edit(path, "summary")
    if found is not None and not ours:
        return Edit(path, "summary")
    evidence = ctx.evidence(task.id)
    lines = [
        f"# {task.id} summary",
        "",
        f"{SUMMARY_MARK} (written from the run state: this plan was executed and verified) -->",
        "",
        f"- Plan: {one_line(task.title, 200)}",
        f"- Verified: {short_time(rec.get('finished_at'))}",
    ]
    if rec.get("commit"):
        lines.append(f"- Commit: {rec['commit']}")
    if evidence is not None:
        lines += [f"- Files created: {', '.join(evidence.created) or 'none'}"]
        lines += [f"- Files modified: {', '.join(evidence.modified) or 'none'}"]
        lines += [f"- Tests run: {'; '.join(evidence.tests) or 'none recorded'}"]
    return Edit(path, "summary", "\n".join(lines) + "\n")
