"""``land``: bring a finished integration branch into the user's branch, only when asked.

A checkout holding the target branch must be clean, and it only ever fast-forwards: when the
target moved on, the merge commit is made first with ``merge-tree`` (off any checkout), and a
conflict refuses without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.errors import CommandError, InputError, RefusedError
from planfleet.repo import guards, worktrees
from planfleet.repo.merge import MergeResult, integration_holder, write_tree


@dataclass
class Landing:
    """What ``land`` did (or would do) to the target branch."""

    plan: str
    target: str
    mode: str  # fast-forward | merge | up-to-date | create
    before: str | None
    after: str | None
    checkout: str | None = None  # the worktree where the target is checked out, if any
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def land(repo: Path, plan: str, *, into: str | None = None, dry_run: bool = False) -> Landing:
    """Bring the integration branch into ``into`` (default: the checked-out branch).

    A checkout holding the target must be clean; it then only ever fast-forwards (a needed
    merge commit is made first with merge-tree). RefusedError on conflicts.
    """
    repo = repo.resolve()
    integ_branch = worktrees.integration_branch(plan)
    integ = git.rev_parse(git.branch_ref(integ_branch), cwd=repo)
    if integ is None:
        raise RefusedError(
            f"{integ_branch} does not exist",
            reason="no_integration",
            next_step=f"merge tasks first: `planfleet merge {plan} --tasks ...`",
        )
    target = into or git.current_branch(repo)
    if target is None:
        raise RefusedError(
            "HEAD is detached: there is no branch to land into",
            reason="detached_head",
            next_step="pass --into BRANCH",
        )
    problem = git.branch_name_problem(target, cwd=repo)
    if problem:
        raise InputError(
            f"cannot land into {target[:80]!r}: {problem}", field="--into", hint="name a branch"
        )
    if target.startswith(f"planfleet/{plan}/"):
        raise RefusedError(
            f"cannot land into {target!r}: a planfleet branch",
            reason="bad_target",
            next_step="pass --into with your own branch",
        )
    ref = git.branch_ref(target)
    before = git.rev_parse(ref, cwd=repo)
    holder = integration_holder(repo, target)
    res = Landing(plan, target, "fast-forward", before, integ, str(holder.path) if holder else None)
    if before is not None and git.is_ancestor(integ, before, cwd=repo):
        res.mode, res.after = "up-to-date", before
        return res
    new = integ
    if before is None:
        res.mode = "create"
    elif not git.is_ancestor(before, integ, cwd=repo):
        res.mode = "merge"
        new = "<commit>" if dry_run else _land_commit(repo, before, integ, integ_branch, target)
    if holder is not None:
        _require_untouched(holder.path, before, new, dry_run)
        step = git.Step(("merge", "--ff-only", "-q", new), holder.path)
    else:
        step = git.Step(
            ("update-ref", "-m", f"planfleet: land {plan}", ref, new, before or git.ZERO_OID), repo
        )
    res.commands.append(step.render())
    res.after = new
    if not dry_run:
        try:
            step.run()
        except CommandError as exc:  # e.g. a branch "a" exists and the target is "a/b"
            said = (exc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RefusedError(
                f"git could not move {target[:80]!r}: {said[:300]}",
                reason="land_failed",
                next_step="land into another branch (--into), or fix what git reports",
            ) from None
    return res


def _require_untouched(checkout: Path, before: str | None, new: str, dry_run: bool) -> None:
    """Refuse if the checkout has uncommitted changes in files the landing would change.

    Changes elsewhere (for example the checkboxes and logs planfleet renders into plan
    files during a run) are carried along by the fast-forward, as git itself does.
    """
    dirty = guards.require_clean(checkout, untracked=False, allow_dirty=True)
    if not dirty:
        return
    if before is None or (dry_run and new == "<commit>"):
        clash = sorted(dirty)
    else:
        # Without renames: a file renamed away is a change to its old path too.
        changed = {c.path for c in git.diff_changes(before, new, cwd=checkout, renames=False)}
        clash = sorted(set(dirty) & changed)
    if clash:
        raise RefusedError(
            f"{checkout} has uncommitted changes in files the landing changes: "
            + ", ".join(clash[:10]),
            reason="dirty_checkout",
            next_step="commit or stash those files, then land again",
            details={"files": clash},
        )


def _land_commit(repo: Path, before: str, integ: str, integ_branch: str, target: str) -> str:
    """Return a merge commit of ``integ`` into ``before``; RefusedError on conflicts."""
    res = MergeResult("land", integ_branch, "planned")
    tree = write_tree(
        repo,
        git.Step(("merge-tree", "--write-tree", "-z", "--name-only", before, integ), repo),
        res,
    )
    if tree is None:
        raise RefusedError(
            f"{integ_branch} conflicts with {target}: " + ", ".join(c.path for c in res.conflicts),
            reason="land_conflict",
            next_step=f"merge {integ_branch} into {target} yourself and resolve the conflicts",
            details={"conflicts": [c.__dict__ for c in res.conflicts]},
        )
    message = f"Merge {integ_branch} into {target}"
    step = git.Step(
        ("commit-tree", tree, "-p", before, "-p", integ, "-m", message), repo, identity=True
    )
    return step.run().stdout.strip()
