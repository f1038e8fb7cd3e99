"""`planfleet report PLAN [--json] [--svg FILE]`: how well a run went, task by task."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planfleet import fsutil, git
from planfleet.cli import savedflags
from planfleet.cli.output import Out, table
from planfleet.cli.view import fmt_s
from planfleet.errors import ExitCode, InputError
from planfleet.ids import check_id
from planfleet.state.store import StateStore, no_run
from planfleet.views import report, timeline

DEFAULT_PARALLEL = 3  # the engine's default --max-parallel


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report",
        parents=[parent],
        help="report how a run went: attempts, time, cost, gates, makespan vs lower bound",
        description="Per task: its attempts and why each failed, the time in the agent, in "
        "the gates and in the merge, cost and models. Per gate: its pass rate. For the run: "
        "makespan, the lower bound max(critical path, work / parallelism) and their ratio, "
        "time lost to retries and cost per verified task. --svg writes a timeline.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan run's name (see `planfleet status`)")
    p.add_argument("--svg", type=Path, metavar="FILE", help="also write the timeline as SVG")
    p.set_defaults(handler=_handler, command_name="report")


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    plan = check_id(ns.plan, what="plan name")
    store = StateStore.for_plan(repo, plan)
    if not store.exists():
        raise no_run(plan)
    saved = savedflags.load(repo, plan)
    parallel = saved.flags.max_parallel if saved and saved.flags.max_parallel else DEFAULT_PARALLEL
    if saved:  # the run's cloud slots worked beside the local ones
        parallel += saved.flags.cloud_parallel
    data = report.build(store.load(), repo, plan, int(parallel))
    if ns.svg is not None:
        target = ns.svg if ns.svg.is_absolute() else Path.cwd() / ns.svg
        if not target.parent.is_dir():
            raise InputError(f"{ns.svg}: its folder does not exist", field="--svg")
        fsutil.atomic_write(target, timeline.svg(data))
        data["svg"] = str(target)
    out.result("report", data, human=lambda: _human(out, data))
    return ExitCode.OK


def _human(out: Out, data: dict[str, Any]) -> None:
    rows = [
        [
            r["task"],
            r["status"] + ("" if r["merged"] or r["kind"] == "gate" else " (not merged)"),
            str(len(r["attempts"])),
            fmt_s(r["time_s"]),
            fmt_s(r["agent_s"]),
            fmt_s(r["gates_s"]),
            fmt_s(r["merge_s"]),
            f"${r['cost_usd']:.2f}",
            ",".join(r["models"]) or "-",
        ]
        for r in data["tasks"]
    ]
    headers = ["task", "status", "attempts", "time", "agent", "gates", "merge", "cost", "model"]
    out.line(f"report of {data['plan']}")
    out.line(table(rows, headers))
    for r in data["tasks"]:
        for a in r["attempts"]:
            if a["outcome"] in ("failed", "timeout"):
                out.line(f"  {r['task']} attempt {a['attempt']}: {str(a.get('reason'))[:160]}")
    if data["gates"]:
        out.line(
            "gates: "
            + ", ".join(f"{name} {g['passed']}/{g['ran']}" for name, g in data["gates"].items())
        )
    ratio = f"{data['ratio']:.2f}x" if data["ratio"] is not None else "-"
    per = data["cost_per_verified_usd"]
    out.line(
        f"makespan {fmt_s(data['makespan_s'])}; lower bound {fmt_s(data['lower_bound_s'])} "
        f"(critical path {fmt_s(data['critical_path_s'])}, work {fmt_s(data['work_s'])} / "
        f"{data['parallelism']}); ratio {ratio}; lost to retries {fmt_s(data['retry_loss_s'])}"
    )
    out.line(
        f"cost ${data['cost_usd']:.2f}; {data['verified_tasks']} verified task(s)"
        + (f", ${per:.4f} per verified task" if per is not None else "")
    )
    if data.get("svg"):
        out.line(f"timeline: {data['svg']}")
