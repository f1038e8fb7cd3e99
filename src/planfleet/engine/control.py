"""What stops a running engine: `planfleet stop` requests, signals, and a pause of its own.

The engine's main thread owns a :class:`RunControl`. Attempts poll the events it hands out:
``stop_all`` stops every attempt at once (a pause), a task's own event stops only that task
(``planfleet stop --task``, after which the task is held).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from planfleet.engine import runinfo
from planfleet.state import ops
from planfleet.state.records import HOLDABLE, add_event
from planfleet.state.store import StateStore


class RunControl:
    """The stop events of one run, the tasks to hold, and why the run pauses (if it does)."""

    def __init__(self) -> None:
        self.stop_all = threading.Event()  # set: every running attempt stops now
        self.task_stops: dict[str, threading.Event] = {}
        self.to_hold: set[str] = set()  # running tasks `stop --task` asked to hold
        self.pause_reason: str | None = None

    def pause(self, reason: str) -> None:
        """Pause the run for ``reason`` (the first reason wins) and stop every attempt."""
        if self.pause_reason is None:
            self.pause_reason = reason
            self.stop_all.set()

    def task_event(self, tid: str) -> threading.Event:
        """Return the event an attempt of ``tid`` polls: its own stop or the stop of all."""
        own = self.task_stops[tid] = threading.Event()
        return Either(own, self.stop_all)

    def finished(self, tid: str) -> bool:
        """Forget the attempt of ``tid``; return True if it is to be held now."""
        self.task_stops.pop(tid, None)
        hold = tid in self.to_hold
        self.to_hold.discard(tid)
        return hold

    def handle_requests(self, repo: Path, plan: str, store: StateStore) -> bool:
        """Act on the requests `planfleet stop` left; return True if there were any."""
        found = runinfo.pending_requests(repo, plan)
        if not found:
            return False
        if runinfo.PAUSE in found:
            self.pause("stopped by planfleet stop")
        for name in found - {runinfo.PAUSE}:
            tid = name.removeprefix("stop-")
            with store.transaction() as state:
                record = state["tasks"].get(tid)
                if tid in self.task_stops:
                    # its attempt ends as "stopped" and is then held (Recorder.attempt)
                    self.task_stops[tid].set()
                    self.to_hold.add(tid)
                    add_event(state, "stop_requested", tid, "planfleet stop --task")
                elif record is not None and record["status"] in HOLDABLE:
                    ops.hold(state, tid, runinfo.HELD_NOTE)
        runinfo.clear_requests(repo, plan, found)
        return True

    @contextlib.contextmanager
    def signals(self, *, detached: bool) -> Iterator[None]:
        """Pause on SIGTERM (and SIGHUP unless detached) while the run lasts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_term(signum: int, frame: FrameType | None) -> None:
            self.pause(f"stopped by signal {signal.Signals(signum).name}")

        old = signal.signal(signal.SIGTERM, on_term)
        old_hup = signal.signal(signal.SIGHUP, on_term) if not detached else None
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)
            if old_hup is not None:
                signal.signal(signal.SIGHUP, old_hup)


class Either(threading.Event):
    """An event that is set when either of two events is (checked by the runner's poll)."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        super().__init__()
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True
