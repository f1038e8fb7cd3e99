"""Small filesystem helpers: the one atomic write, and safe reads."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from planfleet.errors import InputError

MAX_TEXT_BYTES = 8 * 1024 * 1024  # a plan or state file larger than this is refused


def atomic_write(path: Path, text: str, *, fsync_dir: bool = True, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so a crash leaves either the old or the new file.

    ``mode`` sets the file's permission bits (a temp file starts as 0600): pass the old
    file's mode when rewriting a file that belongs to the user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = ""
        if fsync_dir:
            _fsync_dir(path.parent)
    finally:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse to open folders
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def read_text(path: Path, *, limit: int = MAX_TEXT_BYTES, display: str | None = None) -> str:
    """Return the UTF-8 text of ``path``; raise InputError for anything unreadable.

    ``display`` is how errors name the file (e.g. relative to the repository).
    """
    shown = display or str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError("file not found", file=shown) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=shown) from None
    if not path.is_file():
        raise InputError("not a regular file", file=shown)
    if size > limit:
        raise InputError(
            f"file is {size} bytes, larger than the {limit}-byte limit",
            file=shown,
            hint="split the plan into smaller files",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=shown) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte {exc.start})",
            file=shown,
            line=line,
            hint="save the file as UTF-8",
        ) from None
    if "\x00" in text:
        raise InputError("file contains NUL bytes; is it a binary file?", file=shown)
    return text.removeprefix("\ufeff")


def exists(path: Path) -> bool:
    """Return True if ``path`` exists; a name the OS refuses (too long, ...) does not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    """Return True if ``path`` is a file; a name the OS refuses (too long, ...) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_within(path: Path, root: Path) -> bool:
    """Return True if ``path`` resolves inside ``root`` (symlinks followed)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def remove_temp_files(path: Path) -> int:
    """Delete temp files a killed :func:`atomic_write` of ``path`` left; return how many.

    Only safe while no other writer of ``path`` can be running (e.g. under its lock).
    """
    prefix = f".{path.name}."
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
