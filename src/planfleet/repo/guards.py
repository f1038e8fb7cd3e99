"""Guards before destructive git operations: a clean checkout, and work rescued, not lost.

A task worktree is never removed while it holds uncommitted changes or commits that the
integration branch lacks: such work is first saved on ``planfleet/<plan>/rescue/<task>-<UTC>``.
Uncommitted files are committed through a temporary index, so neither the worktree's own
index nor any checkout changes while the rescue commit is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git, paths
from planfleet.errors import RefusedError
from planfleet.repo import worktrees

SHOWN_FILES = 20


def require_clean(repo: Path, *, allow_dirty: bool = False, untracked: bool = True) -> list[str]:
    """Return the uncommitted paths of ``repo``; RefusedError naming them unless allowed."""
    # .planfleet/ is ours: another process may have created it a moment before excluding it
    own = paths.DIR_NAME + "/"
    files = [f for f in git.status_porcelain(repo, untracked=untracked) if not f.startswith(own)]
    if files and not allow_dirty:
        shown = ", ".join(files[:SHOWN_FILES])
        more = f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else ""
        raise RefusedError(
            f"{repo} has uncommitted changes: {shown}{more}",
            reason="dirty_checkout",
            next_step="commit or stash them (worktrees start from commits, so they would not "
            "be seen), or pass --allow-dirty",
            details={"files": files},
        )
    return files


@dataclass
class Rescue:
    """Work found in a task's worktree and the branch it was saved on (None: nothing to save)."""

    plan: str
    task: str
    branch: str | None = None
    commit: str | None = None
    uncommitted: list[str] = field(default_factory=list)
    unmerged_commits: int = 0
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        """Return one sentence saying what was saved where."""
        if not self.branch:
            return f"{self.task}: no uncommitted or unmerged work"
        parts = []
        if self.uncommitted:
            parts.append(f"{len(self.uncommitted)} uncommitted file(s)")
        if self.unmerged_commits:
            parts.append(f"{self.unmerged_commits} unmerged commit(s)")
        return f"{self.task}: saved {' and '.join(parts)} on branch {self.branch}"


def _live(repo: Path, path: Path) -> git.WorktreeEntry | None:
    """Return the registered, present worktree at ``path``, or None."""
    for entry in git.worktree_list(repo):
        if entry.path.resolve() == path.resolve() and entry.present:
            return entry
    return None


def _unmerged(repo: Path, plan: str, task: str, head: str) -> int:
    """Return how many commits ``head`` has that the integration branch lacks.

    Without an integration branch: the commits no other local branch holds.
    """
    target = git.rev_parse(git.branch_ref(worktrees.integration_branch(plan)), cwd=repo)
    if target:
        spec = [head, "--not", target]
    else:  # --exclude matches the short names that --branches lists
        spec = [head, "--not", f"--exclude={worktrees.task_branch(plan, task)}", "--branches"]
    return int(git.out("rev-list", "--count", *spec, cwd=repo) or 0)


def rescue(repo: Path, plan: str, task: str, *, dry_run: bool = False) -> Rescue:
    """Save a task's uncommitted and unmerged work on a new rescue branch; report it."""
    repo = repo.resolve()
    path = worktrees.task_worktree(repo, plan, task)
    result = Rescue(plan, task)
    entry = _live(repo, path)
    if entry is not None:
        head = entry.head
        result.uncommitted = git.status_porcelain(path)
    else:
        head = git.rev_parse(git.branch_ref(worktrees.task_branch(plan, task)), cwd=repo)
    if head is None:
        return result
    result.unmerged_commits = _unmerged(repo, plan, task, head)
    if not result.uncommitted and not result.unmerged_commits:
        return result
    name = worktrees.rescue_branch(plan, task)
    suffix = 2
    while git.rev_parse(git.branch_ref(name), cwd=repo):
        name = f"{worktrees.rescue_branch(plan, task)}-{suffix}"
        suffix += 1
    result.branch = name
    commit = _commit_uncommitted(path, head, result, dry_run) if result.uncommitted else head
    step = git.Step(
        ("update-ref", "-m", "planfleet: rescue", git.branch_ref(name), commit, git.ZERO_OID), repo
    )
    result.commands.append(step.render())
    if not dry_run:
        step.run()
        result.commit = commit
    return result


def _commit_uncommitted(path: Path, head: str, result: Rescue, dry_run: bool) -> str:
    """Commit every uncommitted file of ``path`` on top of ``head``; return the commit id."""
    message = f"planfleet: rescue of {result.plan}/{result.task} (uncommitted work)"
    steps = _snapshot_steps(path, head, message)
    result.commands.extend(s.render() for s in steps)
    return "<commit>" if dry_run else snapshot(path, head, message)


def _snapshot_steps(path: Path, head: str, message: str) -> list[git.Step]:
    adm = worktrees.admin_dir(path)
    if adm is None:
        raise RefusedError(f"{path} is not a git worktree", reason="not_a_worktree")
    env = {"GIT_INDEX_FILE": str(adm / "planfleet-rescue-index")}
    return [
        git.Step(("add", "-A"), path, env),
        git.Step(("write-tree",), path, env),
        git.Step(("commit-tree", "<tree>", "-p", head, "-m", message), path, identity=True),
    ]


def snapshot(path: Path, head: str, message: str) -> str:
    """Commit every uncommitted file of worktree ``path`` on top of ``head``; return its id.

    A copy of the worktree's index is used, so its own index and files stay as they were.
    """
    add, write, commit = _snapshot_steps(path, head, message)
    tmp = Path(add.env["GIT_INDEX_FILE"])
    index = tmp.with_name("index")
    try:
        if index.exists():
            shutil.copyfile(index, tmp)
        add.run()
        tree = write.run().stdout.strip()
        commit_args = tuple(tree if a == "<tree>" else a for a in commit.args)
        return git.Step(commit_args, path, identity=True).run().stdout.strip()
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Removal:
    """What removing a task's worktree did (or would do)."""

    plan: str
    task: str
    path: Path
    rescue: Rescue
    removed_worktree: bool = False
    deleted_branch: bool = False
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "rescue"}
        out["path"] = str(self.path)
        out["rescue"] = self.rescue.to_json()
        return out


def _refuse_if_held(
    repo: Path, entry: git.WorktreeEntry | None, path: Path, steps: git.GitPlan
) -> None:
    """Unlock a worktree whose planfleet owner is gone; RefusedError if someone holds it."""
    if entry is None or entry.locked is None:
        return
    if worktrees.lock_owner_alive(entry.locked) is False:
        steps.add("worktree", "unlock", str(path), cwd=repo)
        return
    raise RefusedError(
        f"{path} is locked: {entry.locked or 'no reason given'}",
        reason="worktree_locked",
        next_step="stop the agent working there first; `git worktree unlock` if it is gone",
    )


def remove(
    repo: Path, plan: str, task: str, *, keep_branch: bool = False, dry_run: bool = False
) -> Removal:
    """Remove a task's worktree (and branch), saving any work on a rescue branch first."""
    repo = repo.resolve()
    path = worktrees.task_worktree(repo, plan, task)
    branch = worktrees.task_branch(plan, task)
    entries = git.worktree_list(repo)
    entry = next((e for e in entries if e.path.resolve() == path.resolve()), None)
    steps = git.GitPlan()
    _refuse_if_held(repo, entry, path, steps)
    saved = rescue(repo, plan, task, dry_run=dry_run)
    result = Removal(plan, task, path, saved)
    if entry is not None and entry.present:
        # --force: its uncommitted files were just saved; ignored files (builds) may go.
        steps.add("worktree", "remove", "--force", str(path), cwd=repo)
        result.removed_worktree = True
    elif entry is not None:
        steps.add("worktree", "prune", cwd=repo)
    head = git.rev_parse(git.branch_ref(branch), cwd=repo)
    # The rescue covers what the worktree had checked out; a branch it did not have checked
    # out (a worktree switched away) is deleted only when nothing on it would be lost.
    saved_head = entry.head if entry is not None and entry.present else head
    covered = head is not None and (
        head == saved_head
        or _unmerged(repo, plan, task, head) == 0
        or (saved_head is not None and git.is_ancestor(head, saved_head, cwd=repo))
    )
    if head and covered and not keep_branch:
        steps.add("update-ref", "-d", git.branch_ref(branch), head, cwd=repo)
        result.deleted_branch = True
    result.commands = saved.commands + steps.render()
    if not dry_run:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            steps.run()
    return result


@dataclass
class Health:
    """One worktree git knows about, as planfleet sees it."""

    path: Path
    state: str  # ok | missing | locked | locked_stale | wrong_branch | not_checked_out | foreign
    plan: str | None = None
    task: str | None = None
    branch: str | None = None
    head: str | None = None
    base: str | None = None
    locked: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _owner(repo: Path, path: Path) -> tuple[str, str] | None:
    """Return (plan, task) for a path under the worktree root, else None."""
    root = paths.worktrees_root(repo)
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else None


def inspect(repo: Path, *, plan: str | None = None, foreign: bool = False) -> list[Health]:
    """Return the health of planfleet's worktrees (and the others when ``foreign``)."""
    repo = repo.resolve()
    out = []
    for entry in git.worktree_list(repo)[1:]:  # the first entry is the main checkout
        owner = _owner(repo, entry.path)
        if (owner is None and not foreign) or (plan and (owner is None or owner[0] != plan)):
            continue
        h = Health(entry.path, "ok", branch=entry.branch, head=entry.head, locked=entry.locked)
        if owner is not None:
            h.plan, h.task = owner
            h.base = worktrees.recorded_base(entry.path)
        alive = worktrees.lock_owner_alive(entry.locked)
        adm = worktrees.admin_dir(entry.path)
        if not entry.present:
            h.state = "missing"
        elif entry.locked is not None:
            h.state = "locked_stale" if alive is False else "locked"
        elif owner is None:
            h.state = "foreign"
        elif not owner[1].startswith("_") and entry.branch != worktrees.task_branch(*owner):
            # ("_..." folders are ours, not tasks: the merge worktree, spares, scratch checkouts)
            h.state = "wrong_branch"
        elif adm is None or not (adm / "index").exists():
            h.state = "not_checked_out"
        out.append(h)
    return out


@dataclass
class PruneReport:
    """What ``prune`` cleaned (or would clean) and what it left alone, and why."""

    pruned: list[str] = field(default_factory=list)
    unlocked: list[str] = field(default_factory=list)
    index_locks: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prune(
    repo: Path, *, dry_run: bool = False, lock_age_s: float = worktrees.STALE_INDEX_LOCK_S
) -> PruneReport:
    """Drop worktree records whose folder is gone and stale locks; never a healthy worktree.

    A locked record whose folder is gone is unlocked only when it lay inside the repository
    (a lock on a path elsewhere may guard a removable drive that is not mounted).
    """
    repo = repo.resolve()
    report = PruneReport()
    steps = git.GitPlan()
    for entry in git.worktree_list(repo)[1:]:
        alive = worktrees.lock_owner_alive(entry.locked)
        if not entry.present:
            inside = entry.path.resolve().is_relative_to(repo)
            if entry.locked is not None and not inside and alive is not False:
                report.kept.append({"path": str(entry.path), "why": "locked, outside the repo"})
                continue
            if entry.locked is not None:
                steps.add("worktree", "unlock", str(entry.path), cwd=repo)
                report.unlocked.append(str(entry.path))
            report.pruned.append(str(entry.path))
        elif entry.locked is not None and alive is False:
            steps.add("worktree", "unlock", str(entry.path), cwd=repo)
            report.unlocked.append(str(entry.path))
        elif entry.locked is not None:
            report.kept.append({"path": str(entry.path), "why": f"locked: {entry.locked}"})
        elif _owner(repo, entry.path) and _stale_index_lock(entry.path, lock_age_s, dry_run):
            report.index_locks.append(str(entry.path))
    if report.pruned:
        steps.add("worktree", "prune", "--verbose", cwd=repo)
    report.commands = steps.render()
    if not dry_run and steps.steps:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            steps.run()
    return report


def _stale_index_lock(path: Path, age_s: float, dry_run: bool) -> bool:
    """Return True if ``path`` had (dry run: has) an index.lock old enough to remove."""
    if not dry_run:
        return worktrees.clear_stale_index_lock(path, min_age_s=age_s)
    adm = worktrees.admin_dir(path)
    return adm is not None and (adm / "index.lock").exists()
