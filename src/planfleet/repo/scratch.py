"""Short-lived detached checkouts of one commit, for running checks off the user's tree."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from planfleet import git, paths
from planfleet.ids import MAX_ID_LENGTH, check_id
from planfleet.repo import include, worktrees


@contextlib.contextmanager
def scratch_worktree(repo: Path, plan: str, name: str, commit: str) -> Iterator[Path]:
    """Yield a detached worktree of ``commit`` at ``worktrees/<plan>/_<name>``; remove it after.

    Used for the baseline test run and phase gates. A folder left by a crash is replaced.
    """
    path = worktrees.merge_worktree(repo, plan).with_name(f"_{check_id(name, what='checkout')}")
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        remove_checkout(repo, path)
        paths.writable(repo, path)
        git.git("worktree", "add", "--detach", "-q", str(path), commit, cwd=repo)
    try:
        yield path
    finally:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            remove_checkout(repo, path)


def remove_checkout(repo: Path, path: Path) -> None:
    """Remove a checkout of ours that holds no work (scratch or merge worktree)."""
    if path.exists():
        git.git("worktree", "remove", "--force", str(path), cwd=repo, check=False)
        shutil.rmtree(path, ignore_errors=True)
    git.git("worktree", "prune", cwd=repo, check=False)


class Checkouts:
    """Scratch checkouts of commits, one per role, made on first use and removed on exit.

    Each gets the untracked files (``.env``, ...) a task worktree gets.
    """

    def __init__(self, repo: Path, plan: str, key: str, commits: Mapping[str, str]) -> None:
        self.repo, self.plan, self.key, self.commits = repo, plan, key, dict(commits)
        self._stack = contextlib.ExitStack()
        self._made: dict[str, Path] = {}

    def __call__(self, role: str) -> Path:
        """Return the checkout of ``commits[role]``, making it now if needed."""
        if role not in self._made:
            name = scratch_name(role, self.key)
            where = self._stack.enter_context(
                scratch_worktree(self.repo, self.plan, name, self.commits[role])
            )
            include.copy_into(self.repo, where, include.sources(self.repo))
            self._made[role] = where
        return self._made[role]

    def __enter__(self) -> Checkouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def scratch_name(role: str, key: str) -> str:
    """Return ``<role>-<key>``, shortened with a digest of ``key`` to fit an id."""
    name = f"{role}-{key}"
    if len(name) <= MAX_ID_LENGTH:
        return name
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"{name[: MAX_ID_LENGTH - 11]}-{digest}"
