"""What `plan show` and `plan validate` compute about a plan (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planfleet.plan import graph
from planfleet.plan.model import Diagnostic, Phase, Plan, Task


@dataclass(frozen=True)
class Analysis:
    plan: Plan
    graph: graph.Graph
    diagnostics: tuple[Diagnostic, ...]
    groups: list[list[str]]
    critical_length: float
    critical_path: list[str]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "warning"]


def analyze(plan: Plan) -> Analysis:
    """Return the graph, its diagnostics plus the plan-quality warnings, groups and path."""
    g = graph.build(plan)
    diags = [*plan.diagnostics, *g.diagnostics, *quality_warnings(plan)]
    has_cycle = any(d.message.startswith("dependency cycle") for d in g.diagnostics)
    groups = [] if has_cycle else graph.levels(g)
    length, path = (0.0, []) if has_cycle else graph.critical_path(g)
    return Analysis(plan, g, tuple(diags), groups, length, path)


def quality_warnings(plan: Plan) -> list[Diagnostic]:
    """Return warnings for what a good plan states: owners, acceptance, blast radius."""
    out = []
    uses_owners = any(p.owner for p in plan.phases) or any(t.owner for t in plan.tasks)
    for ph in plan.phases:
        tasks = plan.tasks_of(ph.id)
        src = ph.source
        if uses_owners and not ph.owner and not all(t.owner for t in tasks):
            out.append(
                Diagnostic(
                    "warning",
                    f"phase {ph.id!r} has no owner",
                    src.file,
                    src.line,
                    "owner",
                    "name who implements it (an agent name)",
                )
            )
        if not (ph.acceptance or ph.gate_commands) and not any(
            t.acceptance or t.verify for t in tasks
        ):
            out.append(
                Diagnostic(
                    "warning",
                    f"phase {ph.id!r} has no acceptance criteria or verify commands",
                    src.file,
                    src.line,
                    "acceptance",
                    "without them only files and commits can be checked",
                )
            )
        if (
            ph.kind != "design"
            and ph.blast_radius is None
            and not ph.gate_commands
            and all(t.blast_radius is None for t in tasks)
        ):
            out.append(
                Diagnostic(
                    "warning",
                    f"phase {ph.id!r} has no blast radius (test scope)",
                    src.file,
                    src.line,
                    "blast_radius",
                    "give a test pattern, or an empty one for all tests",
                )
            )
    return out


def complexity(plan: Plan) -> tuple[str, list[str]]:
    """Return a rough ``low|medium|high`` rating and the reasons for it."""
    n = len(plan.tasks)
    level = 0 if n <= 5 else 1 if n <= 20 else 2
    reasons = [f"{n} tasks in {len(plan.phases)} phases"]
    files = {f for t in plan.tasks for f in t.writes}
    if len(files) > 30:
        level = min(2, level + 1)
        reasons.append(f"{len(files)} files written")
    if any(t.verify or t.blast_radius is not None for t in plan.tasks) or any(
        p.gate_commands or p.blast_radius is not None for p in plan.phases
    ):
        reasons.append("has test requirements")
    if any(t.add_dependencies for t in plan.tasks):
        reasons.append("adds dependencies")
    return ("low", "medium", "high")[level], reasons


def task_json(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "title": t.title,
        "phase": t.phase,
        "kind": t.kind,
        "owner": t.owner,
        "depends_on": list(t.depends_on),
        "files_create": list(t.files_create),
        "files_modify": list(t.files_modify),
        "add_dependencies": list(t.add_dependencies),
        "acceptance": list(t.acceptance),
        "verify": list(t.verify),
        "removes_tests": list(t.removes_tests),
        "commands": list(t.commands),
        "blast_radius": t.blast_radius,
        "timeout_s": t.timeout_s,
        "max_attempts": t.max_attempts,
        "estimate": t.estimate,
        "spec_files": list(t.spec_files),
        "status": t.status,
        "source": str(t.source),
        "text_chars": len(t.text),
    }


def phase_json(p: Phase) -> dict[str, Any]:
    return {
        "id": p.id,
        "title": p.title,
        "number": p.number,
        "kind": p.kind,
        "owner": p.owner,
        "depends_on": list(p.depends_on),
        "acceptance": list(p.acceptance),
        "blast_radius": p.blast_radius,
        "gate_commands": list(p.gate_commands),
        "parallel_group": p.parallel_group,
        "status": p.status,
        "tasks": list(p.task_ids),
        "source": str(p.source),
    }


def plan_json(a: Analysis) -> dict[str, Any]:
    """Return everything `plan show --json` prints."""
    plan = a.plan
    first = plan.first_open_task()
    level, reasons = complexity(plan)
    done = sum(1 for t in plan.tasks if t.status in ("done", "skipped"))
    return {
        "name": plan.name,
        "title": plan.title,
        "format": plan.format,
        "path": plan.path,
        "meta": dict(plan.meta),
        "counts": {"phases": len(plan.phases), "tasks": len(plan.tasks), "done": done},
        "first_open_task": first.id if first else None,
        "complexity": {"level": level, "reasons": reasons},
        "groups": a.groups,
        "critical_path": {"length": a.critical_length, "tasks": a.critical_path},
        "owners": sorted({o for o in [*(t.owner for t in plan.tasks)] if o}),
        "phases": [phase_json(p) for p in plan.phases],
        "tasks": [task_json(t) for t in plan.tasks],
        "diagnostics": [d.to_json() for d in a.diagnostics],
    }
