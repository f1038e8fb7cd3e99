"""A phase's implement step in subprocess mode: the engine, scoped to the phase.

Each task is its own ``claude -p`` agent in its own worktree (classic mode); the engine's
gates judge every attempt and merge verified work into the integration branch, and the
phase gate runs after the last merge. The step's artifact is written from the engine's
state, never from an agent's report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planfleet import fsutil, schemas
from planfleet.engine.loop import Engine, Listener, RunOptions
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.steps import GateFailed
from planfleet.plan import model


def run_engine(
    repo: Path,
    plan: model.Plan,
    phase: model.Phase,
    opts: PhaseOptions,
    mode: str,
    artifact: Path,
    listener: Listener | None = None,
) -> str:
    """Run the engine on ``phase``; write the artifact; return its summary.

    Raises GateFailed naming every task that is not verified and merged, and a phase gate
    that did not pass.
    """
    run_opts = RunOptions(
        runner=opts.engine_runner,
        runner_options={"permission_mode": opts.permission_mode},
        max_parallel=opts.max_parallel,
        phases=(phase.id,),
        model=opts.model,
        task_budget_usd=opts.task_budget_usd,
        timeout_s=opts.timeout_s,
        stall_s=opts.stall_s,
    )
    result = Engine(repo, plan, run_opts, listener).run()
    tasks: list[dict[str, Any]] = []
    problems: list[str] = []
    for t in plan.tasks_of(phase.id):
        rec = result.state["tasks"][t.id]
        merged = rec["merged_at"] or not rec["commit"]  # no commit: the plan recorded it done
        ok = rec["status"] == "skipped" or (rec["status"] == "verified" and bool(merged))
        err = rec.get("error") or {}
        why = str(rec["status"]) + (f" ({err['type']}: {err['message']})" if err else "")
        entry = {"id": t.id, "status": "done" if ok else "failed", "summary": why}
        entry["commit"] = rec.get("commit")
        tasks.append(entry)
        if not ok:
            problems.append(f"{t.id} {why}")
    gate = result.state["tasks"].get(model.gate_id(phase.id)) or {}
    if gate.get("status") not in ("verified", "skipped"):
        problems.append(f"the phase gate is {gate.get('status', 'not run')}")
    summary = f"engine: {result.status} ({result.reason})"
    art = {
        "version": 1,
        "phase": phase.id,
        "step": "implement",
        "mode": mode,
        "summary": summary,
        "tasks": tasks,
    }
    error = schemas.first_error("implement_report", art)
    if error is not None:  # pragma: no cover - built here from the engine state
        raise RuntimeError(f"implement artifact does not fit its schema: {error.message}")
    fsutil.atomic_write(artifact, json.dumps(art, indent=2, sort_keys=True) + "\n")
    if problems:
        raise GateFailed(
            "implement",
            "not verified and merged: " + "; ".join(problems) + "; fix or reset them "
            f"(`planfleet state reset {plan.name} TASK`), then run again",
        )
    return summary
