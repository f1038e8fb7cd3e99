"""One `claude --bg` session per plan of a `.maxvision` phase: resolve, preflight, dispatch.

The plans of phase N are ``.maxvision/phase-N/plans/*.md``; each open one becomes a
background session named ``phase<N>-plan<i>`` (``i``: the plan's 1-based position among the
phase's plan files, so a name stays the same when earlier plans are finished). Each session
starts in a worktree of planfleet's own, on the task branch ``run`` would use for that plan
(``planfleet/maxvision-phase-N/tasks/<task>``): Claude Code leaves a background session that
already runs in a linked worktree where it is, so its edits and commits land on that branch.
Every dispatched session is recorded at once in ``.maxvision/phase-N/bg-dispatch.json``, so a
failure midway still leaves a record of what is running (``background.launch`` starts them).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths
from planfleet.engine import attempt, preflight
from planfleet.errors import InputError, RefusedError, UsageError
from planfleet.ids import check_id
from planfleet.plan import model
from planfleet.plan.formats.maxvision import READER, ROOT
from planfleet.repo import guards, worktrees
from planfleet.runners import claude as claude_runner

EXECUTOR_AGENT = "planfleet:executor"
DEFAULT_LIMIT = 10
MAX_LIMIT_WITHOUT_ACCEPT = 10
MANIFEST_NAME = "bg-dispatch.json"
DISPATCH_TIMEOUT_S = 180.0  # the first `--bg` of a day also starts Claude Code's supervisor
# Recorded plan statuses (see formats.builder.STATUS_WORDS) a dispatch leaves alone.
SKIPPED_STATUSES = {"done": "completed", "blocked": "blocked", "skipped": "skipped"}
# A previous session of a plan in one of these states still owns it: not dispatched again.
LIVE_STATES = frozenset({"working", "blocked", "done"})
# Where Claude Code isolates the edits of a session that does not start in a linked worktree
# (sessions of dispatches before planfleet made the worktrees work there).
CLAUDE_WORKTREES = ".claude/worktrees/"
PERMISSION_MODES = claude_runner.PERMISSION_MODES
# As for `run`'s agents: edits in the worktree, and only the Bash calls the plan needs. A
# background session's own default ("auto") refuses every Bash call when its safety check
# cannot run, so the session could not even commit.
DEFAULT_PERMISSION_MODE = claude_runner.DEFAULT_PERMISSION_MODE
READ_ONLY_MODES = frozenset({"plan"})


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
    data = jsonread.read(path, display=shown)
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
        raise InputError("expected an object with a 'sessions' list", file=shown, field="sessions")
    for i, s in enumerate(data["sessions"]):
        where = f"sessions[{i}]"
        if not isinstance(s, dict):
            raise InputError("expected an object", file=shown, field=where)
        for key in ("plan", "session_id", "name"):
            if not isinstance(s.get(key), str):
                raise InputError(f"'{key}' must be a string", file=shown, field=f"{where}.{key}")
        for key in ("path", "run", "task", "worktree", "branch"):  # absent in old manifests
            if key in s and not isinstance(s[key], str):
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


def check_permission_mode(mode: str | None) -> None:
    """Raise UsageError for a permission mode in which a session cannot write at all."""
    if mode in READ_ONLY_MODES:
        raise UsageError(
            f"--permission-mode {mode} lets a session read but never write: it could not "
            "carry out its plan",
            field="--permission-mode",
            hint=f"leave it out (the default is {DEFAULT_PERMISSION_MODE}) or use acceptEdits",
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
    """One plan to dispatch: its task, worktree and branch, and the command of its session."""

    index: int
    plan: str  # repository-relative path of the plan file
    name: str
    status: str
    task: str  # the plan's task id in the phase's run
    worktree: Path  # where the session starts (planfleet's task worktree)
    branch: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def to_json(self, repo: Path) -> dict[str, Any]:
        return {
            "index": self.index,
            "plan": self.plan,
            "name": self.name,
            "status": self.status,
            "task": self.task,
            "worktree": self.worktree.relative_to(repo).as_posix(),
            "branch": self.branch,
            "argv": list(self.argv),
            "command": self.command,
        }


@dataclass
class DispatchPlan:
    """What a dispatch will do: the sessions to start, what is skipped and why."""

    phase: int
    run: str  # the phase's plan run (``maxvision-phase-N``): names its branches and worktrees
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

    def worktrees_note(self) -> str:
        root = (paths.worktrees_root(Path()) / self.run).as_posix()
        return (
            f"each session starts in its own git worktree ({root}/<task>, on branch "
            f"planfleet/{self.run}/tasks/<task>) and commits there; "
            "`planfleet agents collect` verifies and merges that branch"
        )

    def to_json(self, repo: Path) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "run": self.run,
            "limit": self.limit,
            "open_plans": self.open_plans,
            "plans": [p.to_json(repo) for p in self.planned],
            "skipped": self.skipped,
            "manifest_path": str(self.manifest.relative_to(repo)),
            "worktrees": self.worktrees_note(),
            "cost_note": self.cost_note(),
            "warnings": self.warnings,
        }


def build_prompt(
    plan: str, phase: int, index: int, *, worktree: Path, branch: str, checks: Sequence[str]
) -> str:
    """Return the task a session is started with: the plan file, its worktree, the checks."""
    # one line: the command is shown to the user as one `$ claude --bg ...` line
    return (
        f"Execute the plan in {plan} (phase {phase}, plan {index}). You start in your own "
        f"git worktree, {worktree}, on branch {branch}, made for this plan by planfleet: "
        "work and commit only there, with git add and git commit (never switch branches, "
        "never create another worktree, never push, force-push or merge). Read the whole "
        "plan file first, then carry out each of its tasks in order. Run the verification "
        "commands and the tests the plan names, and fix what fails. Finish with a short "
        "report: the commits you made, the files changed, what was verified and how, and "
        "anything left open. When you are done, planfleet checks your branch itself: "
        + "; ".join(checks)
        + "."
    )


def bg_argv(
    exe: str,
    *,
    name: str,
    prompt: str,
    allowed_tools: Sequence[str],
    permission_mode: str = DEFAULT_PERMISSION_MODE,
    model: str | None = None,
    plugin_dirs: Sequence[str] = (),
) -> tuple[str, ...]:
    """Return the argv of ``claude --bg`` for one session (no shell: the prompt is one arg).

    ``--`` ends the options: ``--allowedTools`` takes a list and would swallow the prompt.
    """
    argv = [exe, "--bg", "--agent", EXECUTOR_AGENT, "--name", name]
    argv += ["--permission-mode", permission_mode]
    argv += ["--allowedTools", ",".join(allowed_tools)]
    if model:
        argv += ["--model", model]
    for d in plugin_dirs:
        argv += ["--plugin-dir", d]
    return (*argv, "--", prompt)


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
    check_permission_mode(permission_mode)
    folder = phase_dir(repo, phase)
    manifest = folder / MANIFEST_NAME
    files = sorted(p for p in (folder / "plans").glob("*.md") if p.is_file())
    plan = READER.read(folder, repo=repo) if files else None
    tasks = {t.spec_files[0]: (plan, t) for t in plan.tasks if t.spec_files} if plan else {}
    statuses = {rel: t.status for rel, (_, t) in tasks.items()}
    warnings = [d.render() for d in plan.warnings] if plan else []
    candidates: list[tuple[int, str, str]] = []
    skipped: list[dict[str, str]] = []
    for index, file in enumerate(files, start=1):
        rel = file.relative_to(repo).as_posix()
        status = statuses.get(rel, "pending")
        if rel not in tasks:  # the reader refused it (a warning says why)
            skipped.append({"plan": rel, "reason": "not read as a plan (see the warnings)"})
        elif status in SKIPPED_STATUSES:
            skipped.append({"plan": rel, "reason": SKIPPED_STATUSES[status]})
        elif live and rel in live:
            skipped.append({"plan": rel, "reason": f"dispatched before: {live[rel]}"})
        else:
            candidates.append((index, rel, status))
    for _, rel, _ in candidates[limit:]:
        skipped.append({"plan": rel, "reason": f"over the cap of {limit}"})
    run = plan.name if plan else f"maxvision-{phase_name(phase)}"
    planned = [
        _planned(
            repo,
            *tasks[rel],
            phase=phase,
            index=index,
            status=word,
            exe=exe,
            model=model,
            permission_mode=permission_mode or DEFAULT_PERMISSION_MODE,
            plugin_dirs=plugin_dirs,
        )
        for index, rel, word in candidates[:limit]
    ]
    return DispatchPlan(phase, run, limit, len(candidates), planned, skipped, manifest, warnings)


def _planned(
    repo: Path,
    plan: model.Plan,
    task: model.Task,
    *,
    phase: int,
    index: int,
    status: str,
    exe: str,
    model: str | None,
    permission_mode: str,
    plugin_dirs: Sequence[str],
) -> Planned:
    """Return one plan's session: its worktree and branch as `run` names them, its argv."""
    rel = task.spec_files[0]
    name = check_id(f"phase{phase}-plan{index}", what="session name")
    wt = worktrees.task_worktree(repo, plan.name, task.id)
    branch = worktrees.task_branch(plan.name, task.id)
    checks = attempt.engine_checks(plan, task)
    prompt = build_prompt(rel, phase, index, worktree=wt, branch=branch, checks=checks)
    argv = bg_argv(
        exe,
        name=name,
        prompt=prompt,
        allowed_tools=claude_runner.task_rules(plan, task, {}),
        permission_mode=permission_mode,
        model=model,
        plugin_dirs=plugin_dirs,
    )
    return Planned(index, rel, name, status, task.id, wt, branch, argv)


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
