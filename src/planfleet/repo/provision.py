"""Making task worktrees: creation (metadata serialized, checkouts parallel), reuse, recycling.

Git's own metadata writes (``git worktree add``, branch refs, ``.git/worktrees/``) race when
several processes create worktrees at once, so that step runs under
``worktrees.METADATA_LOCK``. The expensive part, writing the files of each worktree, touches
only that worktree's index and runs in parallel outside the lock. A new task takes a parked
spare of its plan when there is one (see ``planfleet.repo.pool``): only the files that
differ are then rewritten.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, git, paths
from planfleet.errors import PlanfleetError, RefusedError
from planfleet.repo import include, pool
from planfleet.repo.worktrees import (
    BASE_FILE,
    METADATA_LOCK,
    admin_dir,
    clear_stale_index_lock,
    ensure_integration,
    integration_branch,
    integration_step,
    lock_owner_alive,
    owner_reason,
    recorded_base,
    repo_lock,
    resolve_commit,
    task_branch,
    task_worktree,
)

_PREPARED: set[Path] = set()  # repositories whose .planfleet/ this process has set up


@dataclass
class Worktree:
    """What happened to one task's worktree (or would happen, for a dry run)."""

    plan: str
    task: str
    path: Path
    branch: str
    base: str | None
    action: str = "planned"  # created | attached | recycled | reused | planned | failed
    commands: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    error: PlanfleetError | None = None
    checkout: bool = False
    spare: Path | None = None  # the parked worktree it takes (action "recycled")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "plan": self.plan,
            "task": self.task,
            "path": str(self.path),
            "branch": self.branch,
            "base": self.base,
            "action": self.action,
            "commands": self.commands,
            "copied": self.copied,
        }
        if self.error:
            out["error"] = self.error.to_json()
        return out


def _branch_heads(repo: Path, plan: str, wts: Sequence[Worktree]) -> dict[str, str]:
    """Return ``{ref: commit}`` of the integration and the tasks' branches that exist."""
    refs = [git.branch_ref(integration_branch(plan)), *(git.branch_ref(w.branch) for w in wts)]
    return git.ref_commits(refs, cwd=repo)  # ids hold no glob characters


def _decide(
    repo: Path,
    wt: Worktree,
    entries: list[git.WorktreeEntry],
    heads: dict[str, str],
    fallback: str | None = None,
) -> git.GitPlan:
    """Fill ``wt.action``/``wt.base`` and return the metadata commands; RefusedError if unsafe.

    ``heads`` (from ``_branch_heads``) gains the integration branch if this creates it.
    """
    steps = git.GitPlan()
    by_path = {e.path.resolve(): e for e in entries}
    entry = by_path.get(wt.path.resolve())
    if entry is not None and entry.present:
        return _reuse(wt, entry, steps)
    if entry is not None:  # registered, but its folder was deleted by hand
        if entry.locked is not None:
            raise RefusedError(
                f"{wt.path} was deleted but git still holds it locked: {entry.locked or '-'}",
                reason="stale_locked",
                next_step="run `planfleet worktree prune`",
            )
        steps.add("worktree", "prune", cwd=repo)
    if wt.path.exists() and any(wt.path.iterdir()):
        raise RefusedError(
            f"{wt.path} exists but is not a git worktree",
            reason="path_occupied",
            next_step="move its files away (they may be someone's work), then retry",
        )
    holder = next((e for e in entries if e.branch == wt.branch and e.present), None)
    if holder is not None:
        raise RefusedError(
            f"branch {wt.branch} is checked out in {holder.path}",
            reason="branch_in_use",
            next_step="remove that worktree first (`planfleet worktree remove`)",
        )
    if wt.base is None:  # the default base: the integration branch, made from HEAD if new
        integ = git.branch_ref(integration_branch(wt.plan))
        wt.base = fallback or heads.get(integ) or ensure_integration(repo, wt.plan)
        heads.setdefault(integ, wt.base)
    head = heads.get(git.branch_ref(wt.branch))
    if head is not None and not git.is_ancestor(wt.base, head, cwd=repo):
        raise RefusedError(
            f"branch {wt.branch} is left from an earlier attempt and lacks {wt.base[:12]}",
            reason="stale_branch",
            next_step=f"`planfleet worktree remove {wt.plan} {wt.task}` (saves its work first)",
        )
    spare = pool.spare_for(repo, wt.plan, entries)
    if spare is not None:
        wt.spare, wt.action = spare, "recycled"
        steps.extend(pool.adopt_plan(repo, spare, wt.path, wt.branch, wt.base, head))
    elif head is None:
        steps.add(
            "worktree", "add", "--no-checkout", "-b", wt.branch, str(wt.path), wt.base, cwd=repo
        )
        wt.action = "created"
    else:
        steps.add("worktree", "add", "--no-checkout", str(wt.path), wt.branch, cwd=repo)
        wt.action = "attached"
    wt.checkout = True
    return steps


def _reuse(wt: Worktree, entry: git.WorktreeEntry, steps: git.GitPlan) -> git.GitPlan:
    """Accept an existing worktree if it is ours, on its branch and on the asked base."""
    if entry.locked is not None:
        if lock_owner_alive(entry.locked) is False:  # a planfleet process that is gone
            steps.add("worktree", "unlock", str(wt.path), cwd=wt.path)
        elif entry.locked != owner_reason():
            raise RefusedError(
                f"{wt.path} is locked by someone else: {entry.locked or 'no reason given'}",
                reason="worktree_locked",
                next_step="wait for that agent to finish, or `git worktree unlock` if it is gone",
            )
    # a spare moved here by a process that died before switching it to the branch
    pending = pool.pending(wt.path) if entry.branch is None else None
    if entry.branch != wt.branch and (pending is None or pending[0] != wt.branch):
        raise RefusedError(
            f"{wt.path} is on {entry.branch or 'a detached HEAD'}, not {wt.branch}",
            reason="wrong_branch",
            next_step=f"`planfleet worktree remove {wt.plan} {wt.task}`, then create it again",
        )
    base = pending[1] if pending else recorded_base(wt.path)
    if wt.base and base and wt.base != base:
        raise RefusedError(
            f"{wt.path} was created from {base[:12]}, not {wt.base[:12]}",
            reason="base_mismatch",
            next_step=f"`planfleet worktree remove {wt.plan} {wt.task}`, then create it again",
        )
    wt.base = base or wt.base
    if pending:
        wt.action, wt.checkout = "recycled", True
        return steps
    adm = admin_dir(wt.path)
    wt.checkout = adm is None or not (adm / "index").exists()  # a crash before its checkout
    wt.action = "reused"
    return steps


def _checkout(wt: Worktree, sources: list[str], repo: Path) -> None:
    """Write the worktree's files (parallel-safe: only its own index) and copy includes."""
    if wt.checkout:
        clear_stale_index_lock(wt.path)
        checkout_plan(wt, sources).run()
        if wt.action == "recycled":
            pool.finish(wt.path)
        wt.copied = include.copy_into(repo, wt.path, sources)


def checkout_plan(wt: Worktree, sources: Sequence[str] = ()) -> git.GitPlan:
    """Return the checkout a new worktree runs: plumbing that writes only its own index.

    A recycled spare is switched instead; ``sources`` (``.worktreeinclude`` copies) are
    removed from it first, so that they are copied anew.
    """
    if wt.action == "recycled":
        return pool.switch_plan(wt.path, wt.branch, sources)
    steps = git.GitPlan()
    steps.add("read-tree", "-u", "--reset", "HEAD", cwd=wt.path)
    return steps


def create_worktrees(
    repo: Path,
    plan: str,
    tasks: Sequence[str],
    *,
    base: str | None = None,
    workers: int | None = None,
    dry_run: bool = False,
) -> list[Worktree]:
    """Create (or reuse) one worktree per task; failures are reported per task in ``error``.

    ``base`` None: new worktrees start at the integration branch (created from HEAD if
    missing) and existing ones are accepted on whatever base they recorded.
    """
    repo = repo.resolve()
    wts = [  # a task named twice gets one worktree (two checkouts would race on its index)
        Worktree(plan, t, task_worktree(repo, plan, t), task_branch(plan, t), None)
        for t in dict.fromkeys(tasks)
    ]
    if dry_run:
        return _dry_run(repo, plan, wts, base)
    if repo not in _PREPARED:  # once per process: it asks git where info/exclude is
        paths.ensure_planfleet_dir(repo)
        _PREPARED.add(repo)
    sources = include.sources(repo)
    futures: list[tuple[Future[None], Worktree]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 2)) as executor:
        with repo_lock(repo, METADATA_LOCK):
            start = resolve_commit(repo, base) if base else None
            entries = git.worktree_list(repo)
            heads = _branch_heads(repo, plan, wts)
            for wt in wts:
                wt.base = start
                if _register(repo, wt, entries, heads, sources):
                    # each checkout starts as soon as its worktree is registered
                    futures.append((executor.submit(_checkout, wt, sources, repo), wt))
        for future, wt in futures:
            try:
                future.result()
            except PlanfleetError as exc:
                wt.action, wt.error = "failed", exc
            except OSError as exc:
                wt.action = "failed"
                wt.error = RefusedError(
                    f"copying files into {wt.path} failed: {exc}", reason="include_failed"
                )
    return wts


def _register(
    repo: Path,
    wt: Worktree,
    entries: list[git.WorktreeEntry],
    heads: dict[str, str],
    sources: Sequence[str],
) -> bool:
    """Run the metadata step for ``wt`` (under the lock); return True if it needs a checkout."""
    try:
        paths.writable(repo, wt.path)  # git would create the folders through any link
        steps = _decide(repo, wt, entries, heads)
        if wt.spare is not None and wt.base is not None:
            pool.prepare(wt.spare, wt.path, wt.branch, wt.base)
        steps.run()
    except PlanfleetError as exc:
        wt.action, wt.error, wt.checkout = "failed", exc, False
        return False
    wt.commands = steps.render() + (checkout_plan(wt, sources).render() if wt.checkout else [])
    adm = admin_dir(wt.path)
    if wt.base and adm and wt.action != "reused":
        fsutil.atomic_write(adm / BASE_FILE, wt.base + "\n", fsync_dir=False)
    _record(entries, wt)
    return wt.checkout


def _record(entries: list[git.WorktreeEntry], wt: Worktree) -> None:
    """Update ``entries`` to what `git worktree list` now says, without asking it again."""
    if wt.spare is not None:
        entries[:] = [e for e in entries if e.path != wt.spare]
    if wt.action in ("created", "attached") or wt.spare is not None:
        entries.append(git.WorktreeEntry(wt.path, branch=wt.branch))


def _dry_run(repo: Path, plan: str, wts: list[Worktree], base: str | None) -> list[Worktree]:
    """Fill in each worktree's commands without changing anything."""
    entries = git.worktree_list(repo)
    heads = _branch_heads(repo, plan, wts)
    integ = heads.get(git.branch_ref(integration_branch(plan)))
    start = resolve_commit(repo, base) if base else integ or resolve_commit(repo, "HEAD")
    pre = [] if base or integ else [integration_step(repo, plan, start).render()]
    sources = include.sources(repo)
    for wt in wts:
        wt.base = start if base else None
        try:
            steps = _decide(repo, wt, entries, heads, fallback=start)
            if wt.checkout:
                steps.extend(checkout_plan(wt, sources))
            wt.commands = pre + steps.render()
            _record(entries, wt)
            if wt.action != "reused":
                wt.action = "planned"
        except PlanfleetError as exc:
            wt.action, wt.error = "failed", exc
        pre = []
    return wts


def create_worktree(repo: Path, plan: str, task: str, *, base: str | None = None) -> Worktree:
    """Create or reuse one task's worktree; raise its error instead of reporting it."""
    (wt,) = create_worktrees(repo, plan, [task], base=base, workers=1)
    if wt.error is not None:
        raise wt.error
    return wt
