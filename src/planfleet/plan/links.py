"""Symbolic links that lead out of the repository, in what a plan reads.

A plan, a plan folder, a spec, an ``implementation/phase-N.md`` or an ``execute-state.json``
that is a link out of the repository is refused (exit 2, naming the link): skipping it
would run a plan that silently lacks part of itself, and reading it would feed agents
someone else's files. ``--allow-outside-links`` (for people who mean it) lets readers
follow such links for the rest of the command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from planfleet.errors import InputError

FLAG = "--allow-outside-links"
HINT = f"keep it inside the repository, or pass {FLAG} if you mean to read it"
_allowed = False  # one command per process: set by the CLI, seen by every thread


@contextlib.contextmanager
def allowing(allowed: bool = True) -> Iterator[None]:
    """Let readers follow links out of the repository while the block runs (if ``allowed``)."""
    global _allowed
    before, _allowed = _allowed, allowed
    try:
        yield
    finally:
        _allowed = before


def allowed() -> bool:
    """Return True while links out of the repository may be followed."""
    return _allowed


def target(path: Path, repo: Path, root: Path | None = None) -> Path | None:
    """Return where ``path`` leads when a link takes it out of ``repo`` (and ``root``).

    Only a path that lies in ``repo`` (or ``root``, the plan's own folder) before links are
    followed counts: a path given outside on purpose is no link. None otherwise.
    """
    lexical = Path(os.path.abspath(path))
    bases = [Path(os.path.abspath(b)) for b in (repo, root) if b is not None]
    if not any(lexical.is_relative_to(b) for b in bases):
        return None
    try:
        real = lexical.resolve()
    except (OSError, RuntimeError):  # a loop of links leads nowhere: reading it fails, named
        return None
    if any(real.is_relative_to(b.resolve()) for b in bases):
        return None
    return real


def problem(
    path: Path, repo: Path, *, what: str, root: Path | None = None, named: bool = True
) -> str | None:
    """Return the refusal for a ``what`` at ``path`` that links out (None: fine or allowed).

    ``named``: the message names the link (leave it out when the error's file is the link).
    """
    real = None if _allowed else target(path, repo, root)
    if real is None:
        return None
    name = f" {shown(path, repo)}" if named else ""
    return f"{what}{name} is a symbolic link out of the repository (to {real})"


def check(
    path: Path,
    repo: Path,
    *,
    what: str,
    root: Path | None = None,
    file: str | None = None,
    line: int | None = None,
    field: str | None = None,
) -> Path:
    """Return ``path``; InputError naming the link if it leads out and that is not allowed."""
    message = problem(path, repo, what=what, root=root, named=file is not None)
    if message is not None:
        raise InputError(message, file=file or shown(path, repo), line=line, field=field, hint=HINT)
    return path


def follow(path: Path, repo: Path | None, *, what: str, root: Path | None = None) -> bool:
    """Return True to read the symbolic link ``path`` met in a plan folder, False to skip it.

    A link that stays in the repository is skipped (what it leads to is read on its own);
    a link out is read when allowed and refused (InputError naming it) otherwise. Without
    ``repo`` (detection only), every link is skipped.
    """
    if repo is None or target(path, repo, root) is None:
        return False
    check(path, repo, what=what, root=root)
    return True


def shown(path: Path, repo: Path) -> str:
    """Return ``path`` relative to ``repo`` when it lies in it (links not followed)."""
    lexical, base = os.path.abspath(path), os.path.abspath(repo)
    return os.path.relpath(lexical, base) if Path(lexical).is_relative_to(base) else str(path)
