"""What a run shows while it goes: new events to the listener, the plan's progress files.

The projections (checkboxes, checkpoints, logs, ...) are rendered from the state, at most
every :data:`PROJECTION_EVERY_S` seconds; a problem there is logged and never stops a run.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from pathlib import Path

from planfleet import paths
from planfleet.engine.options import Listener
from planfleet.errors import PlanfleetError
from planfleet.plan import model
from planfleet.state.records import State, now_iso

PROJECTION_EVERY_S = 2.0


class Publisher:
    """Tells the listener about new events and re-renders the projections (throttled)."""

    def __init__(
        self, repo: Path, plan: model.Plan, listener: Listener | None, *, projections: bool
    ) -> None:
        self.repo, self.plan, self.listener = repo, plan, listener
        self.projections = projections  # False: --no-projections, the checkout stays as it was
        self._last_projection = 0.0
        self._events_seen = 0

    def __call__(self, state: State, *, force: bool = False) -> None:
        events = state["events"]
        fresh = events[self._events_seen :] if self._events_seen <= len(events) else events[-1:]
        self._events_seen = len(events)
        if self.listener is not None and (fresh or force):
            self.listener(state, fresh)
        now = time.monotonic()
        if not self.projections:
            return
        if force or (fresh and now - self._last_projection > PROJECTION_EVERY_S):
            self._last_projection = now
            render_projections(self.repo, self.plan, state)


def render_projections(repo: Path, plan: model.Plan, state: State) -> None:
    """Render the human-facing files; a problem there is logged, never fatal to the run."""
    try:
        from planfleet.views import render as projections

        projections.render_all(repo, plan, state)
    except Exception:
        log = paths.runs_dir(repo, plan.name) / "projections.log"
        with contextlib.suppress(OSError, PlanfleetError):
            paths.writable(repo, log)
            with log.open("a", encoding="utf-8") as fh:
                fh.write(f"{now_iso()} {traceback.format_exc()}\n")
