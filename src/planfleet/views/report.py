"""The run report: how well a parallel run went, from its state and its attempts' evidence.

Per task its attempts (how each ended and why), the time in the agent, in the gates and
waiting for and doing the merge, cost and models; per gate its pass rate; and for the run
the makespan against its lower bound, max(critical path, work / parallelism), where each
task's weight is the time its attempts took. Every figure comes from what the engine
recorded (event timestamps, ``.planfleet/runs/<plan>/verify/<task>.<n>.json``); what was not
recorded (runs of older versions have no per-attempt timings) is None, never guessed.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from planfleet import paths
from planfleet.state.records import State, ordered_ids

# Events that end an attempt, and the outcome each one means.
ENDS = {
    "verified": "verified",
    "failed": "failed",
    "timeout": "timeout",
    "released": "stopped",
    "held": "stopped",
}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _record(repo: Path, plan: str, task: str, attempt: int) -> dict[str, Any]:
    path = paths.verify_dir(repo, plan) / f"{task}.{attempt}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def attempts(state: State, repo: Path, plan: str) -> dict[str, list[dict[str, Any]]]:
    """Return per node its attempts in order: start, end, outcome, reason, timings, gates."""
    found: dict[str, list[dict[str, Any]]] = {t: [] for t in state["tasks"]}
    open_: dict[str, dict[str, Any]] = {}
    for e in state["events"]:
        tid, kind = e.get("task"), e["event"]
        if tid not in found:
            continue
        if kind == "dispatched" or (kind == "claimed" and state["tasks"][tid]["kind"] == "gate"):
            n = len(found[tid]) + 1
            open_[tid] = {"attempt": n, "start": _ts(e["ts"]), "end": None, "outcome": "running"}
            found[tid].append(open_[tid])
        elif kind in ENDS and tid in open_:
            a = open_.pop(tid)
            a.update(end=_ts(e["ts"]), outcome=ENDS[kind])
            if kind != "verified":
                a["reason"] = e.get("detail")
    for tid, tries in found.items():
        for a in tries:
            a["duration_s"] = None if a["end"] is None else round(a["end"] - a["start"], 3)
            rec = _record(repo, plan, tid, a["attempt"]) if tid in state["tasks"] else {}
            a["gates"] = {g["name"]: bool(g["ok"]) for g in rec.get("gates", []) if "name" in g}
            a["timings"] = rec.get("timings")
            a["models"] = rec.get("models")
    return found


def build(state: State, repo: Path, plan: str, parallelism: int) -> dict[str, Any]:
    """Return the report as a JSON-ready dict (see the README, "Run report")."""
    tries = attempts(state, repo, plan)
    first = {(e["event"], e.get("task")): _ts(e["ts"]) for e in reversed(state["events"])}
    start = first.get(("run_start", None))
    ends = [_ts(e["ts"]) for e in state["events"] if e["event"] == "run_end"]
    stamps = [_ts(e["ts"]) for e in state["events"]]
    end = ends[-1] if ends else (stamps[-1] if stamps else None)
    rows = []
    for tid in ordered_ids(state):
        r = state["tasks"][tid]
        mine = tries[tid]
        done = [a for a in mine if a["duration_s"] is not None]
        agent = [a["timings"]["agent_s"] for a in done if a["timings"]]
        gate = [a["timings"]["gates_s"] for a in done if a["timings"]]
        verified_at, merged_at = first.get(("verified", tid)), first.get(("merged", tid))
        merge_s = None
        if verified_at is not None and merged_at is not None:
            merge_s = round(merged_at - verified_at, 3)
        models = sorted({m for a in mine for m in (a["models"] or {})})
        rows.append(
            {
                "task": tid,
                "kind": r["kind"],
                "phase": r["phase"],
                "status": r["status"],
                "merged": bool(r.get("merged_at")),
                "attempts": mine,
                "time_s": round(sum(a["duration_s"] for a in done), 3),
                "agent_s": round(sum(agent), 3) if len(agent) == len(done) and done else None,
                "gates_s": round(sum(gate), 3) if len(gate) == len(done) and done else None,
                "merge_s": merge_s,
                "cost_usd": r["cost_usd"],
                "models": models,
            }
        )
    return {
        "plan": plan,
        "tasks": rows,
        "gates": gate_rates(rows),
        **totals(state, rows, start, end, parallelism),
    }


def gate_rates(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return per gate name how often it ran and passed, over every judged attempt."""
    ran: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for row in rows:
        for a in row["attempts"]:
            for name, ok in a["gates"].items():
                ran[name] += 1
                passed[name] += ok
    return {
        name: {"ran": ran[name], "passed": passed[name], "rate": round(passed[name] / ran[name], 3)}
        for name in sorted(ran)
    }


def totals(
    state: State,
    rows: list[dict[str, Any]],
    start: float | None,
    end: float | None,
    parallelism: int,
) -> dict[str, Any]:
    """Return the run's makespan, its lower bound and ratio, retry loss and costs."""
    weight = {r["task"]: r["time_s"] for r in rows}
    path: dict[str, float] = {}
    for tid in ordered_ids(state):  # dependencies come first in the run's order
        deps = [d for d in state["tasks"][tid]["depends_on"] if d in path]
        path[tid] = weight.get(tid, 0.0) + max((path[d] for d in deps), default=0.0)
    critical = max(path.values(), default=0.0)
    work = sum(weight.values())
    bound = max(critical, work / max(parallelism, 1))
    makespan = None if start is None or end is None else round(end - start, 3)
    lost = sum(
        a["duration_s"] or 0.0
        for r in rows
        for a in r["attempts"]
        if a["outcome"] in ("failed", "timeout")
    )
    verified = sum(1 for r in rows if r["kind"] == "task" and r["status"] == "verified")
    cost = float(state["totals"]["cost_usd"])
    return {
        "makespan_s": makespan,
        "critical_path_s": round(critical, 3),
        "work_s": round(work, 3),
        "parallelism": parallelism,
        "lower_bound_s": round(bound, 3),
        "ratio": round(makespan / bound, 3) if makespan is not None and bound > 0 else None,
        "retry_loss_s": round(lost, 3),
        "verified_tasks": verified,
        "cost_usd": cost,
        "cost_per_verified_usd": round(cost / verified, 4) if verified else None,
        "start": start,
    }
