"""Spare task worktrees: a merged task's checkout is parked, then recycled for a new task.

Checking out a new worktree writes every file of the repository; switching a parked one to
another commit rewrites only the files that differ. A spare lives at
``.planfleet/worktrees/<plan>/_spare-<n>`` (task ids never start with ``_``) on a detached
HEAD that the integration branch holds, with a clean status: it never holds work. Files
git ignores (build caches) are kept in a spare and so reach the next task that takes it,
except the ``.worktreeinclude`` copies, which are made anew; untracked files are cleaned.

Moving worktrees and writing branch refs runs under ``worktrees.METADATA_LOCK``. While a
spare is switched to its task, its admin folder holds ``RECYCLE_FILE`` (branch and base),
so that a process that died in between leaves a worktree the next create finishes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from planfleet import fsutil, git
from planfleet.errors import CommandError, RefusedError
from planfleet.repo import refs, worktrees

SPARE_PREFIX = "_spare-"
MAX_SPARES = 4
RECYCLE_FILE = "planfleet-recycle"


def is_spare(path: Path) -> bool:
    """Return True if ``path`` is named like a spare slot (``_spare-<n>``)."""
    return path.name.startswith(SPARE_PREFIX)


def _slot(repo: Path, plan: str, n: int) -> Path:
    """Return the path of the plan's spare slot ``n``."""
    return worktrees.plan_slot(repo, plan, f"{SPARE_PREFIX}{n}")


def _plan_spares(
    repo: Path, plan: str, entries: list[git.WorktreeEntry]
) -> list[git.WorktreeEntry]:
    """Return the registered worktrees in the plan's spare slots, in any state."""
    plan_dir = _slot(repo, plan, 0).parent.resolve()
    return [e for e in entries if is_spare(e.path) and e.path.parent.resolve() == plan_dir]


def spare_for(repo: Path, plan: str, entries: list[git.WorktreeEntry]) -> Path | None:
    """Return a spare of the plan that can be taken (present, detached, unlocked), or None."""
    for entry in _plan_spares(repo, plan, entries):
        if entry.present and entry.branch is None and entry.locked is None and entry.head:
            return entry.path
    return None


def adopt_plan(
    repo: Path, spare: Path, path: Path, branch: str, base: str, head: str | None
) -> git.GitPlan:
    """Return the metadata commands that give ``spare`` to a task: its branch, then the move.

    ``head`` is the commit of an existing task branch (None: the branch is created at base).
    """
    steps = git.GitPlan()
    if head is None:
        ref = git.branch_ref(branch)
        steps.add(
            "update-ref", "-m", "planfleet: new task branch", ref, base, git.ZERO_OID, cwd=repo
        )
    steps.add("worktree", "move", str(spare), str(path), cwd=repo)
    return steps


def prepare(spare: Path, path: Path, branch: str, base: str) -> None:
    """Mark ``spare`` as being switched to ``branch`` and free ``path`` for the move.

    ``git worktree move`` into an existing folder would move it inside that folder; the
    caller has checked that such a folder is empty.
    """
    adm = worktrees.admin_dir(spare)
    try:
        if adm is None:
            raise OSError(f"{spare} has no .git file")
        fsutil.atomic_write(adm / RECYCLE_FILE, f"{branch}\n{base}\n", fsync_dir=False)
        if path.is_dir():
            path.rmdir()
    except OSError as exc:
        raise RefusedError(
            f"could not take the spare worktree {spare} for {path}: {exc}",
            reason="recycle_failed",
        ) from exc


def pending(path: Path) -> tuple[str, str] | None:
    """Return (branch, base) of a recycle of ``path`` that was not finished, or None."""
    adm = worktrees.admin_dir(path)
    try:
        lines = (adm / RECYCLE_FILE).read_text(encoding="utf-8").split() if adm else []
    except OSError:
        return None
    return (lines[0], lines[1]) if len(lines) == 2 else None


def switch_plan(path: Path, branch: str, includes: Sequence[str] = ()) -> git.GitPlan:
    """Return the commands that switch a taken spare at ``path`` to ``branch`` (already made).

    Untracked files go (and the ``.worktreeinclude`` copies, to be copied anew). The spare's
    index is valid, so ``read-tree --reset`` (as ``git reset --hard``) rewrites only the
    files that differ from the branch's tree. All plumbing: no hook runs, as for a new
    worktree.
    """
    ref = git.branch_ref(branch)
    steps = git.GitPlan()
    steps.add("clean", "-fdq", cwd=path)
    if includes:
        steps.add("--literal-pathspecs", "clean", "-fdqX", "--", *includes, cwd=path)
    steps.add("read-tree", "-u", "--reset", ref, cwd=path)
    steps.add("symbolic-ref", "-m", "planfleet: recycled worktree", "HEAD", ref, cwd=path)
    return steps


def finish(path: Path) -> None:
    """Drop the recycle mark of ``path``: its switch is complete."""
    adm = worktrees.admin_dir(path)
    if adm is not None:
        (adm / RECYCLE_FILE).unlink(missing_ok=True)


def _free_slot(repo: Path, plan: str, entries: list[git.WorktreeEntry], keep: int) -> Path | None:
    """Return the first spare slot neither registered nor on disk, within ``keep``; or None."""
    taken = {e.path.resolve() for e in _plan_spares(repo, plan, entries)}
    for n in range(keep):
        slot = _slot(repo, plan, n)
        if slot.resolve() not in taken and not slot.exists():
            return slot
    return None


def park(
    repo: Path, plan: str, task: str, *, keep: int = MAX_SPARES, merged: str | None = None
) -> Path | None:
    """Park a merged task's clean worktree as a spare; return its new path.

    The task branch is deleted. None when it could not be parked (missing, locked, not on
    its branch, uncommitted changes, commits the integration branch lacks, a git failure):
    the caller then falls back to ``guards.remove``. With ``keep`` spares already, the
    worktree and branch are removed instead (None too).

    ``merged``: the task branch's commit, which the caller has just merged. Then git's list
    of worktrees and the ancestry are not asked for again: one ``git status`` says that the
    worktree is clean and on its branch at that commit.
    """
    repo = repo.resolve()
    path = worktrees.task_worktree(repo, plan, task)
    branch = worktrees.task_branch(plan, task)
    if not path.is_dir():
        return None
    if merged is not None:
        return _park_merged(repo, plan, path, branch, merged, keep)
    integ = git.branch_ref(worktrees.integration_branch(plan))
    try:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            entries = git.worktree_list(repo)
            entry = next((e for e in entries if e.path.resolve() == path.resolve()), None)
            head = entry.head if entry is not None else None
            if (
                entry is None
                or head is None
                or not entry.present
                or entry.locked is not None
                or entry.branch != branch
                or git.status_porcelain(path)
                or not git.is_ancestor(head, integ, cwd=repo)
            ):
                return None
            slot = _free_slot(repo, plan, entries, keep)
            steps = git.GitPlan()
            if slot is None:  # plain remove: git refuses if anything but ignored files appeared
                steps.add("worktree", "remove", str(path), cwd=repo)
            else:  # detach first: the branch can then go, and the spare never holds one
                steps.add(
                    "update-ref", "--no-deref", "-m", "planfleet: park", "HEAD", head, cwd=path
                )
            steps.add("update-ref", "-d", git.branch_ref(branch), head, cwd=repo)
            if slot is not None:
                steps.add("worktree", "move", str(path), str(slot), cwd=repo)
            steps.run()
    except CommandError:
        return None
    return slot


def _park_merged(
    repo: Path, plan: str, path: Path, branch: str, head: str, keep: int
) -> Path | None:
    """:func:`park` for a worktree whose branch tip ``head`` was just merged (4 git calls)."""
    try:
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            if _locked(path) or refs.branch_status(path) != (branch, head, True):
                return None  # locked, not on its branch at what was merged, or not clean
            slot = next((s for n in range(keep) if not (s := _slot(repo, plan, n)).exists()), None)
            if slot is None:
                git.git("worktree", "remove", str(path), cwd=repo)
                git.git("update-ref", "-d", git.branch_ref(branch), head, cwd=repo)
                return None
            # Detach first (git refuses HEAD and the branch it names in one transaction),
            # then drop the branch if it still points at what was merged.
            git.git("update-ref", "--no-deref", "-m", "planfleet: park", "HEAD", head, cwd=path)
            git.git("update-ref", "-d", git.branch_ref(branch), head, cwd=repo)
            move = ("worktree", "move", str(path), str(slot))
            if not git.git(*move, cwd=repo, check=False).ok:
                # e.g. a spare folder deleted by hand is still registered: forget it, retry
                git.git("worktree", "prune", cwd=repo)
                git.git(*move, cwd=repo)
    except CommandError:
        return None
    return slot


def _locked(path: Path) -> bool:
    """Return True if the worktree at ``path`` is locked (its admin folder's ``locked``)."""
    adm = worktrees.admin_dir(path)
    return adm is None or (adm / "locked").exists()


def drain(repo: Path, plan: str) -> list[Path]:
    """Remove every spare of the plan; return the removed paths.

    ``--force``: a spare holds no work (ignored files and untracked junk go with it).
    RefusedError naming the spares git would not remove (after removing the others).
    """
    repo = repo.resolve()
    removed: list[Path] = []
    failed: list[str] = []
    with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
        spares = _plan_spares(repo, plan, git.worktree_list(repo))
        for entry in spares:
            if not entry.present:
                continue
            try:
                git.git("worktree", "remove", "--force", str(entry.path), cwd=repo)
                removed.append(entry.path)
            except CommandError as exc:
                failed.append(f"{entry.path}: {exc.stderr.strip() or exc}")
        if any(not e.present for e in spares):
            git.git("worktree", "prune", cwd=repo)
    if failed:
        raise RefusedError(
            "could not remove spare worktree(s): " + "; ".join(failed),
            reason="spare_not_removed",
            next_step="`git worktree unlock` them, then run this again",
        )
    return removed


def set_aside(repo: Path, plan: str, task: str) -> str | None:
    """Save, then remove, a task folder that is no longer a git worktree.

    (Its `.git` link was deleted, say.) Its files are committed with a temporary index on
    top of the task branch (or the integration branch) and the commit is kept on a rescue
    branch; then the folder goes, so the task can start from a fresh worktree. Return the
    rescue branch, or None when the folder held nothing that was not already committed.
    """
    path = worktrees.task_worktree(repo, plan, task)
    if not path.exists():
        return None
    refs = (worktrees.task_branch(plan, task), worktrees.integration_branch(plan))
    head = next(
        (c for c in (git.rev_parse(git.branch_ref(r), cwd=repo) for r in refs) if c), None
    ) or worktrees.resolve_commit(repo, "HEAD")
    saved = None
    with tempfile.TemporaryDirectory(prefix="planfleet-aside-") as tmp:
        env = {
            "GIT_DIR": str(git.git_dir(repo)),
            "GIT_WORK_TREE": str(path),
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
        }
        git.git("read-tree", head, cwd=repo, env=env)
        git.git("add", "-A", cwd=repo, env=env)
        tree = git.git("write-tree", cwd=repo, env=env).stdout.strip()
    if tree != git.out("rev-parse", f"{head}^{{tree}}", cwd=repo):
        commit = git.git(
            "commit-tree",
            tree,
            "-p",
            head,
            "-m",
            f"planfleet: files of {task} set aside",
            cwd=repo,
            identity=True,
        ).stdout.strip()
        saved = worktrees.rescue_branch(plan, task)
        git.git("update-ref", git.branch_ref(saved), commit, git.ZERO_OID, cwd=repo)
    shutil.rmtree(path)
    return saved
