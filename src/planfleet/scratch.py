"""Short-lived detached checkouts of one commit, for running checks off the user's tree."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from planfleet import git, paths, worktrees
from planfleet.ids import check_id


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
