"""Task worktrees' names, safe paths and admin records; the repository locks; integration.

Everything that names or guards a worktree lives here; ``planfleet.repo.provision`` makes
them and ``planfleet.repo.pool`` parks and recycles them. Git's own metadata writes race when
several processes change worktrees at once, so they run under ``METADATA_LOCK``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import filelock

from planfleet import fsutil, git, paths, proc
from planfleet.errors import RefusedError
from planfleet.ids import check_id

METADATA_LOCK = "git-metadata.lock"
LOCK_TIMEOUT_S = 120.0
BASE_FILE = "planfleet-base"  # in the worktree's admin folder: removed with the worktree
MERGE_WORKTREE = "_integration"  # task ids never start with "_", so this cannot collide
OWNER_PREFIX = "planfleet pid="
STALE_INDEX_LOCK_S = 600.0


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


def task_worktrees(repo: Path, plan: str, tasks: Iterable[str]) -> dict[str, Path]:
    """Return :func:`task_worktree` of every task in ``tasks``, the plan's folder resolved once.

    A task's folder, once :func:`paths.writable` finds it no link, resolves to the resolved
    plan folder plus its name: inside the root exactly when the plan folder is.
    """
    folder = _inside_root(repo, paths.worktrees_root(repo) / check_id(plan, what="plan name"))
    out = {}
    for task in tasks:
        path = folder / check_id(task, what="task id")
        out[task] = paths.writable(repo, path, create=False)
    return out


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
