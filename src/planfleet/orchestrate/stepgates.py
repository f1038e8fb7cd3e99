"""The engine's own checks after each phase step, on top of the artifact's schema.

An artifact is a claim. These functions hold it against git and the tests: a test step
that reports ``pass`` must see the plan's test commands pass when planfleet runs them; a
review's findings must point at lines that exist; a fix reported ``fixed`` must have
touched its file in that pass; the commit step's commit must be the checkout's HEAD.
Each raises :class:`planfleet.orchestrate.steps.GateFailed` with the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.orchestrate.checkout import dirty, head
from planfleet.orchestrate.steps import GateFailed
from planfleet.plan import model
from planfleet.verify import diff, testrun

PASSES: dict[int, tuple[str, ...]] = {1: ("P0", "P1"), 2: ("P2",), 3: ("P3",)}
RESOLVED = ("fixed", "wont_fix", "invalid")

Findings = dict[str, dict[str, Any]]


def test_commands(plan: model.Plan, phase: model.Phase) -> list[str]:
    """Return the plan's own test commands for ``phase``: gate, task verify, test command."""
    found = [*phase.gate_commands]
    for t in plan.tasks_of(phase.id):
        found.extend(t.verify)
    if testrun.test_command(plan):
        found.append(str(testrun.test_command(plan)))
    return list(dict.fromkeys(found))


def run_commands(
    step: str, commands: Sequence[str], cwd: Path, timeout_s: float, *, claim: str
) -> list[dict[str, Any]]:
    """Run ``commands`` in ``cwd``; GateFailed (quoting ``claim``) at the first that fails."""
    evidence = []
    for command in commands:
        ran = testrun.run_user_command(command, cwd=cwd, timeout_s=timeout_s)
        evidence.append(ran.evidence())
        if ran.exit_code != 0:
            how = "timed out" if ran.exit_code is None else f"exited {ran.exit_code}"
            raise GateFailed(
                step,
                f"{claim}, but planfleet ran `{command}` and it {how}:\n"
                f"{testrun.tail(ran.output, 1500)}",
            )
    return evidence


def require_committed(step: str, path: Path) -> None:
    """GateFailed when the step left uncommitted changes in the checkout."""
    left = dirty(path)
    if left:
        shown = ", ".join(left[:8]) + (" ..." if len(left) > 8 else "")
        raise GateFailed(step, f"uncommitted changes left in the checkout: {shown}; commit them")


def require_tests_kept(step: str, repo: Path, start: str, end: str) -> None:
    """GateFailed when the diff deletes test files or adds skip markers."""
    gone = diff.deleted_tests(git.diff_changes(start, end, cwd=repo))
    if gone:
        raise GateFailed(step, f"the step deleted tests: {', '.join(gone)}")
    skips = diff.added_skip_markers(repo, start, end)
    if skips:
        raise GateFailed(
            step, "the step switched tests off: " + "; ".join(s.render() for s in skips)
        )


def check_test_report(
    step: str,
    art: Mapping[str, Any],
    repo: Path,
    path: Path,
    start: str,
    commands: Sequence[str],
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Check the test step: it says pass, committed, kept the tests, and the tests pass."""
    if art["status"] != "pass":
        failing = [c["command"] for c in art["commands"] if c.get("exit_code") != 0]
        raise GateFailed(
            step, "the test step reports failing tests: " + (", ".join(failing) or art["summary"])
        )
    require_committed(step, path)
    require_tests_kept(step, repo, start, head(path))
    return run_commands(
        step, commands, path, timeout_s, claim="the test step reports that the tests pass"
    )


def check_review(step: str, art: Mapping[str, Any], path: Path, start: str) -> Findings:
    """Check the review: nothing changed, ids unique, every finding's file and line exist."""
    if dirty(path) or head(path) != start:
        raise GateFailed(step, "the review step changed the code; a review only reports findings")
    found: Findings = {}
    for f in art["findings"]:
        fid = f["id"]
        if fid in found:
            raise GateFailed(step, f"finding id {fid} is used twice")
        if f["status"] != "open":
            raise GateFailed(step, f"finding {fid} is {f['status']!r}; a new finding is 'open'")
        _check_location(step, fid, path, f["file"], f["line"])
        found[fid] = {
            "severity": f["severity"],
            "file": f["file"],
            "line": f["line"],
            "message": f["message"],
            "status": "open",
            "resolved_in": None,
        }
    return found


def _check_location(step: str, fid: str, path: Path, file: str, line: int) -> None:
    clean = diff.clean_path(file)
    target = path / clean if clean else None
    if target is None or not target.is_file():
        raise GateFailed(step, f"finding {fid}: {file} is not a file in the repository")
    try:
        count = len(target.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError as exc:
        raise GateFailed(step, f"finding {fid}: {file} cannot be read: {exc}") from None
    if line > max(count, 1):
        raise GateFailed(
            step, f"finding {fid}: {file} has {count} lines, so line {line} does not exist"
        )


def open_for_pass(findings: Mapping[str, Mapping[str, Any]], pass_no: int) -> Findings:
    """Return the findings pass ``pass_no`` must address: its severities, still open."""
    return {
        fid: dict(f)
        for fid, f in findings.items()
        if f["severity"] in PASSES[pass_no] and f["status"] == "open"
    }


def check_fix(
    step: str,
    art: Mapping[str, Any],
    repo: Path,
    path: Path,
    start: str,
    findings: Findings,
    pass_no: int,
) -> tuple[Findings, list[str]]:
    """Check a fix pass against the diff; return the updated findings and notes.

    Every open finding of the pass needs a result; ``fixed`` needs its file in the pass's
    diff; ``wont_fix``/``invalid`` need a note and are refused for P0 (``invalid`` allowed).
    Results for open findings of later passes count too, so those passes skip them.
    """
    require_committed(step, path)
    end = head(path)
    changed = {c.path for c in git.diff_changes(start, end, cwd=repo)}
    results = {r["id"]: r for r in art["results"]}
    todo = open_for_pass(findings, pass_no)
    missing = [fid for fid in todo if fid not in results]
    if missing:
        raise GateFailed(
            step,
            "findings not addressed: "
            + ", ".join(f"{fid} ({findings[fid]['severity']})" for fid in missing),
        )
    notes = []
    updated = {fid: dict(f) for fid, f in findings.items()}
    for fid, r in results.items():
        f = updated.get(fid)
        if f is None or f["status"] != "open":
            notes.append(f"{fid}: not an open finding; ignored")
            continue
        if r["status"] == "fixed" and f["file"] not in changed:
            raise GateFailed(
                step,
                f"finding {fid} ({f['severity']}) is reported fixed, but {f['file']} "
                "was not changed in this pass",
            )
        if r["status"] != "fixed" and not r["note"].strip():
            raise GateFailed(step, f"finding {fid} is {r['status']} without a note saying why")
        if r["status"] == "wont_fix" and f["severity"] == "P0":
            raise GateFailed(step, f"finding {fid} is P0: it must be fixed, not left as wont_fix")
        f.update(status=r["status"], resolved_in=step, note=r["note"])
    return updated, notes


def unresolved(findings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return the ids of findings still open."""
    return [fid for fid, f in findings.items() if f["status"] == "open"]


def check_commit(
    step: str,
    art: Mapping[str, Any],
    repo: Path,
    path: Path,
    start: str,
    base: str | None,
    findings: Findings,
) -> str:
    """Check the commit step: findings resolved, a new commit that is HEAD; return it."""
    left = unresolved(findings)
    if left:
        raise GateFailed(step, f"findings still open: {', '.join(left)}; run the fix passes")
    require_committed(step, path)
    end = head(path)
    if end == start:
        raise GateFailed(step, "the commit step made no commit")
    if art["commit"] != end:
        raise GateFailed(
            step, f"the artifact names commit {art['commit'][:12]}, but HEAD is {end[:12]}"
        )
    if base and not git.is_ancestor(base, end, cwd=repo):
        raise GateFailed(step, f"HEAD {end[:12]} does not descend from the phase start {base[:12]}")
    return end


def check_implement_report(
    step: str,
    art: Mapping[str, Any],
    repo: Path,
    path: Path,
    start: str,
    plan: model.Plan,
    phase: model.Phase,
) -> None:
    """Check an in-session implement step: every task done, committed, its files present."""
    require_committed(step, path)
    end = head(path)
    reported = {t["id"]: t for t in art["tasks"]}
    for t in plan.tasks_of(phase.id):
        if t.status in ("done", "skipped"):
            continue
        got = reported.get(t.id)
        if got is None or got["status"] != "done":
            what = "not reported" if got is None else got["status"]
            raise GateFailed(step, f"task {t.id} ({t.title}) is {what}")
        for a in diff.check_artifacts(repo, end, t.files_create):
            if a.problem:
                raise GateFailed(step, f"task {t.id}: {a.path} {a.problem}")
    if end == start:
        raise GateFailed(step, "no commit was made")
    require_tests_kept(step, repo, start, end)


@dataclass(frozen=True)
class Where:
    """Where a phase step ran: the repository, the phase checkout, the commit it started at."""

    repo: Path
    path: Path
    start: str
    plan: model.Plan
    phase: model.Phase


def check_step(
    name: str,
    art: Mapping[str, Any],
    at: Where,
    ph: Mapping[str, Any],
    commands: Sequence[str],
    timeout_s: float,
) -> tuple[dict[str, Any], str]:
    """Run the engine's own checks of step ``name``; return phase fields to record and a note."""
    kind, repo, path, start = name.split("-")[0], at.repo, at.path, at.start
    extra: dict[str, Any] = {}
    note = str(art.get("summary", ""))
    if kind == "implement":
        check_implement_report(name, art, repo, path, start, at.plan, at.phase)
        claim = "the implement step reports the tasks done"
        run_commands(name, commands, path, timeout_s, claim=claim)
    elif kind == "test":
        check_test_report(name, art, repo, path, start, commands, timeout_s)
        extra["tested"] = head(path)
        if not commands:
            note += " (the plan gives no test command: planfleet could not check this)"
    elif kind == "review":
        found = check_review(name, art, path, start)
        extra["findings"] = found
        counts = [
            f"{s}: {sum(1 for f in found.values() if f['severity'] == s)}"
            for s in ("P0", "P1", "P2", "P3")
        ]
        note = f"{len(found)} finding(s) ({', '.join(counts)})"
    elif kind == "fix":
        updated, notes = check_fix(
            name, art, repo, path, start, dict(ph["findings"]), int(name[-1])
        )
        if head(path) != start:
            run_commands(name, commands, path, timeout_s, claim="the fixes are committed")
            extra["tested"] = head(path)
        extra["findings"] = updated
        note = "; ".join([note, *notes])
    else:
        end = check_commit(name, art, repo, path, start, ph.get("base"), dict(ph["findings"]))
        if not ph.get("tested") or _tree(path, end) != _tree(path, str(ph["tested"])):
            run_commands(name, commands, path, timeout_s, claim="the phase is committed")
        extra["commit"] = end
    return extra, note


def _tree(path: Path, commit: str) -> str:
    return git.out("rev-parse", f"{commit}^{{tree}}", cwd=path)
