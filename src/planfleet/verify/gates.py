"""Verification gates: what the engine (never the agent) checks after an attempt.

Gates, in order: nothing left uncommitted, a commit with a non-empty diff (design tasks:
their artifacts instead), every file to create present and non-empty in the committed tree,
declared dependencies in a manifest, the task's verify commands, the tests in its blast
radius against the run's baseline, no deleted test files and no new skip markers, no test
collected at the base gone, the base's version of every changed test file passing on the new
code (:mod:`planfleet.verify.history`), and last the agent's own claim, which can make an
attempt fail but never pass. The verdict's records are in ``verify.verdict``, what the next
attempt is told in ``verify.feedback``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from planfleet import fsutil, git, paths
from planfleet.errors import PlanfleetError
from planfleet.ids import check_id
from planfleet.plan import model
from planfleet.plan.declared import undeclared
from planfleet.verify import deps, diff, history, testrun, vacuous
from planfleet.verify.baseline import Baseline, take_baseline
from planfleet.verify.feedback import claimed_done, error_of, feedback_for, some
from planfleet.verify.verdict import Attempt, Gate, Verification

__all__ = ["Baseline", "save_record", "take_baseline", "verify_attempt"]

RECORD_VERSION = 1
# What tests and tools leave behind: never "uncommitted work" of the agent.
_CACHES = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox"}
)


def verify_attempt(
    repo: Path,
    plan: model.Plan,
    task: model.Task,
    *,
    worktree: Path,
    branch: str,
    base_commit: str,
    baseline: Baseline | None,
    claims: dict[str, Any] | None,
    timeout_s: float,
    strict_files: bool = False,
    strict_tests: bool = False,
    head: str | None = None,
    worktree_head: str | None = None,
) -> Verification:
    """Run every gate on the task branch and worktree; return the verdict and its evidence.

    ``strict_files`` (or the plan's ``defaults.strict_files``): a change to a file the task
    does not declare fails the attempt; otherwise it is reported. ``strict_tests`` (or
    ``defaults.strict_tests``): a new or changed test that passes without the task's code
    fails the attempt (``vacuous_test``); otherwise it is reported. ``head``: the branch's
    commit when the caller has just read it (and ``worktree_head`` the worktree's HEAD).
    """
    dirty = uncommitted_files(worktree)  # before any command of ours can add files
    head = head or git.rev_parse(git.branch_ref(branch), cwd=repo)
    commits = git.count_commits(base_commit, head, cwd=repo) if head else 0
    changes = git.diff_changes(base_commit, head, cwd=repo) if head and commits else []
    a = Attempt(task, worktree, branch, base_commit, head, commits, changes, dirty)
    v = Verification(ok=False, commit=head, gates=[], base=base_commit, uncommitted=dirty)
    v.files_created = sorted(c.path for c in changes if c.status in "ACR")
    v.files_modified = sorted(c.path for c in changes if c.status in "MT")
    v.files_deleted = sorted(
        c.old_path or c.path for c in changes if c.status == "D" or c.status == "R"
    )
    if head and (worktree_head or git.rev_parse("HEAD", cwd=worktree)) != head:
        v.warnings.append(f"the worktree is not at the head of {branch}: it was tested as it is")
    v.gates += [_uncommitted_gate(a), _commit_gate(a)]
    if commits:
        v.gates.append(_declared_gate(plan, a, v, strict_files or plan.strict_files))
    if dirty and v.gates[0].ok:
        v.warnings.append(v.gates[0].message.removeprefix("warning: "))
    v.gates += [_artifacts_gate(repo, a, v), _dependencies_gate(repo, a)]
    if commits or a.design:
        v.gates += _command_gates(plan, a, baseline, timeout_s, v)
    if commits:
        v.gates += [
            _deleted_gate(a),
            _skip_gate(repo, a),
            *_history_gates(repo, plan, a, timeout_s, v, strict_tests or plan.strict_tests),
        ]
    v.gates.append(_claims_gate(claims, v.gates))
    v.ok = all(g.ok for g in v.gates)
    if not v.ok:
        v.error = error_of(a, v.gates, claims)
        v.feedback = feedback_for(a, v)
    return v


def _command_gates(
    plan: model.Plan, a: Attempt, baseline: Baseline | None, timeout_s: float, v: Verification
) -> list[Gate]:
    """Run the verify commands and the tests in the worktree; note tracked files they change."""
    runs_tests = a.commits and testrun.test_command(plan) is not None
    before = (
        set(git.status_porcelain(a.worktree, untracked=False))
        if runs_tests or a.task.verify
        else None
    )
    gates = [_verify_gate(cmd, a.worktree, timeout_s) for cmd in a.task.verify]
    gate, v.tests = _tests_gate(plan, a, baseline, timeout_s)
    gates.append(gate)
    if before is not None:
        changed = set(git.status_porcelain(a.worktree, untracked=False)) - before
        if changed:
            v.warnings.append(f"verify/test commands changed tracked files: {some(changed)}")
    return gates


def uncommitted_files(worktree: Path) -> list[str]:
    """Return the worktree's uncommitted paths, caches left by tests and tools excluded."""
    return sorted(
        p
        for p in git.status_porcelain(worktree)
        if not _CACHES.intersection(PurePosixPath(p).parts) and not p.endswith((".pyc", ".pyo"))
    )


def _uncommitted_gate(a: Attempt) -> Gate:
    if not a.dirty:
        return Gate("uncommitted", True, "no uncommitted changes")
    what = f"{len(a.dirty)} uncommitted change(s) left in the worktree: {some(a.dirty)}"
    if a.commits or a.design:
        return Gate("uncommitted", True, f"warning: {what} (not part of the result)")
    return Gate("uncommitted", False, f"nothing committed; {what}", error_type="uncommitted")


def _commit_gate(a: Attempt) -> Gate:
    if a.commits and a.changes:
        return Gate("commit", True, f"{a.commits} commit(s), {len(a.changes)} file(s) changed")
    if a.design:
        return Gate("commit", True, "design task: a commit is optional, its artifacts count")
    if a.commits:
        msg = f"{a.commits} commit(s) on {a.branch}, but they change nothing"
        return Gate("commit", False, msg, error_type="empty_diff")
    msg = (
        f"no commit on {a.branch} beyond the base {a.base[:12]} (verify commands and tests not run)"
    )
    return Gate("commit", False, msg, error_type="no_commit")


def _declared_gate(plan: model.Plan, a: Attempt, v: Verification, strict: bool) -> Gate:
    declared = a.task.writes
    if not declared:
        return Gate("declared_files", True, "the task declares no files: changes not checked")
    v.undeclared = undeclared(diff.changed_paths(a.changes), declared, plan.shared_files)
    if not v.undeclared:
        return Gate("declared_files", True, "every changed file is declared")
    what = f"changed file(s) the task does not declare: {some(v.undeclared, 50)}"
    evidence = {"paths": v.undeclared, "declared": sorted(declared)}
    if strict:
        return Gate("declared_files", False, what, evidence, "undeclared_change")
    v.warnings.append(what)
    return Gate("declared_files", True, f"warning: {what}", evidence)


def _artifacts_gate(repo: Path, a: Attempt, v: Verification) -> Gate:
    files = a.task.files_create
    if not files:
        return Gate("artifacts", True, "no files to create")
    rev = a.head if a.commits else None
    problems: list[diff.Artifact] = []
    for art in diff.check_artifacts(repo, rev, files):
        if art.problem and a.design and diff.on_disk(a.worktree, art.path):
            v.warnings.append(f"{art.path} exists only in the worktree: it will not be merged")
        elif art.problem:
            problems.append(art)
    if not problems:
        return Gate("artifacts", True, f"{len(files)} file(s) present and non-empty")
    kind = "missing_artifact" if any(not p.empty for p in problems) else "empty_artifact"
    msg = "; ".join(f"{p.path} {p.problem}" for p in problems)
    return Gate("artifacts", False, msg, error_type=kind)


def _dependencies_gate(repo: Path, a: Attempt) -> Gate:
    packages = a.task.add_dependencies
    if not packages:
        return Gate("dependencies", True, "no dependencies to add")
    found = deps.check_dependencies(repo, a.head or a.base, packages)
    note = f" (unreadable: {'; '.join(found.unreadable)})" if found.unreadable else ""
    if found.missing:
        where = some(found.manifests) if found.manifests else "no manifest found"
        msg = f"not declared in any manifest: {', '.join(found.missing)} (read: {where}){note}"
        return Gate("dependencies", False, msg, error_type="dependency_missing")
    return Gate(
        "dependencies",
        True,
        "; ".join(f"{p} in {m}" for p, m in found.found.items()) + note,
    )


def _verify_gate(command: str, worktree: Path, timeout_s: float) -> Gate:
    out = testrun.run_user_command(command, cwd=worktree, timeout_s=timeout_s)
    if out.exit_code == 0:
        return Gate("verify", True, f"passed: {command}", out.evidence())
    what = "timed out" if out.exit_code is None else f"exit code {out.exit_code}"
    return Gate("verify", False, f"{what}: {command}", out.evidence(), "verify_failed")


def _tests_gate(
    plan: model.Plan, a: Attempt, baseline: Baseline | None, timeout_s: float
) -> tuple[Gate, dict[str, Any] | None]:
    command = testrun.test_command(plan)
    if command is None:
        why = plan.meta.get("test_command_reason")
        return Gate("tests", True, f"no test command ({why})" if why else "no test command"), None
    if not a.commits:
        return Gate("tests", True, "nothing committed: no change to test"), None
    before = baseline.run if baseline is not None and baseline.command == command else None
    limit = testrun.time_limit(before, testrun.test_timeout(plan), timeout_s)
    run, narrowed, note = testrun.run_tests(
        command, cwd=a.worktree, timeout_s=limit, blast_radius=a.task.blast_radius
    )
    verdict = testrun.compare(before, run, narrowed=narrowed)
    notes = [n for n in (note, "" if before else "no baseline: every failure counts") if n]
    message = verdict.message + "".join(f" ({n})" for n in notes)
    evidence: dict[str, Any] = {
        "command": run.command,
        "exit_code": run.exit_code,
        "output_tail": run.output_tail,
    }
    if run.exit_code is None:
        evidence.update(time_limit_s=limit, running=run.running)
    tests = {
        "before": before.counts() if before else None,
        "after": run.counts(),
        "new_failures": list(verdict.new_failures),
        "fixed": list(verdict.fixed),
        "added": list(verdict.added),
    }
    kind = "test_timeout" if run.exit_code is None else "test_failure"
    return Gate("tests", verdict.ok, message, evidence, None if verdict.ok else kind), tests


def _deleted_gate(a: Attempt) -> Gate:
    allowed = a.task.removes_tests
    kept = [c for c in a.changes if not history.file_allowed(c.old_path or c.path, allowed)]
    gone = diff.deleted_tests(kept)
    if not gone:
        return Gate("deleted_tests", True, "no test file deleted")
    return Gate(
        "deleted_tests", False, f"deleted test file(s): {some(gone)}", None, "tests_deleted"
    )


def _skip_gate(repo: Path, a: Attempt) -> Gate:
    found = diff.added_skip_markers(repo, a.base, a.head) if a.head else []
    if found and a.head:
        found = history.unexcused_markers(repo, a.head, found, a.task.removes_tests)
    if not found:
        return Gate("skip_markers", True, "no skip marker added")
    msg = "skip markers added: " + "; ".join(m.render() for m in found[:10])
    return Gate("skip_markers", False, msg, None, "tests_skipped")


def _history_gates(
    repo: Path, plan: model.Plan, a: Attempt, timeout_s: float, v: Verification, strict: bool
) -> list[Gate]:
    if a.head is None:
        return []
    try:
        found = history.check(
            repo,
            plan.name,
            f"t-{a.task.id}",
            base=a.base,
            head=a.head,
            command=testrun.test_command(plan),
            allowed=a.task.removes_tests,
            timeout_s=timeout_s,
            changes=a.changes,
            red_green=tuple(sorted(a.task.writes)),
        )
    except (PlanfleetError, OSError) as exc:  # no checkout, no disk: unchecked is not passed
        msg = f"the history checks could not run: {getattr(exc, 'message', exc)}"
        return [Gate("history", False, msg, error_type="verify_failed")]
    out = []
    for f in found:
        if f.name == vacuous.NAME and not f.ok:
            v.vacuous = vacuous.record(f)
        if f.name == vacuous.NAME and not f.ok and not strict:
            v.warnings.append(f.message)
            out.append(Gate(f.name, True, f"warning: {f.message}", f.evidence))
        else:
            out.append(Gate(f.name, f.ok, f.message, f.evidence, f.error_type))
    return out


def _claims_gate(claims: dict[str, Any] | None, gates: list[Gate]) -> Gate:
    if claims is None:
        return Gate("claims", True, "no report from the agent (the gates decide)")
    status = claims.get("status") if isinstance(claims, dict) else None
    failed = [g.name for g in gates if not g.ok]
    if claimed_done(claims) and failed:
        msg = f"the agent reported the task done, but gate(s) failed: {', '.join(failed)}"
        return Gate("claims", False, msg, error_type="false_claim")
    return Gate("claims", True, f"the agent reported {status!r}; the gates agree or decide")


def save_record(repo: Path, plan: str, task: str, attempt: int, v: Verification) -> Path:
    """Write ``.planfleet/runs/<plan>/verify/<task>.<attempt>.json`` atomically; return it."""
    path = paths.verify_dir(repo, plan) / f"{check_id(task, what='task id')}.{int(attempt)}.json"
    paths.writable(repo, path)
    record = {"version": RECORD_VERSION, "plan": plan, "task": task, "attempt": attempt}
    record.update(v.to_json())
    fsutil.atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
