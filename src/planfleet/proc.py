"""The one subprocess chokepoint: no shell, full errors, timeouts, process groups.

Nothing else in planfleet imports :mod:`subprocess`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from planfleet.errors import CommandError, InputError

# What a user's own command (a verify or test command written in their plan) runs under.
# The command text is passed as ONE argument to ``sh -c`` and never formatted into a
# template of ours, so plan-derived ids or names can never become shell syntax.
USER_SHELL = "/bin/sh"


@dataclass(frozen=True)
class Result:
    """What a finished command produced."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion and return its output.

    Raises CommandError when ``check`` and the exit code is not 0, or on timeout;
    InputError when the program does not exist.
    """
    args = [str(a) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise InputError(f"program not found: {args[0]}", hint="install it or fix PATH") from None
    except PermissionError:
        raise InputError(f"program is not executable: {args[0]}") from None
    try:
        out, err = proc.communicate(input=input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        raise CommandError(args, None, out or "", err or "", str(cwd) if cwd else None) from None
    except BaseException:
        stop_group(proc)
        raise
    result = Result(tuple(args), proc.returncode, out, err, time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, out, err, str(cwd) if cwd else None)
    return result


def run_foreground(argv: Sequence[str], *, cwd: Path | str | None = None) -> int:
    """Run ``argv`` on this terminal (same process group: it gets the tty and Ctrl-C).

    For interactive pass-throughs such as `claude attach`; returns the exit code.
    """
    args = [str(a) for a in argv]
    try:
        child = subprocess.Popen(args, cwd=cwd)
    except FileNotFoundError:
        raise InputError(f"program not found: {args[0]}", hint="install it or fix PATH") from None
    except PermissionError:
        raise InputError(f"program is not executable: {args[0]}") from None
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the terminal sent Ctrl-C to the child too: it decides when to end


def user_command(command: str) -> list[str]:
    """Return the argv that runs a command the user wrote in their own plan or config."""
    if "\x00" in command:
        raise InputError("command contains a NUL byte")
    return [USER_SHELL, "-c", command]


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    detach: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group (its own session when ``detach``)."""
    args = [str(a) for a in argv]
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError:
        raise InputError(f"program not found: {args[0]}", hint="install it or fix PATH") from None
    except PermissionError:
        raise InputError(f"program is not executable: {args[0]}") from None


def stop_group(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes], *, grace_s: float = 3.0
) -> int | None:
    """Stop ``proc`` and its whole process group: SIGINT, then SIGTERM, then SIGKILL.

    Returns the process's exit code (None if it could not be reaped).
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        signal_group(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s if sig != signal.SIGKILL else 10)
    # Children that outlived the leader still hold the group: make sure they go too.
    signal_group(proc.pid, signal.SIGKILL)
    return proc.poll()


def wait_for(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait up to ``timeout`` seconds for ``proc`` to exit; return its code, or None."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to process group ``pgid``; return False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not ours
        return False
    return True


def pid_alive(pid: int) -> bool:
    """Return True if a process with ``pid`` exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":
            return False
    return True


def process_start_time(pid: int) -> str | None:
    """Return an opaque start-time token for ``pid`` (Linux clock ticks), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Field 22 of /proc/PID/stat is starttime; after the ")" split it is index 19.
    return fields[19] if len(fields) > 19 else None


def processes_in(path: Path, *, name_prefix: str) -> list[int] | None:
    """Return pids of processes named ``name_prefix*`` working in or naming ``path``.

    None means "cannot tell" (no /proc, or such a process could not be inspected).
    """
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return None
    target = str(path.resolve())
    found: list[int] = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().strip().startswith(name_prefix):
                continue
        except OSError:
            continue  # the process ended while we looked
        try:
            cwd = os.readlink(entry / "cwd")
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except FileNotFoundError:
            continue
        except OSError:
            return None  # e.g. another user's process: we cannot rule it out
        if (
            cwd == target
            or cwd.startswith(target + os.sep)
            or any(a == target or a.startswith(target + os.sep) for a in args)
        ):
            found.append(int(entry.name))
    return found
