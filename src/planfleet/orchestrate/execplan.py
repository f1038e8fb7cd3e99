"""The execution plan: what stage 5 shows the user, and the plan stage 6 executes.

The plan executed is the plan directory as it is now (with the review's revision applied
at the gate), each task carrying the skill or agent stage 3 assigned it.
"""

from __future__ import annotations

from typing import Any

from planfleet.orchestrate import knowledge, skillmatch, stepgates
from planfleet.orchestrate import mode as phasemode
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.record import STEPS, Doc, PlanDir, load_plan
from planfleet.plan import graph, model


def assignments(pdir: PlanDir, plan: model.Plan, doc: Doc) -> dict[str, Any]:
    """Return stage 3's assignments, or fresh ones when the stage has not run."""
    recorded = (doc["stages"]["skill_match"].get("data") or {}).get("assignments")
    if recorded:
        return dict(recorded)
    registry = skillmatch.load_registry(pdir.repo)
    return {a.task: a.to_json() for a in skillmatch.match_plan(plan, registry)}


def execution_view(pdir: PlanDir, doc: Doc) -> model.Plan:
    """Return the plan to execute: read now, with the assigned skills and agents."""
    plan = load_plan(pdir)
    return skillmatch.with_assignments(plan, assignments(pdir, plan, doc))


def execution_plan(
    pdir: PlanDir, plan: model.Plan, doc: Doc, opts: PhaseOptions, only_phase: str | None
) -> Doc:
    """Return the full execution plan (stage 5) as data."""
    assigned = assignments(pdir, plan, doc)
    g = graph.build(plan)
    review = doc["stages"]["review"].get("data") or {}
    research = (doc["stages"]["research"].get("data") or {}).get("technologies", {})
    phases = []
    for phase in plan.phases:
        if only_phase is not None and only_phase not in (phase.id, str(phase.number)):
            continue
        mode = phasemode.select(plan, phase, opts.team)
        tasks = []
        for t in plan.tasks_of(phase.id):
            a = assigned.get(t.id, {})
            tasks.append(
                {
                    "id": t.id,
                    "title": t.title,
                    "status": t.status,
                    "after": [d for d in g.deps.get(t.id, ()) if not model.is_gate(d)],
                    "files": sorted(t.writes),
                    "verify": list(t.verify),
                    "assigned": a.get("name"),
                    "assigned_kind": a.get("kind"),
                    "assigned_by": a.get("source"),
                }
            )
        phases.append(
            {
                "id": phase.id,
                "title": phase.title,
                "mode": mode.mode,
                "mode_wanted": mode.wanted,
                "mode_reason": mode.reason,
                "mode_warning": mode.warning,
                "depends_on": list(phase.depends_on),
                "tasks": tasks,
                "steps": list(STEPS),
                "engine_checks": stepgates.test_commands(plan, phase),
            }
        )
    return {
        "plan": plan.name,
        "plan_file": pdir.rel(pdir.file),
        "runner": "claude -p subprocesses" if opts.subprocess else "in-session phase-runner agent",
        "max_parallel": opts.max_parallel,
        "model": opts.model,
        "review": {
            "revised": bool(review.get("revised")),
            "diff": review.get("diff"),
            "issues": len(review.get("issues", [])),
        },
        "knowledge": {
            slug: {**v, "path": str(knowledge.sheet_path(pdir.repo, slug))}
            for slug, v in research.items()
        },
        "phases": phases,
    }


def render(shown: Doc) -> list[str]:
    """Return the execution plan as text lines for a person."""
    review = shown["review"]
    out = [
        f"Execution plan for {shown['plan']} ({shown['plan_file']})",
        f"  runner: {shown['runner']}; up to {shown['max_parallel']} task agents at once; "
        f"model: {shown['model'] or 'default'}",
    ]
    if review["revised"]:
        out.append(
            f"  plan review: REVISED ({review['issues']} issue(s)); the revision replaces the "
            f"plan file when you confirm; see the diff: {review['diff']}"
        )
    else:
        out.append(f"  plan review: {review['issues']} issue(s), plan unchanged")
    if shown["knowledge"]:
        sheets = ", ".join(f"{k} ({v['status']})" for k, v in shown["knowledge"].items())
        out.append(f"  knowledge: {sheets}")
    for ph in shown["phases"]:
        out.append("")
        out.append(
            f"Phase {ph['id']}: {ph['title']} - {ph['mode']} mode ({ph['mode_reason']})"
            + (f", after phase {', '.join(ph['depends_on'])}" if ph["depends_on"] else "")
        )
        if ph["mode_warning"]:
            out.append(f"  warning: {ph['mode_warning']}")
        for t in ph["tasks"]:
            who = f"{t['assigned_kind']} {t['assigned']} ({t['assigned_by']})"
            after = f" after {', '.join(t['after'])};" if t["after"] else ""
            done = " [done]" if t["status"] in ("done", "skipped") else ""
            out.append(f"  {t['id']} {t['title']}{done} -{after} {who}")
            if t["files"]:
                out.append(f"      files: {', '.join(t['files'])}")
        out.append(
            "  steps: implement -> test -> review -> fix P0+P1 -> fix P2 -> fix P3 -> commit"
        )
        checks = ph["engine_checks"]
        out.append(f"  checks planfleet runs itself: {'; '.join(checks) if checks else '(none)'}")
    return out
