"""How scenario 4 breaks the disk without root where it can: a read-only state folder and a
full disk, with the mechanism chosen by what this machine allows (and named in the report).

- read-only: ``chmod 0555`` for a normal user; for root (who writes through any mode) a
  read-only bind mount in a private mount namespace of the engine (``unshare -m``; moved
  in with ``nsenter`` mid-run).
- disk full: a small tmpfs mounted over ``.planfleet/`` in a private mount namespace
  (``unshare -m`` as root, ``unshare -rm`` as a user where user namespaces are allowed);
  otherwise ``RLIMIT_FSIZE`` on the engine (writes past the size fail with EFBIG).
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = os.geteuid() == 0


@functools.cache
def namespace_prefix() -> list[str] | None:
    """Return the argv prefix that runs a command in a private mount namespace, or None."""
    for prefix in (
        ["unshare", "-m", "--propagation", "private"] if ROOT else [],
        ["unshare", "-r", "-m", "--propagation", "private"],
    ):
        if not prefix:
            continue
        try:
            res = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if res.returncode == 0:
            return prefix
    return None


def readonly_mechanism() -> str | None:
    """Return how a folder is made read-only here: 'chmod', 'bind-mount', or None."""
    if not ROOT:
        return "chmod"
    return (
        "bind-mount"
        if namespace_prefix() == ["unshare", "-m", "--propagation", "private"]
        else None
    )


def diskfull_mechanism() -> str:
    """Return 'tmpfs' when a private mount namespace is available, else 'RLIMIT_FSIZE'."""
    return "tmpfs" if namespace_prefix() is not None else "RLIMIT_FSIZE"


def make_readonly(folder: Path, *, pid: int | None = None) -> None:
    """Make ``folder`` read-only: for root, inside the mount namespace of ``pid``."""
    if readonly_mechanism() == "chmod":
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
        return
    # Remounting read-only is refused (EBUSY) while a file on it is open for writing, as
    # the state lock is for the instant of a transaction: try again until it is not.
    script = (
        f"mountpoint -q '{folder}' || mount --bind '{folder}' '{folder}' || exit 1; "
        "for i in $(seq 100); do "
        f"mount -o remount,bind,ro '{folder}' 2>/dev/null && exit 0; sleep 0.02; done; "
        f"mount -o remount,bind,ro '{folder}'"
    )
    argv = ["sh", "-c", script]
    if pid is not None:
        argv = ["nsenter", "-t", str(pid), "-m", "--", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"making {folder} read-only failed: {res.stderr.strip()}")


def readonly_wrapper(folder: Path, argv: list[str]) -> list[str]:
    """Return ``argv`` run with ``folder`` already read-only (root: in its own namespace)."""
    if readonly_mechanism() == "chmod":
        make_readonly(folder)
        return argv
    script = (
        f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && exec \"$@\""
    )
    return [*(namespace_prefix() or []), "sh", "-c", script, "sh", *argv]


def make_writable(folder: Path) -> None:
    """Undo :func:`make_readonly` for chmod (a namespace's mount dies with its processes)."""
    if readonly_mechanism() == "chmod":
        folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)


def fsize_wrapper(argv: list[str], limit: int) -> list[str]:
    """Return ``argv`` run with RLIMIT_FSIZE at ``limit`` bytes (SIGXFSZ ignored: EFBIG)."""
    code = (
        "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "os.execvp(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]
