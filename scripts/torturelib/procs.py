"""Processes a trial starts: tagged, reaped, found when left behind, and killed at the end.

Every process a trial starts carries ``PLANFLEET_TORTURE_TAG=<tag>`` in its environment and
inherits it to its children, so anything left running is found by its tag whatever its cwd.
While a trial runs, this process is a child subreaper (Linux ``prctl``): children of a
killed engine are re-parented to us, so a zombie the engine failed to reap shows up as a
zombie child of ours instead of vanishing into pid 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TAG_VAR = "PLANFLEET_TORTURE_TAG"
# Every process a Launcher started (we wait for these ourselves; never reap them blindly).
_OWNED: set[int] = set()
_OPEN: list[Launcher] = []  # launchers not closed yet (close_all on an abort)
TERM_GRACE_S = 15.0  # after SIGTERM, how long an engine may take to stop its agents
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


@dataclass(frozen=True)
class ProcInfo:
    """One process seen in /proc."""

    pid: int
    ppid: int
    state: str
    comm: str
    cmdline: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.state}) {self.cmdline[:120] or self.comm}"


def _stat(pid: int) -> tuple[str, int, str] | None:
    """Return (state, ppid, comm) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), comm


def _info(pid: int) -> ProcInfo | None:
    st = _stat(pid)
    if st is None:
        return None
    try:
        cmd = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        cmd = ""
    return ProcInfo(pid, st[1], st[0], st[2], cmd.strip())


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def tagged(tag: str) -> list[ProcInfo]:
    """Return the live (non-zombie) processes whose environment carries ``tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            info = _info(pid)
            if info is not None and info.state != "Z":
                found.append(info)
    return found


def under(path: Path) -> list[ProcInfo]:
    """Return the live processes whose cwd is ``path`` or inside it."""
    target = str(path.resolve())
    found = []
    for pid in _pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            info = _info(pid)
            if info is not None and info.state != "Z":
                found.append(info)
    return found


def owned() -> set[int]:
    """Return the pids of every process a Launcher started (waited for by their Popen)."""
    return set(_OWNED)


def zombie_children(exclude: set[int]) -> list[ProcInfo]:
    """Return our children that are zombies (not counting processes we wait for ourselves)."""
    me = os.getpid()
    found = []
    for pid in _pids():
        st = _stat(pid)
        if st and st[1] == me and st[0] == "Z" and pid not in exclude:
            info = _info(pid)
            if info is not None:
                found.append(info)
    return found


class ZombieWatch:
    """Samples, while a block runs, zombies whose parent is a live process of the trial.

    A zombie is a child its parent has not waited for. One that lasts longer than ``grace_s``
    while that parent lives is a leak (the engine never reaps it). Children of a killed
    process re-parented to us are not counted: their parent is gone, not negligent.
    """

    def __init__(self, tag: str, *, grace_s: float = 2.0) -> None:
        self.tag, self.grace_s = tag, grace_s
        self.first_seen: dict[int, float] = {}
        self.leaks: dict[int, ProcInfo] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ZombieWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        parents = {p.pid for p in tagged(self.tag)}
        while not self._stop.wait(0.2):
            parents = {p.pid for p in tagged(self.tag)}
            now = time.monotonic()
            for pid in _pids():
                st = _stat(pid)
                if st is None or st[0] != "Z" or st[1] not in parents:
                    continue
                since = self.first_seen.setdefault(pid, now)
                info = _info(pid)
                if now - since > self.grace_s and info is not None:
                    self.leaks[pid] = info


def reap(exclude: set[int]) -> int:
    """Reap our zombie children that no Popen object owns; return how many."""
    count = 0
    for info in zombie_children(exclude):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.pid, os.WNOHANG)
            count += 1
    return count


def kill_tagged(tag: str) -> list[ProcInfo]:
    """SIGKILL every live process carrying ``tag`` (the end of a trial); return them."""
    left = tagged(tag)
    for info in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, signal.SIGKILL)
    return left


def _prctl(option: int, value: int) -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return -1
    if option == PR_GET_CHILD_SUBREAPER:
        out = ctypes.c_int(0)
        if libc.prctl(option, ctypes.byref(out), 0, 0, 0) != 0:
            return -1
        return out.value
    return int(libc.prctl(option, value, 0, 0, 0))


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """Make this process a child subreaper while the block runs; yield whether it worked."""
    before = _prctl(PR_GET_CHILD_SUBREAPER, 0)
    ok = before >= 0 and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    try:
        yield ok
    finally:
        if ok:
            _prctl(PR_SET_CHILD_SUBREAPER, before)


def limited(argv: list[str], memory_mb: int) -> list[str]:
    """Return ``argv`` wrapped so that it runs with its address space capped (no preexec_fn:
    forking with a Python callback is unsafe while other threads run)."""
    size = memory_mb * 1024 * 1024
    code = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({size}, {size})); "
        "os.execvp(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]


class Launcher:
    """Starts the processes of one trial and guarantees none of them outlives it."""

    def __init__(self, env: dict[str, str], tag: str) -> None:
        self.env = {**env, TAG_VAR: tag}
        self.tag = tag
        self.popens: list[subprocess.Popen[bytes]] = []
        _OPEN.append(self)

    def _own(self, p: subprocess.Popen[bytes]) -> None:
        self.popens.append(p)
        _OWNED.add(p.pid)

    def spawn(
        self,
        argv: list[str],
        *,
        cwd: Path,
        stdout: Any,
        stderr: Any,
        extra: dict[str, str] | None = None,
        memory_mb: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own session (address space capped at ``memory_mb``)."""
        if memory_mb is not None:
            argv = limited(argv, memory_mb)
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**self.env, **(extra or {})},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._own(p)
        return p

    def start(
        self, argv: list[str], *, cwd: Path, log: Path, extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own session, output appended to ``log``."""
        with log.open("ab") as fh:
            return self.spawn(argv, cwd=cwd, stdout=fh, stderr=fh, extra=extra)

    def run(
        self,
        argv: list[str],
        *,
        cwd: Path,
        timeout: float,
        extra: dict[str, str] | None = None,
        memory_mb: int | None = None,
    ) -> tuple[int | None, str, str, float]:
        """Run ``argv`` to the end; return (code or None on timeout, stdout, stderr, seconds)."""
        started = time.monotonic()
        p = self.spawn(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            extra=extra,
            memory_mb=memory_mb,
        )
        try:
            out, err = p.communicate(timeout=timeout)
            code: int | None = p.returncode
        except subprocess.TimeoutExpired:
            # Ask first (the engine pauses and stops its agents on SIGTERM), then force.
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            try:
                out, err = p.communicate(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
            code = None
        return (
            code,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            (time.monotonic() - started),
        )

    def close(self) -> list[ProcInfo]:
        """Kill and reap everything of this trial; return what was still alive."""
        for p in self.popens:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        _OWNED.difference_update(p.pid for p in self.popens)
        left = kill_tagged(self.tag)
        deadline = time.monotonic() + 5
        while tagged(self.tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        reap(owned())
        if self in _OPEN:
            _OPEN.remove(self)
        return left


def close_all() -> None:
    """Close every launcher still open (the harness is being stopped)."""
    for launcher in list(_OPEN):
        launcher.close()
