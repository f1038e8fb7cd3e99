"""The ``.planfleet/`` folder of a repository: where state, locks, logs and worktrees live."""

from __future__ import annotations

import contextlib
from pathlib import Path

from planfleet import fsutil, git
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


def ensure_planfleet_dir(repo: Path) -> Path:
    """Create ``.planfleet/`` with its README and git exclude entry; return its path."""
    root = planfleet_dir(repo)
    root.mkdir(parents=True, exist_ok=True)
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
    ensure_excluded(repo)
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
    path = planfleet_dir(repo) / "locks"
    if not path.is_dir():
        ensure_planfleet_dir(repo)
        path.mkdir(parents=True, exist_ok=True)
    return path


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
