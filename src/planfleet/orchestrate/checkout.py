"""The checkout a phase's test, review, fix and commit steps work in.

It is a detached worktree at ``.planfleet/worktrees/<plan>/_phase-<id>`` of the integration
branch. A step commits there; only after its gate passed does the integration branch move
to the new commit (compare-and-swap), so the branch only ever holds gated work and a
resumed step starts again from it. Work a failed or interrupted step left behind is kept
on a rescue branch before the checkout is reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planfleet import git, paths
from planfleet.errors import RefusedError
from planfleet.ids import check_id
from planfleet.repo import worktrees
from planfleet.repo.scratch import remove_checkout
from planfleet.verify import gates


@dataclass(frozen=True)
class Checkout:
    """The phase checkout and the integration commit it starts from."""

    path: Path
    start: str
    rescued: str | None = None  # a rescue branch holding work found left behind


def checkout_path(repo: Path, plan: str, phase: str) -> Path:
    """Return ``.planfleet/worktrees/<plan>/_phase-<phase>``."""
    return worktrees.plan_slot(repo, plan, f"_phase-{check_id(phase, what='phase id')}")


def head(path: Path) -> str:
    """Return the checkout's HEAD commit."""
    return git.out("rev-parse", "HEAD", cwd=path)


def dirty(path: Path) -> list[str]:
    """Return the checkout's uncommitted paths (caches of tests and tools excluded)."""
    return gates.uncommitted_files(path)


def registered(repo: Path, path: Path) -> bool:
    """Return True if ``path`` is a worktree git knows and that exists."""
    return any(e.path.resolve() == path.resolve() and e.present for e in git.worktree_list(repo))


def open_fresh(repo: Path, plan: str, phase: str, step: str) -> Checkout:
    """Return the checkout at the integration branch's commit, ready for a new step.

    Leftover work (commits not on the branch, uncommitted files) is saved to a rescue
    branch first.
    """
    integ = worktrees.ensure_integration(repo, plan)
    path = checkout_path(repo, plan, phase)
    if not registered(repo, path):
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            remove_checkout(repo, path)
            paths.writable(repo, path)
            git.git("worktree", "add", "--detach", "-q", str(path), integ, cwd=repo)
        return Checkout(path, integ)
    rescued = None
    if dirty(path):
        git.git("add", "-A", cwd=path)
        git.git(
            "commit",
            "-q",
            "--no-verify",
            "-m",
            f"planfleet: left by step {step}",
            cwd=path,
            identity=True,
        )
    current = head(path)
    if current != integ and not git.is_ancestor(current, integ, cwd=repo):
        rescued = worktrees.rescue_branch(plan, f"phase-{phase}")
        git.git("branch", rescued, current, cwd=repo)
    git.git("checkout", "-q", "--detach", "--force", integ, cwd=path)
    git.git("clean", "-q", "-fd", cwd=path)
    return Checkout(path, integ, rescued)


def advance(repo: Path, plan: str, path: Path) -> str:
    """Move the integration branch to the checkout's HEAD; return that commit.

    RefusedError when the branch moved meanwhile or HEAD does not descend from it.
    """
    ref = git.branch_ref(worktrees.integration_branch(plan))
    integ = worktrees.resolve_commit(repo, ref)
    new = head(path)
    if new == integ:
        return new
    if not git.is_ancestor(integ, new, cwd=repo):
        raise RefusedError(
            f"the phase checkout {path} is not based on {worktrees.integration_branch(plan)}",
            reason="integration_moved",
            next_step="run the step again; its work was kept on a rescue branch",
        )
    git.update_ref(ref, new, integ, cwd=repo, message="planfleet: phase step")
    return new


def close(repo: Path, plan: str, phase: str) -> None:
    """Remove the phase checkout (its accepted work is on the integration branch)."""
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        remove_checkout(repo, checkout_path(repo, plan, phase))
