"""The running engine of a plan: one at a time, who it is, and how to ask it to stop.

An engine holds ``runs/<plan>/engine.lock`` for its whole life (the OS drops the lock
when the process dies, even on SIGKILL) and describes itself in ``engine.json``. Other
commands talk to it through request files in ``runs/<plan>/requests/``: the engine looks
at that folder on every turn of its loop, so asking needs no signal and works across
users of the same checkout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from planfleet import fsutil, jsonread, paths, proc
from planfleet.errors import InputError, RefusedError
from planfleet.ids import check_id
from planfleet.state.records import hostname, now_iso

LOCK_NAME = "engine.lock"
INFO_NAME = "engine.json"
REQUESTS = "requests"
PAUSE = "pause"
# Why a task is held: the words of the event, the note and `status` after `stop --task`.
HELD_NOTE = "stopped by request (planfleet stop --task)"
MAX_PID = 2**22  # the largest pid_max Linux allows


@dataclass(frozen=True)
class EngineInfo:
    """What ``engine.json`` says about the engine of a plan, and whether it still runs."""

    plan: str
    pid: int
    pid_start: str | None
    host: str
    started_at: str
    command: str
    detached: bool
    log: str | None

    @property
    def alive(self) -> bool:
        """Return True if that very process still runs (same pid *and* start time)."""
        if self.host != hostname():
            return True  # cannot tell from here; the lock decides
        return proc.pid_alive(self.pid) and proc.process_start_time(self.pid) == self.pid_start

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "alive": self.alive}


def read_info(repo: Path, plan: str) -> EngineInfo | None:
    """Return the last engine's description for ``plan``, or None if there never was one.

    Raises InputError naming ``engine.json`` when it is there but damaged.
    """
    path = paths.runs_dir(repo, plan) / INFO_NAME
    if not path.exists():
        return None
    shown = str(path.relative_to(repo)) if path.is_relative_to(repo) else str(path)
    hint = f"when no engine of {plan} runs, delete {shown} (the engine writes it anew)"
    data = jsonread.read(path, display=shown, hint=hint)
    try:
        pid = data["pid"]
        if type(pid) is not int or not 0 < pid <= MAX_PID:
            raise ValueError(f"pid {str(pid)[:20]!r} is not a process id")
        return EngineInfo(
            plan=str(data["plan"]),
            pid=pid,
            pid_start=data.get("pid_start"),
            host=str(data["host"]),
            started_at=str(data["started_at"]),
            command=str(data.get("command", "")),
            detached=bool(data.get("detached", False)),
            log=data.get("log"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        why = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise InputError(
            f"not an engine description (an object with plan, pid, host, started_at): {why}",
            file=shown,
            hint=hint,
        ) from None


def is_running(repo: Path, plan: str) -> bool:
    """Return True if an engine holds the plan's lock right now."""
    lock_path = paths.runs_dir(repo, plan) / LOCK_NAME
    if not lock_path.exists():
        return False
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


@contextmanager
def engine_lock(
    repo: Path, plan: str, *, detached: bool = False, log: Path | None = None
) -> Iterator[EngineInfo]:
    """Hold the plan's engine lock and publish ``engine.json``; RefusedError if held."""
    folder = paths.writable(repo, paths.runs_dir(repo, plan), folder=True)
    lock = filelock.FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        try:
            holder = read_info(repo, plan)
        except InputError:
            holder = None  # the refusal matters, not who holds the lock
        who = (
            f"pid {holder.pid} on {holder.host} ({holder.command}) since {holder.started_at}"
            if holder
            else "another process"
        )
        raise RefusedError(
            f"plan {plan!r} is already being run by {who}",
            reason="engine_running",
            next_step=f"watch it with `planfleet status {plan}`, or stop it with "
            f"`planfleet stop {plan}`",
            details={"holder": holder.to_json() if holder else None},
        ) from None
    try:
        pid = os.getpid()
        info = EngineInfo(
            plan=plan,
            pid=pid,
            pid_start=proc.process_start_time(pid),
            host=hostname(),
            started_at=now_iso(),
            command=" ".join(["planfleet", *sys.argv[1:]])[:500],
            detached=detached,
            log=str(log) if log else None,
        )
        fsutil.atomic_write(folder / INFO_NAME, json.dumps(info.__dict__, indent=2) + "\n")
        clear_requests(repo, plan)
        yield info
    finally:
        lock.release()


def request(repo: Path, plan: str, name: str) -> Path:
    """Leave the request ``name`` (``pause`` or ``stop-<task>``) for the plan's engine."""
    folder = paths.writable(repo, paths.runs_dir(repo, plan) / REQUESTS, folder=True)
    target = folder / name
    fsutil.atomic_write(target, now_iso() + "\n", fsync_dir=False)
    return target


def stop_task_request(task: str) -> str:
    return f"stop-{check_id(task, what='task id')}"


def pending_requests(repo: Path, plan: str) -> set[str]:
    """Return the names of the requests waiting for the plan's engine."""
    try:
        return {
            e for e in os.listdir(paths.runs_dir(repo, plan) / REQUESTS) if not e.startswith(".")
        }
    except OSError:
        return set()


def clear_requests(repo: Path, plan: str, names: set[str] | None = None) -> None:
    """Remove the given requests (default: all) once handled."""
    folder = paths.runs_dir(repo, plan) / REQUESTS
    for name in names if names is not None else pending_requests(repo, plan):
        with suppress(OSError):
            (folder / name).unlink()


def wait_stopped(repo: Path, plan: str, timeout_s: float) -> bool:
    """Wait until no engine holds the plan; return False if one still does at the deadline."""
    deadline = time.monotonic() + timeout_s
    while is_running(repo, plan):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def signal_engine(info: EngineInfo, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Send ``sig`` to a live engine on this host; return False if there is none to signal."""
    if info.host != hostname() or not info.alive:
        return False
    with suppress(ProcessLookupError, PermissionError):
        os.kill(info.pid, sig)
        return True
    return False
