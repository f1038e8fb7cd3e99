"""The ``.planfleet/`` folder of a repository: where state, locks, logs and worktrees live."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from planfleet import fsutil, git
from planfleet.errors import RefusedError
from planfleet.ids import check_id

DIR_NAME = ".planfleet"
GIT_GUARD = "gitdir: no-repository-here\n"  # see ensure_planfleet_dir
EXCLUDE_LINE = f"/{DIR_NAME}/"

README_TEXT = """\
# .planfleet

This folder is written by planfleet while it runs a plan. It is listed in
`.git/info/exclude`, so git ignores it without any change to your `.gitignore`.

- `state/<plan>.json` - the state of one plan run: every task's status, attempts, errors,
  branch, commit and timestamps. It is the truth a run resumes from. Edit it only through
  `planfleet state ...`; it is validated against a schema on every read and write.
- `state/<plan>.json.lock` - the lock taken for the instant of a state update;
  `state/<plan>.json.holder` - who took it last (pid, host, command, time), named in the
  error a command gives when it waited too long. Both are safe to delete when no planfleet
  process is running.
- `state/<plan>.json.bak`, `state/<plan>.json.v<N>.bak` - the previous file, kept when a
  run was started over or the file was upgraded from schema version N.
- `locks/` - other short-lived locks (for example around git's own metadata writes).
- `logs/<plan>/<task>.<attempt>.log` - agent transcripts and command output, one file per
  task attempt (JSON lines for the claude runner).
- `runs/<plan>/` - the engine's pid file and log (`engine.json`, `engine.log`) and
  `verify/<task>.<attempt>.json`, the evidence of every gate the engine ran on an attempt.
- `worktrees/<plan>/<task>/` - one git worktree per task. A worktree may hold work that is
  not merged yet: remove it with `planfleet` (which saves such work to a rescue branch
  first), not with `rm -rf`. Folders starting with `_` are planfleet's own: `_integration`
  (post-merge checks), `_spare-<n>` (clean worktrees kept for reuse during a run) and
  short-lived checkouts for baselines and phase gates.

- `.git` - not a repository: it stops git that runs in a damaged task worktree from
  finding your repository around it.

Deleting this whole folder forgets every run; your branches and commits stay in git.
"""


def planfleet_dir(repo: Path) -> Path:
    """Return ``<repo>/.planfleet`` (not created)."""
    return repo / DIR_NAME


_EXCLUDED: set[Path] = set()  # repositories whose info/exclude this process has checked


def ensure_planfleet_dir(repo: Path) -> Path:
    """Create ``.planfleet/`` with its README and git exclude entry; return its path.

    RefusedError when ``.planfleet`` is a symbolic link or is tracked by git (see writable).
    """
    root = writable(repo, planfleet_dir(repo), folder=True, prepare=False)
    readme = root / "README.md"
    current = None
    with contextlib.suppress(OSError):
        current = readme.read_text(encoding="utf-8")
    if current != README_TEXT:
        fsutil.atomic_write(readme, README_TEXT)
    # A stop sign for git: in a task worktree whose own `.git` link was deleted, git would
    # climb up to the user's repository (and commit on the user's branch); here it stops.
    guard = root / ".git"
    if not guard.exists():
        fsutil.atomic_write(guard, GIT_GUARD)
    key = repo.resolve()
    if key not in _EXCLUDED:  # once per process: it costs a git call
        ensure_excluded(repo)
        _EXCLUDED.add(key)
    return root


def ensure_excluded(repo: Path) -> bool:
    """Add ``/.planfleet/`` to the repository's ``info/exclude``; return True if it was added."""
    exclude = git.git_dir(repo) / "info" / "exclude"
    try:
        text = exclude.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = {line.strip() for line in text.splitlines()}
    if EXCLUDE_LINE in lines or DIR_NAME in lines or f"{DIR_NAME}/" in lines:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    fsutil.atomic_write(exclude, f"{text}{EXCLUDE_LINE}\n")
    return True


def state_dir(repo: Path) -> Path:
    """Return the folder holding one state file per plan run."""
    return planfleet_dir(repo) / "state"


def state_path(repo: Path, plan: str) -> Path:
    """Return ``.planfleet/state/<plan>.json``; raise InputError for an unsafe plan name."""
    return state_dir(repo) / f"{check_id(plan, what='plan name')}.json"


def lock_dir(repo: Path) -> Path:
    """Return ``.planfleet/locks``, created (with the README and exclude entry) if missing."""
    return writable(repo, planfleet_dir(repo) / "locks", folder=True)


def logs_dir(repo: Path, plan: str) -> Path:
    """Return ``.planfleet/logs/<plan>`` (not created)."""
    return planfleet_dir(repo) / "logs" / check_id(plan, what="plan name")


def runs_dir(repo: Path, plan: str) -> Path:
    """Return ``.planfleet/runs/<plan>`` (not created): the engine's pid file and log."""
    return planfleet_dir(repo) / "runs" / check_id(plan, what="plan name")


def verify_dir(repo: Path, plan: str) -> Path:
    """Return ``.planfleet/runs/<plan>/verify`` (not created): one record per attempt."""
    return runs_dir(repo, plan) / "verify"


def attempt_log(repo: Path, plan: str, task: str, attempt: int) -> Path:
    """Return ``.planfleet/logs/<plan>/<task>.<attempt>.log`` (folder not created)."""
    return logs_dir(repo, plan) / f"{check_id(task, what='task id')}.{attempt}.log"


def worktrees_root(repo: Path) -> Path:
    """Return ``.planfleet/worktrees``; a task's worktree is ``<root>/<plan>/<task>``."""
    return planfleet_dir(repo) / "worktrees"


def worktree_path(repo: Path, plan: str, task: str) -> Path:
    """Return ``.planfleet/worktrees/<plan>/<task>`` after checking both ids."""
    return worktrees_root(repo) / check_id(plan, what="plan name") / check_id(task, what="task id")


# -- writing under .planfleet/ ------------------------------------------------------------

_UNTRACKED: set[Path] = set()  # repositories whose .planfleet/ git was found not to track


def prepare_run(repo: Path, plan: str) -> None:
    """Create (or check) every folder a run of ``plan`` writes in; RefusedError for a link."""
    for folder in (
        state_dir(repo),
        planfleet_dir(repo) / "locks",
        logs_dir(repo, plan),
        runs_dir(repo, plan),
        worktrees_root(repo) / check_id(plan, what="plan name"),
    ):
        writable(repo, folder, folder=True)
    writable(repo, state_path(repo, plan))


def writable(
    repo: Path, path: Path, *, folder: bool = False, create: bool = True, prepare: bool = True
) -> Path:
    """Return ``path`` (under ``.planfleet/``) once nothing on the way to it is a link.

    Every writer of ``.planfleet/`` goes through here. Each component from ``.planfleet``
    down is looked at with ``lstat``: a symbolic link (a repository can commit one, e.g.
    ``.planfleet -> ~/.ssh``) or a non-folder is refused, so nothing is written outside the
    repository through it; so is a ``.planfleet`` that git tracks (its files would be the
    repository's, not ours). Missing folders are created one at a time (``path`` itself
    with ``folder``, else its parent; none with ``create=False``); ``path`` itself must not
    be a link either. ``prepare`` also writes ``.planfleet``'s README and exclude entry when
    the folder is new. Raises RefusedError (exit 3) with the next step.
    """
    root = planfleet_dir(repo)
    parts = path.relative_to(root).parts  # a path outside .planfleet/ is a bug: ValueError
    if not _real_folder(root, repo, create=create):
        return path  # nothing exists yet, and nothing may be created
    if repo not in _UNTRACKED:  # as given: resolving it on every write costs a stat a part
        _refuse_tracked(repo)
        _UNTRACKED.add(repo)
    if prepare and create and not (root / "README.md").exists():
        ensure_planfleet_dir(repo)
    current = root
    for part in parts if folder else parts[:-1]:
        current = current / part
        if not _real_folder(current, repo, create=create):
            return path
    if not folder and parts:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise _link_refused(repo, path)
    return path


def _real_folder(path: Path, repo: Path, *, create: bool) -> bool:
    """Return True if ``path`` is a real folder (made when missing and ``create``)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            return False
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
            os.mkdir(path)
        mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise _link_refused(repo, path)
    if not stat.S_ISDIR(mode):
        raise RefusedError(
            f"{_shown(repo, path)} is not a folder; planfleet keeps its files there",
            reason="planfleet_path_not_folder",
            next_step=f"move {_shown(repo, path)} away, then run the command again",
        )
    return True


def _link_refused(repo: Path, path: Path) -> RefusedError:
    shown = _shown(repo, path)
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return RefusedError(
        f"{shown} is a symbolic link (to {target}); planfleet does not write through links "
        f"in {DIR_NAME}/, which could lead out of the repository",
        reason="planfleet_symlink",
        next_step=f"remove the link (`rm {shown}`) and run the command again; planfleet "
        "creates a real folder in its place",
        details={"path": shown, "target": target},
    )


def _refuse_tracked(repo: Path) -> None:
    """Raise RefusedError if git tracks ``.planfleet`` or anything under it."""
    found = git.git("ls-files", "-z", "--", DIR_NAME, cwd=repo, check=False)
    if found.returncode != 0 or not found.stdout.strip("\0"):
        return  # not a repository (or git failed): nothing that git tracks
    first = found.stdout.split("\0", 1)[0]
    raise RefusedError(
        f"{DIR_NAME} is tracked by git in this repository ({first}); planfleet writes its "
        "state there and will not write into files a repository provides",
        reason="planfleet_tracked",
        next_step=f"remove it from the repository (`git rm -r --cached {DIR_NAME}` and commit), "
        "or run planfleet in a checkout you trust",
        details={"path": first},
    )


def _shown(repo: Path, path: Path) -> str:
    try:
        return str(path.relative_to(repo))
    except ValueError:
        return str(path)
