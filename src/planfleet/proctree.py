"""The processes planfleet starts: a lineage mark, their trees, and stopping every one of them.

Every child started through :mod:`planfleet.proc` carries ``PLANFLEET_LINEAGE`` in its
environment: one token ``<pid>.<start>.<n>`` per planfleet process above it. A process
that calls ``setsid`` or forks twice leaves its process group and its parent, but keeps its
environment, so the mark still finds it: after a timeout, and after the engine that started
it was killed. Process tables are read with psutil (Linux and macOS alike); a process that
cannot be inspected (another user's, or gone meanwhile) is skipped, never a reason to give up.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import psutil

LINEAGE_ENV = "PLANFLEET_LINEAGE"
MAX_LINEAGE = 8  # tokens kept: nesting deeper than this is not worth a longer environment
KILL_WAIT_S = 10.0  # how long a SIGKILLed process may take to go (e.g. in uninterruptible IO)
_POLL_S = 0.05
_counter = itertools.count(1)
_own: dict[int, str] = {}  # pid -> this process's token prefix (a fork gets its own)
_HAVE_PROC = Path("/proc/self/environ").exists()


def process_start_time(pid: int) -> str | None:
    """Return an opaque start-time token for ``pid``, or None if there is no such process.

    Linux: the clock ticks of ``/proc/PID/stat``; elsewhere psutil's creation time.
    """
    if not _HAVE_PROC:
        try:
            return f"{psutil.Process(pid).create_time():.3f}"
        except (psutil.Error, OSError, ValueError):
            return None
    try:
        fields = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Field 22 of /proc/PID/stat is starttime; after the ")" split it is index 19.
    return fields[19].decode() if len(fields) > 19 else None


def _read(path: str) -> bytes:
    """Return a small /proc file's bytes (os-level: scans read one per process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _portable_start_time(pid: int) -> str | None:
    """Return the start time psutil reports (where there is no /proc), or None."""
    if Path("/proc/self/stat").exists():
        return None  # a Linux whose /proc has no such process: it is gone
    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except (psutil.Error, OSError, ValueError):
        return None


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
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True


def holder_prefix(pid: int, start: str | None) -> str:
    """Return the token prefix of every process that the process ``pid`` started."""
    return f"{pid}.{start or '?'}."


def mark(env: Mapping[str, str] | None) -> tuple[dict[str, str], str]:
    """Return a child's environment (``env``, default ours) with a new lineage token, and it."""
    me = os.getpid()
    if me not in _own:
        _own.clear()
        _own[me] = holder_prefix(me, process_start_time(me))
    token = f"{_own[me]}{next(_counter)}"
    child = dict(os.environ if env is None else env)
    lineage = child.get(LINEAGE_ENV, "").split()[-(MAX_LINEAGE - 1) :]
    child[LINEAGE_ENV] = " ".join([*lineage, token])
    return child, token


def marked(match: Callable[[str], bool], *, since: str | None = None) -> list[psutil.Process]:
    """Return the live processes whose lineage has a token that ``match`` accepts.

    ``since``: a start token (:func:`process_start_time`) of the process that started them
    all; older processes are not read at all (reading an environment is the costly part).
    """
    spared = _spared()
    floor = _start_value(since)
    found = []
    for pid in _pids():
        if pid in spared:
            continue
        if floor is not None and (_start_value(process_start_time(pid)) or 0.0) < floor:
            continue
        if not _matches(lineage_of(pid), match):
            continue
        try:
            p = psutil.Process(pid)  # from now on pinned to this process (its start time)
        except (psutil.Error, OSError):
            continue
        if _matches(lineage_of(pid), match):  # still the same one: not a pid just reused
            found.append(p)
    return found


def lineage_of(pid: int) -> str | None:
    """Return the lineage mark in the environment of ``pid`` (None: none, or unreadable)."""
    return environ_value(pid, LINEAGE_ENV)


def environ_value(pid: int, name: str) -> str | None:
    """Return variable ``name`` of the environment ``pid`` started with (None: unset/unreadable)."""
    if _HAVE_PROC:
        # Read raw: a scan reads every process's environment, psutil would cost 10x more.
        try:
            data = _read(f"/proc/{pid}/environ")
        except OSError:
            return None  # gone meanwhile, or another user's: not one of ours
        key = name.encode() + b"="
        for entry in data.split(b"\0"):
            if entry.startswith(key):
                return entry[len(key) :].decode(errors="replace")
        return None
    try:
        return psutil.Process(pid).environ().get(name)
    except (psutil.Error, OSError):
        return None


def cwd_of(pid: int) -> str | None:
    """Return the working folder of ``pid`` (None if it cannot be read)."""
    try:
        return psutil.Process(pid).cwd()
    except (psutil.Error, OSError):
        return None


def _start_value(token: str | None) -> float | None:
    try:
        return float(token) if token else None
    except ValueError:
        return None


def _matches(lineage: str | None, match: Callable[[str], bool]) -> bool:
    return bool(lineage) and any(match(t) for t in (lineage or "").split())


def _pids() -> list[int]:
    if _HAVE_PROC:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    return psutil.pids()


def descendants(pid: int) -> list[psutil.Process]:
    """Return the live descendants of ``pid`` (empty once it is gone)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except (psutil.Error, OSError):
        return []


def group_members(pgid: int) -> list[psutil.Process]:
    """Return the live processes of process group ``pgid``."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getpgid(p.pid) == pgid:
                found.append(p)
    return found


def group_is(pgid: int, start: str | None) -> bool:
    """Return True if process group ``pgid`` is still the one whose leader started at ``start``.

    The kernel keeps a group's number while any member lives, so it can only have been
    reused once the group emptied and a new process took the number: then a leader that
    started at another time is alive under it.
    """
    if pgid <= 1:
        return False
    if not pid_alive(pgid):
        return True  # the leader is gone; members still holding the number are its own
    return start is not None and process_start_time(pgid) == start


def terminate(procs: Iterable[psutil.Process], *, grace_s: float = 3.0) -> list[int]:
    """Stop ``procs``: SIGINT, then SIGTERM, then SIGKILL, each after a grace period.

    Our own process, its ancestors and its process group are never signalled. Returns
    the pids still alive at the end (only a process stuck in the kernel can be one).
    """
    spared = _spared()
    alive = [p for p in {p.pid: p for p in procs}.values() if p.pid not in spared]
    alive = [p for p in alive if not _in_own_group(p.pid)]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        alive = _living(alive)
        if not alive:
            break
        for p in alive:
            with contextlib.suppress(psutil.Error, OSError):
                p.send_signal(sig)  # psutil checks the pid still names the same process
        alive = _wait_gone(alive, KILL_WAIT_S if sig == signal.SIGKILL else grace_s)
    return sorted(p.pid for p in alive)


def processes_in(path: Path, *, name_prefix: str) -> list[int]:
    """Return pids of processes named ``name_prefix*`` working in or naming ``path``.

    Processes that cannot be inspected (another user's) are skipped.
    """
    target = str(path.resolve())
    found: list[int] = []
    for p in psutil.process_iter():
        try:
            if not p.name().startswith(name_prefix):
                continue
            cwd = p.cwd()
            args = p.cmdline()
        except (psutil.Error, OSError):
            continue
        if within(cwd, target) or any(within(a, target) for a in args):
            found.append(p.pid)
    return found


def within(path: str, target: str) -> bool:
    """Return True if ``path`` is ``target`` or inside it (both absolute, resolved)."""
    return path == target or path.startswith(target + os.sep)


def _in_own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == os.getpgid(0)
    except ProcessLookupError:
        return False
    except OSError:
        return False  # macOS refuses to tell for another session: then it is not our group


def _spared() -> set[int]:
    """Return our own pid and those of our ancestors: never stopped, never listed."""
    spared = {os.getpid()}
    with contextlib.suppress(psutil.Error, OSError):
        spared |= {p.pid for p in psutil.Process().parents()}
    return spared


def _living(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
    return alive


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``procs`` to exit; return those still alive.

    Polled, not waited for: they are not our children (a zombie counts as gone, whoever
    is to reap it).
    """
    deadline = time.monotonic() + timeout
    alive = _living(procs)
    while alive and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        alive = _living(alive)
    return alive
