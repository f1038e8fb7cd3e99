"""``.worktreeinclude``: gitignored files (``.env``, ...) copied into each new worktree.

One gitignore-style pattern per line. A pattern without ``/`` matches a name anywhere; one
with ``/`` is anchored at the repository root. Only paths git ignores, inside the repository
(symbolic links not followed out of it), outside ``.git`` and ``.planfleet``, are copied.
"""

from __future__ import annotations

import shutil
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from planfleet import fsutil, git, paths

FILE_NAME = ".worktreeinclude"


def patterns(repo: Path) -> list[str]:
    """Return the patterns of the repository's ``.worktreeinclude`` (none if absent)."""
    try:
        text = (repo / FILE_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")) and "\0" not in line:
            out.append(line.rstrip("/"))
    return [p for p in out if p and p not in ("/", ".")]


def sources(repo: Path) -> list[str]:
    """Return the repository-relative paths (files or folders) to copy, sorted."""
    pats = patterns(repo)
    if not pats:
        return []
    found: set[str] = set()
    anchored = [p.lstrip("/") for p in pats if "/" in p]
    loose = [p for p in pats if "/" not in p]
    if loose:
        listing = git.git(
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
            cwd=repo,
        ).stdout
        for entry in filter(None, listing.split("\0")):
            name = entry.rstrip("/")
            if any(fnmatchcase(PurePosixPath(name).name, p) for p in loose):
                found.add(name)
    candidates = {
        m.relative_to(repo).as_posix() for p in anchored for m in repo.glob(p) if m != repo
    }
    if candidates:
        ignored = git.git(
            "check-ignore",
            "-z",
            "--stdin",
            cwd=repo,
            check=False,
            input_text="\0".join(sorted(candidates)) + "\0",
        ).stdout
        found.update(filter(None, ignored.split("\0")))
    return sorted(p for p in found if _allowed(repo, p))


def _allowed(repo: Path, rel: str) -> bool:
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
