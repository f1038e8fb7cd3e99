"""``.worktreeinclude``: gitignored files (``.env``, ...) copied into each new worktree.

The file is gitignore syntax (negation, anchoring, ``**``, directories), matched by git
itself. As in Claude Code, a path is copied only when it matches the file *and* git ignores
it: an untracked file that ``.gitignore`` does not ignore stays out, and tracked files are
already in the worktree. Nothing inside ``.git`` or ``.planfleet`` is copied, nor a path
that leads out of the repository through a symbolic link.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from planfleet import fsutil, git, paths

FILE_NAME = ".worktreeinclude"


def sources(repo: Path) -> list[str]:
    """Return the repository-relative paths (files or whole folders) to copy, sorted."""
    include = repo / FILE_NAME
    if not include.is_file():
        return []
    # --directory: a folder the include file matches as a whole is one entry, not its files.
    listed = [p for p in _matching(repo, include, "--directory") if _allowed(repo, p)]
    ignored = _ignored(repo, [p.rstrip("/") for p in listed])
    found: set[str] = set()
    for entry in listed:
        name = entry.rstrip("/")
        if name in ignored:  # a file, or a folder that git ignores as a whole
            found.add(name)
        elif entry.endswith("/"):  # a matched folder that git ignores only in part
            inner = [p for p in _matching(repo, include, "--", entry) if _allowed(repo, p)]
            found.update(_ignored(repo, inner))
    return sorted(found)


def _matching(repo: Path, include: Path, *extra: str) -> list[str]:
    """Return the untracked paths that the include file's patterns match."""
    # The include file's patterns alone: with the standard excludes in the same call git
    # would list their union (every gitignored file); ``_ignored`` applies those after.
    listing = git.git(
        "--literal-pathspecs",
        "ls-files",
        "-z",
        "--others",
        "--ignored",
        f"--exclude-from={include}",
        *extra,
        cwd=repo,
    ).stdout
    return [p for p in listing.split("\0") if p]


def _ignored(repo: Path, rels: list[str]) -> set[str]:
    """Return those of ``rels`` that git ignores (.gitignore, info/exclude, excludesFile)."""
    if not rels:
        return set()
    result = git.answer(
        "check-ignore", "-z", "--stdin", cwd=repo, input_text="\0".join(rels) + "\0"
    )
    return set(filter(None, result.stdout.split("\0")))


def _allowed(repo: Path, rel: str) -> bool:
    rel = rel.rstrip("/")
    first = PurePosixPath(rel).parts[0] if rel else ""
    if first in (".git", paths.DIR_NAME):
        return False
    return fsutil.is_within(repo / rel, repo)


def copy_into(repo: Path, worktree: Path, rels: list[str]) -> list[str]:
    """Copy ``rels`` from the main checkout into ``worktree``; return what was copied.

    Existing paths in the worktree are never overwritten, and nothing is written through a
    symbolic link that leads out of the worktree.
    """
    copied = []
    for rel in rels:
        src, dst = repo / rel, worktree / rel
        if dst.exists() or dst.is_symlink() or not fsutil.is_within(dst.parent, worktree):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
        copied.append(rel)
    return copied
