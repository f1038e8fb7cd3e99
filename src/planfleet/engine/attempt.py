"""One attempt of one task, start to verdict: worktree, prompt, agent, gates.

Runs in a worker thread of the engine and touches no state: it returns an
:class:`Outcome` and the engine's main thread records it. The verdict comes from the
gates in :mod:`planfleet.verify.gates`, never from what the agent said about itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from planfleet import git, paths
from planfleet.engine import attemptsave, conflicts, modelcheck, prompts
from planfleet.errors import CommandError, PlanfleetError, RefusedError
from planfleet.plan import model
from planfleet.repo import guards, pool, provision, refs, worktrees
from planfleet.runners import AgentRequest, AgentResult, Runner, claude_stream
from planfleet.verify import gates
from planfleet.verify.verdict import Gate, Verification

Verdict = Literal["verified", "failed", "limit", "stopped"]
MAX_FEEDBACK_CHARS = 6000


@dataclass(frozen=True)
class AttemptSpec:
    """What the engine decided for this attempt."""

    repo: Path
    plan: model.Plan
    task: model.Task
    attempt: int
    max_attempts: int
    timeout_s: float
    stall_s: float
    feedback: str | None = None
    resume_session: str | None = None
    model: str | None = None
    budget_usd: float | None = None
    baseline: gates.Baseline | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    retry_of: int | None = None  # the failed attempt this one retries (its branch is reset)
    strict_files: bool = False  # changes outside the task's declared files fail the attempt
    strict_model: bool = False  # another model than ``model`` ran: the attempt fails
    strict_tests: bool = False  # a new test that passes without the task's code: it fails
    on_start: Callable[[int], None] | None = None  # see AgentRequest.on_start
    on_session: Callable[[str, str | None], None] | None = None  # see AgentRequest.on_session


@dataclass
class Outcome:
    """How the attempt ended, with the evidence."""

    task: str
    attempt: int
    verdict: Verdict
    worktree: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    agent: AgentResult | None = None
    verification: Verification | None = None
    record: str | None = None  # path of the saved verification record
    error: dict[str, str] | None = None  # {type, step, message} when not verified
    feedback: str | None = None
    duration_s: float = 0.0
    kept_branch: str | None = None  # where a failed attempt's work was kept

    @property
    def cost_usd(self) -> float:
        return self.agent.cost_usd if self.agent else 0.0


def engine_checks(
    plan: model.Plan, task: model.Task, *, strict: bool = False, strict_tests: bool = False
) -> list[str]:
    """Return, in words, what the engine will check after the attempt (shown to the agent)."""
    checks = []
    if task.kind == "design":
        checks.append("the design artifacts listed below exist and are not empty")
    else:
        checks.append("a commit on your branch with a non-empty diff")
    if task.writes:
        what = "fails the attempt" if strict or plan.strict_files else "is reported"
        checks.append(f"a change to a file the task does not list {what}")
    checks += [f"file exists and is not empty: `{f}`" for f in task.files_create]
    checks += [f"dependency declared in the manifest: `{d}`" for d in task.add_dependencies]
    checks += [f"command passes: `{c}`" for c in task.verify]
    test = plan.meta.get("test_command")
    if test:
        checks.append(f"tests pass with no new failures: `{test}`")
    checks.append("no existing test deleted, renamed or newly skipped")
    if test:
        checks.append(
            "the existing tests as they were before your change (the base's version of every "
            "test file you edit or delete) still pass on your code"
        )
        what = "fails the attempt" if strict_tests or plan.strict_tests else "is reported"
        checks.append(
            "each test you add or change must fail without your code: one that passes when "
            f"run on the base with only your test files applied {what} (vacuous_test)"
        )
    if task.removes_tests:
        checks.append(f"tests the plan lets you remove or change: {', '.join(task.removes_tests)}")
    return checks


def run_attempt(spec: AttemptSpec, runner: Runner, stop: threading.Event) -> Outcome:
    """Carry out one attempt and judge it; never raises for a task's own failure."""
    started = time.monotonic()
    task = spec.task
    out = Outcome(task.id, spec.attempt, "failed")
    try:
        wt = _worktree(spec)
        out.worktree, out.branch = str(wt.path), wt.branch
        base = worktrees.recorded_base(wt.path) or git.out("rev-parse", "HEAD", cwd=wt.path)
        out.base_commit = base
        retry = _start_clean(spec, wt.path, base)
        request = AgentRequest(
            repo=spec.repo,
            plan=spec.plan,
            task=task,
            worktree=wt.path,
            branch=wt.branch,
            base_commit=base,
            attempt=spec.attempt,
            max_attempts=spec.max_attempts,
            prompt=prompts.build_prompt(
                spec.plan,
                task,
                repo=spec.repo,
                attempt=spec.attempt,
                feedback=spec.feedback,
                checks=engine_checks(
                    spec.plan, task, strict=spec.strict_files, strict_tests=spec.strict_tests
                ),
                retry=retry,
            ),
            log_path=paths.attempt_log(spec.repo, spec.plan.name, task.id, spec.attempt),
            timeout_s=spec.timeout_s,
            stall_s=spec.stall_s,
            feedback=spec.feedback,
            resume_session=spec.resume_session,
            model=spec.model,
            budget_usd=spec.budget_usd,
            options=spec.options,
            prior_cost_usd=_session_spend(spec),
            on_start=spec.on_start,
            on_session=spec.on_session,
        )
        paths.writable(spec.repo, request.log_path)
        out.agent = runner.run(request, stop)
        _judge(spec, out, wt.path, wt.branch, base)
        if out.verdict == "failed":
            _keep_failed(spec, out, wt.path, base)
    except PlanfleetError as exc:
        out.verdict = "failed"
        out.error = {"type": "crash", "step": "setup", "message": exc.message}
        out.feedback = f"The attempt could not start: {exc.message}"
    out.duration_s = time.monotonic() - started
    return out


def _start_clean(spec: AttemptSpec, worktree: Path, base: str) -> prompts.Retry | None:
    """Before a retry: keep what the failed attempt left, then reset the branch to ``base``."""
    if spec.retry_of is None:
        return None
    repo, plan, task = spec.repo, spec.plan.name, spec.task.id
    saved = attemptsave.keep(repo, plan, task, spec.retry_of, worktree, base)
    attemptsave.start_clean(worktree, base)
    return prompts.Retry(
        previous=spec.retry_of,
        base=base,
        kept=saved.branch if saved else None,
        resumed=spec.resume_session is not None,
    )


def _keep_failed(spec: AttemptSpec, out: Outcome, worktree: Path, base: str) -> None:
    """Keep a failed attempt's work on its attempt branch at once, and say so in the feedback."""
    try:
        saved = attemptsave.keep(
            spec.repo, spec.plan.name, spec.task.id, spec.attempt, worktree, base
        )
    except PlanfleetError:
        return  # still in the worktree: the retry tries again before it resets anything
    if saved is None:
        return
    out.kept_branch = saved.branch
    note = (
        f"The work of attempt {spec.attempt} is kept on branch {saved.branch}; the next attempt "
        f"starts from a clean branch at the base commit {base[:12]}."
    )
    out.feedback = f"{out.feedback}\n\n{note}" if out.feedback else note


def _worktree(spec: AttemptSpec) -> provision.Worktree:
    """Create or reuse the task's worktree, recovering from what a crash or a person left.

    A folder git no longer knows (its `.git` link deleted) is set aside with its files; a
    task branch left from an earlier attempt that lacks the current integration commit
    (its worktree was deleted by hand) has its work saved on a rescue branch first. Then
    the attempt starts from a fresh worktree.
    """
    repo, plan, task = spec.repo, spec.plan.name, spec.task.id
    for _ in range(2):
        try:
            return provision.create_worktree(repo, plan, task)
        except RefusedError as exc:
            if exc.reason == "path_occupied":
                pool.set_aside(repo, plan, task)
            elif exc.reason == "stale_branch":
                guards.remove(repo, plan, task)
            else:
                raise
    return provision.create_worktree(repo, plan, task)


def _session_spend(spec: AttemptSpec) -> float:
    """Return what the resumed session had spent by the end of the previous attempt.

    On --resume the CLI reports the session's running total; the attempt's own cost is
    that total minus this.
    """
    if not spec.resume_session or spec.attempt < 2:
        return 0.0
    log = paths.attempt_log(spec.repo, spec.plan.name, spec.task.id, spec.attempt - 1)
    stream = claude_stream.read(log)
    if stream.session_id != spec.resume_session or not stream.result:
        return 0.0
    try:
        return float(stream.result.get("total_cost_usd") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _heads(spec: AttemptSpec, worktree: Path, branch: str) -> tuple[str | None, ...]:
    """Return the commits of the task branch, the integration branch and the worktree's HEAD.

    One git process (run in the worktree, so that HEAD is its own); a worktree git no
    longer knows gives no HEAD, and the branches are read from the repository.
    """
    names = [
        f"{git.branch_ref(b)}^{{commit}}"
        for b in (branch, worktrees.integration_branch(spec.plan.name))
    ]
    try:
        found = refs.resolve_many([*names, "HEAD^{commit}"], cwd=worktree)
    except (CommandError, OSError):
        found = refs.resolve_many(names, cwd=spec.repo)
    return found[names[0]], found[names[1]], found.get("HEAD^{commit}")


def _judge(spec: AttemptSpec, out: Outcome, worktree: Path, branch: str, base: str) -> None:
    agent = out.agent
    if agent is None:
        raise PlanfleetError("internal: an attempt was judged before its agent ran")
    if agent.ending == "stopped":
        out.verdict = "stopped"
        return
    if agent.limit:
        out.verdict = "limit"
        detail = f" ({agent.limit_detail})" if agent.limit_detail else ""
        out.error = {"type": agent.limit, "step": "agent", "message": f"{agent.limit}{detail}"}
        return
    if agent.ending in ("timeout", "stall"):
        what = (
            f"ran longer than its timeout of {spec.timeout_s:g} s"
            if agent.ending == "timeout"
            else f"produced no output for {spec.stall_s:g} s"
        )
        out.error = {"type": agent.ending, "step": "agent", "message": f"the agent {what}"}
        out.feedback = _feedback(
            spec.attempt,
            out.error,
            agent.output_tail,
            "Work in smaller steps, commit as you go, and do not start long-running "
            "or interactive commands.",
        )
        return
    if agent.ending == "not_started":
        out.error = {"type": "crash", "step": "agent", "message": agent.message or "not started"}
        out.feedback = _feedback(spec.attempt, out.error, agent.output_tail, "")
        return
    head, tip, here = _heads(spec, worktree, branch)
    clash = (
        conflicts.with_integration(spec.repo, spec.plan.name, head, base, tip=tip) if head else None
    )
    if clash is not None:  # it could not be merged: no need to run the gates first
        out.error = {"type": "merge_conflict", "step": "conflict", "message": clash[0]}
        out.feedback = clash[1]
        return
    judged = time.monotonic()
    v = gates.verify_attempt(
        spec.repo,
        spec.plan,
        spec.task,
        worktree=worktree,
        branch=branch,
        base_commit=base,
        baseline=spec.baseline,
        claims=agent.claims,
        timeout_s=spec.timeout_s,
        strict_files=spec.strict_files,
        strict_tests=spec.strict_tests,
        head=head,
        worktree_head=here,
    )
    v.timings = {
        "agent_s": round(agent.duration_s, 3),
        "gates_s": round(time.monotonic() - judged, 3),
    }
    _check_model(spec, agent, v)
    out.verification = v
    out.record = str(gates.save_record(spec.repo, spec.plan.name, spec.task.id, spec.attempt, v))
    if v.ok:
        out.verdict = "verified"
        return
    error = dict(v.error or {"type": "verify_failed", "step": "gates", "message": "gate failed"})
    if agent.error_kind and agent.error_kind not in ("no_commands",):
        # The agent itself failed (crashed, ran out of budget...): that is the cause.
        error = {
            "type": agent.error_kind,
            "step": "agent",
            "message": f"{agent.message or agent.error_kind}; then: {error['message']}",
        }
    out.error = error
    out.feedback = _feedback(spec.attempt, error, v.feedback or agent.output_tail, "")


def _check_model(spec: AttemptSpec, agent: AgentResult, v: Verification) -> None:
    """Record in ``v`` the models that ran, and whether the requested one was among them.

    A mismatch is a warning, or with ``strict_model`` a failed ``model`` gate. Nothing is
    recorded when the runner could not tell which models ran.
    """
    if agent.models is None:
        return
    v.models = dict(agent.models)
    found = modelcheck.mismatch(spec.model, agent.models)
    if found is None:
        return
    v.model_mismatch = found
    what = modelcheck.message(found)
    if not (spec.strict_model or spec.plan.strict_model):
        v.warnings.append(what)
        v.gates.append(Gate("model", True, f"warning: {what}", found))
        return
    v.gates.append(Gate("model", False, what, found, "model_mismatch"))
    if v.ok:
        v.ok = False
        v.error = {"type": "model_mismatch", "step": "model", "message": what}
        v.feedback = _feedback(
            spec.attempt,
            v.error,
            None,
            f"The run requires the model {found['requested']!r} (--strict-model); the "
            "work itself passed the other gates.",
        )


def _feedback(attempt: int, error: dict[str, str], detail: str | None, advice: str) -> str:
    """Return the retry feedback: the classified failure, its evidence, what to do."""
    text = (
        f"Attempt {attempt} failed. Classification: {error['type']} "
        f"(at {error['step']}): {error['message']}\n"
    )
    if detail:
        text += f"\nEvidence:\n{detail.strip()}\n"
    if advice:
        text += f"\n{advice}\n"
    text += "\nFix this first; the engine runs the same checks again after your next attempt."
    return text if len(text) <= MAX_FEEDBACK_CHARS else text[: MAX_FEEDBACK_CHARS - 6] + "\n[...]"
