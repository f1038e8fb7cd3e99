"""`--wait-on-limit`: the engine waits out a usage or rate limit instead of pausing the run.

When an attempt hits a limit, its task goes back to the queue (the attempt not counted,
:func:`planfleet.state.ops.release`) and the run's state gets a ``limit_wait``: the kind of
limit, when it resets (parsed from what the runner reported, see :func:`parse_reset`) and
when dispatching resumes (the reset plus :data:`MARGIN_S`, or an exponential backoff when
no reset time is known). Limits are account-wide: no task starts while the wait lasts;
running attempts finish. The wait is in the state, so `status` shows it and an engine
killed while waiting leaves a wait the next engine goes on with (or drops).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planfleet.state.records import State, add_event, parse_iso, to_iso

MARGIN_S = 60.0  # after the reset: the limit's own clock may run a little behind ours
BACKOFF_START_S = 60.0  # no reset time: wait this long, doubling with every limit hit
BACKOFF_CAP_S = 1800.0  # ... up to 30 minutes
# Limits hit in a row (no attempt ending otherwise in between) before the run pauses
# instead: an agent that keeps saying it is limited right after every reset is not waited
# for forever.
MAX_WAITS = 8
# For tests only: shorter margin and backoff (seconds), so a wait takes seconds.
MARGIN_ENV = "PLANFLEET_LIMIT_MARGIN_S"
BACKOFF_ENV = "PLANFLEET_LIMIT_BACKOFF_S"

_CLOCK = re.compile(
    r"^(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\.?(?:\s*\(([^()]+)\))?\s*$", re.IGNORECASE
)


def parse_reset(text: str | None, now: _dt.datetime) -> _dt.datetime | None:
    """Return when a limit resets (aware, UTC) from the runner's words; None if unknown.

    ``text`` is ISO 8601 (what the runner makes of an epoch) or the CLI's clock time,
    ``3pm``, ``3:30pm`` or ``11am (Europe/Berlin)``: its next occurrence after ``now``,
    in the named time zone (else this machine's). Anything else, an unknown time zone, or
    an ISO time already past is None: the caller backs off instead.
    """
    if not text:
        return None
    text = text.strip()
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _next_clock_time(text, now)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc) if moment > now else None


def _next_clock_time(text: str, now: _dt.datetime) -> _dt.datetime | None:
    found = _CLOCK.match(text)
    if found is None:
        return None
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    if not (1 <= hour <= 12 and minute < 60):
        return None
    hour = hour % 12 + (12 if found.group(3).lower() == "p" else 0)
    zone_name = found.group(4)
    try:
        zone: _dt.tzinfo | None = ZoneInfo(zone_name.strip()) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local = now.astimezone(zone)  # None: this machine's time zone
    when = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when <= local:
        when = (local + _dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=0)
    return when.astimezone(_dt.timezone.utc)


def backoff_s(hits: int, start: float = BACKOFF_START_S, cap: float = BACKOFF_CAP_S) -> float:
    """Return the wait after the ``hits``-th limit in a row with no reset time: doubling, capped."""
    return min(cap, start * 2.0 ** min(max(hits, 1) - 1, 64))


def _seconds(name: str, default: float, env: Mapping[str, str]) -> float:
    try:
        value = float(env[name])
    except (KeyError, ValueError):
        return default
    return value if value >= 0 else default


class LimitWaiter:
    """The engine's side of a limit wait: starts, extends, adopts and ends it in the state."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.margin_s = _seconds(MARGIN_ENV, MARGIN_S, env)
        self.backoff_start_s = _seconds(BACKOFF_ENV, BACKOFF_START_S, env)
        self.hits = 0  # limits hit in a row, for the backoff (an attempt without one: 0)
        self.resume_at: _dt.datetime | None = None  # set while waiting

    @property
    def active(self) -> bool:
        return self.resume_at is not None

    def begin(self, state: State, task: str, kind: str, detail: str | None) -> bool:
        """Record that ``task`` hit a ``kind`` limit: wait until its reset (or back off).

        Return False when :data:`MAX_WAITS` limits came in a row: the caller pauses the run.
        """
        now = _dt.datetime.now(_dt.timezone.utc)
        reset = parse_reset(detail, now)
        if not self.active:
            self.hits += 1
            if self.hits > MAX_WAITS:
                self.hits, self.resume_at = 0, None
                add_event(state, "limit_wait_end", task, f"{MAX_WAITS} limits in a row: pausing")
                return False
        if reset is not None:
            resume = reset + _dt.timedelta(seconds=self.margin_s)
        else:
            resume = now + _dt.timedelta(seconds=backoff_s(self.hits, self.backoff_start_s))
        if self.resume_at is not None and resume <= self.resume_at:
            return True  # another running attempt hit the same limit: the wait stands
        self.resume_at = resume
        wait = {
            "kind": kind,
            "task": task,
            "detail": detail,
            "reset_at": to_iso(reset) if reset else None,
            "resume_at": to_iso(resume),
            "since": to_iso(now),
            "hits": self.hits,
        }
        state["limit_wait"] = wait
        add_event(state, "limit_wait", task, event_detail(wait))
        return True

    def attempt_ended(self) -> None:
        """An attempt ended without a limit: the next limit backs off from the start."""
        self.hits = 0

    def holding(self, state: State) -> bool:
        """Return True while the wait lasts; end it (in ``state``) once it is over."""
        if self.resume_at is None:
            return False
        if _dt.datetime.now(_dt.timezone.utc) < self.resume_at:
            return True
        self.end(state, "the limit should have reset: dispatching again")
        return False

    def due(self) -> bool:
        """Return True if a wait is on and its time has come (the next pass ends it)."""
        return self.resume_at is not None and _dt.datetime.now(_dt.timezone.utc) >= self.resume_at

    def end(self, state: State, why: str) -> None:
        """End the wait (if there is one), with an event saying ``why``."""
        self.resume_at = None
        if state.pop("limit_wait", None) is not None:
            add_event(state, "limit_wait_end", None, why)

    def adopt(self, state: State, *, wait_on_limit: bool) -> None:
        """Go on with the wait a dead engine left in ``state``, or drop it."""
        left = state.get("limit_wait")
        if left is None:
            return
        resume = parse_iso(left["resume_at"])
        if not wait_on_limit or resume <= _dt.datetime.now(_dt.timezone.utc):
            self.end(state, "the engine that waited is gone")
            return
        self.hits, self.resume_at = int(left["hits"]), resume
        add_event(state, "limit_wait", left.get("task"), "continued: " + event_detail(left))


def event_detail(wait: Mapping[str, Any]) -> str:
    """Return the ``limit_wait`` event's words: the kind, the reset and the resume time."""
    reset = wait.get("reset_at") or "unknown"
    return f"{wait['kind']}; reset {reset}; resume at {wait['resume_at']}"


def waiting_line(wait: Mapping[str, Any], now: _dt.datetime | None = None) -> str:
    """Return ``waiting for the usage limit to reset at HH:MM (in 1 h 12 min)`` for a wait."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    what = str(wait["kind"]).replace("_", " ")
    resume = parse_iso(str(wait["resume_at"]))
    if not wait.get("reset_at"):
        at, left = _clock(resume), _span((resume - now).total_seconds())
        return (
            f"waiting for the {what} to reset (no reset time given): next try at {at} (in {left})"
        )
    reset = parse_iso(str(wait["reset_at"]))
    if reset > now:
        left = _span((reset - now).total_seconds())
        return f"waiting for the {what} to reset at {_clock(reset)} (in {left})"
    left = _span((resume - now).total_seconds())
    return f"waiting for the {what} to reset at {_clock(reset)} (resuming in {left})"


def _clock(moment: _dt.datetime) -> str:
    """Return ``HH:MM`` on this machine's clock, as the person reading it knows the time."""
    return moment.astimezone().strftime("%H:%M")


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes = int(-(-seconds // 60))  # rounded up: "in 0 min" would say it is over
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    return f"{minutes // 60} h {minutes % 60} min"
