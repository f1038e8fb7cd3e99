"""`planfleet agents [logs|attach|stop]`: background sessions, with their plans and state."""

from __future__ import annotations

import argparse
from typing import Any

from planfleet import git
from planfleet.background import agents, collect
from planfleet.cli.app import common_parent
from planfleet.cli.output import Out, table
from planfleet.errors import ExitCode, UsageError


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "agents",
        parents=[parent],
        help="list background sessions with their plan, state and what blocked ones wait for",
        description="List the background Claude Code sessions of this repository: "
        "`claude agents --json --all` merged with the dispatch manifests (plan, phase) and "
        "planfleet's run state (task). Blocked sessions are listed with what they wait for. "
        "`logs`, `attach` and `stop` pass through to claude.",
    )
    p.add_argument("--phase", type=int, metavar="PHASE", help="only the sessions of this phase")
    p.set_defaults(handler=_list, command_name="agents")
    psub = p.add_subparsers(dest="agents_command", metavar="SUBCOMMAND", parser_class=type(p))
    # A subcommand's own defaults would overwrite `agents --json logs ID`'s --json, so its
    # copy of the common options has none (set_defaults would store the SUPPRESS marker).
    parent = common_parent()
    for action in parent._actions:
        action.default = argparse.SUPPRESS
    for verb, text in (
        ("logs", "print a session's recent output (claude logs)"),
        ("attach", "open a session in this terminal (claude attach)"),
    ):
        sp = psub.add_parser(verb, parents=[parent], help=text, description=text)
        sp.add_argument("session", metavar="ID", help="the session's short id or name")
        sp.set_defaults(
            handler=logs_handler if verb == "logs" else _attach, command_name=f"agents {verb}"
        )
    stop_help = "stop sessions by id, or every session of the dispatches (claude stop)"
    sp = psub.add_parser("stop", parents=[parent], help=stop_help, description=stop_help)
    sp.add_argument("session", metavar="ID", nargs="*", help="session ids to stop")
    sp.add_argument("--all", action="store_true", help="every session the dispatches recorded")
    sp.add_argument("--phase", type=int, metavar="PHASE", help="with --all: only this phase's")
    sp.set_defaults(handler=stop_handler, command_name="agents stop")
    collect_help = "verify, record and merge the work of sessions that are done"
    sp = psub.add_parser(
        "collect",
        parents=[parent],
        help=collect_help,
        description="For every session of the dispatches (or of phase N's): a done "
        "session's commit (in its worktree) goes through the engine's gates, is recorded in "
        "the plan's state and merged into planfleet/maxvision-phase-N/integration; a failure "
        "comes with the command that sends its feedback back to the session. Blocked, "
        "working, failed and stopped sessions are reported with the next step. Collecting "
        "again changes nothing that was already collected.",
    )
    # SUPPRESS: `agents --phase 3 collect` keeps the phase given before the subcommand
    sp.add_argument(
        "--phase",
        type=int,
        metavar="PHASE",
        default=argparse.SUPPRESS,
        help="only the sessions of this phase",
    )
    sp.add_argument(
        "--send-feedback",
        action="store_true",
        help="send each failure's feedback to its session (claude --resume ID --bg ...)",
    )
    sp.add_argument(
        "--timeout",
        type=float,
        default=collect.DEFAULT_TIMEOUT_S,
        metavar="S",
        help="time limit of each verify or test command, in seconds",
    )
    sp.set_defaults(handler=collect_handler, command_name="agents collect")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)}s"
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _list(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    listing = agents.list_sessions(repo, ns.phase)
    for warning in listing.warnings:
        out.warn(warning)

    def human() -> None:
        if not listing.sessions:
            where = f"phase {ns.phase}'s dispatch" if ns.phase is not None else "this repository"
            out.line(f"no background sessions for {where}")
            return
        with_task = any(s.task for s in listing.sessions)
        headers = ["ID", "NAME", "STATE", "WAITING FOR", "AGE", "PLAN"]
        rows = []
        for s in listing.sessions:
            state = "BLOCKED" if s.needs_you else s.state
            row = [s.id, s.name or "", state, s.waiting_for or "", _age(s.age_s), s.plan or ""]
            if with_task:
                row.append(f"{s.run}:{s.task} ({s.task_status})" if s.task else "")
            rows.append(row)
        out.line(table(rows, [*headers, "TASK"] if with_task else headers))
        counts = ", ".join(f"{n} {state}" for state, n in sorted(listing.counts().items()))
        out.line(f"\n{len(listing.sessions)} session(s): {counts}")
        if listing.blocked:
            out.line("needs you:")
            for s in listing.blocked:
                what = s.waiting_for or "your answer"
                out.line(
                    f"  {s.id} {s.name or ''} waits for {what}: planfleet agents attach {s.id}"
                )

    status = "blocked" if listing.blocked else "ok"
    out.result("agents", listing.to_json(), status=status, human=human)
    return ExitCode.OK


def logs_handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    text = agents.logs(repo, ns.session)
    out.result(
        "agents logs", {"id": ns.session, "output": text}, human=lambda: out.line(text.rstrip("\n"))
    )
    return ExitCode.OK


def _attach(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    if out.json_mode:
        raise UsageError("attach is interactive and has no --json output")
    return agents.attach(repo, ns.session)


def stop_handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    if bool(ns.session) == bool(ns.all):
        raise UsageError(
            "name the session ids to stop, or pass --all (not both)",
            hint="e.g. `planfleet agents stop 1a2b3c4d` or `planfleet agents stop --all --phase 3`",
        )
    if ns.phase is not None and not ns.all:
        raise UsageError("--phase goes with --all")
    results = agents.stop_sessions(repo, ids=ns.session or None, phase=ns.phase)

    def human() -> None:
        if not results:
            out.line("no dispatched sessions recorded")
        for r in results:
            label = r.result.replace("_", " ")
            detail = f": {r.message}" if r.message and not r.ok else ""
            out.line(f"  {r.id}  {r.name or ''}  {label}{detail}")

    ok = all(r.ok for r in results)
    data = {
        "results": [r.to_json() for r in results],
        "stopped": sum(r.result == "stopped" for r in results),
    }
    out.result("agents stop", data, status="ok" if ok else "error", human=human)
    if ok:
        return ExitCode.OK
    return ExitCode.USAGE if any(r.result == "not_found" for r in results) else ExitCode.FAILED


def collect_handler(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    found = collect.collect(repo, ns.phase, send_feedback=ns.send_feedback, timeout_s=ns.timeout)
    counts: dict[str, int] = {}
    for c in found:
        counts[c.result] = counts.get(c.result, 0) + 1
    failed = [c for c in found if c.result in collect.FAILED_RESULTS]
    blocked = [c for c in found if c.result == "blocked"]

    def human() -> None:
        if not found:
            out.line("no dispatched sessions to collect")
            return
        rows = [[c.id, c.name or "", c.task or c.plan, c.result, c.message] for c in found]
        out.line(table(rows, ["ID", "NAME", "TASK", "RESULT", "DETAIL"]))
        summary = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
        out.line(f"\n{len(found)} session(s): {summary}")
        for c in found:
            if c.result in ("blocked", *collect.FAILED_RESULTS):
                _explain(out, c)

    data = {
        "sessions": [c.to_json() for c in found],
        "counts": counts,
        "merged": [c.task for c in found if c.result == "merged"],
        "blocked": [{"id": c.id, "name": c.name, "waiting_for": c.waiting_for} for c in blocked],
    }
    status = "failed" if failed else "blocked" if blocked else "ok"
    out.result("agents collect", data, status=status, human=human)
    return ExitCode.FAILED if failed else ExitCode.OK


def _explain(out: Out, c: collect.Collected) -> None:
    """Print what went wrong with one session and what to do (the feedback, if any)."""
    out.line(f"\n{c.id} {c.name or ''} ({c.result}): {c.message}")
    if not (c.feedback and c.resume_argv and not c.feedback_sent):
        if c.next_step:
            out.line(f"  next: {c.next_step}")
        return
    out.line("  feedback:")
    out.line("\n".join(f"    {x}" for x in c.feedback.splitlines()))
    # The exact command, with the whole prompt, is in --json (resume_command).
    out.line(f"  send it: planfleet agents collect --phase {c.phase} --send-feedback")
    out.line(f'    (runs: claude --resume {c.resume_argv[2]} --bg "<the feedback above>")')
