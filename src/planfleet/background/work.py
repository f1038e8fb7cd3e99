"""A background session seen from planfleet: its worktree, where its work is, how it
becomes a task branch, and what to do about a session that is not done.

A dispatched session runs in the task worktree planfleet made for its plan, on the task
branch, and commits there; while it may still work, the worktree is locked with
``git worktree lock`` in its name, so an engine or `planfleet worktree remove` leaves it
alone. Sessions of older dispatches worked in a worktree Claude Code made under
``<repo>/.claude/worktrees/``. Either way planfleet takes the worktree's HEAD as the task's
result: the task branch is pointed at it with ``update-ref`` when it is not there yet, so
neither the user's checkout nor the session's worktree is touched.
"""

from __future__ import annotations

import re
from pathlib import Path

from planfleet import fsutil, git
from planfleet.background import dispatch
from planfleet.background.agents import Session
from planfleet.errors import RefusedError
from planfleet.repo import worktrees
from planfleet.repo.merge import integration_holder

LOCK_PREFIX = "planfleet bg session "  # `git worktree lock --reason` of a session's worktree
FEEDBACK_INTRO = (
    "planfleet checked the work you reported done and it did not pass. Keep working in your "
    "current worktree and commit there as before; planfleet takes your latest commit from it."
)

_LOOK = "look at it with `planfleet agents logs {id}`"
_AGAIN = "start the plan again: `planfleet dispatch --phase {phase}`"
# session state -> (result, what happened, what to do next)
_UNFINISHED = {
    "working": (
        "working",
        "still working",
        "watch it with `planfleet agents logs {id}`; collect again once it is done",
    ),
    "failed": (
        "session_failed",
        "the session failed",
        "see why with `planfleet agents logs {id}`, then " + _AGAIN,
    ),
    "stopped": (
        "stopped",
        "the session was stopped",
        "resume it with `planfleet agents attach {id}`, or " + _AGAIN,
    ),
    "missing": ("missing", "claude no longer lists this session", _AGAIN),
}


def unfinished(session: Session, phase: int) -> tuple[str, str, str]:
    """Return (result, what happened, next step) for a session that is not ``done``."""
    if session.state == "blocked":
        waits = f"waits for {session.waiting_for or 'your answer'}"
        return "blocked", waits, f"planfleet agents attach {session.id}"
    unknown = ("unknown", f"claude reports the state {session.state!r}", _LOOK)
    result, message, step = _UNFINISHED.get(session.state, unknown)
    return result, message, step.format(id=session.id, phase=phase)


def hold(repo: Path, worktree: Path, session_id: str) -> None:
    """Lock ``worktree`` in the name of the background session working in it."""
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        reason = f"{LOCK_PREFIX}{session_id}"
        git.git("worktree", "lock", "--reason", reason, str(worktree), cwd=repo)


def release(repo: Path, worktree: Path) -> bool:
    """Unlock ``worktree`` if a background session's lock holds it; return True if it did."""
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        entry = next(
            (e for e in git.worktree_list(repo) if e.path.resolve() == worktree.resolve()), None
        )
        if entry is None or not (entry.locked or "").startswith(LOCK_PREFIX):
            return False
        git.git("worktree", "unlock", str(worktree), cwd=repo)
    return True


def locate_work(repo: Path, session: Session, plan: str, task: str) -> tuple[Path, str] | str:
    """Return (worktree, HEAD commit) holding the work of ``task``'s session, or why none was.

    A dispatch records the worktree it made for the session (``plan``'s task worktree): it
    holds the work. Without one (an older dispatch) the session's cwd counts when it lies in
    a linked worktree of this repository (never the user's checkout); else the one worktree
    under ``.claude/worktrees/`` named after it.
    """
    entries = git.worktree_list(repo)
    if session.worktree:
        worktree = worktrees.task_worktree(repo, plan, task)
        recorded = (repo / session.worktree).resolve(), session.branch
        if recorded != (worktree.resolve(), worktrees.task_branch(plan, task)):
            return (
                f"the dispatch manifest records {session.worktree} on {session.branch}, not "
                f"the worktree and branch of task {task}: dispatch the plan again"
            )
        mine = next((e for e in entries if e.path.resolve() == worktree.resolve()), None)
        if mine is None or not mine.present or not mine.head:
            return f"its worktree {worktree} is gone (git no longer lists it with a commit)"
        return mine.path, mine.head
    users = {repo.resolve(), *(e.path.resolve() for e in entries[:1])}
    linked = [e for e in entries if e.present and e.head and e.path.resolve() not in users]
    if session.cwd:
        inside = [e for e in linked if fsutil.is_within(Path(session.cwd), e.path)]
        if inside:
            best = max(inside, key=lambda e: len(e.path.resolve().parts))
            return best.path, str(best.head)
    # "phase3-plan1" must not match the worktree of "phase3-plan10"
    keys = [
        re.compile(rf"(?<![\w-]){re.escape(k)}(?![\w-])") for k in (session.name, session.id) if k
    ]
    root = repo / dispatch.CLAUDE_WORKTREES
    named = [
        e
        for e in linked
        if fsutil.is_within(e.path, root)
        and any(k.search(e.path.name) or k.search(e.branch or "") for k in keys)
    ]
    if len(named) == 1:
        return named[0].path, str(named[0].head)
    where = f"its cwd is {session.cwd}" if session.cwd else "claude reports no cwd"
    many = f"; {len(named)} worktrees under .claude/worktrees/ match its name" if named else ""
    return f"no git worktree of this repository holds its work ({where}{many})"


def point_branch(repo: Path, plan: str, branch: str, head: str) -> str:
    """Point ``branch`` at ``head`` (compare-and-swap); return the merge-base with integration.

    RefusedError when the branch is checked out somewhere (moving it would change that
    checkout) or when ``head`` shares no history with the integration branch.
    """
    integration = worktrees.integration_branch(plan)
    ref = git.branch_ref(branch)
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        old = git.rev_parse(ref, cwd=repo)
        holder = integration_holder(repo, branch) if old != head else None
        if holder is not None:
            raise RefusedError(
                f"{branch} is checked out in {holder.path}; collect would move that checkout",
                reason="branch_checked_out",
                next_step="switch that checkout to another branch, then collect again",
            )
        if old != head:
            message = f"planfleet: collect {head[:12]}"
            git.update_ref(ref, head, old or git.ZERO_OID, cwd=repo, message=message)
    found = git.git("merge-base", head, git.branch_ref(integration), cwd=repo, check=False)
    if not found.ok or not found.stdout.strip():
        raise RefusedError(
            f"commit {head[:12]} shares no history with {integration}",
            reason="unrelated_history",
            next_step="the session must work from this repository's history",
        )
    return found.stdout.strip()


def resume_argv(exe: str, session: Session, feedback: str) -> list[str]:
    """Return ``claude --resume <session> --bg <prompt>``, the prompt carrying ``feedback``."""
    prompt = f"{FEEDBACK_INTRO}\n\n{feedback}"
    return [exe, "--resume", session.session_uuid or session.id, "--bg", prompt]
