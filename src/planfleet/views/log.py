"""``execution-log.md`` for every plan and ``progress.md`` for plan directories.

Both are one section between our begin/end markers. A file that exists without the
markers (a log another tool keeps) keeps its text; our section is appended after it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from planfleet import paths
from planfleet.plan import model
from planfleet.plan.formats.progress_md import PHASE_HEADER, TASK_HEADER
from planfleet.state.records import TaskRecord
from planfleet.views.facts import (
    RUN_WORDS,
    Context,
    Edit,
    guarded,
    log_path,
    one_line,
    phase_view,
    read_doc,
    short_time,
)

_LABELS = {
    "init": "Execution started",
    "claimed": "started",
    "verified": "verified",
    "failed": "FAILED",
    "timeout": "TIMED OUT",
    "blocked": "BLOCKED",
    "abandoned": "ABANDONED",
    "skipped": "skipped",
    "reset": "reset to pending",
    "reset_hard": "reset (attempts forgotten)",
    "released": "handed back",
    "held": "HELD until the next resume",
    "unheld": "no longer held",
    "attempt_kept": "failed attempt kept",
    "orphaned": "orphaned (its process is gone)",
    "untrusted": "not trusted (commit not found)",
    "run_paused": "Run PAUSED",
    "run_running": "Run resumed",
    "run_completed": "Run COMPLETE",
    "run_failed": "Run FAILED",
}
_PROBLEMS = ("failed", "timeout", "blocked", "abandoned")


def begin(name: str) -> str:
    return f"<!-- planfleet:begin {name} (rendered from the run state; edits here are replaced) -->"


def end(name: str) -> str:
    return f"<!-- planfleet:end {name} -->"


def managed(path: Path, kind: str, name: str, body: list[str]) -> Edit:
    """Return the Edit that puts ``body`` between our markers in ``path`` (created if new)."""
    section = "\n".join([begin(name), *body, end(name)]) + "\n"
    found = read_doc(path)
    if found is None:
        return Edit(path, kind, section)
    text, bom = found
    head = text.find(begin(name).split(" (", 1)[0])
    tail = text.find(end(name))
    if head < 0 and tail < 0:
        sep = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
        return Edit(path, kind, ("\ufeff" if bom else "") + text + sep + section)
    if head < 0 or tail < head or text.count(end(name)) > 1:
        return Edit(path, kind, error=f"the planfleet markers of the {name} section are broken")
    stop = tail + len(end(name))
    stop += 1 if text[stop : stop + 1] == "\n" else 0
    new = text[:head] + section + text[stop:]
    return Edit(path, kind, ("\ufeff" if bom else "") + new)


def execution_log(ctx: Context) -> list[Edit]:
    """Return the Edit of the plan's execution log."""
    path = log_path(ctx.repo, ctx.plan)
    return [
        guarded(
            path,
            "execution-log",
            lambda: managed(path, "execution-log", "execution-log", _log(ctx)),
        )
    ]


def _counts(ctx: Context) -> tuple[Counter[str], int]:
    tasks = ctx.state["tasks"]
    return Counter(str(tasks[t]["status"]) for t in ctx.task_ids()), len(ctx.task_ids())


def _log(ctx: Context) -> list[str]:
    state, plan = ctx.state, ctx.plan
    counts, total = _counts(ctx)
    gates = [ctx.state["tasks"][g] for g in ctx.task_ids("gate")]
    current = next(
        (phase_view(ctx, p) for p in plan.phases if phase_view(ctx, p).status != "complete"), None
    )
    lines = [
        f"# Execution Log - {one_line(plan.title, 200)}",
        "",
        f"Started: {short_time(state['created_at'])}",
        f"Plan: {one_line(plan.title, 200)} ({plan.format}, {_shown(ctx, plan.path)})",
        f"Status: {RUN_WORDS[state['status']]}",
        f"Last Updated: {short_time(ctx.last_change())}",
        "",
        "## Progress",
        "",
        f"- Current Phase: {_phase_name(current.phase) if current else 'none, all complete'}",
        f"- Completed Tasks: {counts['verified']}/{total}"
        + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""),
        f"- Phase Gates Passed: {sum(1 for g in gates if g['status'] == 'verified')}/{len(gates)}",
        f"- In Progress: {counts['in_progress']}",
        f"- Errors: {sum(counts[s] for s in _PROBLEMS)}",
        f"- Cost: ${float(state['totals']['cost_usd']):.2f}",
        "",
        "## Timeline",
        "",
        *_timeline(ctx),
        "",
        "## Errors",
        "",
        *_errors(ctx),
    ]
    return lines


def _shown(ctx: Context, path: str) -> str:
    try:
        return str(ctx.path(path).relative_to(ctx.repo))
    except ValueError:
        return path


def _phase_name(phase: model.Phase) -> str:
    return f"{phase.id} - {one_line(phase.title, 120)}" if phase.title != phase.id else phase.id


def _timeline(ctx: Context) -> list[str]:
    events = ctx.state["events"]
    if not events:
        return ["(no events yet)"]
    # files and tests belong to the last time a task was verified: its record is that one's
    last_verified = {e["task"]: i for i, e in enumerate(events) if e["event"] == "verified"}
    out = []
    for i, e in enumerate(events):
        label = _LABELS.get(e["event"], e["event"])
        rec = ctx.record(e["task"]) if e["task"] else None
        who = f"{e['task']} {one_line(rec['title'], 120)}" if rec else e["task"]
        text = f"- {short_time(e['ts'])} - " + (f"{who} - {label}" if who else label)
        if e["detail"]:
            text += f": {one_line(e['detail'])}"
        out.append(text)
        evidence = (
            ctx.evidence(e["task"]) if e["task"] and last_verified.get(e["task"]) == i else None
        )
        if evidence is not None:
            if evidence.files:
                out.append(f"  - Files changed: {', '.join(evidence.files)}")
            if evidence.tests:
                out.append(f"  - Tests run: {'; '.join(evidence.tests)}")
    return out


def _errors(ctx: Context) -> list[str]:
    out = []
    plan_name = ctx.state["plan"]["name"]
    for tid in [*ctx.task_ids(), *ctx.task_ids("gate")]:
        rec = ctx.state["tasks"][tid]
        if rec["status"] not in _PROBLEMS:
            continue
        out.extend(_error(ctx, plan_name, tid, rec))
    return out or ["No errors."]


def _error(ctx: Context, plan_name: str, tid: str, rec: TaskRecord) -> list[str]:
    status = rec["status"]
    limit = rec.get("max_attempts")
    tries = f" (attempt {rec['attempts']}" + (f" of {limit})" if limit else ")")
    out = [
        f"- {tid} {one_line(rec['title'], 120)} - {status.upper()}"
        f"{tries if rec['attempts'] else ''} at "
        f"{short_time(rec.get('finished_at') or rec['updated_at'])}"
    ]
    err = rec.get("error")
    if err:
        out.append(f"  - Error: {err['type']} at {err['step']}: {one_line(err['message'], 600)}")
    if rec.get("note"):
        out.append(f"  - Note: {one_line(rec['note'])}")
    fix = (
        rec.get("feedback") or (err["message"] if err else rec.get("note")) or "see the attempt log"
    )
    out.append(f"  - Fix before resuming: {one_line(fix, 600)}")
    if status in ("failed", "timeout"):
        spent = limit is not None and rec["attempts"] >= limit
        out.append(
            f"  - Then: `planfleet state reset {plan_name} {tid}` (all attempts used)"
            if spent
            else "  - Then: resume the run; the task is retried in its worktree"
        )
    else:
        out.append(f"  - Then: `planfleet state reset {plan_name} {tid}` puts it back in the queue")
    if rec["attempts"] and not model.is_gate(tid):
        log = paths.attempt_log(ctx.repo, plan_name, tid, int(rec["attempts"]))
        out.append(f"  - Log: {_shown(ctx, str(log))}")
    return out


def progress(ctx: Context) -> list[Edit]:
    """Return the Edit of ``progress.md`` in a plan directory."""
    plan_file = ctx.path(ctx.plan.path)
    path = plan_file.parent / "progress.md"
    if any(ctx.path(s) == path for t in ctx.plan.tasks for s in t.spec_files):
        return [Edit(path, "progress", error="progress.md is a spec file of this plan; left alone")]
    return [
        guarded(path, "progress", lambda: managed(path, "progress", "progress", _progress(ctx)))
    ]


def _cell(text: str) -> str:
    return one_line(text, 160).replace("|", "\\|") or "-"


def _progress(ctx: Context) -> list[str]:
    counts, total = _counts(ctx)
    views = [phase_view(ctx, p) for p in ctx.plan.phases]
    lines = [
        f"# Progress: {one_line(ctx.plan.title, 200)}",
        "",
        f"- Status: {RUN_WORDS[ctx.state['status']]}",
        f"- Updated: {short_time(ctx.last_change())}",
        f"- Tasks: {counts['verified']}/{total} verified"
        + "".join(
            f", {n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()) if s != "verified"
        ),
        "",
        "## Phases",
        "",
        "| " + " | ".join(PHASE_HEADER) + " |",
        "|" + "|".join("---" for _ in PHASE_HEADER) + "|",
    ]
    for v in views:
        if v.gate is not None:
            lines.append(
                f"| {v.phase.id} | {_cell(v.phase.title)} | {v.done}/{len(v.tasks)} | "
                f"{v.gate['status']} | {v.status.replace('_', ' ')} |"
            )
    lines += [
        "",
        "## Tasks",
        "",
        "| " + " | ".join(TASK_HEADER) + " |",
        "|" + "|".join("---" for _ in TASK_HEADER) + "|",
    ]
    for v in views:
        for tid, rec in v.tasks:
            note = _note(rec)
            lines.append(
                f"| {tid} | {v.phase.id} | {_cell(rec['title'])} | {rec['status']} | "
                f"{rec['attempts']} | {_when(rec)} | "
                f"{_cell(note)} |"
            )
    return lines


def _when(rec: TaskRecord) -> str:
    return short_time(rec.get("finished_at") or rec.get("started_at"))


def _note(rec: TaskRecord) -> str:
    err = rec.get("error")
    if err and rec["status"] != "verified":
        return f"{err['type']} at {err['step']}: {err['message']}"
    if rec.get("commit") and rec["status"] == "verified":
        return f"commit {str(rec['commit'])[:12]}"
    return str(rec.get("note") or "")
