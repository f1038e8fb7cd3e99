"""Watching one cloud attempt's task branch on the remote until it ends (see cloud.py).

The remote is polled (``git ls-remote``) with a back-off from ``poll_s`` to ``poll_max_s``;
between polls the wait looks at the stop event and at the CLI (a session named, or the CLI
gone). Each new push is fetched into a private ref; one whose last commit carries the
``Planfleet-Result`` trailer is brought into the task branch and ends the attempt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from planfleet.errors import CommandError
from planfleet.runners import AgentRequest, AgentResult, cloudgit
from planfleet.runners.cloudpty import Session

_SLICE_S = 0.2  # how often a wait between polls looks at the stop event and the CLI


@dataclass(frozen=True)
class Settings:
    """The cloud runner's checked options."""

    remote: str
    environment: str | None
    poll_s: float
    poll_max_s: float
    binary: str | None


class Source(Protocol):
    """Where the session comes from: a :class:`~planfleet.runners.cloudpty.Launch`, or
    :class:`Adopted` (a session an earlier engine started)."""

    session: Session | None
    news: threading.Event

    def exit_code(self) -> int | None: ...

    def ended(self) -> bool: ...

    def output(self) -> str: ...


class Adopted:
    """A session started by an earlier engine: known from the state, no local process."""

    def __init__(self, session: Session) -> None:
        self.session: Session | None = session
        self.news = threading.Event()

    def exit_code(self) -> int | None:
        return None

    def ended(self) -> bool:
        return False

    def output(self) -> str:
        return ""


class Notes:
    """Appends the runner's own lines to the attempt's log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"[planfleet] {line}\n")


class Watch:
    """The polling of one attempt's task branch, from the session's start to its end."""

    def __init__(
        self,
        request: AgentRequest,
        s: Settings,
        names: cloudgit.Names,
        launch: Source,
        note: Notes,
        start: float,
    ) -> None:
        self.request, self.s, self.names, self.launch, self.note = request, s, names, launch, note
        self.start = start
        self.ref = cloudgit.private_ref(request.plan.name, request.task.id)
        self.session_told = False
        self.news_taken = False

    def run(self, stop: threading.Event) -> AgentResult:
        request, s = self.request, self.s
        interval = s.poll_s
        tip: str | None = None
        last_change = time.monotonic()
        while True:
            self._session()
            failed = self._launch_failed(tip)
            if failed is not None:
                return failed
            try:
                now_tip = cloudgit.remote_tip(request.repo, s.remote, self.names.task)
            except CommandError as exc:  # the network, for a moment: the next poll asks again
                self.note(f"could not ask {s.remote}: {exc.message.splitlines()[0]}")
                now_tip = tip
            if now_tip is not None and now_tip != tip:
                tip, last_change, interval = now_tip, time.monotonic(), s.poll_s
                done = self._pushed(tip)
                if done is not None:
                    return done
            else:
                interval = min(interval * 2, s.poll_max_s)
            now = time.monotonic()
            if now - self.start > request.timeout_s:
                return self._no_result(tip, f"by the timeout of {request.timeout_s:g} s")
            if tip is not None and now - last_change > request.stall_s:
                return self._no_result(tip, f"and nothing new for {request.stall_s:g} s (stall)")
            if self._wait(min(interval, max(0.0, request.timeout_s - (now - self.start))), stop):
                return self._result(
                    "stopped",
                    "the cloud attempt was stopped; the session may still run (see its URL)",
                )

    def _wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` (or until the CLI has news); return True when stopped."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stop.wait(_SLICE_S):
                return True
            if self.launch.news.is_set() and not self.news_taken:
                self.news_taken = True  # the session was named, or the CLI ended: look now
                return False
        return stop.is_set()

    def _session(self) -> None:
        found = self.launch.session
        if found is None or self.session_told:
            return
        self.session_told = True
        self.note(f"session {found.session_id or '?'} {found.url or ''}".rstrip())
        if self.request.on_session is not None:
            self.request.on_session(found.session_id or "", found.url)

    def _launch_failed(self, tip: str | None) -> AgentResult | None:
        """Return the failed start when the CLI exited non-zero before naming a session."""
        code = self.launch.exit_code()
        if tip is not None or self.launch.session is not None or code in (None, 0):
            return None
        if not self.launch.ended():
            return None
        lines = [ln for ln in self.launch.output().splitlines() if ln.strip()]
        said = lines[-1].strip() if lines else "no output"
        result = self._result(
            "not_started", f"claude --cloud exited {code} without a session: {said}"
        )
        result.error_kind, result.exit_code = "start_failed", code
        return result

    def _pushed(self, tip: str) -> AgentResult | None:
        """Fetch a new push; return the attempt's result when it carries the marker."""
        worktree = self.request.worktree
        try:
            cloudgit.fetch(worktree, self.s.remote, self.names.task, self.ref)
            value = cloudgit.marker(tip, cwd=worktree)
        except CommandError as exc:
            self.note(f"could not fetch {self.names.task}: {exc.message.splitlines()[0]}")
            return None
        if value is None:
            self.note(f"{self.names.task} is at {tip[:12]} (no {cloudgit.MARKER} trailer yet)")
            return None
        self.note(f"{self.names.task} is at {tip[:12]} with its {cloudgit.MARKER} trailer")
        result = self._result("exited", f"the cloud session pushed {tip[:12]} to {self.names.task}")
        result.exit_code = 0
        result.claims = cloudgit.claims_of(value)
        if result.claims is None:
            result.message += f"; its {cloudgit.MARKER} trailer is not a JSON object"
        problem = cloudgit.take(worktree, tip, self.request.base_commit)
        if problem is not None:
            result.error_kind, result.message = "bad_push", problem
        return result

    def _no_result(self, tip: str | None, when: str) -> AgentResult:
        if tip is None:
            return self._result(
                "timeout",
                f"the cloud session pushed nothing to {self.names.task} {when}",
            )
        result = self._result(
            "exited",
            f"the cloud session pushed {tip[:12]} to {self.names.task} without a "
            f"{cloudgit.MARKER} trailer {when}; not taken (the work stays on that branch)",
        )
        result.error_kind = "no_result"
        return result

    def _result(self, ending: Any, message: str) -> AgentResult:
        found = self.launch.session
        return AgentResult(
            ending=ending,
            exit_code=None,
            duration_s=0.0,
            session_id=found.session_id if found else None,
            session_url=found.url if found else None,
            message=message,
        )
