"""`planfleet logs PLAN TASK`: what a task's agent did, attempt by attempt."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from planfleet import git, jsonread, paths
from planfleet.cli.commands import agents
from planfleet.cli.commands.stop import SESSION_ID
from planfleet.cli.output import Out
from planfleet.engine import attemptsave
from planfleet.errors import ExitCode, InputError, PlanfleetError, RefusedError
from planfleet.ids import check_id
from planfleet.state.store import StateStore, no_run


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "logs",
        parents=[parent],
        help="print a task's agent log (the last attempt by default)",
        description="Print the log of one attempt of TASK: the command output for the shell "
        "runner, the agent's messages for claude (--raw for the JSON event stream), then the "
        "branches that keep the work of the task's failed attempts. The engine's own log of a "
        "detached run is `planfleet logs PLAN --engine`.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan run's name (or a background session id)")
    p.add_argument("task", nargs="?", metavar="TASK", help="a task id")
    p.add_argument("--attempt", type=int, metavar="N", help="which attempt (default: the last)")
    p.add_argument("--engine", action="store_true", help="the detached engine's log instead")
    p.add_argument("--raw", action="store_true", help="print the log as written")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing as it grows")
    p.set_defaults(handler=_handler, command_name="logs")


def attempt_logs(repo: Path, plan: str, task: str) -> list[tuple[int, Path]]:
    folder = paths.logs_dir(repo, plan)
    found = []
    for path in folder.glob(f"{task}.*.log") if folder.is_dir() else []:
        number = path.name[len(task) + 1 : -len(".log")]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    if ns.task is None and not ns.engine and SESSION_ID.match(ns.plan):
        # A background session's id: the same as `planfleet agents logs`.
        ns.session = ns.plan
        return agents.logs_handler(ns, out)
    plan = check_id(ns.plan, what="plan name")
    if ns.engine:
        path = paths.runs_dir(repo, plan) / "engine.log"
        if not path.exists():
            raise _no_log(
                repo, plan, f"plan {plan!r} has no engine log", "only --detach runs write one"
            )
    else:
        if not ns.task:
            raise InputError("name a TASK (or pass --engine)", field="TASK")
        task = check_id(ns.task, what="task id")
        logs = attempt_logs(repo, plan, task)
        if not logs:
            raise _no_log(
                repo,
                plan,
                f"no log for task {task!r} of plan {plan!r} yet",
                f"`planfleet status {plan}` shows which tasks have run",
                task,
            )
        chosen = [p for n, p in logs if ns.attempt is None or n == ns.attempt]
        if not chosen:
            raise InputError(
                f"task {task!r} has no attempt {ns.attempt}",
                hint=f"attempts: {', '.join(str(n) for n, _ in logs)}",
            )
        path = chosen[-1]
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines() if ns.raw else list(readable(text))
    if ns.tail:
        lines = lines[-ns.tail :]
    kept = [] if ns.engine else attemptsave.kept(repo, plan, task)

    def human() -> None:
        for line in lines:
            out.line(line)
        for k in [] if ns.raw else kept:
            out.line(f"[kept] attempt {k.attempt}: branch {k.branch} (`git log -p {k.branch}`)")

    data = {"path": str(path), "lines": lines, "kept_attempts": [k.to_json() for k in kept]}
    out.result("logs", data, human=human)
    if ns.follow and not out.json_mode:
        _follow(path, len(text.encode()), ns.raw)
    return ExitCode.OK


def _no_log(
    repo: Path, plan: str, message: str, next_step: str, task: str | None = None
) -> PlanfleetError:
    """Return why there is no log: no run (3), a task the run does not have (2), none yet (3)."""
    store = StateStore.for_plan(repo, plan)
    if not store.exists():
        return no_run(plan)
    if task is not None and task not in store.load()["tasks"]:
        return InputError(f"no task {task!r} in plan {plan!r}", field="TASK")
    return RefusedError(message, reason="no_log", next_step=next_step)


def readable(text: str) -> list[str]:
    """Return a claude JSONL stream as readable lines (plain text logs pass through)."""
    lines: list[str] = []
    for raw in text.splitlines():
        try:
            ev = jsonread.parse(raw)
        except ValueError:
            lines.append(raw)
            continue
        if not isinstance(ev, dict):
            lines.append(raw)
            continue
        lines.extend(_event_lines(ev))
    return lines


def _event_lines(ev: dict[str, Any]) -> list[str]:
    kind = ev.get("type")
    if kind == "system" and ev.get("subtype") == "init":
        return [f"[init] session {ev.get('session_id')} model {ev.get('model')}"]
    if kind in ("assistant", "user"):
        content = (ev.get("message") or {}).get("content") or []
        out = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                out.append(f"[{kind}] {block.get('text', '')}")
            elif block.get("type") == "tool_use":
                out.append(f"[tool] {block.get('name')} {json.dumps(block.get('input'))[:300]}")
        return out
    if kind == "result":
        return [
            f"[result] {ev.get('subtype')} turns={ev.get('num_turns')} "
            f"cost=${ev.get('total_cost_usd', 0)} {str(ev.get('result') or '')[:500]}"
        ]
    return []


def _follow(path: Path, offset: int, raw: bool) -> None:
    try:
        while True:
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            if chunk:
                offset += len(chunk)
                text = chunk.decode("utf-8", errors="replace")
                for line in text.splitlines() if raw else readable(text):
                    sys.stdout.write(line + "\n")
                sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
