"""Task worktrees: names, safe paths, creation (metadata serialized, checkouts parallel), reuse.

Git's own metadata writes (``git worktree add``, branch refs, ``.git/worktrees/``) race when
several processes create worktrees at once, so that step runs under a file lock of ours.
The expensive part, writing the files of each worktree, touches only that worktree's index
and runs in parallel outside the lock. A new task takes a parked spare of its plan when
there is one (see ``worktree_pool``): only the files that differ are then rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from planfleet import fsutil, git, paths, proc
from planfleet.errors import PlanfleetError, RefusedError
from planfleet.ids import check_id
from planfleet.repo import include
from planfleet.repo import pool as worktree_pool

METADATA_LOCK = "git-metadata.lock"
LOCK_TIMEOUT_S = 120.0
BASE_FILE = "planfleet-base"  # in the worktree's admin folder: removed with the worktree
MERGE_WORKTREE = "_integration"  # task ids never start with "_", so this cannot collide
OWNER_PREFIX = "planfleet pid="
STALE_INDEX_LOCK_S = 600.0
_PREPARED: set[Path] = set()  # repositories whose .planfleet/ this process has set up


def task_branch(plan: str, task: str) -> str:
    """Return ``planfleet/<plan>/tasks/<task>`` after checking both ids."""
    return f"planfleet/{check_id(plan, what='plan name')}/tasks/{check_id(task, what='task id')}"


def integration_branch(plan: str) -> str:
    """Return ``planfleet/<plan>/integration`` after checking the plan name."""
    return f"planfleet/{check_id(plan, what='plan name')}/integration"


def rescue_branch(plan: str, task: str, when: _dt.datetime | None = None) -> str:
    """Return ``planfleet/<plan>/rescue/<task>-<UTC timestamp>``."""
    stamp = (when or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    task = check_id(task, what="task id")
    return f"planfleet/{check_id(plan, what='plan name')}/rescue/{task}-{stamp}"


def _inside_root(repo: Path, path: Path) -> Path:
    """Return ``path`` if it resolves inside the worktree root; RefusedError otherwise."""
    paths.writable(repo, path, create=False)  # no link on the way, none as the folder
    root = paths.worktrees_root(repo)
    if not (fsutil.is_within(root, repo) and fsutil.is_within(path, root)):
        raise RefusedError(
            f"worktree path {path} resolves outside {root}",
            reason="path_outside_root",
            next_step=f"remove the symbolic link that leads out of {root}",
        )
    return path


def task_worktree(repo: Path, plan: str, task: str) -> Path:
    """Return ``.planfleet/worktrees/<plan>/<task>``, checked to stay inside the root."""
    return _inside_root(repo, paths.worktree_path(repo, plan, task))


def plan_slot(repo: Path, plan: str, name: str) -> Path:
    """Return ``.planfleet/worktrees/<plan>/<name>`` for a name of ours (``_...``), checked."""
    return _inside_root(repo, paths.worktrees_root(repo) / check_id(plan, what="plan name") / name)


def merge_worktree(repo: Path, plan: str) -> Path:
    """Return the plan's merge worktree ``.planfleet/worktrees/<plan>/_integration``."""
    return plan_slot(repo, plan, MERGE_WORKTREE)


@contextlib.contextmanager
def repo_lock(repo: Path, name: str, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``.planfleet/locks/<name>`` (threads and processes); RefusedError on timeout."""
    path = paths.lock_dir(repo) / name
    lock = filelock.FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RefusedError(
            f"could not take {path} within {timeout:g} s",
            reason="lock_timeout",
            next_step="another planfleet process is working on this repository; wait for it",
        ) from None
    try:
        yield
    finally:
        lock.release()


def admin_dir(worktree: Path) -> Path | None:
    """Return the worktree's folder under ``.git/worktrees/``, from its ``.git`` file."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    target = Path(text[len("gitdir: ") :].strip())
    return target if target.is_absolute() else (worktree / target).resolve()


def recorded_base(worktree: Path) -> str | None:
    """Return the base commit recorded when the worktree was created, or None."""
    adm = admin_dir(worktree)
    try:
        text = (adm / BASE_FILE).read_text(encoding="utf-8").strip() if adm else ""
    except OSError:
        text = ""
    return text or None


def owner_reason(pid: int | None = None) -> str:
    """Return the ``git worktree lock`` reason that marks a worktree as held by ``pid``."""
    pid = pid or os.getpid()
    return f"{OWNER_PREFIX}{pid} start={proc.process_start_time(pid) or '?'}"


def lock_owner_alive(reason: str | None) -> bool | None:
    """Return whether a planfleet lock's owner runs; None for a lock that is not ours."""
    if not reason or not reason.startswith(OWNER_PREFIX):
        return None
    pid_text, _, start = reason[len(OWNER_PREFIX) :].partition(" start=")
    if not pid_text.isdigit():
        return None
    pid = int(pid_text)
    return proc.pid_alive(pid) and start in ("?", proc.process_start_time(pid))


def clear_stale_index_lock(worktree: Path, *, min_age_s: float = STALE_INDEX_LOCK_S) -> bool:
    """Remove a worktree's ``index.lock`` left by a dead git; return True if removed.

    Only when the lock is older than ``min_age_s`` and no git process works in the worktree.
    """
    adm = admin_dir(worktree)
    lock = adm / "index.lock" if adm else None
    if lock is None:
        return False
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < min_age_s or proc.processes_in(worktree, name_prefix="git") != []:
        return False
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    return True


def ensure_integration(repo: Path, plan: str, base: str | None = None) -> str:
    """Return the integration branch's commit, creating it from ``base`` (default HEAD).

    The branch is written with ``update-ref``: the user's checkout is never touched.
    """
    current = git.rev_parse(git.branch_ref(integration_branch(plan)), cwd=repo)
    if current:
        return current
    start = resolve_commit(repo, base or "HEAD")
    step = integration_step(repo, plan, start)
    step.run()
    return start


def integration_step(repo: Path, plan: str, start: str) -> git.Step:
    """Return the command that creates the integration branch at ``start`` (never over one)."""
    ref = git.branch_ref(integration_branch(plan))
    return git.Step(
        ("update-ref", "-m", "planfleet: new integration branch", ref, start, git.ZERO_OID), repo
    )


def resolve_commit(repo: Path, rev: str) -> str:
    """Return the commit id ``rev`` names; RefusedError when it names none."""
    if rev.startswith("-"):
        raise RefusedError(f"revision {rev!r} starts with '-'", reason="bad_revision")
    commit = git.rev_parse(rev, cwd=repo)
    if commit is None:
        raise RefusedError(
            f"{rev!r} does not name a commit in {repo}",
            reason="bad_revision",
            next_step="make a first commit, or pass an existing branch or commit id",
        )
    return commit


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
    spare = worktree_pool.spare_for(repo, wt.plan, entries)
    if spare is not None:
        wt.spare, wt.action = spare, "recycled"
        steps.extend(worktree_pool.adopt_plan(repo, spare, wt.path, wt.branch, wt.base, head))
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
    pending = worktree_pool.pending(wt.path) if entry.branch is None else None
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
            worktree_pool.finish(wt.path)
        wt.copied = include.copy_into(repo, wt.path, sources)


def checkout_plan(wt: Worktree, sources: Sequence[str] = ()) -> git.GitPlan:
    """Return the checkout a new worktree runs: plumbing that writes only its own index.

    A recycled spare is switched instead; ``sources`` (``.worktreeinclude`` copies) are
    removed from it first, so that they are copied anew.
    """
    if wt.action == "recycled":
        return worktree_pool.switch_plan(wt.path, wt.branch, sources)
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
    with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 2)) as pool:
        with repo_lock(repo, METADATA_LOCK):
            start = resolve_commit(repo, base) if base else None
            entries = git.worktree_list(repo)
            heads = _branch_heads(repo, plan, wts)
            for wt in wts:
                wt.base = start
                if _register(repo, wt, entries, heads, sources):
                    # each checkout starts as soon as its worktree is registered
                    futures.append((pool.submit(_checkout, wt, sources, repo), wt))
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
            worktree_pool.prepare(wt.spare, wt.path, wt.branch, wt.base)
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
