"""The git side of a cloud attempt: its remote branch names, the base push, polling, fetching.

The exchange with a cloud session is the git remote. The engine pushes the task's base to
``planfleet/<plan>/base/<task>``; the session pushes its work to
``planfleet/<plan>/tasks/<task>`` and marks it done with a last commit whose message carries
a ``Planfleet-Result:`` trailer (the structured task result as JSON). Nothing is ever
force-pushed: a base name that already holds another commit is a refusal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.errors import CommandError, RefusedError
from planfleet.ids import check_id

MARKER = "Planfleet-Result"
NETWORK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Names:
    """The remote branches of one attempt."""

    base: str  # what the engine pushes: the commit the session starts from
    task: str  # what the session pushes


def names(plan: str, task: str, attempt: int = 1) -> Names:
    """Return the branch names of ``attempt`` (ids checked).

    Attempt 1 uses ``base/<task>`` and ``tasks/<task>``; a retry starts from a clean base
    and cannot add to (or force over) the failed attempt's push, so attempt N > 1 uses
    ``<task>@N`` (an ``@`` can be in no id, so no other task's name).
    """
    p = check_id(plan, what="plan name")
    t = check_id(task, what="task id")
    leaf = t if attempt <= 1 else f"{t}@{attempt}"
    return Names(base=f"planfleet/{p}/base/{leaf}", task=f"planfleet/{p}/tasks/{leaf}")


def remote_tip(repo: Path, remote: str, branch: str) -> str | None:
    """Return the commit ``branch`` points to on ``remote`` (None: no such branch).

    Raises CommandError when the remote cannot be asked.
    """
    ref = git.branch_ref(branch)
    result = git.git("ls-remote", remote, ref, cwd=repo, timeout=NETWORK_TIMEOUT_S)
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return None


def remote_branches(repo: Path, remote: str, prefix: str) -> dict[str, str]:
    """Return branch -> commit of the branches under ``prefix`` on ``remote``."""
    pattern = git.branch_ref(prefix.rstrip("/")) + "/*"
    result = git.git("ls-remote", remote, pattern, cwd=repo, timeout=NETWORK_TIMEOUT_S)
    found = {}
    for line in result.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            found[ref[len("refs/heads/") :]] = sha
    return found


def push_base(repo: Path, remote: str, commit: str, branch: str) -> str:
    """Push ``commit`` as ``branch`` to ``remote`` (never forced); return what was done.

    Raises RefusedError when the branch exists there with another commit, CommandError when
    the push fails.
    """
    tip = remote_tip(repo, remote, branch)
    if tip == commit:
        return f"{branch} is already at {commit[:12]} on {remote}"
    if tip is not None:
        raise RefusedError(
            f"branch {branch} on {remote} points to {tip[:12]}, not to the base {commit[:12]}",
            reason="remote_branch_taken",
            next_step=f"delete it from {remote} (`planfleet clean --remote`, or git push "
            f"{remote} --delete {branch}) if it is left from an earlier run",
        )
    git.git("push", "--quiet", remote, f"{commit}:{git.branch_ref(branch)}", cwd=repo)
    return f"pushed {commit[:12]} to {remote} as {branch}"


def fetch(worktree: Path, remote: str, branch: str, local_ref: str) -> None:
    """Fetch ``branch`` of ``remote`` into the private ref ``local_ref``."""
    spec = f"+{git.branch_ref(branch)}:{local_ref}"  # our own ref, never a branch of yours
    git.git("fetch", "--quiet", "--no-tags", remote, spec, cwd=worktree, timeout=NETWORK_TIMEOUT_S)


def private_ref(plan: str, task: str) -> str:
    """Return the local ref a cloud attempt's push is fetched into before it is judged."""
    return f"refs/planfleet/cloud/{check_id(plan, what='plan name')}/{check_id(task)}"


def drop_ref(worktree: Path, ref: str) -> None:
    """Delete the private ref ``ref`` (gone already: nothing to do)."""
    git.git("update-ref", "-d", ref, cwd=worktree, check=False)


def marker(commit: str, *, cwd: Path) -> str | None:
    """Return the ``Planfleet-Result`` trailer of ``commit`` (None when it has none)."""
    fmt = f"%(trailers:key={MARKER},valueonly,unfold)"
    text = git.out("log", "-1", f"--format={fmt}", commit, cwd=cwd)
    return text.strip().splitlines()[-1].strip() if text.strip() else None


def claims_of(value: str) -> dict[str, Any] | None:
    """Return the structured result a marker holds (None when it is not a JSON object)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def take(worktree: Path, commit: str, base: str) -> str | None:
    """Fast-forward the task branch checked out in ``worktree`` to ``commit``.

    Returns why it could not, or None when it is done.
    """
    if not git.is_ancestor(base, commit, cwd=worktree):
        return f"the pushed commit {commit[:12]} does not build on the base {base[:12]}"
    try:
        git.git("merge", "--ff-only", "--quiet", commit, cwd=worktree)
    except CommandError as exc:
        return f"could not bring {commit[:12]} into the task branch: {exc.message}"
    return None


def pushable(repo: Path, remote: str, branch: str) -> str | None:
    """Return why ``branch`` cannot be pushed to ``remote`` (``git push --dry-run``), or None."""
    head = git.rev_parse("HEAD", cwd=repo)
    if head is None:
        return "the repository has no commit to push"
    result = git.git(
        "push",
        "--dry-run",
        "--quiet",
        remote,
        f"{head}:{git.branch_ref(branch)}",
        cwd=repo,
        check=False,
        timeout=NETWORK_TIMEOUT_S,
    )
    if result.ok:
        return None
    return (result.stderr or result.stdout).strip()[-500:] or f"exit {result.returncode}"


def remote_url(repo: Path, remote: str) -> str | None:
    """Return the URL of ``remote`` in ``repo`` (None: no such remote)."""
    result = git.git("remote", "get-url", remote, cwd=repo, check=False)
    return result.stdout.strip() if result.ok and result.stdout.strip() else None
