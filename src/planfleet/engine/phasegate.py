"""Phase gates: the phase's own test commands, run on the integration branch after its
last task merged, in a scratch checkout (never the user's tree, never a task worktree); then
the history checks from the commit the phase started from (no test removed, the base's
tests pass on the merged code), which catch what tasks that pass alone do together."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import fsutil, paths
from planfleet.errors import PlanfleetError
from planfleet.plan import model
from planfleet.repo.scratch import scratch_worktree
from planfleet.state.records import now_iso
from planfleet.verify import history as verify_history
from planfleet.verify.testrun import run_user_command


@dataclass
class GateOutcome:
    """How a phase gate ended: ``ok``, or the failing command and its output."""

    phase: str
    commit: str
    ok: bool
    message: str = ""
    output: str = ""
    record: str | None = None
    stopped: bool = False
    error_type: str = "test_failure"


def run_gate(
    repo: Path,
    plan: str,
    phase: model.Phase,
    commit: str,
    timeout_s: float,
    stop: threading.Event,
    history: verify_history.History | None = None,
) -> GateOutcome:
    """Run ``phase.gate_commands`` on ``commit``, then the history checks of ``history``."""
    out = GateOutcome(phase.id, commit, ok=True, message="no gate commands")
    if stop.is_set():
        out.ok, out.stopped = False, True
        return out
    results: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    if phase.gate_commands:
        try:
            with scratch_worktree(repo, plan, f"gate-{phase.id}", commit) as where:
                for cmd in phase.gate_commands:
                    ran = run_user_command(cmd, cwd=where, timeout_s=timeout_s)
                    entry = ran.evidence()
                    results.append(entry)
                    if ran.exit_code != 0:
                        out.ok = False
                        code = "timed out" if ran.exit_code is None else f"exited {ran.exit_code}"
                        out.message = f"`{cmd}` {code}"
                        out.output = f"$ {cmd}\n{entry['output_tail']}"
                        break
                else:
                    out.message = f"{len(phase.gate_commands)} command(s) passed"
        except PlanfleetError as exc:
            out.ok, out.message = False, f"could not run the gate: {exc.message}"
    if out.ok and history is not None:
        if stop.is_set():
            out.ok, out.stopped = False, True
            return out
        _history(repo, plan, phase, out, history, timeout_s, checks)
    out.record = _save(repo, plan, phase.id, out, results, checks)
    return out


def _history(
    repo: Path,
    plan: str,
    phase: model.Phase,
    out: GateOutcome,
    history: verify_history.History,
    timeout_s: float,
    checks: list[dict[str, Any]],
) -> None:
    """Run the history checks over the phase's changes; the first failure fails the gate."""
    try:
        found = verify_history.check(
            repo,
            plan,
            f"p-{phase.id}",
            base=history.base,
            head=out.commit,
            command=history.command,
            allowed=history.allowed,
            timeout_s=timeout_s,
        )
    except (PlanfleetError, OSError) as exc:
        out.ok = False
        out.message = f"could not run the history checks: {getattr(exc, 'message', exc)}"
        return
    checks += verify_history.gates_json(found)
    failed = next((f for f in found if not f.ok), None)
    if failed is None:
        out.message += f"; since {history.base[:12]}: " + "; ".join(f.message for f in found)
        return
    out.ok, out.message = False, f"{failed.name}: {failed.message}"
    out.error_type = failed.error_type or out.error_type
    tail = (failed.evidence or {}).get("output_tail")
    out.output = f"$ {failed.evidence['command']}\n{tail}" if failed.evidence and tail else ""


def _save(
    repo: Path,
    plan: str,
    phase: str,
    out: GateOutcome,
    results: list[dict[str, Any]],
    checks: list[dict[str, Any]],
) -> str:
    path = paths.writable(repo, paths.verify_dir(repo, plan) / f"{phase}.gate.json")
    record = {
        "phase": phase,
        "commit": out.commit,
        "ok": out.ok,
        "message": out.message,
        "commands": results,
        "checks": checks,
        "at": now_iso(),
    }
    fsutil.atomic_write(path, json.dumps(record, indent=1) + "\n")
    return str(path)
