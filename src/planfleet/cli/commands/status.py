"""`planfleet status [PLAN]`: where every run stands, who runs it, and what is stuck."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from planfleet import git, paths
from planfleet.cli import savedflags
from planfleet.cli import view as report
from planfleet.cli.output import Out, table
from planfleet.engine import limitwait, modelcheck, runinfo, scheduler
from planfleet.errors import ExitCode, InputError
from planfleet.ids import check_id
from planfleet.state import recover
from planfleet.state.records import State, ordered_ids
from planfleet.state.store import StateStore, no_run


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[parent],
        help="show the runs of this repository, or one run task by task",
        description="Without PLAN: one line per plan run (status, progress, cost, engine). "
        "With PLAN: every task with its state, attempts, duration, cost and last error, the "
        "engine (running here, detached, or dead and resumable) and any orphaned task.",
    )
    p.add_argument("plan", nargs="?", metavar="PLAN", help="a plan run's name")
    p.set_defaults(handler=_handler, command_name="status")


def engine_view(repo: Path, plan: str, state: State) -> dict[str, Any]:
    """Return what is known about the plan's engine: running, detached, dead or none."""
    info = runinfo.read_info(repo, plan)
    running = runinfo.is_running(repo, plan)
    view: dict[str, Any] = {"running": running, "info": info.to_json() if info else None}
    if running:
        view["state"] = "detached" if info and info.detached else "running"
    elif state["status"] == "running":
        view["state"] = "dead"
        view["hint"] = f"the engine stopped without finishing; `planfleet resume {plan}`"
    else:
        view["state"] = "none"
    return view


def summary(repo: Path, plan: str, state: State) -> dict[str, Any]:
    counts = Counter(r["status"] for r in state["tasks"].values() if r["kind"] == "task")
    tasks = [r for r in state["tasks"].values() if r["kind"] == "task"]
    merged = sum(1 for r in tasks if scheduler.is_merged(r))
    return {
        "plan": plan,
        "status": state["status"],
        "tasks": len(tasks),
        "merged": merged,
        "counts": dict(counts),
        "cost_usd": state["totals"]["cost_usd"],
        "updated_at": state["updated_at"],
        "engine": engine_view(repo, plan, state),
    }


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    if ns.plan is None:
        return _all(repo, out)
    plan = check_id(ns.plan, what="plan name")
    store = StateStore.for_plan(repo, plan)
    if not store.exists():
        raise no_run(plan)
    state = store.load()
    data = summary(repo, plan, state)
    rows = report.final_rows(state)
    data["task_rows"] = rows
    box = state.get("conflicts") or {}
    data["conflicts"] = {k: list(box.get(k, [])) for k in ("predicted", "overlaps")}
    orphans = recover.find_orphans(state) if not data["engine"]["running"] else {}
    data["orphans"] = orphans
    # An orphan's agent may outlive its engine: it still works in the worktree until resume.
    mine = {
        tid: sorted(p.pid for p in recover.leftover_processes(state["tasks"][tid], tid))
        for tid in orphans
    }
    data["orphan_processes"] = {tid: pids for tid, pids in mine.items() if pids}
    every = {p.pid for t in orphans for p in recover.leftover_processes(state["tasks"][t])}
    others = sorted(every - {pid for pids in mine.values() for pid in pids})
    data["leftover_processes"] = sorted(every)
    limit = _saved_max_attempts(out, repo, plan)
    never = {
        tid: scheduler.attempt_limit(state["tasks"][tid], limit)
        for tid in scheduler.exhausted(state, limit)
    }
    data["never_start"] = {tid: f"all {n} of its attempts are used" for tid, n in never.items()}
    data["cloud_sessions"] = cloud_sessions(state)
    data["runs_on"] = report.runs_on(state)
    wait = state.get("limit_wait")
    data["limit_wait"] = {**wait, "line": limitwait.waiting_line(wait)} if wait else None

    def human() -> None:
        eng = data["engine"]
        out.line(
            f"{plan}: {state['status']} — {data['merged']}/{data['tasks']} tasks merged, "
            f"cost ${data['cost_usd']:.2f}; engine {eng['state']}"
            + (f" (pid {eng['info']['pid']})" if eng["running"] and eng["info"] else "")
        )
        out.line(
            table(
                [
                    [
                        tid,
                        r["phase"],
                        report.status_word(r),
                        str(r["attempts"]),
                        report.fmt_s(report.duration_s(r)),
                        f"${r['cost_usd']:.2f}",
                        data["runs_on"].get(tid, ""),
                        ((r.get("error") or {}).get("type") or r.get("note") or "")[:60],
                    ]
                    for tid in ordered_ids(state)
                    for r in [state["tasks"][tid]]
                ],
                ["task", "phase", "state", "attempts", "time", "cost", "on", "note"],
            )
        )
        for row in rows:
            if row["undeclared"]:
                out.line(f"{row['task']}: {report.undeclared_line(row['undeclared'])}")
            if row["model_mismatch"]:
                out.line(f"{row['task']}: {modelcheck.message(row['model_mismatch'])}")
            if row["vacuous"]:
                out.line(f"{row['task']}: {report.vacuous_line(row['vacuous'])}")
        for line in report.conflict_lines(data["conflicts"]):
            out.line(line)
        if data["limit_wait"] and eng["running"]:
            out.line(data["limit_wait"]["line"])
        for tid, detail in data["cloud_sessions"].items():
            out.line(f"{tid}: cloud {detail}")
        if state["status"] in ("completed", "failed"):
            out.line(f"how it went: `planfleet report {plan}`")
        for tid, why in orphans.items():
            pids = data["orphan_processes"].get(tid)
            alive = f"; its processes still run: pid {', '.join(map(str, pids))}" if pids else ""
            resume = "stops them and takes it back" if pids else "takes it back"
            out.line(f"orphaned: {tid} ({why}){alive}; `planfleet resume {plan}` {resume}")
        if others:
            out.line(
                f"the dead engine also left pid {', '.join(map(str, others))} running; "
                f"`planfleet resume {plan}` stops them"
            )
        for tid, n in never.items():
            out.line(
                f"can never start: {tid} (all {n} of its attempts are used); "
                f"`planfleet state reset {plan} {tid} --hard` gives it new attempts"
            )
        if eng.get("hint"):
            out.line(eng["hint"])

    out.result("status", data, human=human)
    return ExitCode.OK


def cloud_sessions(state: State) -> dict[str, str]:
    """Return per task the last cloud session its attempts started (from the events)."""
    found: dict[str, str] = {}
    for event in state["events"]:
        if event["event"] == "cloud_session" and event["task"]:
            found[event["task"]] = event["detail"] or ""
    return {tid: found[tid] for tid in ordered_ids(state) if tid in found}


def _all(repo: Path, out: Out) -> int:
    runs: list[dict[str, Any]] = []
    folder = paths.state_dir(repo)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        name = path.stem
        try:
            state = StateStore.for_plan(repo, name).load()
        except (InputError, OSError) as exc:
            runs.append({"plan": name, "error": str(exc)})
            continue
        runs.append(summary(repo, name, state))

    def human() -> None:
        if not runs:
            out.line("no plan runs here yet; start one with `planfleet run PLAN`")
            return
        out.line(
            table(
                [
                    [
                        r["plan"],
                        r.get("status", "unreadable"),
                        f"{r.get('merged', '-')}/{r.get('tasks', '-')}",
                        f"${r.get('cost_usd', 0):.2f}",
                        r["engine"]["state"] if "engine" in r else str(r.get("error", ""))[:60],
                    ]
                    for r in runs
                ],
                ["plan", "status", "merged", "cost", "engine"],
            )
        )

    out.result("status", {"runs": runs}, human=human)
    return ExitCode.OK


def _saved_max_attempts(out: Out, repo: Path, plan: str) -> int:
    """Return the --max-attempts the run started with (a damaged options.json: the default)."""
    try:
        saved = savedflags.load(repo, plan)
    except InputError as exc:
        out.warn(f"{exc.render()}\n  (status counts with the default --max-attempts)")
        saved = None
    return saved.flags.max_attempts if saved is not None else scheduler.DEFAULT_MAX_ATTEMPTS
