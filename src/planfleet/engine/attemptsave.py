"""A failed attempt's work kept on ``planfleet/<plan>/attempts/<task>/<n>``; retries start clean.

A retry must not build on what the failed attempt committed (the merge would take both), so
before it runs the task branch goes back to its base. The failed attempt's commits, and its
uncommitted files as one more commit on top, stay on an attempt branch: named in the retry's
feedback, listed by ``planfleet logs``, and deleted by ``planfleet clean``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planfleet import git
from planfleet.ids import check_id
from planfleet.repo import guards
from planfleet.verify.gates import uncommitted_files


@dataclass(frozen=True)
class Kept:
    """One attempt branch: which attempt, its name and commit."""

    attempt: int
    branch: str
    commit: str

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def attempts_prefix(plan: str, task: str | None = None) -> str:
    """Return ``planfleet/<plan>/attempts/`` (and ``<task>/`` when given), ids checked."""
    prefix = f"planfleet/{check_id(plan, what='plan name')}/attempts/"
    return prefix + (f"{check_id(task, what='task id')}/" if task is not None else "")


def attempt_branch(plan: str, task: str, attempt: int) -> str:
    """Return ``planfleet/<plan>/attempts/<task>/<n>``."""
    return f"{attempts_prefix(plan, task)}{int(attempt)}"


def keep(repo: Path, plan: str, task: str, attempt: int, worktree: Path, base: str) -> Kept | None:
    """Save what attempt ``attempt`` left in ``worktree`` beyond ``base``; None if nothing.

    Idempotent: a branch of this attempt that already holds the same files is reused, and
    one that holds other files (an earlier life of the task) is never overwritten.
    """
    head = git.rev_parse("HEAD", cwd=worktree)
    if head is None:
        return None
    dirty = uncommitted_files(worktree)
    if not dirty and (head == base or git.count_commits(base, head, cwd=repo) == 0):
        return None
    commit = head
    if dirty:
        message = f"planfleet: attempt {attempt} of {plan}/{task} (uncommitted work)"
        commit = guards.snapshot(worktree, head, message)
    tree = git.out("rev-parse", f"{commit}^{{tree}}", cwd=repo)
    first = name = attempt_branch(plan, task, attempt)
    suffix = 2
    while (existing := git.rev_parse(git.branch_ref(name), cwd=repo)) is not None:
        if git.out("rev-parse", f"{existing}^{{tree}}", cwd=repo) == tree:
            return Kept(attempt, name, existing)
        name = f"{first}-{suffix}"
        suffix += 1
    git.update_ref(
        git.branch_ref(name), commit, git.ZERO_OID, cwd=repo, message="planfleet: keep attempt"
    )
    return Kept(attempt, name, commit)


def start_clean(worktree: Path, base: str) -> None:
    """Put the worktree's branch back at ``base`` with no uncommitted files (ignored ones stay)."""
    git.git("reset", "--hard", "-q", base, cwd=worktree)
    git.git("clean", "-f", "-d", "-q", cwd=worktree)


def kept(repo: Path, plan: str, task: str | None = None) -> list[Kept]:
    """Return the plan's attempt branches (of one task when given), by task and attempt."""
    found = []
    for name, commit in git.branches_under(attempts_prefix(plan, task), cwd=repo).items():
        number = name.rsplit("/", 1)[-1].split("-", 1)[0]
        found.append(Kept(int(number) if number.isdigit() else 0, name, commit))
    return sorted(found, key=lambda k: (k.branch.rsplit("/", 2)[-2], k.attempt, k.branch))
