"""Reading what several git questions answer in one process: refs, a worktree's branch.

The task path asks these once per task, so each costs one git process, not one per name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from planfleet import git
from planfleet.errors import CommandError


def resolve_many(revs: Sequence[str], *, cwd: Path) -> dict[str, str | None]:
    """Return the object id each of ``revs`` names (None: nothing), in one git process.

    Each rev is a name as rev-parse takes it, peeled when asked (``ref^{commit}``,
    ``commit^{tree}``); ``HEAD`` is the one of the worktree at ``cwd``.
    """
    if not revs:
        return {}
    for rev in revs:
        if not rev or "\n" in rev or rev.startswith("-"):
            raise ValueError(f"bad revision {rev!r}")
    lines = git.git(
        "cat-file",
        "--batch-check=%(objectname)",
        cwd=cwd,
        input_text="".join(f"{r}\n" for r in revs),
    ).stdout.splitlines()
    if len(lines) != len(revs):
        raise CommandError(["git", "cat-file", "--batch-check"], 0, "\n".join(lines), "", str(cwd))
    # a name that resolves to nothing prints "<name> missing" (or "ambiguous")
    return {r: (None if " " in line else line) for r, line in zip(revs, lines, strict=True)}


def branch_status(cwd: Path) -> tuple[str | None, str | None, bool]:
    """Return the worktree's branch (None: detached), HEAD's commit and whether it is clean.

    One ``git status --porcelain=v2 --branch`` (untracked files count, ignored ones not).
    """
    raw = git.git("status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", cwd=cwd)
    items = [i for i in raw.stdout.split("\0") if i]
    headers = dict(i[2:].partition(" ")[::2] for i in items if i.startswith("# "))
    # v2 entries start with 1, 2, u, ? (a rename's old path follows as its own item; either
    # way there is a change)
    clean = all(i.startswith("# ") for i in items)
    branch = headers.get("branch.head")
    oid = headers.get("branch.oid")
    return (
        None if branch in (None, "(detached)") else branch,
        None if oid in (None, "(initial)") else oid,
        clean,
    )
