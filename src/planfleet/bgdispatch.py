"""One `claude --bg` session per plan of a `.maxvision` phase: resolve, preflight, dispatch.

The plans of phase N are ``.maxvision/phase-N/plans/*.md``; each open one becomes a
background session named ``phase<N>-plan<i>`` (``i``: the plan's 1-based position among the
phase's plan files, so a name stays the same when earlier plans are finished). Every
dispatched session is recorded at once in ``.maxvision/phase-N/bg-dispatch.json``, so a
failure midway still leaves a record of what is running.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, guards, preflight, proc
from planfleet.errors import CommandError, InputError, RefusedError, UsageError
from planfleet.formats.maxvision import READER, ROOT
from planfleet.ids import check_id
from planfleet.output import dumps
from planfleet.statemodel import now_iso

EXECUTOR_AGENT = "planfleet:executor"
DEFAULT_LIMIT = 10
MAX_LIMIT_WITHOUT_ACCEPT = 10
MANIFEST_NAME = "bg-dispatch.json"
DISPATCH_TIMEOUT_S = 180.0  # the first `--bg` of a day also starts Claude Code's supervisor
# Recorded plan statuses (see formats.builder.STATUS_WORDS) a dispatch leaves alone.
SKIPPED_STATUSES = {"done": "completed", "blocked": "blocked", "skipped": "skipped"}
# A previous session of a plan in one of these states still owns it: not dispatched again.
LIVE_STATES = frozenset({"working", "blocked", "done"})
CLAUDE_WORKTREES = ".claude/worktrees/"  # where Claude Code isolates a bg session's edits
PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SHORT_ID = re.compile(r"\bbackgrounded\s*·\s*([a-f0-9]{8})\b")
_ATTACH_ID = re.compile(r"\bclaude attach ([a-f0-9]{8})\b")


def phase_name(phase: int) -> str:
    return f"phase-{phase}"


def phase_dir(repo: Path, phase: int) -> Path:
    """Return ``.maxvision/phase-N`` (also found as ``phase-03`` or ``phase-3-auth``)."""
    root = repo / ROOT
    exact = root / phase_name(phase)
    if exact.is_dir() or not root.is_dir():
        return exact
    pattern = re.compile(rf"^phase-0*{phase}(?:[-_.].+)?$", re.I)
    found = sorted(p for p in root.iterdir() if p.is_dir() and pattern.match(p.name))
    return found[0] if found else exact


def manifest_path(repo: Path, phase: int) -> Path:
    """Return the dispatch manifest of phase N (it may not exist)."""
    return phase_dir(repo, phase) / MANIFEST_NAME


def all_manifests(repo: Path) -> list[Path]:
    """Return every dispatch manifest under ``.maxvision``, in path order."""
    return sorted((repo / ROOT).glob(f"phase-*/{MANIFEST_NAME}"))


def read_manifest(path: Path, *, repo: Path) -> dict[str, Any] | None:
    """Return a manifest's content (None if absent); InputError naming the bad field."""
    if not path.exists():
        return None
    shown = str(path.relative_to(repo)) if fsutil.is_within(path, repo) else str(path)
    try:
        data = json.loads(fsutil.read_text(path, display=shown))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=shown, line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
        raise InputError("expected an object with a 'sessions' list", file=shown, field="sessions")
    for i, s in enumerate(data["sessions"]):
        where = f"sessions[{i}]"
        if not isinstance(s, dict):
            raise InputError("expected an object", file=shown, field=where)
        for key in ("plan", "session_id", "name"):
            if not isinstance(s.get(key), str):
                raise InputError(f"'{key}' must be a string", file=shown, field=f"{where}.{key}")
        check_id(s["session_id"], what="session id", file=shown)
    return data


def check_limit(limit: int, accept_cost: bool) -> None:
    """Raise UsageError for a limit below 1; RefusedError above 10 without ``accept_cost``."""
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    if limit > MAX_LIMIT_WITHOUT_ACCEPT and not accept_cost:
        raise RefusedError(
            f"--limit {limit} is above {MAX_LIMIT_WITHOUT_ACCEPT}: every background session is "
            f"a separate Claude Code session with its own token use, so {limit} parallel "
            f"sessions cost about {limit} times one (and drain plan limits {limit} times "
            "as fast)",
            reason="cost",
            next_step=f"pass --accept-cost with --limit {limit}, or use --limit "
            f"{MAX_LIMIT_WITHOUT_ACCEPT} or less",
            details={"limit": limit, "max_without_accept": MAX_LIMIT_WITHOUT_ACCEPT},
        )


def run_preflight(repo: Path, phase: int) -> preflight.Verdict:
    """Return the verdict: claude recent enough for --bg, a clean tree, the phase folder."""
    verdict = preflight.Verdict()
    verdict.checks.append(preflight.check_claude(preflight.MIN_CLAUDE_BACKGROUND))
    verdict.checks.append(_clean_check(repo))
    folder = phase_dir(repo, phase)
    check = preflight.check_path("phase", folder, "no_phase")
    if not check.ok:
        check.detail = f"{folder.relative_to(repo)} does not exist"
        check.next_step = (
            f"plan phase {phase} first (its plans go in {ROOT}/{phase_name(phase)}/plans/*.md), "
            "or pass the number of an existing phase"
        )
    verdict.checks.append(check)
    return verdict


def _ours(repo: Path, path: str) -> bool:
    """Return True for files dispatches leave behind: manifests, bg sessions' worktrees."""
    if path.startswith(f"{ROOT}/") and path.endswith(f"/{MANIFEST_NAME}"):
        return True
    if path.startswith(CLAUDE_WORKTREES):
        return True
    # git shows a wholly untracked .claude/ as one entry: ours if it holds only worktrees
    return path == ".claude/" and [p.name for p in (repo / ".claude").iterdir()] == ["worktrees"]


def _clean_check(repo: Path) -> preflight.Check:
    """Return the clean-tree check; what earlier dispatches left does not count as dirty."""
    dirty = [f for f in guards.require_clean(repo, allow_dirty=True) if not _ours(repo, f)]
    if not dirty:
        return preflight.Check("clean_tree", True, "working tree clean")
    shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
    return preflight.Check(
        "clean_tree",
        False,
        f"uncommitted changes: {shown}",
        reason="dirty",
        next_step="commit or stash them first: each background session works in its own "
        "worktree made from committed code, so uncommitted changes would not be seen",
    )


@dataclass(frozen=True)
class Planned:
    """One plan to dispatch and the exact command that will start its session."""

    index: int
    plan: str  # repository-relative path of the plan file
    name: str
    status: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "plan": self.plan,
            "name": self.name,
            "status": self.status,
            "argv": list(self.argv),
            "command": self.command,
        }


@dataclass
class DispatchPlan:
    """What a dispatch will do: the sessions to start, what is skipped and why."""

    phase: int
    limit: int
    open_plans: int
    planned: list[Planned]
    skipped: list[dict[str, str]]
    manifest: Path
    warnings: list[str] = field(default_factory=list)

    def cost_note(self) -> str:
        k = len(self.planned)
        return (
            f"each session is a separate Claude Code session with its own token use: "
            f"{k} session(s) cost about {k} x one session"
        )

    def to_json(self, repo: Path) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "limit": self.limit,
            "open_plans": self.open_plans,
            "plans": [p.to_json() for p in self.planned],
            "skipped": self.skipped,
            "manifest_path": str(self.manifest.relative_to(repo)),
            "worktrees": "each session moves into its own git worktree under "
            ".claude/worktrees/ before its first edit",
            "cost_note": self.cost_note(),
            "warnings": self.warnings,
        }


def build_prompt(plan: str, phase: int, index: int) -> str:
    """Return the task a session is started with (it names the plan file)."""
    return (
        f"Execute the plan in {plan} (phase {phase}, plan {index}). Read the whole plan file "
        "first, then carry out each of its tasks in order. Run the verification commands "
        "and the tests the plan names, and fix what fails. Commit your work on your own "
        "branch (never push to main or master, never force-push, never merge). Finish with "
        "a short report: the commits you made, the files changed, what was verified and "
        "how, and anything left open."
    )


def bg_argv(
    exe: str,
    *,
    name: str,
    prompt: str,
    model: str | None = None,
    permission_mode: str | None = None,
    plugin_dirs: Sequence[str] = (),
) -> tuple[str, ...]:
    """Return the argv of ``claude --bg`` for one session (no shell: the prompt is one arg)."""
    argv = [exe, "--bg", "--agent", EXECUTOR_AGENT, "--name", name]
    if model:
        argv += ["--model", model]
    if permission_mode:
        argv += ["--permission-mode", permission_mode]
    for d in plugin_dirs:
        argv += ["--plugin-dir", d]
    return (*argv, prompt)


def resolve(
    repo: Path,
    phase: int,
    *,
    limit: int,
    exe: str,
    live: Mapping[str, str] | None = None,
    model: str | None = None,
    permission_mode: str | None = None,
    plugin_dirs: Sequence[str] = (),
) -> DispatchPlan:
    """Return the dispatch plan of phase N; ``live`` maps a plan path to its running session.

    Plans recorded ``completed``/``blocked``/``skipped`` are skipped, and so are plans whose
    previous session (in the manifest) is still working, blocked or done.
    """
    folder = phase_dir(repo, phase)
    manifest = folder / MANIFEST_NAME
    files = sorted(p for p in (folder / "plans").glob("*.md") if p.is_file())
    plan = READER.read(folder, repo=repo) if files else None
    statuses: dict[str, str] = {}
    for task in plan.tasks if plan else ():
        statuses.update(dict.fromkeys(task.spec_files[:1], task.status))
    warnings = [d.render() for d in plan.warnings] if plan else []
    candidates: list[tuple[int, str, str]] = []
    skipped: list[dict[str, str]] = []
    for index, file in enumerate(files, start=1):
        rel = file.relative_to(repo).as_posix()
        status = statuses.get(rel, "pending")
        if status in SKIPPED_STATUSES:
            skipped.append({"plan": rel, "reason": SKIPPED_STATUSES[status]})
        elif live and rel in live:
            skipped.append({"plan": rel, "reason": f"dispatched before: {live[rel]}"})
        else:
            candidates.append((index, rel, status))
    for _, rel, _ in candidates[limit:]:
        skipped.append({"plan": rel, "reason": f"over the cap of {limit}"})
    planned = []
    for index, rel, word in candidates[:limit]:
        name = check_id(f"phase{phase}-plan{index}", what="session name")
        argv = bg_argv(
            exe,
            name=name,
            prompt=build_prompt(rel, phase, index),
            model=model,
            permission_mode=permission_mode,
            plugin_dirs=plugin_dirs,
        )
        planned.append(Planned(index, rel, name, word, argv))
    return DispatchPlan(phase, limit, len(candidates), planned, skipped, manifest, warnings)


def live_plans(repo: Path, phase: int, states: Mapping[str, str]) -> dict[str, str]:
    """Return plan path -> "<id> (<state>)" for manifest sessions still owning their plan.

    ``states`` maps a short session id to its state as `claude agents` reports it.
    """
    data = read_manifest(manifest_path(repo, phase), repo=repo)
    found: dict[str, str] = {}
    for s in data["sessions"] if data else []:
        state = states.get(s["session_id"])
        if state in LIVE_STATES:
            found[s.get("path") or s["plan"]] = f"{s['session_id']} ({state})"
    return found


def parse_short_id(output: str) -> str | None:
    """Return the 8-hex short id `claude --bg` printed, or None."""
    text = _ANSI.sub("", output)
    m = _SHORT_ID.search(text) or _ATTACH_ID.search(text)
    return m.group(1) if m else None


@dataclass
class Outcome:
    """What a dispatch did: the sessions started, and the failure that stopped it, if any."""

    sessions: list[dict[str, str]] = field(default_factory=list)
    failure: dict[str, Any] | None = None
    not_dispatched: list[str] = field(default_factory=list)


def dispatch(repo: Path, plan: DispatchPlan) -> Outcome:
    """Start each planned session in turn, recording each in the manifest as it starts.

    Stops at the first session that fails to start or whose id cannot be read.
    """
    data = read_manifest(plan.manifest, repo=repo) or {"phase": plan.phase, "sessions": []}
    data["phase"] = plan.phase
    data["dispatched_at"] = now_iso()
    outcome = Outcome()
    for i, p in enumerate(plan.planned):
        started = _start(repo, p)
        if isinstance(started, dict):
            outcome.failure = started
            outcome.not_dispatched = [q.plan for q in plan.planned[i:]]
            break
        entry = {
            "plan": Path(p.plan).name,
            "path": p.plan,
            "session_id": started,
            "name": p.name,
            "dispatched_at": now_iso(),
        }
        data["sessions"].append(entry)
        outcome.sessions.append(entry)
        fsutil.atomic_write(plan.manifest, dumps(data) + "\n")
    return outcome


def _start(repo: Path, p: Planned) -> str | dict[str, Any]:
    """Return the short id of the started session, or a description of the failure."""
    failure: dict[str, Any] = {"plan": p.plan, "name": p.name, "command": p.command}
    try:
        # `claude --bg` leaves the session (and maybe its daemon) running: by design.
        result = proc.run(p.argv, cwd=repo, timeout=DISPATCH_TIMEOUT_S, check=False, services=True)
    except CommandError as exc:
        return {**failure, "reason": "timeout", "output": exc.stdout + exc.stderr}
    output = (result.stdout + result.stderr).strip()
    if not result.ok:
        return {**failure, "reason": "claude_failed", "exit": result.returncode, "output": output}
    short = parse_short_id(result.stdout) or parse_short_id(result.stderr)
    if short is None:
        return {**failure, "reason": "no_session_id", "output": output}
    return short
