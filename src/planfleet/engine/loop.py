"""The engine: turns a plan into merged, verified commits on the integration branch.

One main thread owns the state: it picks tasks (:mod:`planfleet.engine.scheduler`), records every
change in one state transaction, merges verified branches one at a time and renders the
human-facing projections. Attempts and phase gates run in worker threads and only return
outcomes. Any crash leaves a state a later ``planfleet resume`` continues from: in-progress
tasks of a dead engine are orphans and go back to the queue with their worktrees.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from planfleet import git, paths
from planfleet.engine import runend, runinfo, scheduler
from planfleet.engine.attempt import AttemptSpec, Outcome, run_attempt
from planfleet.engine.phasegate import GateOutcome, run_gate
from planfleet.engine.record import Recorder
from planfleet.engine.setup import (
    load_or_take_baseline,
    prepare_state,
    recheck_verified,
    refuse_foreign_commands,
)
from planfleet.errors import PlanfleetError
from planfleet.plan import graph, model
from planfleet.repo import guards, worktrees
from planfleet.repo import pool as worktree_pool
from planfleet.repo.scratch import remove_checkout
from planfleet.runners import Runner, get_runner
from planfleet.state import ops
from planfleet.state.records import (
    HOLDABLE,
    State,
    add_event,
    now_iso,
    set_run_status,
)
from planfleet.state.store import StateStore
from planfleet.verify import gates, history, testcmd

POLL_S = 0.1
REFRESH_S = 2.0  # re-read the state this often even when none of our workers finished
HEARTBEAT_S = 60.0
PROJECTION_EVERY_S = 2.0


@dataclass
class RunOptions:
    """How to run a plan (the ``planfleet run`` flags)."""

    runner: str = "claude"
    runner_options: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 3
    max_attempts: int = 5
    phases: tuple[str, ...] = ()  # only these phases (empty: all)
    tasks: tuple[str, ...] = ()  # only these tasks (empty: all)
    model: str | None = None
    escalate_model: str | None = None
    fail_fast: bool = False
    budget_usd: float | None = None  # the whole run
    task_budget_usd: float | None = None  # per attempt, passed to the agent
    timeout_s: float = 600.0
    stall_s: float = 300.0
    post_merge_check: bool = True
    strict_files: bool = False  # undeclared changes fail an attempt (else: reported)
    projections: bool = True  # update the plan's own progress files in the checkout
    base: str | None = None  # where the integration branch starts (default HEAD)
    detached: bool = False
    log: Path | None = None
    test_command: str | None = None  # --test-cmd: wins over the plan's ("": no tests gate)
    test_timeout_s: float | None = None  # --test-timeout: a fixed limit per test run


@dataclass
class RunResult:
    """How a run ended."""

    plan: str
    status: str  # the run status: completed | paused | failed
    reason: str  # why it stopped, in words
    state: State
    cost_usd: float
    elapsed_s: float
    stuck: bool = False  # paused with selected work left that nothing could start

    @property
    def exit_code(self) -> int:
        if self.stuck or self.status not in ("completed", "paused"):
            return 1
        return 0 if "abandoned" not in self.reason else 1


Listener = Callable[[State, list[dict[str, Any]]], None]


class Engine:
    """One run of one plan; :meth:`run` is the whole life of the engine."""

    def __init__(
        self, repo: Path, plan: model.Plan, opts: RunOptions, listener: Listener | None = None
    ) -> None:
        self.repo = repo.resolve()
        self.tests = testcmd.choose(
            self.repo, plan, flag=opts.test_command, flag_timeout=opts.test_timeout_s
        )
        self.plan = plan = testcmd.apply(plan, self.tests)
        self.opts = opts
        self.listener = listener
        self.graph = graph.build(plan)
        self.sched = scheduler.Scheduler.for_plan(
            plan, self.graph, max_parallel=opts.max_parallel, max_attempts=opts.max_attempts
        )
        self.store = StateStore.for_plan(self.repo, plan.name)
        self.runner: Runner = get_runner(opts.runner, opts.runner_options)
        self.stop_all = threading.Event()  # set: every running attempt stops now
        self.task_stops: dict[str, threading.Event] = {}
        self.to_hold: set[str] = set()  # running tasks `stop --task` asked to hold
        self.running: dict[str, Future[Outcome]] = {}
        self.gates: dict[str, Future[GateOutcome]] = {}
        self.caps: dict[str, float] = {}  # budget reserved by each running attempt
        self.baseline: gates.Baseline | None = None
        self.pause_reason: str | None = None
        self.no_more = False  # fail-fast or budget: dispatch nothing new
        self.no_more_reason = ""
        self.scope = self._scope()
        self.recorder = Recorder(
            self.repo,
            plan,
            self.store,
            self.sched.priority,
            opts.max_attempts,
            opts.post_merge_check,
            opts.timeout_s,
            self._pause,
        )
        self._last_projection = 0.0
        self._last_heartbeat = time.monotonic()
        self._events_seen = 0
        self._changed = True  # something happened since the last dispatch pass

    # -- the life of a run ------------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.monotonic()
        paths.prepare_run(self.repo, self.plan.name)  # a link in .planfleet/ refuses at once
        with runinfo.engine_lock(
            self.repo, self.plan.name, detached=self.opts.detached, log=self.opts.log
        ):
            refuse_foreign_commands(self.plan, self.repo)  # before any branch is made
            testcmd.require(self.plan, self.tests)
            integ = worktrees.ensure_integration(self.repo, self.plan.name, self.opts.base)
            # Before the state: a baseline that cannot be taken refuses the run unrecorded.
            self.baseline = load_or_take_baseline(
                self.repo, self.plan, integ, timeout_s=self.opts.timeout_s
            )
            prepare_state(self.store, self.plan, self.repo, integ, self.scope)
            # Verified work a previous engine queued but did not merge goes first.
            self.recorder.merge_queue()
            with (
                self._signals(),
                ThreadPoolExecutor(
                    max_workers=self.opts.max_parallel + 2, thread_name_prefix="planfleet"
                ) as pool,
            ):
                try:
                    self._loop(pool)
                except KeyboardInterrupt:
                    self.pause_reason = "interrupted"
                    self._drain()
                    raise
                finally:
                    if self.running or self.gates:
                        self.stop_all.set()
                        self._drain()
            end = self._close()
        state = self.store.load()
        return RunResult(
            self.plan.name,
            end.status,
            end.reason,
            state,
            float(state["totals"]["cost_usd"]),
            time.monotonic() - started,
            end.stuck,
        )

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        last_pass = 0.0
        while True:
            self._handle_requests()
            # Something can become ready only when an outcome was recorded (or the state was
            # changed from outside, e.g. `planfleet state reset`): no need to re-read and
            # re-validate the state file on every poll.
            due = self._changed or time.monotonic() - last_pass > REFRESH_S
            if self.pause_reason is None and due:
                self._changed, last_pass = False, time.monotonic()
                with self.store.transaction() as state:
                    self._block_doomed(state)
                    self._dispatch(state, pool)
                    self._dispatch_gates(state, pool)
                self._publish(state)
            if not self.running and not self.gates:
                if self.pause_reason is not None or not self._work_left():
                    if self.pause_reason is None and self._lost_merges():
                        self._changed = True
                        continue  # someone moved the integration branch: redo what it lost
                    return
                if self.no_more:
                    return
            busy: list[Future[Any]] = [*self.running.values(), *self.gates.values()]
            if busy:
                wait(busy, timeout=POLL_S, return_when=FIRST_COMPLETED)
            else:
                time.sleep(POLL_S)
            for tid, fut in list(self.running.items()):
                if fut.done():
                    del self.running[tid]
                    self.caps.pop(tid, None)
                    self._record(fut.result())
                    self._changed = True
            for gid, gfut in list(self.gates.items()):
                if gfut.done():
                    del self.gates[gid]
                    self._changed = True
                    self._record_gate(gid, gfut.result())
            self._heartbeat()

    def _lost_merges(self) -> list[str]:
        """Demote merged tasks whose commit left the integration branch; return them."""
        ref = git.branch_ref(worktrees.integration_branch(self.plan.name))
        with self.store.transaction() as state:
            return recheck_verified(
                state, self.repo, self.plan.name, worktrees.resolve_commit(self.repo, ref)
            )

    def _drain(self) -> None:
        """Wait for every worker (after a stop) and record what they return."""
        for tid, fut in list(self.running.items()):
            self._record(fut.result())
            del self.running[tid]
        for gid, gfut in list(self.gates.items()):
            self._record_gate(gid, gfut.result())
            del self.gates[gid]

    def _close(self) -> runend.RunEnd:
        """Set the final run status; return it with the reason in words."""
        with self.store.transaction() as state:
            end = runend.classify(
                state,
                self.scope,
                pause_reason=self.pause_reason,
                stop_reason=self.no_more_reason if self.no_more else None,
            )
            set_run_status(state, end.status)
            add_event(state, "run_end", None, end.reason)
        # Worktrees of merged tasks hold nothing more (an engine killed between merging
        # and cleaning up leaves one behind).
        for tid in state["order"]:
            record = state["tasks"][tid]
            if (
                record.get("merged_at")
                and record["kind"] == "task"
                and worktrees.task_worktree(self.repo, self.plan.name, tid).exists()
            ):
                with contextlib.suppress(PlanfleetError):
                    guards.remove(self.repo, self.plan.name, tid)
                    # a folder git no longer knows: its files go to a rescue branch
                    worktree_pool.set_aside(self.repo, self.plan.name, tid)
        # Spares and the merge worktree only speed up work within a run.
        with contextlib.suppress(PlanfleetError):
            worktree_pool.drain(self.repo, self.plan.name)
        with worktrees.repo_lock(self.repo, worktrees.METADATA_LOCK):
            remove_checkout(self.repo, worktrees.merge_worktree(self.repo, self.plan.name))
        self._publish(state, force=True)
        return end

    # -- dispatching ------------------------------------------------------------------------

    def _scope(self) -> frozenset[str] | None:
        return run_scope(self.plan, self.opts)

    def _dispatch(self, state: State, pool: ThreadPoolExecutor) -> None:
        if self.no_more:
            return
        if self.opts.fail_fast and state["abandoned"]:
            self._stop_dispatching(state, f"--fail-fast: {state['abandoned'][0]} was abandoned")
            return
        for tid in self.sched.pick(state, self.running.keys()):
            if self.scope is not None and tid not in self.scope:
                continue
            cap = float(self.opts.task_budget_usd or 0.0)  # what this attempt may spend
            if not self._affordable(state, cap):
                break
            before = state["tasks"][tid]  # read before the claim clears the error
            resume = _resumable(before)
            # the last counted attempt failed: its branch goes back to the base first
            retry_of = int(before["attempts"]) if before["error"] and before["attempts"] else None
            record = ops.claim(state, tid, owner=f"engine:{self.plan.name}")
            ops.attach_process(state, tid, os.getpid())
            spec = self._spec(tid, record, resume, retry_of)
            stop = self.task_stops[tid] = threading.Event()
            self.caps[tid] = cap
            self.running[tid] = pool.submit(self._attempt, spec, stop)
            record.update(
                worktree=str(worktrees.task_worktree(self.repo, self.plan.name, tid)),
                branch=worktrees.task_branch(self.plan.name, tid),
            )
            add_event(state, "dispatched", tid, f"attempt {record['attempts']}")

    def _attempt(self, spec: AttemptSpec, stop: threading.Event) -> Outcome:
        merged = _Either(stop, self.stop_all)
        return run_attempt(spec, self.runner, merged)

    def _spec(
        self, tid: str, record: dict[str, Any], resume: str | None, retry_of: int | None
    ) -> AttemptSpec:
        task = self.plan.task(tid)
        limit = int(record["max_attempts"] or task.max_attempts or self.opts.max_attempts)
        model_name = self.opts.model
        if self.opts.escalate_model and record["attempts"] > 1 and record["attempts"] >= limit - 1:
            model_name = self.opts.escalate_model
        return AttemptSpec(
            repo=self.repo,
            plan=self.plan,
            task=task,
            attempt=int(record["attempts"]),
            max_attempts=limit,
            timeout_s=task.timeout_s or self.opts.timeout_s,
            stall_s=self.opts.stall_s,
            feedback=record["feedback"],
            resume_session=resume,
            model=model_name,
            budget_usd=self.opts.task_budget_usd,
            baseline=self.baseline,
            options=self.opts.runner_options,
            retry_of=retry_of,
            strict_files=self.opts.strict_files,
            on_start=functools.partial(self._started, tid, int(record["attempts"])),
        )

    def _started(self, tid: str, attempt: int, pgid: int) -> None:
        """Record the process group an attempt's agent runs in (called by its worker thread).

        Recorded at once, not by the main thread later: a resume after ``kill -9`` of the
        engine stops that group. (A store of its own: its lock works across threads.)
        """
        store = StateStore.for_plan(self.repo, self.plan.name)
        with contextlib.suppress(PlanfleetError), store.transaction() as state:
            record = state["tasks"].get(tid)
            if record and record["status"] == "in_progress" and record["attempts"] == attempt:
                ops.attach_group(state, tid, pgid)

    def _affordable(self, state: State, cap: float) -> bool:
        budget = self.opts.budget_usd
        if budget is None:
            return True
        committed = float(state["totals"]["cost_usd"]) + sum(self.caps.values())
        if committed + cap <= budget:
            return True
        self._stop_dispatching(
            state,
            f"budget: ${committed:.2f} spent or reserved, the next task could cross "
            f"--budget-usd {budget:g}",
        )
        return False

    def _stop_dispatching(self, state: State, reason: str) -> None:
        """Start nothing new from now on (called inside the dispatch transaction)."""
        if not self.no_more:
            self.no_more, self.no_more_reason = True, reason
            add_event(state, "dispatch_stopped", None, reason)

    def _dispatch_gates(self, state: State, pool: ThreadPoolExecutor) -> None:
        for gid in self.sched.ready_gates(state, self.gates.keys()):
            if self.scope is not None and gid not in self.scope:
                continue
            phase = self.plan.phase(state["tasks"][gid]["phase"])
            ops.claim(state, gid, owner=f"engine:{self.plan.name}")
            ops.attach_process(state, gid, os.getpid())
            integ = worktrees.resolve_commit(
                self.repo, git.branch_ref(worktrees.integration_branch(self.plan.name))
            )
            # the phase's changes: from where its first task started (or the run started)
            bases = [state["tasks"].get(t, {}).get("base_commit") for t in phase.task_ids]
            if self.baseline is not None:
                bases.append(self.baseline.commit)
            self.gates[gid] = pool.submit(
                run_gate,
                self.repo,
                self.plan.name,
                phase,
                integ,
                self.opts.timeout_s,
                self.stop_all,
                history.for_phase(self.repo, self.plan, bases, integ),
            )

    def _block_doomed(self, state: State) -> None:
        for node in scheduler.exhausted(state, self.opts.max_attempts):
            if node in self.running or (self.scope is not None and node not in self.scope):
                continue
            record = state["tasks"][node]
            limit = scheduler.attempt_limit(record, self.opts.max_attempts)
            ops.abandon(state, node, f"it can never start: all {limit} of its attempts are used")
        while found := scheduler.doomed(state):
            for node, dead in found:
                ops.block(state, node, f"dependency {dead} is {state['tasks'][dead]['status']}")

    def _work_left(self) -> bool:
        """Return True if anything can still start or merge (merging what is queued now)."""
        state = self.store.load()
        tasks = state["tasks"]
        if any(tasks[e["task"]]["status"] == "verified" for e in state["merge_queue"]):
            self.recorder.merge_queue()
            return True
        left = scheduler.unfinished(state)
        if self.scope is not None:
            left = [n for n in left if n in self.scope]
        return any(self.sched.startable(state, n) for n in left)

    # -- recording outcomes -----------------------------------------------------------------

    def _record(self, out: Outcome) -> None:
        self.task_stops.pop(out.task, None)
        hold = out.task in self.to_hold
        self.to_hold.discard(out.task)
        self.recorder.attempt(out, hold=hold)

    def _record_gate(self, gid: str, out: GateOutcome) -> None:
        self.recorder.gate(gid, out)

    # -- control ----------------------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if self.pause_reason is None:
            self.pause_reason = reason
            self.stop_all.set()

    def _handle_requests(self) -> None:
        found = runinfo.pending_requests(self.repo, self.plan.name)
        if not found:
            return
        self._changed = True
        if runinfo.PAUSE in found:
            self._pause("stopped by planfleet stop")
        for name in found - {runinfo.PAUSE}:
            tid = name.removeprefix("stop-")
            with self.store.transaction() as state:
                record = state["tasks"].get(tid)
                if tid in self.task_stops:
                    # its attempt ends as "stopped" and is then held (Recorder.attempt)
                    self.task_stops[tid].set()
                    self.to_hold.add(tid)
                    add_event(state, "stop_requested", tid, "planfleet stop --task")
                elif record is not None and record["status"] in HOLDABLE:
                    ops.hold(state, tid, runinfo.HELD_NOTE)
        runinfo.clear_requests(self.repo, self.plan.name, found)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_term(signum: int, frame: FrameType | None) -> None:
            self._pause(f"stopped by signal {signal.Signals(signum).name}")

        old = signal.signal(signal.SIGTERM, on_term)
        old_hup = signal.signal(signal.SIGHUP, on_term) if not self.opts.detached else None
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, old)
            if old_hup is not None:
                signal.signal(signal.SIGHUP, old_hup)

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < HEARTBEAT_S or not self.running:
            return
        self._last_heartbeat = time.monotonic()
        with self.store.transaction() as state:
            for tid in self.running:
                if state["tasks"][tid]["status"] == "in_progress":
                    ops.heartbeat(state, tid)

    def _publish(self, state: State, *, force: bool = False) -> None:
        """Tell the listener about new events and re-render projections (throttled)."""
        events = state["events"]
        fresh = events[self._events_seen :] if self._events_seen <= len(events) else events[-1:]
        self._events_seen = len(events)
        if self.listener is not None and (fresh or force):
            self.listener(state, fresh)
        now = time.monotonic()
        if not self.opts.projections:  # --no-projections: the checkout stays as it was
            return
        if force or (fresh and now - self._last_projection > PROJECTION_EVERY_S):
            self._last_projection = now
            render_projections(self.repo, self.plan, state)


class _Either(threading.Event):
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


def run_scope(plan: model.Plan, opts: RunOptions) -> frozenset[str] | None:
    """Return the nodes ``--phase``/``--tasks`` limit a run to, None for the whole plan."""
    if not opts.phases and not opts.tasks:
        return None
    chosen = {t.id for t in plan.tasks if t.phase in opts.phases}
    chosen |= set(opts.tasks)
    chosen |= {model.gate_id(p) for p in opts.phases}
    return frozenset(chosen)


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


def _resumable(record: dict[str, Any]) -> str | None:
    """Return the session a retry continues: only one whose agent ended its turn normally
    (a killed or crashed session may not have been saved; a fresh start with the feedback
    is the safer retry)."""
    error = record.get("error") or {}
    if (
        record["attempts"] >= 1
        and record.get("session_id")
        and error.get("step")
        not in (
            "agent",
            "setup",
        )
    ):
        return str(record["session_id"])
    return None
