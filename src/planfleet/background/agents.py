"""Watching and steering background sessions: `claude agents` merged with what we know.

`claude agents --json --all` is the supported way to see background sessions; we add
each session's plan and phase from the dispatch manifests and, when a planfleet run
tracks it, its task. A blocked session (a permission prompt, a question) is surfaced with
what it waits for, never waited on silently. logs/attach/stop pass through to claude.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths, proc
from planfleet.background import dispatch
from planfleet.errors import CommandError, InputError, PlanfleetError, RefusedError
from planfleet.ids import check_id
from planfleet.runners.claude import claude_binary
from planfleet.state.store import StateStore

STATES = ("working", "blocked", "done", "failed", "stopped")
# `status` of a live process, for entries that carry no `state`
_FROM_STATUS = {"busy": "working", "waiting": "blocked", "idle": "done"}
FINISHED = frozenset({"failed", "stopped"})
LIST_TIMEOUT_S = 60.0
NO_SESSION = "No session matching"


def claude_exe() -> str:
    """Return the claude executable; RefusedError (reason ``missing``) without one."""
    exe = claude_binary()
    if exe is None:
        raise RefusedError(
            "claude not found on PATH (or $PLANFLEET_CLAUDE)",
            reason="missing",
            next_step="install Claude Code: npm install -g @anthropic-ai/claude-code",
        )
    return exe


def claude_entries(repo: Path, exe: str | None = None) -> list[dict[str, Any]]:
    """Return `claude agents --json --all` parsed; CommandError if it fails or is not a list."""
    argv = [exe or claude_exe(), "agents", "--json", "--all"]
    result = proc.run(argv, cwd=repo, timeout=LIST_TIMEOUT_S, services=True)
    try:
        data = jsonread.parse(result.stdout)
    except ValueError:
        data = None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise CommandError(argv, result.returncode, result.stdout, "not a JSON list", str(repo))
    return data


def session_states(entries: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Return short id -> state for the background sessions in ``entries``."""
    return {str(e["id"]): entry_state(e) for e in entries if e.get("id")}


def entry_state(entry: dict[str, Any]) -> str:
    """Return the state of one `claude agents` entry (from ``status`` when it has none)."""
    state = entry.get("state")
    if state in STATES:
        return str(state)
    return _FROM_STATUS.get(str(entry.get("status")), "unknown")


@dataclass
class Session:
    """One background session as planfleet shows it."""

    id: str
    name: str | None
    state: str  # working | blocked | done | failed | stopped | missing | unknown
    waiting_for: str | None = None
    status: str | None = None  # busy | waiting | idle while its process is alive
    started_at: int | None = None  # Unix ms
    age_s: float | None = None
    cwd: str | None = None
    pid: int | None = None
    session_uuid: str | None = None
    plan: str | None = None  # repository-relative plan file, from a dispatch manifest
    phase: int | None = None
    worktree: str | None = None  # the worktree planfleet made for it (repository-relative)
    branch: str | None = None
    run: str | None = None  # planfleet plan run tracking it, and its task
    task: str | None = None
    task_status: str | None = None

    @property
    def needs_you(self) -> bool:
        return self.state == "blocked" or self.status == "waiting"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "needs_you": self.needs_you}


@dataclass
class Listing:
    sessions: list[Session] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> list[Session]:
        return [s for s in self.sessions if s.needs_you]

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for s in self.sessions:
            found[s.state] = found.get(s.state, 0) + 1
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": [s.to_json() for s in self.sessions],
            "blocked": [
                {"id": s.id, "name": s.name, "waiting_for": s.waiting_for} for s in self.blocked
            ],
            "counts": self.counts(),
            "warnings": self.warnings,
        }


def manifest_sessions(repo: Path, phase: int | None = None) -> list[dict[str, Any]]:
    """Return the sessions recorded by dispatches (of ``phase``), each with its ``phase``."""
    files = (
        [dispatch.manifest_path(repo, phase)] if phase is not None else dispatch.all_manifests(repo)
    )
    found = []
    for path in files:
        data = dispatch.read_manifest(path, repo=repo) or {"sessions": []}
        found += [{**s, "phase": data.get("phase", phase)} for s in data["sessions"]]
    return found


def _tracked(repo: Path, warnings: list[str]) -> dict[str, tuple[str, str, str]]:
    """Return session id -> (run, task, status) from planfleet's state files."""
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(paths.state_dir(repo).glob("*.json")):
        try:
            state = StateStore(path, repo=repo).load()
        except PlanfleetError as exc:
            warnings.append(f"{path.name}: not read ({exc.message})")
            continue
        for task_id, record in state["tasks"].items():
            if record.get("session_id"):
                found[str(record["session_id"])] = (path.stem, task_id, record["status"])
    return found


def list_sessions(
    repo: Path, phase: int | None = None, *, entries: Sequence[dict[str, Any]] | None = None
) -> Listing:
    """Return the background sessions of this repository (or of one phase's dispatch).

    A session counts when a dispatch manifest records it or it was started in the
    repository; a recorded one that `claude agents` no longer lists is ``missing``.
    """
    if entries is None:
        entries = claude_entries(repo)
    listing = Listing()
    recorded = {s["session_id"]: s for s in manifest_sessions(repo, phase)}
    tracked = _tracked(repo, listing.warnings)
    now_ms = time.time() * 1000
    seen = set()
    for e in entries:
        sid = str(e.get("id") or "")
        if not sid or e.get("kind") == "interactive":
            continue
        mine = sid in recorded or (
            phase is None and bool(e.get("cwd")) and fsutil.is_within(Path(e["cwd"]), repo)
        )
        if not mine:
            continue
        seen.add(sid)
        started = e.get("startedAt")
        s = Session(
            id=sid,
            name=e.get("name"),
            state=entry_state(e),
            waiting_for=e.get("waitingFor"),
            status=e.get("status"),
            started_at=started if isinstance(started, int) else None,
            age_s=max(0.0, (now_ms - started) / 1000) if isinstance(started, int) else None,
            cwd=e.get("cwd"),
            pid=e.get("pid"),
            session_uuid=e.get("sessionId"),
        )
        _annotate(s, recorded.get(sid), tracked)
        listing.sessions.append(s)
    for sid, rec in recorded.items():
        if sid not in seen:
            s = Session(id=sid, name=rec["name"], state="missing")
            _annotate(s, rec, tracked)
            listing.sessions.append(s)
    return listing


def _annotate(
    s: Session, recorded: dict[str, Any] | None, tracked: dict[str, tuple[str, str, str]]
) -> None:
    if recorded is not None:
        s.plan = recorded.get("path") or recorded["plan"]
        s.phase = recorded.get("phase")
        s.worktree, s.branch = recorded.get("worktree"), recorded.get("branch")
    hit = tracked.get(s.id) or (tracked.get(s.session_uuid) if s.session_uuid else None)
    if hit:
        s.run, s.task, s.task_status = hit


def _session_arg(value: str) -> str:
    return check_id(value, what="session id")


def _pass_through(repo: Path, verb: str, session: str) -> proc.Result:
    """Run `claude <verb> <session>`; InputError for an unknown id, CommandError otherwise."""
    argv = [claude_exe(), verb, _session_arg(session)]
    result = proc.run(argv, cwd=repo, timeout=LIST_TIMEOUT_S, check=False, services=True)
    if result.ok:
        return result
    if NO_SESSION in result.stderr + result.stdout:
        raise InputError(
            f"no background session matching {session!r}",
            field="session id",
            hint="`planfleet agents` lists the sessions and their ids",
        )
    raise CommandError(argv, result.returncode, result.stdout, result.stderr, str(repo))


def logs(repo: Path, session: str) -> str:
    """Return a session's recent terminal output (`claude logs`)."""
    return _pass_through(repo, "logs", session).stdout


def attach(repo: Path, session: str) -> int:
    """Open a session in this terminal (`claude attach`) and return claude's exit code."""
    argv = [claude_exe(), "attach", _session_arg(session)]
    return proc.run_foreground(argv, cwd=repo)


@dataclass
class StopResult:
    id: str
    name: str | None
    plan: str | None
    result: str  # stopped | already_<state> | not_listed | not_found | error
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result not in ("not_found", "error")

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def stop_sessions(
    repo: Path, ids: Sequence[str] | None = None, phase: int | None = None
) -> list[StopResult]:
    """Stop the given sessions, or (no ids) every session the dispatch manifests record.

    Recorded sessions that already ended, or that claude no longer lists, are reported and
    left alone; a session asked for by id is always passed to `claude stop`.
    """
    if ids:
        return [_stop(repo, sid, None, None) for sid in map(_session_arg, ids)]
    states = session_states(claude_entries(repo))
    results = []
    for rec in manifest_sessions(repo, phase):
        sid, name, plan = rec["session_id"], rec["name"], rec.get("path") or rec["plan"]
        state = states.get(sid)
        if state is None:
            results.append(StopResult(sid, name, plan, "not_listed", "claude does not list it"))
        elif state in FINISHED:
            results.append(StopResult(sid, name, plan, f"already_{state}", f"already {state}"))
        else:
            results.append(_stop(repo, sid, name, plan))
    return results


def _stop(repo: Path, sid: str, name: str | None, plan: str | None) -> StopResult:
    try:
        result = _pass_through(repo, "stop", sid)
    except InputError as exc:
        return StopResult(sid, name, plan, "not_found", exc.message)
    except CommandError as exc:
        return StopResult(sid, name, plan, "error", exc.message)
    return StopResult(sid, name, plan, "stopped", result.stdout.strip())
