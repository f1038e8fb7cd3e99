"""``progress.md`` of a plan directory, brought up to date after every pipeline step.

The engine's own projections (task and phase tables) are rendered from the engine state
when there is one; below them, between planfleet markers, a ``pipeline`` section shows the
stages, each phase's protocol steps and the review findings from ``pipeline.json``. Its
tables start with a ``Stage``/``Step``/``Finding`` column, never ``Phase`` or ``Task``, so
the plan reader (``formats/progress_md``) does not take them for recorded statuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planfleet import fsutil
from planfleet.engine.publish import render_projections
from planfleet.orchestrate.record import STAGES, STEPS, Doc, PlanDir
from planfleet.plan import model
from planfleet.state.store import StateStore
from planfleet.views.facts import guarded, one_line, short_time
from planfleet.views.log import managed

SECTION = "pipeline"


def render(pdir: PlanDir, plan: model.Plan, doc: Doc) -> str | None:
    """Update ``progress.md``; return a problem in words when it was left alone, else None."""
    store = StateStore.for_plan(pdir.repo, plan.name)
    if store.exists():
        render_projections(pdir.repo, plan, store.load())
    path = pdir.folder / "progress.md"
    edit = guarded(path, "progress", lambda: managed(path, "progress", SECTION, lines(plan, doc)))
    if edit.error is not None:
        return f"{pdir.rel(path)} left alone: {edit.error}"
    if edit.text is not None and _current(path) != edit.text:
        fsutil.atomic_write(path, edit.text)
    return None


def _current(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _cell(text: Any) -> str:
    return one_line(str(text or ""), 140).replace("|", "\\|") or "-"


def lines(plan: model.Plan, doc: Doc) -> list[str]:
    """Return the pipeline section's Markdown lines."""
    out = [
        "## Orchestrate pipeline",
        "",
        f"- Updated: {short_time(doc['updated_at'])}",
        "",
        "| Stage | Status | Attempts | Finished | Note |",
        "|---|---|---|---|---|",
    ]
    for name in STAGES:
        rec = doc["stages"].get(name) or {"status": "pending", "attempts": 0}
        out.append(
            f"| {name} | {rec['status']} | {rec['attempts']} | "
            f"{short_time(rec.get('finished_at'))} | {_cell(rec.get('message'))} |"
        )
    order = [p.id for p in plan.phases if p.id in doc["phases"]]
    for pid in order:
        ph = doc["phases"][pid]
        out += [
            "",
            f"### Phase {pid}: {one_line(plan.phase(pid).title, 120)} - {ph['status']} "
            f"({ph['mode']} mode{', ' + ph['mode_reason'] if ph.get('mode_reason') else ''})",
            "",
            "| Step | Status | Attempts | Finished | Note |",
            "|---|---|---|---|---|",
        ]
        for step in sorted(ph["steps"], key=lambda s: STEPS.index(s) if s in STEPS else 99):
            rec = ph["steps"][step]
            out.append(
                f"| {step} | {rec['status']} | {rec['attempts']} | "
                f"{short_time(rec.get('finished_at'))} | {_cell(rec.get('message'))} |"
            )
        if ph["findings"]:
            out += [
                "",
                "| Finding | Severity | Status | Where | Message |",
                "|---|---|---|---|---|",
            ]
            for fid, f in ph["findings"].items():
                status = f["status"] + (f" ({f['resolved_in']})" if f.get("resolved_in") else "")
                out.append(
                    f"| {fid} | {f['severity']} | {status} | {_cell(f['file'])}:{f['line']} | "
                    f"{_cell(f['message'])} |"
                )
    return out
