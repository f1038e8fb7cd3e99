"""`planfleet batch`: run one batch of independent tasks and end with ``BATCH_RESULT:``.

For layer-by-layer drivers written around a tasks directory: each task still gets its own
worktree, attempts with feedback, gates and merge; the last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git, paths
from planfleet.cli import runflags, runopts, view
from planfleet.cli.output import Out
from planfleet.engine import runcheck, runend
from planfleet.engine.loop import Engine
from planfleet.errors import ExitCode, InputError
from planfleet.ids import check_id
from planfleet.plan import formats
from planfleet.state.records import State


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "batch",
        parents=[parent],
        help="run one batch of tasks and print BATCH_RESULT: {json}",
        description="Run the tasks --task-ids of the plan in --tasks-path (a tasks directory "
        "or any plan) with the engine, print one `[BATCH <layer> #<n>]` line per change and "
        "end with `BATCH_RESULT:` and a JSON object: verified, failed, abandoned, "
        "merge_queue_ready, should_stop, stop_reason.",
    )
    p.add_argument(
        "--tasks-path", required=True, type=Path, metavar="PATH", help="tasks directory or plan"
    )
    p.add_argument("--task-ids", required=True, metavar="IDS", help="comma-separated task ids")
    p.add_argument(
        "--project-path", type=Path, metavar="DIR", help="the repository (default: here)"
    )
    p.add_argument(
        "--worktree-dir",
        type=Path,
        metavar="DIR",
        help="accepted for compatibility; worktrees live in .planfleet/worktrees",
    )
    p.add_argument("--batch-number", type=int, default=1, metavar="N")
    p.add_argument("--layer", default="batch", metavar="NAME")
    p.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    runflags.add_run_flags(p)
    p.set_defaults(handler=_handler, command_name="batch")


@dataclass(frozen=True)
class BatchRequest:
    """What `planfleet batch` was asked to do."""

    repo: Path | None  # --project-path, else -C
    tasks_path: Path
    task_ids: tuple[str, ...]  # as given (checked once the repository is found)
    worktree_dir: Path | None
    batch_number: int
    layer: str
    format: str | None
    args: runopts.RunArgs


def request(ns: argparse.Namespace) -> BatchRequest:
    """Return what `batch` was asked (the one reader of its namespace)."""
    return BatchRequest(
        repo=ns.project_path or ns.repo,
        tasks_path=ns.tasks_path,
        task_ids=runopts.split(ns.task_ids),
        worktree_dir=ns.worktree_dir,
        batch_number=ns.batch_number,
        layer=ns.layer,
        format=ns.format,
        args=runflags.run_args(ns),
    )


class _BatchLines(view.LineReporter):
    def __init__(self, out: Out, label: str, ids: set[str]) -> None:
        super().__init__(out.stream, label)
        self.ids = ids

    def scope(self, state: State) -> set[str]:
        return self.ids


def _handler(ns: argparse.Namespace, out: Out) -> int:
    return run(request(ns), out)


def run(req: BatchRequest, out: Out) -> int:
    """Run the batch with the engine; print the change lines and BATCH_RESULT."""
    repo = git.require_repo(req.repo)
    ids = [check_id(t, what="task id") for t in req.task_ids]
    if not ids:
        raise InputError("--task-ids names no task", field="--task-ids")
    path = req.tasks_path if req.tasks_path.is_absolute() else (Path.cwd() / req.tasks_path)
    plan = formats.load_plan(path.resolve(), repo=repo, format=req.format)
    wanted = req.worktree_dir
    if wanted and wanted.resolve() != paths.worktrees_root(repo).resolve():
        out.warn(f"--worktree-dir {wanted} ignored: worktrees live in {paths.worktrees_root(repo)}")
    flags = runopts.effective(req.args)  # a batch starts from the defaults, not a saved run
    opts = runopts.run_options(flags, plan, tasks=ids, accept_cost=req.args.accept_cost)
    runcheck.refuse_without_commands(repo, plan, opts)
    label = f"{req.layer} #{req.batch_number}"
    listener = None if out.json_mode else _BatchLines(out, label, set(ids))
    result = Engine(repo, plan, opts, listener).run()
    tasks = result.state["tasks"]
    verified = [t for t in ids if tasks[t]["status"] == "verified"]
    failed = [t for t in ids if tasks[t]["status"] in ("failed", "timeout", "pending", "blocked")]
    abandoned = [t for t in ids if tasks[t]["status"] == "abandoned"]
    queued = [e["task"] for e in result.state["merge_queue"]]
    body: dict[str, Any] = {
        "batch_number": req.batch_number,
        "layer": req.layer,
        "tasks_total": len(ids),
        "verified": verified,
        "failed": failed,
        "abandoned": abandoned,
        "merged": [t for t in verified if tasks[t].get("merged_at")],
        "merge_queue_ready": len(queued),
        "should_stop": bool(abandoned)
        or (result.status == "paused" and result.reason != runend.SELECTION_DONE),
    }
    if abandoned:
        first = tasks[abandoned[0]]
        body["stop_reason"] = f"Task {abandoned[0]} abandoned after {first['attempts']} attempts"
    elif body["should_stop"]:
        body["stop_reason"] = result.reason

    def human() -> None:
        out.line(f"[BATCH {label}] Complete")
        out.line(f"  Verified: {', '.join(verified) or 'none'}")
        out.line(f"  Failed: {', '.join(failed) or 'none'}")
        out.line(f"  Abandoned: {', '.join(abandoned) or 'none'}")
        out.line("BATCH_RESULT:")
        out.line(json.dumps(body, indent=2))

    out.result("batch", body, human=human, status="ok" if not body["should_stop"] else "failed")
    return ExitCode.OK if not abandoned else ExitCode.FAILED
