"""`planfleet state show|init|claim|heartbeat|complete|fail|reset`: the run state by hand.

These are the primitives of the in-session mode: Claude Code's own subagents do the work,
and every change still goes through the same state machine and the same locked store.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.cli.output import Out, table
from planfleet.errors import ExitCode, InputError
from planfleet.state import batch, ops, records, recover
from planfleet.state.store import StateStore


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "state",
        help="show or change a plan run's state (in-session primitives)",
        description="Read and change the state of a plan run (.planfleet/state/<plan>.json). "
        "Every change is one locked, validated transaction; illegal transitions are refused "
        "with exit 3.",
    )
    psub = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)

    def add(
        name: str,
        help_text: str,
        handler: Callable[[argparse.Namespace, Out], int],
        *,
        task: bool = True,
    ) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = psub.add_parser(
            name, parents=[parent], help=help_text, description=help_text
        )
        sp.add_argument("plan", metavar="PLAN", help="the plan run's name")
        if task:
            sp.add_argument("task", metavar="TASK", help="a task id (a gate is PHASE:gate)")
        sp.set_defaults(handler=handler, command_name=f"state {name}")
        return sp

    add("show", "print every task's status (and orphaned tasks)", _show, task=False)

    init = add("init", "create the state of a plan run from a plan file", _init, task=False)
    init.add_argument(
        "--from",
        dest="source",
        metavar="PLAN_PATH",
        required=True,
        help="plan file or folder (or a plan name from `plan list`)",
    )
    init.add_argument("--format", metavar="NAME", help="force a plan format (default: detected)")
    init.add_argument(
        "--force",
        action="store_true",
        help="start over if a state exists (the old file is kept as .bak)",
    )

    claim = add(
        "claim",
        "start an attempt of a task whose dependencies are verified; "
        "exit 3 if someone else holds it",
        _claim,
    )
    claim.add_argument("--owner", metavar="OWNER", help="who works on it (default: user@host:pid)")
    claim.add_argument(
        "--pid", type=int, metavar="PID", help="the worker's process id, if it is a process"
    )
    _lease(claim)

    beat = add("heartbeat", "renew the lease of a task in progress", _heartbeat)
    beat.add_argument(
        "--owner", metavar="OWNER", help="refuse unless the task is held by this owner"
    )
    _lease(beat)

    done = add("complete", "record a task as verified at a commit", _complete)
    done.add_argument("--commit", required=True, metavar="SHA", help="the task's commit")
    done.add_argument("--verification", metavar="REF", help="where the verification record is")
    done.add_argument(
        "--owner", metavar="OWNER", help="refuse unless the task is held by this owner"
    )
    done.add_argument("--cost", type=float, metavar="USD", help="what the attempt cost")

    fail = add("fail", "record a failed attempt (type 'timeout' records a timeout)", _fail)
    fail.add_argument(
        "--type",
        dest="error_type",
        required=True,
        metavar="TYPE",
        help="what failed, e.g. test_failure, missing_file, timeout, crash",
    )
    fail.add_argument("--step", required=True, metavar="STEP", help="the step that failed")
    fail.add_argument("--message", required=True, metavar="TEXT", help="what happened")
    fail.add_argument("--feedback", metavar="TEXT", help="what the next attempt must fix")
    fail.add_argument(
        "--owner", metavar="OWNER", help="refuse unless the task is held by this owner"
    )
    fail.add_argument("--cost", type=float, metavar="USD", help="what the attempt cost")

    reset = add("reset", "put a task back to pending (attempts and worktree kept)", _reset)
    reset.add_argument("--hard", action="store_true", help="also forget attempts and results")
    reset.add_argument("--reason", metavar="TEXT", help="why (kept as the task's note)")

    apply = add(
        "apply",
        "make several changes in one locked transaction: all of them or none",
        _apply,
        task=False,
    )
    apply.add_argument(
        "changes",
        metavar="FILE",
        help="a JSON array of changes, or - for standard input; each is an object with "
        '"op" (claim, heartbeat, complete, fail, reset), "task" and the fields the '
        "command of that name takes as flags: owner, pid, lease, commit, verification, "
        "cost, type, step, message, feedback, hard, reason",
    )


def _lease(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lease",
        type=float,
        metavar="S",
        help=f"seconds the claim holds without a heartbeat (default {records.DEFAULT_LEASE_S:g})",
    )


def _store(ns: argparse.Namespace) -> StateStore:
    repo = git.require_repo(ns.repo)
    return StateStore.for_plan(repo, ns.plan, command=f"planfleet {ns.command_name} {ns.plan}")


def _show(ns: argparse.Namespace, out: Out) -> int:
    return show(out, store=_store(ns))


def show(out: Out, *, store: StateStore) -> int:
    state = store.load()
    ids = records.ordered_ids(state)
    tasks = state["tasks"]
    counts = Counter(tasks[t]["status"] for t in ids)
    orphans = recover.find_orphans(state)
    ready = records.ready_tasks(state)
    data = {
        "state": state,
        "counts": dict(counts),
        "ready": ready,
        "orphans": orphans,
        "file": str(store.path),
    }

    def human() -> None:
        plan = state["plan"]
        out.line(
            f"plan {plan['name']} ({plan['format'] or 'unknown format'}, "
            f"{plan['path'] or 'no path'}): {state['status']}, revision "
            f"{state['revision']}, updated {state['updated_at']}"
        )
        rows = [_row(t, tasks[t], orphans.get(t)) for t in ids]
        out.line(table(rows, ["TASK", "STATUS", "TRIES", "HELD BY", "UPDATED", "NOTE"]))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        out.line(f"\n{summary}; cost ${state['totals']['cost_usd']:.2f}")
        if ready:
            out.line("ready to claim: " + ", ".join(ready[:10]))

    out.result("state show", data, human=human)
    return ExitCode.OK


def _row(tid: str, rec: dict[str, Any], orphan: str | None) -> list[str]:
    held = ops.holder_text(rec) if rec["status"] == "in_progress" else ""
    note = f"ORPHAN: {orphan}" if orphan else _note(rec)
    tries = f"{rec['attempts']}" + (f"/{rec['max_attempts']}" if rec["max_attempts"] else "")
    return [tid, rec["status"], tries, held, rec["updated_at"], note]


def _note(rec: dict[str, Any]) -> str:
    if rec["error"]:
        err = rec["error"]
        text = f"{err['type']} at {err['step']}: {err['message']}"
    else:
        text = rec["note"] or (f"commit {rec['commit'][:12]}" if rec["commit"] else "")
    return text if len(text) <= 60 else text[:57] + "..."


def _init(ns: argparse.Namespace, out: Out) -> int:
    repo = git.require_repo(ns.repo)
    return init(out, repo=repo, name=ns.plan, source=ns.source, fmt=ns.format, force=ns.force)


def init(out: Out, *, repo: Path, name: str, source: str, fmt: str | None, force: bool) -> int:
    from planfleet.plan import formats  # only init reads a plan: `state show` stays quick
    from planfleet.state.create import init_from_plan

    store = StateStore.for_plan(repo, name, command=f"planfleet state init {name}")
    path = formats.resolve(source, repo=repo, format=fmt)
    plan = formats.load_plan(path, repo=repo, format=fmt)
    state = init_from_plan(plan, name=name)
    store.create(state, replace=force)
    counts = Counter(r["status"] for r in state["tasks"].values())
    data = {
        "file": str(store.path),
        "plan": state["plan"],
        "counts": dict(counts),
        "tasks": len(plan.tasks),
        "gates": len(plan.phases),
    }
    out.result(
        "state init",
        data,
        human=lambda: out.line(
            f"created {store.path}: {len(plan.tasks)} tasks, {len(plan.phases)} gates"
            + "".join(f", {n} {s}" for s, n in sorted(counts.items()) if s != "pending")
        ),
    )
    return ExitCode.OK


def _change(
    out: Out, ns: argparse.Namespace, operation: Callable[..., dict[str, Any]], **kwargs: Any
) -> int:
    """Apply ``operation(state, task, **kwargs)`` in one transaction; print the new record."""
    store = _store(ns)
    with store.transaction() as state:
        record = operation(state, ns.task, **kwargs)
    # The store bumped the revision of this same document when it wrote it.
    data = {"task": ns.task, "record": record, "revision": state["revision"]}

    def human() -> None:
        held = record["status"] == "in_progress"
        out.line(
            f"{ns.task}: {record['status']} (attempt {record['attempts']})"
            + (f", {ops.holder_text(record)}" if held else "")
        )

    out.result(ns.command_name, data, human=human)
    return ExitCode.OK


def _claim(ns: argparse.Namespace, out: Out) -> int:
    lease = records.DEFAULT_LEASE_S if ns.lease is None else _positive(ns.lease, "--lease")
    owner = ns.owner or ops.default_owner()
    return _change(out, ns, ops.claim, owner=owner, pid=ns.pid, lease_s=lease)


def _heartbeat(ns: argparse.Namespace, out: Out) -> int:
    lease = None if ns.lease is None else _positive(ns.lease, "--lease")
    return _change(out, ns, ops.heartbeat, lease_s=lease, owner=ns.owner)


def _complete(ns: argparse.Namespace, out: Out) -> int:
    if not batch.SHA.match(ns.commit):
        raise InputError(
            f"not a commit id: {ns.commit!r}",
            field="--commit",
            hint="pass the full or abbreviated hexadecimal SHA",
        )
    return _change(
        out,
        ns,
        ops.complete,
        commit=ns.commit,
        verification=ns.verification,
        owner=ns.owner,
        cost_usd=ns.cost,
    )


def _fail(ns: argparse.Namespace, out: Out) -> int:
    return _change(
        out,
        ns,
        ops.fail,
        error_type=ns.error_type,
        step=ns.step,
        message=ns.message,
        feedback=ns.feedback,
        owner=ns.owner,
        cost_usd=ns.cost,
    )


def _reset(ns: argparse.Namespace, out: Out) -> int:
    return _change(out, ns, ops.reset, hard=ns.hard, reason=ns.reason)


def _positive(value: float, flag: str) -> float:
    if not value > 0:
        raise InputError(f"{flag} must be a positive number of seconds, got {value:g}", field=flag)
    return value


def _apply(ns: argparse.Namespace, out: Out) -> int:
    import json
    import sys

    where = "<stdin>" if ns.changes == "-" else ns.changes
    try:
        text = sys.stdin.read() if ns.changes == "-" else Path(ns.changes).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the changes: {exc}", file=where) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"not JSON: {exc}", file=where, line=line) from None
    changes = batch.parse_changes(doc, where)
    store = _store(ns)
    with store.transaction() as state:
        results = batch.apply(state, changes)
    data = {"applied": len(results), "changes": results, "revision": state["revision"]}

    def human() -> None:
        for r in results:
            out.line(f"{r['task']}: {r['op']} -> {r['record']['status']}")
        out.line(f"{len(results)} changes in one transaction, revision {state['revision']}")

    out.result("state apply", data, human=human)
    return ExitCode.OK
