"""A task's declared files: one normalized set for the scheduler, the gates and the merge.

A plan names the files a task creates or modifies as paths, folders (``src/pkg/``) or globs
(``src/**/*.py``). ``declared_set`` turns them into one normalized set; the scheduler keeps
tasks whose sets ``overlap`` apart, the gates report (or refuse) changes no entry
``matches``, and the merge refuses deletions outside them. Files every task may touch (a
lock file, ``__init__.py``, a changelog) are the plan's shared files: allowed in every
task's diff, never part of a write-set.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

_GLOB = re.compile(r"[*?\[]")
_LINE_RANGE = re.compile(r":\d+(?:-\d+)?$")  # `src/a.py:12-40` names the file


@functools.lru_cache(maxsize=1 << 16)
def normalize(entry: str) -> str | None:
    """Return a declared entry as a repo-relative POSIX path (a folder keeps its ``/``).

    None for an entry that names nothing inside the repository (absolute, ``..``, empty).
    Empty and ``.`` parts go, as PurePosixPath drops them (cached: the gates and the
    scheduler ask for the same entries again and again).
    """
    text = _LINE_RANGE.sub("", entry.strip().replace("\\", "/"))
    folder = text.endswith("/")
    parts = [p for p in text.split("/") if p and p != "."]
    if not parts or text.startswith("/") or ".." in parts:
        return None
    return "/".join(parts) + ("/" if folder else "")


def declared_set(entries: Iterable[str]) -> frozenset[str]:
    """Return the normalized set of declared entries (those naming nothing are left out)."""
    return frozenset(n for e in entries if (n := normalize(e)) is not None)


def _is_glob(entry: str) -> bool:
    return bool(_GLOB.search(entry))


def matches(path: str, entries: Iterable[str]) -> bool:
    """Return True if ``path`` is one of ``entries``: the file, inside a folder, or a glob.

    Entries are normalized first; ``**/`` also matches at the top (``**/x`` matches ``x``).
    """
    for raw in entries:
        entry = normalize(raw)
        if entry is None:
            continue
        folder = entry.rstrip("/")
        if path == folder or path.startswith(folder + "/"):
            return True
        if _is_glob(entry) and (
            fnmatchcase(path, entry) or (entry.startswith("**/") and fnmatchcase(path, entry[3:]))
        ):
            return True
    return False


def _fixed_prefix(entry: str) -> str:
    """Return the part of a glob before its first wildcard."""
    found = _GLOB.search(entry)
    return entry[: found.start()] if found else entry


def overlaps(a: frozenset[str], b: frozenset[str]) -> bool:
    """Return True if two declared sets may name a common file (globs: when in doubt, yes)."""
    return bool(a & b) or any(_pair_overlaps(x, y) for x in a for y in b)


def _pair_overlaps(x: str, y: str) -> bool:
    gx, gy = _is_glob(x), _is_glob(y)
    if (not gx and matches(x.rstrip("/"), (y,))) or (not gy and matches(y.rstrip("/"), (x,))):
        return True  # one names a file or folder the other covers
    if (gx or x.endswith("/")) and (gy or y.endswith("/")):
        px, py = _fixed_prefix(x), _fixed_prefix(y)  # both name many files
        return px.startswith(py) or py.startswith(px)
    return False


def undeclared(
    changed: Iterable[str], declared: Iterable[str], shared: Iterable[str] = ()
) -> list[str]:
    """Return the changed paths that neither the task's entries nor the shared files cover."""
    allowed = [*declared, *shared]
    return sorted({p for p in changed if not matches(p, allowed)})
