"""Where a ``.spec`` plan executes, from its ``- **Branch**:`` and ``- **Worktree**:`` lines.

An existing worktree is used as is; a missing one is created on the plan's branch only when
the person confirmed (``yes``); no worktree means the current checkout, with a branch check
whose remedy is offered, never run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, git
from planfleet.errors import RefusedError
from planfleet.repo import include, worktrees

NO_WORKTREE = ("", "(none)", "none", "-", "n/a")


@dataclass
class ExecutionDir:
    """The folder a plan's agents work in, and whether it is on the plan's branch."""

    path: Path
    mode: str  # worktree | created | current | planned
    branch: str | None  # the branch the plan asks for
    current_branch: str | None  # the branch checked out at ``path``
    branch_ok: bool
    switch_command: list[str] | None = None  # offered to the person, never run by planfleet
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _check_branch(repo: Path, branch: str | None) -> str | None:
    branch = (branch or "").strip() or None
    if branch is not None:
        problem = git.branch_name_problem(branch, cwd=repo)
        if problem:
            raise RefusedError(
                f"plan branch {branch!r} {problem}",
                reason="bad_branch",
                next_step="fix the **Branch** line of the plan",
            )
    return branch


def _worktree_path(repo: Path, value: str) -> Path:
    """Return the plan's worktree path; it must stay in the repository's parent folder."""
    if "\0" in value or any(ord(c) < 32 for c in value):
        raise RefusedError("plan worktree path holds control characters", reason="bad_worktree")
    path = Path(value)
    path = (path if path.is_absolute() else repo / path).resolve()
    if not fsutil.is_within(path, repo.parent) or path == repo.parent:
        raise RefusedError(
            f"plan worktree {value!r} resolves to {path}, outside {repo.parent}",
            reason="bad_worktree",
            next_step="use a path inside the repository or next to it (for example ../name)",
        )
    return path


def execution_dir(
    repo: Path,
    *,
    branch: str | None,
    worktree: str | None,
    yes: bool = False,
    dry_run: bool = False,
) -> ExecutionDir:
    """Return where to execute; create a missing worktree only when ``yes``.

    RefusedError when the worktree is missing and not confirmed (reason ``confirm_worktree``),
    or when the path or branch is unusable.
    """
    repo = repo.resolve()
    branch = _check_branch(repo, branch)
    if (worktree or "").strip().lower() in NO_WORKTREE:
        current = git.current_branch(repo)
        ok = branch is None or current == branch
        switch = None if ok else ["git", "switch", branch or ""]
        return ExecutionDir(repo, "current", branch, current, ok, switch)
    path = _worktree_path(repo, (worktree or "").strip())
    entries = git.worktree_list(repo)
    entry = next((e for e in entries if e.path.resolve() == path and e.present), None)
    if entry is not None:
        ok = branch is None or entry.branch == branch
        switch = None if ok else ["git", "-C", str(path), "switch", branch or ""]
        return ExecutionDir(path, "worktree", branch, entry.branch, ok, switch)
    if path.exists():
        raise RefusedError(
            f"{path} exists but is not a worktree of {repo}",
            reason="not_a_worktree",
            next_step="fix the **Worktree** line",
        )
    if branch is None:
        raise RefusedError(
            f"the plan names worktree {path} but no branch for it",
            reason="no_branch",
            next_step="add a `- **Branch**: name` line",
        )
    holder = next((e for e in entries if e.branch == branch and e.present), None)
    if holder is not None:
        raise RefusedError(
            f"branch {branch} is checked out in {holder.path}",
            reason="branch_in_use",
            next_step="use that worktree, or free it",
        )
    exists = git.rev_parse(git.branch_ref(branch), cwd=repo) is not None
    args = (
        ("worktree", "add", str(path), branch)
        if exists
        else ("worktree", "add", "-b", branch, str(path), "HEAD")
    )
    step = git.Step(args, repo)
    if not yes:
        raise RefusedError(
            f"the plan needs worktree {path} (branch {branch}), which does not exist",
            reason="confirm_worktree",
            next_step="confirm with --yes to create it",
            details={"path": str(path), "branch": branch, "commands": [step.render()]},
        )
    result = ExecutionDir(
        path, "planned" if dry_run else "created", branch, branch, True, commands=[step.render()]
    )
    if not dry_run:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            step.run()
        include.copy_into(repo, path, include.sources(repo))
    return result
