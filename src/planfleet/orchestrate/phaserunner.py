"""One phase's protocol: implement → test → review → fix (3 passes) → commit.

Each step is its own ``claude -p`` subprocess with its own prompt and context (implement:
the engine, one agent per task in its own worktree; the others: one agent in the phase
checkout). After each step an artifact gate decides whether the next one may run: the
artifact must exist, parse and fit its schema, and the engine's own checks must agree
(:mod:`planfleet.orchestrate.stepgates`). The fix step runs three passes in order — P0+P1, P2, P3 —
each in the checkout holding the earlier passes' commits and each skipping findings already
resolved. Steps are recorded in ``pipeline.json``: a later run skips the done ones and
restarts at the one that failed or was interrupted. ``progress.md`` is rendered after every
step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet.engine.loop import Listener
from planfleet.errors import RefusedError
from planfleet.orchestrate import checkout, implement, progress, stepgates, stepprompts, steps
from planfleet.orchestrate import mode as phasemode
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.record import (
    FINISHED,
    STEPS,
    Doc,
    PipelineStore,
    PlanDir,
    finish,
    live_elsewhere,
    new_record,
    phase_record,
    step_record,
)
from planfleet.orchestrate.steps import GateFailed, StepRun, StepSpec
from planfleet.plan import model
from planfleet.repo import worktrees
from planfleet.verify import testcmd

STEP_CHOICES: tuple[str, ...] = ("implement", "test", "review", "fix", "commit")
_SCHEMAS = {
    "implement": "implement_report",
    "test": "test_report",
    "review": "review",
    "fix": "fix_report",
    "commit": "commit_report",
}
_AGENTS = {
    "implement": "task-executor",
    "test": "tester",  # writes and runs tests, commits them: not the read-only verifier
    "review": "reviewer",
    "fix": "fixer",
    "commit": None,
}
_EDIT = ("Edit", "Write", *steps.READ_TOOLS, *steps.GIT_READ, *steps.GIT_WRITE)


@dataclass
class PhaseOutcome:
    """How the phase (or the selected step) ended."""

    phase: str
    status: str  # done | failed | needs_agent | dry_run
    message: str
    mode: phasemode.ModeChoice
    steps: Any = None  # the step records (a list of rows for a dry run)
    instructions: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "status": self.status,
            "message": self.message,
            "mode": self.mode.mode,
            "mode_wanted": self.mode.wanted,
            "mode_reason": self.mode.reason,
            "steps": self.steps,
            "instructions": self.instructions,
            "warnings": self.warnings,
        }


class _NeedsAgent(Exception):
    def __init__(self, instructions: dict[str, Any]) -> None:
        super().__init__(instructions.get("step"))
        self.instructions = instructions


class PhaseRunner:
    """Runs the protocol of one phase of a plan directory."""

    def __init__(
        self,
        pdir: PlanDir,
        plan: model.Plan,
        phase: model.Phase,
        store: PipelineStore,
        opts: PhaseOptions,
        *,
        say: Callable[[str], None] = lambda _s: None,
        listener: Listener | None = None,
    ) -> None:
        # The test step runs the same test command as the engine's tests gate (plan, config,
        # or found in the repository), not only a command the plan wrote itself.
        plan = testcmd.apply(plan, testcmd.choose(pdir.repo, plan))
        self.pdir, self.repo, self.plan, self.phase = pdir, pdir.repo, plan, phase
        self.store, self.opts, self.say, self.listener = store, opts, say, listener
        self.ctx = steps.StepContext(
            repo=pdir.repo,
            plan=plan,
            subprocess=opts.subprocess,
            model=opts.model,
            timeout_s=opts.timeout_s,
            stall_s=opts.stall_s,
            budget_usd=opts.task_budget_usd,
            permission_mode=opts.permission_mode,
            check_command=opts.check_command,
        )
        self.mode = phasemode.select(plan, phase, opts.team)
        self.records = store.folder / "phases" / phase.id
        self.commands = stepgates.test_commands(plan, phase)
        self.warnings = [self.mode.warning] if self.mode.warning else []

    # -- the protocol -----------------------------------------------------------------------

    def selected(self) -> list[str]:
        """Return the steps this run covers, in protocol order."""
        if self.opts.step is None:
            return list(STEPS)
        return [s for s in STEPS if s.split("-")[0] == self.opts.step]

    def run(self) -> PhaseOutcome:
        """Run the selected steps; stop at the first gate that fails."""
        with self.store.transaction() as doc:
            phase_record(doc, self.phase.id, self.mode.mode).update(
                mode=self.mode.mode, mode_reason=self.mode.reason
            )
        if self.opts.dry_run:
            return self._outcome("dry_run", "nothing was started", self._dry_run())
        chosen = self.selected()
        if self.opts.step is not None:
            self._reset_from(chosen[0])
        for name in chosen:
            record = step_record(self.store.load(), self.phase.id, name)
            if live_elsewhere(record):
                raise RefusedError(
                    f"step {name} of phase {self.phase.id} is running in pid {record['pid']}",
                    reason="step_running",
                    next_step="wait for it to finish, or stop that process",
                )
            if record["status"] in FINISHED:
                continue
            try:
                self._step(name)
            except GateFailed as exc:
                steps.set_aside(self._artifact(name), ".rejected")
                self._finish(name, "failed", exc.message)
                return self._end("failed", f"gate {exc.step}: {exc.message}")
            except _NeedsAgent as exc:
                self._finish(name, "needs_agent", "waiting for the in-session agent")
                out = self._end("needs_agent", f"step {name} is handed to the in-session agent")
                out.instructions = exc.instructions
                return out
            finally:
                self.warnings += self.ctx.warnings
                self.ctx.warnings.clear()
                self._progress()
        if self.opts.step is not None:
            return self._end("in_progress", f"step {self.opts.step} of phase {self.phase.id} done")
        checkout.close(self.repo, self.plan.name, self.phase.id)
        return self._end("done", f"phase {self.phase.id} done")

    def _end(self, status: str, message: str) -> PhaseOutcome:
        """Record the phase's status; return the outcome (a finished step reports done)."""
        with self.store.transaction() as doc:
            ph = phase_record(doc, self.phase.id)
            if not (ph["status"] == "done" and status == "in_progress"):
                ph["status"] = status
        self._progress()
        return self._outcome("done" if status == "in_progress" else status, message, None)

    def _outcome(
        self, status: str, message: str, rows: list[dict[str, Any]] | None
    ) -> PhaseOutcome:
        recorded = phase_record(self.store.load(), self.phase.id)["steps"]
        ordered = {s: recorded[s] for s in STEPS if s in recorded}
        shown: Any = rows if rows is not None else ordered
        return PhaseOutcome(self.phase.id, status, message, self.mode, shown, None, self.warnings)

    def _reset_from(self, first: str) -> None:
        """A chosen step that is done runs again, and every later step with it.

        A chosen step that failed or waits for the in-session agent keeps its record: the
        call continues it (and the session's checkout) instead of starting over.
        """
        with self.store.transaction() as doc:
            ph = phase_record(doc, self.phase.id)
            if ph["steps"].get(first, {}).get("status") not in FINISHED:
                return
            later = STEPS[STEPS.index(first) :]
            for name in later:
                if name in ph["steps"] and not live_elsewhere(ph["steps"][name]):
                    ph["steps"][name] = new_record()
            if "review" in later:
                ph["findings"] = {}

    def _step(self, name: str) -> None:
        if name == "implement" and self.ctx.subprocess:
            self._implement_with_engine()
            return
        if name.startswith("fix-"):
            findings = phase_record(self.store.load(), self.phase.id)["findings"]
            if not stepgates.open_for_pass(findings, int(name[-1])):
                sev = "+".join(stepgates.PASSES[int(name[-1])])
                self._finish(name, "skipped", f"no open {sev} findings")
                return
        record = step_record(self.store.load(), self.phase.id, name)
        kept = self._session_checkout(record)
        waiting = steps.artifact_waiting(self._artifact(name), self.ctx)
        if kept is not None and record["status"] == "needs_agent" and waiting:
            self._gate(name, kept, str(record["start"]), None)
            return
        if kept is not None:  # the session's agent goes on where it was
            path, start = kept, str(record["start"])
        else:  # a fresh agent starts from the gated work; leftovers go to a rescue branch
            co = checkout.open_fresh(self.repo, self.plan.name, self.phase.id, name)
            if co.rescued:
                self.ctx.warnings.append(f"work left by an earlier step was kept on {co.rescued}")
            path, start = co.path, co.start
        spec = self._spec(name, path, self._base(start))
        with self.store.transaction() as doc:
            record = step_record(doc, self.phase.id, name)
            self.store.start(doc, record, start=start)
            attempt = int(record["attempts"])
        self._progress()
        self.say(f"phase {self.phase.id}: {name} ...")
        run = steps.run_step(spec, self.ctx, attempt)
        if run.status == "needs_agent":
            raise _NeedsAgent(run.instructions or {})
        self._gate(name, path, start, run)

    def _session_checkout(self, record: Doc) -> Path | None:
        """Return the checkout the in-session agent works in for this step, if it goes on."""
        if self.ctx.subprocess or record["status"] not in ("needs_agent", "failed"):
            return None
        if not record.get("start"):
            return None
        path = checkout.checkout_path(self.repo, self.plan.name, self.phase.id)
        return path if checkout.registered(self.repo, path) else None

    def _gate(self, name: str, path: Path, start: str, run: StepRun | None) -> None:
        """Check the step's artifact and the evidence; move the integration branch; record."""
        kind = name.split("-")[0]
        try:
            art = steps.read_artifact(name, self._artifact(name), _SCHEMAS[kind])
        except GateFailed as exc:
            agent = run.describe_agent() if run else ""
            raise GateFailed(name, exc.message + (f" (agent: {agent})" if agent else "")) from None
        if art.get("phase") != self.phase.id:
            raise GateFailed(name, f"the artifact is for phase {art.get('phase')!r}")
        ph = phase_record(self.store.load(), self.phase.id)
        where = stepgates.Where(self.repo, path, start, self.plan, self.phase)
        extra, note = stepgates.check_step(name, art, where, ph, self.commands, self.opts.timeout_s)
        checkout.advance(self.repo, self.plan.name, path)
        kept = steps.keep(self._artifact(name), self.records, self.repo)
        with self.store.transaction() as doc:
            phase_record(doc, self.phase.id).update(extra)
            rec = step_record(doc, self.phase.id, name)
            finish(rec, "done", note, artifact=self.pdir.rel(kept))

    def _implement_with_engine(self) -> None:
        """Implement the phase's tasks with the engine, scoped to this phase (classic mode)."""
        integ = worktrees.ensure_integration(self.repo, self.plan.name)
        with self.store.transaction() as doc:
            self.store.start(doc, step_record(doc, self.phase.id, "implement"), start=integ)
            ph = phase_record(doc, self.phase.id)
            ph["base"] = ph.get("base") or integ
        self._progress()
        self.say(f"phase {self.phase.id}: implement ({self.mode.mode} mode, engine) ...")
        path = self.records / "implement.json"
        summary = implement.run_engine(
            self.repo, self.plan, self.phase, self.opts, self.mode.mode, path, self.listener
        )
        with self.store.transaction() as doc:
            rec = step_record(doc, self.phase.id, "implement")
            finish(rec, "done", summary, artifact=self.pdir.rel(path))

    # -- helpers ----------------------------------------------------------------------------

    def _artifact(self, name: str) -> Path:
        """Return where step ``name`` writes its artifact: inside the checkout (its cwd)."""
        path = checkout.checkout_path(self.repo, self.plan.name, self.phase.id)
        return path / ".planfleet" / "artifacts" / f"{name}.json"

    def _base(self, start: str) -> str:
        """Return the commit the phase started from (recorded the first time)."""
        with self.store.transaction() as doc:
            ph = phase_record(doc, self.phase.id)
            ph["base"] = ph.get("base") or start
            return str(ph["base"])

    def _spec(self, name: str, cwd: Path, base: str) -> StepSpec:
        kind, p, ph = name.split("-")[0], self.plan, self.phase
        artifact = self._artifact(name)
        tools: tuple[str, ...] = _EDIT
        if kind == "implement":
            prompt = stepprompts.implement(p, ph, cwd, artifact)
        elif kind == "test":
            prompt = stepprompts.test(p, ph, base, self.commands, artifact)
        elif kind == "review":
            prompt = stepprompts.review(p, ph, base, artifact)
            tools = ("Write", *steps.READ_TOOLS, *steps.GIT_READ)
        elif kind == "fix":
            findings = phase_record(self.store.load(), ph.id)["findings"]
            todo = stepgates.open_for_pass(findings, int(name[-1]))
            done = {k: v for k, v in findings.items() if v["status"] != "open"}
            prompt = stepprompts.fix(p, ph, int(name[-1]), todo, done, self.commands, artifact)
        else:
            prompt = stepprompts.commit(p, ph, base, artifact)
        return StepSpec(
            key=f"p{ph.id}-{name}",
            kind=kind,
            title=f"{name} of phase {ph.id}",
            prompt=prompt,
            cwd=cwd,
            artifact=artifact,
            schema=_SCHEMAS[kind],
            tools=tools,
            agent=_AGENTS[kind],
            phase=ph.id,
            commands=tuple(self.commands),
        )

    def _finish(self, name: str, status: str, message: str) -> None:
        with self.store.transaction() as doc:
            finish(step_record(doc, self.phase.id, name), status, message)

    def _progress(self) -> None:
        problem = progress.render(self.pdir, self.plan, self.store.load())
        if problem:
            self.ctx.warnings.append(problem)

    def _dry_run(self) -> list[dict[str, Any]]:
        doc = self.store.load()
        cwd = checkout.checkout_path(self.repo, self.plan.name, self.phase.id)
        rows = []
        for name in self.selected():
            row: dict[str, Any] = {
                "step": name,
                "status": step_record(doc, self.phase.id, name)["status"],
                "artifact": str(self._artifact(name)),
                "engine_checks": list(self.commands),
            }
            if not self.ctx.subprocess:
                row["runs"] = ["the in-session phase-runner agent (no subprocess)"]
            elif name == "implement":
                ids = ", ".join(t.id for t in self.plan.tasks_of(self.phase.id))
                row["runs"] = [
                    f"the engine: one claude -p per task ({ids}) in its own worktree, up to "
                    f"{self.opts.max_parallel} at once"
                ]
            else:
                row["runs"] = steps.describe(self._spec(name, cwd, "<base>"), self.ctx)
            rows.append(row)
        return rows
