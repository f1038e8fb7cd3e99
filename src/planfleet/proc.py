"""The one subprocess chokepoint: no shell, full errors, timeouts, process groups.

Nothing else in planfleet imports :mod:`subprocess`. Every child is started in its own
process group and marked with a lineage token (:mod:`planfleet.proctree`), so stopping it
also stops what it left behind outside its group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

from planfleet import proctree
from planfleet.errors import CommandError, InputError
from planfleet.proctree import pid_alive as pid_alive
from planfleet.proctree import process_start_time as process_start_time
from planfleet.proctree import processes_in as processes_in

# What a user's own command (a verify or test command written in their plan) runs under.
# The command text is passed as ONE argument to ``sh -c`` and never formatted into a
# template of ours, so plan-derived ids or names can never become shell syntax.
USER_SHELL = "/bin/sh"
# After a timeout kills a command, what it printed is read for at most this long: a process
# that escaped the kill may still hold the pipe open.
READ_AFTER_KILL_S = 5.0
# A command that exited while something it started still holds its output gets this long
# for that to end by itself before it is stopped.
LINGER_S = 2.0
_Popen: TypeAlias = "subprocess.Popen[str] | subprocess.Popen[bytes]"
# The lineage token and start time of each child we started: stopping it stops every
# process it marked (all of them started after it).
_tokens: weakref.WeakKeyDictionary[_Popen, tuple[str, str | None]] = weakref.WeakKeyDictionary()


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
    services: bool = False,
) -> Result:
    """Run ``argv`` to completion and return its output.

    ``services``: the command starts long-lived processes by design (`claude --bg` and the
    daemon it may start, which serves every session of the user): they are not marked
    with our lineage and never stopped with it; after a timeout only its group is.

    Raises CommandError when ``check`` and the exit code is not 0, or on timeout;
    InputError when the program does not exist.
    """
    args = [str(a) for a in argv]
    start = time.monotonic()
    if services:
        child_env, token = dict(os.environ if env is None else env), None
    else:
        child_env, token = proctree.mark(env)
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=child_env,
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
    if token is not None:
        _tokens[proc] = (token, process_start_time(proc.pid))
    try:
        out, err, timed_out = _communicate(proc, input_text, timeout)
    except BaseException:
        stop_group(proc)
        raise
    where = str(cwd) if cwd else None
    if timed_out:
        raise CommandError(args, None, out, err, where)
    result = Result(tuple(args), proc.returncode, out, err, time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, out, err, where)
    return result


def _communicate(
    proc: subprocess.Popen[str], input_text: str | None, timeout: float | None
) -> tuple[str, str, bool]:
    """Return the output of ``proc`` and whether it ran past ``timeout`` (then it is stopped).

    Reads in slices so that a command which exited while a process it left behind (a
    daemon, a ``setsid`` child) keeps the pipes open does not hold us: after LINGER_S that
    process is stopped too. Whatever happens, the read ends within READ_AFTER_KILL_S of a stop.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    exited_at: float | None = None
    feed = input_text
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            stop_group(proc)
            out, err = _drain(proc)
            return out, err, True
        if exited_at is not None and now - exited_at >= LINGER_S:
            if proc in _tokens:  # what it left is ours to stop; a service is only let be
                stop_group(proc)
            out, err = _drain(proc, READ_AFTER_KILL_S if proc in _tokens else 0.1)
            return out, err, False
        slice_s = 0.5 if deadline is None else min(0.5, max(deadline - now, 0.01))
        try:
            out, err = proc.communicate(input=feed, timeout=slice_s)
            return out or "", err or "", False
        except subprocess.TimeoutExpired:
            feed = None  # given once: communicate() keeps feeding it on the next call
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()


def _drain(proc: subprocess.Popen[str], limit_s: float = READ_AFTER_KILL_S) -> tuple[str, str]:
    """Return what a stopped (or exited) command printed, reading for at most ``limit_s``.

    If something still holds the pipes then, what was read so far is returned and the
    rest is given up.
    """
    try:
        out, err = proc.communicate(timeout=limit_s)
        return out or "", err or ""
    except subprocess.TimeoutExpired as exc:
        out, err = _text(exc.output), _text(exc.stderr)  # all read until now, undecoded
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)
    return out, err


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""


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
    child_env, token = proctree.mark(env)
    try:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=child_env,
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
    _tokens[child] = (token, process_start_time(child.pid))
    return child


def stop_group(proc: _Popen, *, grace_s: float = 3.0) -> int | None:
    """Stop ``proc``, its process group and every process it started that left the group.

    SIGINT, then SIGTERM, then SIGKILL. Returns the process's exit code (None if it could
    not be reaped).
    """
    token, since = _tokens.get(proc) or (None, None)
    # Taken before any signal: a child that left the group is found through its parent
    # while the chain is intact, and through the lineage mark once it is not. (Only while
    # the leader is not reaped: once it is, its pid may name another process.) A command
    # that starts services (no token) keeps them.
    live = token is not None and proc.poll() is None
    strays = proctree.descendants(proc.pid) if live else []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        signal_group(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s if sig != signal.SIGKILL else 10)
    # Children that outlived the leader still hold the group: make sure they go too.
    signal_group(proc.pid, signal.SIGKILL)
    if token is not None:
        strays += proctree.marked(lambda t: t == token, since=since)
    # The leader is our child: Popen reaps it and keeps its exit code, never psutil.
    proctree.terminate([p for p in strays if p.pid != proc.pid], grace_s=grace_s)
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
