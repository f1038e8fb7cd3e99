"""``planfleet orchestrate``: the six stages that take a plan directory to committed phases.

1. ingest: read the plan directory (task_plan.md or manifest.md plus specs) and find the
   project's documents (CLAUDE.md, a codebase map);
2. review: an LLM step checks sizing, gaps and clarity and may revise a copy of the plan
   (schema-checked artifact; the revision and its diff wait for the user gate);
3. skill-match: a skill or agent per task (:mod:`planfleet.orchestrate.skillmatch`);
4. research: a cheat sheet per technology, reused from the knowledge store when present
   (:mod:`planfleet.orchestrate.research`);
5. user gate: the whole execution plan is shown; nothing runs without confirmation;
6. execution: each phase through the phase runner's protocol.

Each stage is recorded in ``pipeline.json`` and skipped when a later run finds it done.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import fsutil, git, paths
from planfleet.engine.loop import Listener
from planfleet.errors import PlanfleetError, RefusedError
from planfleet.orchestrate import progress, research, skillmatch, stepprompts, steps
from planfleet.orchestrate.execplan import execution_plan, execution_view
from planfleet.orchestrate.options import PhaseOptions
from planfleet.orchestrate.phaserunner import PhaseRunner
from planfleet.orchestrate.record import (
    FINISHED,
    Doc,
    PipelineStore,
    PlanDir,
    find_phase,
    finish,
    live_elsewhere,
    load_plan,
)
from planfleet.orchestrate.steps import GateFailed, StepSpec
from planfleet.plan import model

DOC_NAMES = ("CLAUDE.md", ".claude/CLAUDE.md", "AGENTS.md", "ARCHITECTURE.md", "CODEBASE.md")
MAP_GLOBS = ("docs/codebase*.md", "docs/architecture*.md", ".planning/codebase/*.md")


class NeedsAgent(Exception):
    """A stage's LLM step is handed to the in-session agent."""

    def __init__(self, instructions: dict[str, Any]) -> None:
        super().__init__(instructions.get("step"))
        self.instructions = instructions


class Declined(Exception):
    """The user gate was not confirmed."""


@dataclass(frozen=True)
class PipelineOptions:
    """The orchestrate flags."""

    phase: PhaseOptions = field(default_factory=PhaseOptions)
    dry_run: bool = False
    resume: bool = False
    only_phase: str | None = None
    confirm: Callable[[Doc], bool] = lambda _plan: False  # asks the user at stage 5


@dataclass
class PipelineResult:
    """How the run ended: completed, dry_run, needs_agent or failed."""

    status: str
    message: str
    data: Doc

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "failed" else 0


class Pipeline:
    """One run of the pipeline on one plan directory."""

    def __init__(
        self,
        pdir: PlanDir,
        opts: PipelineOptions,
        *,
        say: Callable[[str], None] = lambda _s: None,
        listener: Listener | None = None,
    ) -> None:
        self.pdir, self.repo, self.opts, self.say = pdir, pdir.repo, opts, say
        self.listener = listener
        self.store = PipelineStore(pdir)
        self.review_dir = self.store.folder / "review"
        self.plan = load_plan(pdir)
        self.ctx = steps.StepContext(
            repo=self.repo,
            plan=self.plan,
            subprocess=opts.phase.subprocess,
            model=opts.phase.model,
            timeout_s=opts.phase.timeout_s,
            stall_s=opts.phase.stall_s,
            permission_mode=opts.phase.permission_mode,
            check_command=opts.phase.check_command,
        )
        self.warnings: list[str] = []
        self.shown: Doc | None = None  # the execution plan of stage 5
        self.handed_over = False  # the running stage was waiting for the in-session agent

    def run(self) -> PipelineResult:
        """Run (or skip) every stage in order; stop at a failure, a hand-over or stage 5."""
        stages: list[tuple[str, Callable[[], tuple[str, Doc]]]] = [
            ("ingest", self._ingest),
            ("review", self._review),
            ("skill_match", self._skill_match),
            ("research", self._research),
            ("gate", self._gate),
            ("execute", self._execute),
        ]
        for name, fn in stages:
            record = self.store.load()["stages"][name]
            if record["status"] in FINISHED:
                self.say(f"stage {name}: {record['status']} earlier, skipped")
                continue
            if live_elsewhere(record):
                return self._result("failed", f"stage {name} is running in pid {record['pid']}")
            self.handed_over = record["status"] == "needs_agent"
            with self.store.transaction() as doc:
                self.store.start(doc, doc["stages"][name])
            try:
                status, data = fn()
            except RefusedError as exc:
                self._finish(name, "pending", exc.message)
                raise
            except PlanfleetError as exc:
                self._finish(name, "failed", exc.message)
                raise
            except GateFailed as exc:
                self._finish(name, "failed", exc.message)
                return self._result("failed", f"stage {name}: {exc.message}")
            except NeedsAgent as exc:
                self._finish(name, "needs_agent", "waiting for the in-session agent")
                return self._result("needs_agent", f"stage {name} waits", next_=exc.instructions)
            except Declined:
                self._finish(name, "pending", "not confirmed")
                return self._result("dry_run", "dry run: stopped at the user gate")
            message = str(data.pop("message", ""))
            self._finish(name, status, message, data=data)
            if status == "pending":  # --phase: the other phases wait for a later run
                return self._result("completed", message)
            if status == "failed":
                return self._result("failed", f"stage {name}: {data.get('reason', 'failed')}")
            if status == "needs_agent":
                return self._result("needs_agent", "a phase waits", next_=data.get("next"))
        return self._result("completed", "every stage is done")

    def _finish(self, name: str, status: str, message: str, **extra: Any) -> None:
        with self.store.transaction() as doc:
            finish(doc["stages"][name], status, message, **extra)
        problem = progress.render(self.pdir, self.plan, self.store.load())
        if problem:
            self.warnings.append(problem)

    def _result(self, status: str, message: str, next_: Doc | None = None) -> PipelineResult:
        doc = self.store.load()
        data: Doc = {
            "plan": self.plan.name,
            "plan_dir": str(self.pdir.folder),
            "stages": doc["stages"],
            "phases": doc["phases"],
            "warnings": self.warnings + self.ctx.warnings,
        }
        if self.shown is not None:
            data["execution_plan"] = self.shown
        if next_ is not None:
            data["next"] = next_
        return PipelineResult(status, message, data)

    # -- stage 1 ----------------------------------------------------------------------------

    def _ingest(self) -> tuple[str, Doc]:
        plan = self.plan
        found = [n for n in DOC_NAMES if (self.repo / n).is_file()]
        found += [n for n in DOC_NAMES if (self.pdir.folder / n).is_file() and n not in found]
        for pattern in MAP_GLOBS:
            found += sorted(str(p.relative_to(self.repo)) for p in self.repo.glob(pattern))
        self.warnings += [d.render() for d in plan.warnings]
        data = {
            "plan_file": self.pdir.rel(self.pdir.file),
            "phases": len(plan.phases),
            "tasks": len(plan.tasks),
            "docs": found,
            "message": f"{len(plan.phases)} phase(s), {len(plan.tasks)} task(s), "
            f"{len(found)} project doc(s)",
        }
        return "done", data

    # -- stage 2 ----------------------------------------------------------------------------

    def _review(self) -> tuple[str, Doc]:
        if self.opts.resume:
            return "skipped", {"message": "--resume skips the plan review"}
        copy_dir = self.review_dir / self.pdir.name
        copy_file = copy_dir / self.pdir.file.name
        artifact = self.review_dir / "plan-review.json"
        if not (self.handed_over and steps.artifact_waiting(artifact, self.ctx)):
            _copy_plan(self.pdir.folder, paths.writable(self.repo, copy_dir))
        docs = self.store.load()["stages"]["ingest"].get("data", {}).get("docs", [])
        spec = StepSpec(
            key="plan-review",
            kind="plan-review",
            title="review of the plan",
            prompt=stepprompts.plan_review(self.plan, self.pdir.file, copy_file, docs, artifact),
            cwd=self.repo,
            artifact=artifact,
            schema="plan_review",
            tools=("Edit", "Write", *steps.READ_TOOLS),
            agent="plan-reviewer",
        )
        before = (fsutil.read_text(self.pdir.file), set(git.status_porcelain(self.repo)))
        art = self._agent(spec, "review")
        if fsutil.read_text(self.pdir.file) != before[0]:
            raise GateFailed(spec.key, f"the review changed {self.pdir.rel(self.pdir.file)}")
        touched = set(git.status_porcelain(self.repo)) - before[1]
        if touched:
            raise GateFailed(spec.key, f"the review changed files: {', '.join(sorted(touched))}")
        old, new = fsutil.read_text(self.pdir.file), fsutil.read_text(copy_file)
        if art["revised"] != (old != new):
            said = "revised" if art["revised"] else "unchanged"
            raise GateFailed(spec.key, f"the artifact says the plan is {said}, the copy is not")
        diff_path = None
        if art["revised"]:
            load_plan(self.pdir, copy_dir)  # the engine's check: the revision is a valid plan
            diff = difflib.unified_diff(
                old.splitlines(True),
                new.splitlines(True),
                self.pdir.rel(self.pdir.file),
                f"revised/{self.pdir.file.name}",
            )
            diff_path = paths.writable(self.repo, self.review_dir / "plan.diff")
            fsutil.atomic_write(diff_path, "".join(diff))
        steps.keep(artifact, self.review_dir / "accepted", self.repo)
        issues = art["issues"]
        return "done", {
            "revised": art["revised"],
            "diff": self.pdir.rel(diff_path) if diff_path else None,
            "revised_plan": self.pdir.rel(copy_file) if art["revised"] else None,
            "issues": issues,
            "message": f"{len(issues)} issue(s)" + ("; plan revised" if art["revised"] else ""),
        }

    def _agent(self, spec: StepSpec, stage: str) -> Doc:
        """Run the step's agent (unless the in-session agent already wrote the artifact);
        return the artifact once it exists, parses and fits its schema (else GateFailed)."""
        run = None
        if not (self.handed_over and steps.artifact_waiting(spec.artifact, self.ctx)):
            self.say(f"{spec.title} ...")
            attempt = int(self.store.load()["stages"][stage]["attempts"])
            run = steps.run_step(spec, self.ctx, attempt)
            if run.status == "needs_agent":
                raise NeedsAgent(run.instructions or {})
        self.handed_over = False
        schema = spec.schema
        try:
            return steps.read_artifact(spec.key, spec.artifact, schema)
        except GateFailed as exc:
            steps.set_aside(spec.artifact, ".rejected")
            agent = run.describe_agent() if run else ""
            raise GateFailed(
                spec.key, exc.message + (f" (agent: {agent})" if agent else "")
            ) from None

    def effective_plan(self) -> model.Plan:
        """Return the plan stages 3-5 look at: the review's revision when there is one."""
        review = self.store.load()["stages"]["review"].get("data") or {}
        if review.get("revised") and (self.review_dir / self.pdir.name).is_dir():
            return load_plan(self.pdir, self.review_dir / self.pdir.name)
        return load_plan(self.pdir)

    # -- stages 3 and 4 ---------------------------------------------------------------------

    def _skill_match(self) -> tuple[str, Doc]:
        registry = skillmatch.load_registry(self.repo)
        found = skillmatch.match_plan(self.effective_plan(), registry)
        warned = skillmatch.warnings_of(found)
        self.warnings += warned
        counts = skillmatch.summary(found)
        return "done", {
            "assignments": {a.task: a.to_json() for a in found},
            "registries": list(registry.files),
            "message": f"{counts['plan']} named in the plan, {counts['registry']} by keyword, "
            f"{counts['fallback']} general-purpose",
        }

    def _research(self) -> tuple[str, Doc]:
        artifacts = self.store.folder / "research"
        return "done", research.run_stage(self.pdir, self.effective_plan(), artifacts, self._agent)

    # -- stage 5 ----------------------------------------------------------------------------

    def _gate(self) -> tuple[str, Doc]:
        doc = self.store.load()
        self.shown = execution_plan(
            self.pdir, self.effective_plan(), doc, self.opts.phase, self.opts.only_phase
        )
        if self.opts.dry_run or not self.opts.confirm(self.shown):
            raise Declined
        review = doc["stages"]["review"].get("data") or {}
        applied = None
        if review.get("revised"):
            applied = self._apply_revision()
        self.plan = load_plan(self.pdir)
        return "done", {"applied_revision": applied, "message": "confirmed"}

    def _apply_revision(self) -> str:
        """Put the reviewed plan in place of the plan file; keep the original; return its copy."""
        original = paths.writable(self.repo, self.review_dir / f"original-{self.pdir.file.name}")
        fsutil.atomic_write(original, fsutil.read_text(self.pdir.file))
        revised = fsutil.read_text(self.review_dir / self.pdir.name / self.pdir.file.name)
        fsutil.atomic_write(self.pdir.file, revised)
        return self.pdir.rel(original)

    # -- stage 6 ----------------------------------------------------------------------------

    def _execute(self) -> tuple[str, Doc]:
        plan = execution_view(self.pdir, self.store.load())
        wanted = plan.phases
        if self.opts.only_phase is not None:
            wanted = (find_phase(plan, self.opts.only_phase),)
        done: list[str] = []
        for phase in wanted:
            ph = self.store.load()["phases"].get(phase.id) or {}
            recorded_done = not ph and all(t.status in FINISHED for t in plan.tasks_of(phase.id))
            if ph.get("status") == "done" or recorded_done:
                self.say(f"phase {phase.id}: done earlier, skipped")
                done.append(phase.id)
                continue
            runner = PhaseRunner(
                self.pdir,
                plan,
                phase,
                self.store,
                self.opts.phase,
                say=self.say,
                listener=self.listener,
            )
            out = runner.run()
            self.warnings += out.warnings
            if out.status == "needs_agent":
                return "needs_agent", {"message": out.message, "next": out.instructions}
            if out.status != "done":
                return "failed", {"message": out.message, "reason": out.message}
            done.append(phase.id)
        if self.opts.only_phase is not None and len(done) < len(plan.phases):
            return "pending", {"message": f"phase {done[0]} done; other phases not run"}
        return "done", {"message": f"{len(done)} phase(s) done", "phases": done}


def _copy_plan(src: Path, dst: Path) -> None:
    """Copy the plan directory for the reviewer to revise (its progress.md left out)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(
        src, dst, symlinks=True, ignore=shutil.ignore_patterns("progress.md", ".planfleet")
    )
