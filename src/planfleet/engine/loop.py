"""The engine: turns a plan into merged, verified commits on the integration branch.

One main thread owns the state: it picks tasks (:mod:`planfleet.engine.scheduler`), records every
change in one state transaction, merges verified branches one at a time and renders the
human-facing projections. Attempts and phase gates run in worker threads and only return
outcomes. Any crash leaves a state a later ``planfleet resume`` continues from: in-progress
tasks of a dead engine are orphans and go back to the queue with their worktrees.
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from planfleet import git, paths
from planfleet.engine import conflicts, live, runend, runinfo, scheduler
from planfleet.engine.attempt import AttemptSpec, Outcome, run_attempt
from planfleet.engine.control import RunControl
from planfleet.engine.limitwait import LimitWaiter
from planfleet.engine.options import Listener, RunOptions, RunResult, run_scope
from planfleet.engine.phasegate import GateOutcome, run_gate
from planfleet.engine.publish import Publisher
from planfleet.engine.record import Recorder
from planfleet.engine.setup import (
    load_or_take_baseline,
    prepare_state,
    recheck_verified,
    refuse_foreign_commands,
)
from planfleet.plan import graph, model
from planfleet.repo import worktrees
from planfleet.runners import Runner, get_runner
from planfleet.state import ops
from planfleet.state.records import State, add_event, set_run_status
from planfleet.state.store import StateStore
from planfleet.verify import gates, history, testcmd

POLL_S = 0.1
REFRESH_S = 2.0  # re-read the state this often even when none of our workers finished
HEARTBEAT_S = 60.0

# What an Engine takes and returns is defined in engine.options and exported with it.
__all__ = ["Engine", "Listener", "RunOptions", "RunResult"]


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
        self.graph = graph.build(plan)
        # --runner cloud: every slot is a cloud session; else --cloud-parallel adds some.
        all_cloud = opts.runner == "cloud"
        self.sched = scheduler.Scheduler.for_plan(
            plan,
            self.graph,
            max_parallel=0 if all_cloud else opts.max_parallel,
            cloud_parallel=opts.max_parallel if all_cloud else opts.cloud_parallel,
            max_attempts=opts.max_attempts,
        )
        self.store = StateStore.for_plan(self.repo, plan.name)
        self.runner: Runner = get_runner(opts.runner, opts.runner_options)
        self.runners: dict[scheduler.Where, tuple[Runner, dict[str, Any]]] = {
            "local": (self.runner, opts.runner_options),
            "cloud": (self.runner, opts.runner_options),
        }
        if not all_cloud and opts.cloud_parallel:
            self.runners["cloud"] = (get_runner("cloud", opts.cloud_options), opts.cloud_options)
        self.where: dict[str, scheduler.Where] = {}  # the kind of slot each running task holds
        self.control = RunControl()
        self.waiter = LimitWaiter()
        self.running: dict[str, Future[Outcome]] = {}
        self.gates: dict[str, Future[GateOutcome]] = {}
        self.caps: dict[str, float] = {}  # budget reserved by each running attempt
        self.baseline: gates.Baseline | None = None
        self.start_tip: str | None = None  # the integration tip this engine started from
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
            self.control.pause,
            self.waiter.begin if opts.wait_on_limit else None,
        )
        self._publish = Publisher(self.repo, plan, listener, projections=opts.projections)
        self._last_heartbeat = time.monotonic()
        self.watch = conflicts.Watch(self.repo, plan)
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
            self.start_tip = integ
            # Before the state: a baseline that cannot be taken refuses the run unrecorded.
            self.baseline = load_or_take_baseline(
                self.repo, self.plan, integ, timeout_s=self.opts.timeout_s
            )
            prepare_state(self.store, self.plan, self.repo, integ, self.scope)
            with self.store.transaction() as state:  # a wait a killed engine left
                self.waiter.adopt(state, wait_on_limit=self.opts.wait_on_limit)
            # Verified work a previous engine queued but did not merge goes first.
            self.recorder.merge_queue()
            with (
                self.control.signals(detached=self.opts.detached),
                ThreadPoolExecutor(
                    max_workers=self.opts.max_parallel + self.opts.cloud_parallel + 2,
                    thread_name_prefix="planfleet",
                ) as pool,
            ):
                try:
                    self._loop(pool)
                except KeyboardInterrupt:
                    self.control.pause_reason = "interrupted"
                    self._drain()
                    raise
                finally:
                    if self.running or self.gates:
                        self.control.stop_all.set()
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
            if self.control.handle_requests(self.repo, self.plan.name, self.store):
                self._changed = True
            # Something can become ready only when an outcome was recorded (or the state was
            # changed from outside, e.g. `planfleet state reset`): no need to re-read and
            # re-validate the state file on every poll.
            due = self._changed or self.waiter.due() or time.monotonic() - last_pass > REFRESH_S
            if self.control.pause_reason is None and due:
                self._changed, last_pass = False, time.monotonic()
                with self.store.transaction() as state:
                    self._block_doomed(state)
                    self.watch.scan(state, self.running.keys())
                    self._dispatch(state, pool)
                    self._dispatch_gates(state, pool)
                self._publish(state)
            waiting = self.waiter.active and self.control.pause_reason is None
            if not self.running and not self.gates and not waiting:
                if self.control.pause_reason is not None or not self._work_left():
                    if self.control.pause_reason is None and self._lost_merges():
                        self._changed = True
                        continue  # someone moved the integration branch: redo what it lost
                    return
                if self.no_more:
                    return
            busy: list[Future[Any]] = [*self.running.values(), *self.gates.values()]
            if busy:
                wait(busy, timeout=POLL_S, return_when=FIRST_COMPLETED)
            else:  # a stop (signal or `planfleet stop`) ends a limit wait at once
                self.control.stop_all.wait(POLL_S)
            for tid, fut in list(self.running.items()):
                if fut.done():
                    del self.running[tid]
                    self.where.pop(tid, None)
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
            tip = worktrees.resolve_commit(self.repo, ref)
            # (the commits gained since a known one are listed once, not checked per task)
            since = self.baseline.commit if self.baseline else self.start_tip
            return recheck_verified(state, self.repo, self.plan.name, tip, since)

    def _drain(self) -> None:
        """Wait for every worker (after a stop) and record what they return."""
        for tid, fut in list(self.running.items()):
            self._record(fut.result())
            del self.running[tid]
            self.where.pop(tid, None)
        for gid, gfut in list(self.gates.items()):
            self._record_gate(gid, gfut.result())
            del self.gates[gid]

    def _close(self) -> runend.RunEnd:
        """Set the final run status; return it with the reason in words."""
        with self.store.transaction() as state:
            end = runend.classify(
                state,
                self.scope,
                pause_reason=self.control.pause_reason,
                stop_reason=self.no_more_reason if self.no_more else None,
            )
            self.waiter.end(state, f"the run ended: {end.reason}")
            set_run_status(state, end.status)
            add_event(state, "run_end", None, end.reason)
        runend.tidy_worktrees(self.repo, self.plan.name, state)
        self._publish(state, force=True)
        return end

    # -- dispatching ------------------------------------------------------------------------

    def _scope(self) -> frozenset[str] | None:
        return run_scope(self.plan, self.opts)

    def _dispatch(self, state: State, pool: ThreadPoolExecutor) -> None:
        if self.no_more or self.waiter.holding(state):
            return  # (limits are account-wide: while one is waited out, nothing starts)
        if self.opts.fail_fast and state["abandoned"]:
            self._stop_dispatching(state, f"--fail-fast: {state['abandoned'][0]} was abandoned")
            return
        apart = conflicts.apart(state) if self.opts.serialize_undeclared else None
        for tid, where in self.sched.pick_where(state, self.where, apart=apart):
            if self.scope is not None and tid not in self.scope:
                continue
            cap = float(self.opts.task_budget_usd or 0.0)  # what this attempt may spend
            if not self._affordable(state, cap):
                break
            before = state["tasks"][tid]  # read before the claim clears the error
            # A cloud session cannot be resumed with a new prompt: a retry starts a new one.
            resume = live.resumable(before) if where == "local" else None
            # the last counted attempt failed: its branch goes back to the base first
            retry_of = int(before["attempts"]) if before["error"] and before["attempts"] else None
            record = ops.claim(state, tid, owner=f"engine:{self.plan.name}")
            ops.attach_process(state, tid, os.getpid())
            runner, options = self.runners[where]
            spec = self._spec(tid, record, resume, retry_of, options)
            if where == "cloud":
                spec = live.adopt(state, spec)
            stop = self.control.task_event(tid)
            self.caps[tid] = cap
            self.where[tid] = where
            self.running[tid] = pool.submit(run_attempt, spec, runner, stop)
            record.update(
                worktree=str(worktrees.task_worktree(self.repo, self.plan.name, tid)),
                branch=worktrees.task_branch(self.plan.name, tid),
            )
            cloud = " in a cloud session" if where == "cloud" else ""
            add_event(state, "dispatched", tid, f"attempt {record['attempts']}{cloud}")

    def _spec(
        self,
        tid: str,
        record: dict[str, Any],
        resume: str | None,
        retry_of: int | None,
        options: dict[str, Any],
    ) -> AttemptSpec:
        task = self.plan.task(tid)
        where = (self.repo, self.plan.name, tid, int(record["attempts"]))
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
            options=options,
            retry_of=retry_of,
            strict_files=self.opts.strict_files,
            strict_model=self.opts.strict_model,
            strict_tests=self.opts.strict_tests,
            on_start=functools.partial(live.started, *where),
            on_session=functools.partial(live.session, *where),
        )

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
                self.control.stop_all,
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
        if out.verdict not in ("limit", "stopped"):
            self.waiter.attempt_ended()
        self.recorder.attempt(out, hold=self.control.finished(out.task))

    def _record_gate(self, gid: str, out: GateOutcome) -> None:
        self.recorder.gate(gid, out)

    # -- keeping the state alive ------------------------------------------------------------

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < HEARTBEAT_S or not self.running:
            return
        self._last_heartbeat = time.monotonic()
        with self.store.transaction() as state:
            for tid in self.running:
                if state["tasks"][tid]["status"] == "in_progress":
                    ops.heartbeat(state, tid)
