"""History gates: a change's tests measured against the base's own tests.

Two checks share scratch checkouts of the base and the head, never the agent's worktree or
branch: every test collected at the base is still there (:mod:`planfleet.verify.collect`), and the
base's version of every test file the change touched passes on the new code
(:mod:`planfleet.verify.weakened`). The task gates and the phase gates both run them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from planfleet import git
from planfleet.plan import model
from planfleet.repo.scratch import Checkouts
from planfleet.verify import collect, diff, vacuous, weakened
from planfleet.verify.collect import Finding, Span, TestRef


@dataclass(frozen=True)
class History:
    """What a phase gate compares: the commit the phase started from, and how to test."""

    base: str
    command: str | None
    allowed: tuple[str, ...] = ()  # tests the plan's tasks may remove (``removes_tests``)


def check(
    repo: Path,
    plan: str,
    key: str,
    *,
    base: str,
    head: str,
    command: str | None,
    allowed: tuple[str, ...],
    timeout_s: float,
    changes: list[git.Change] | None = None,
    red_green: tuple[str, ...] | None = None,
) -> list[Finding]:
    """Return the ``removed_tests`` and ``old_tests`` findings for ``base`` → ``head``.

    ``key`` names the scratch checkouts (``t-<task>``, ``p-<phase>``). ``red_green`` (a task's
    declared files) adds the ``vacuous_test`` finding: its failure is the caller's to weigh.
    """
    if changes is None:
        changes = git.diff_changes(base, head, cwd=repo)
    with Checkouts(repo, plan, key, {"base": base, "head": head}) as checkout:
        span = Span(repo, plan, base, head, changes, command, allowed, checkout, timeout_s)
        # in this order: the collection needs the head's checkout as committed
        found = [collect.removed_tests(span)]
        if command is not None:
            found.append(weakened.old_tests_on_new_code(span))
        if command is not None and red_green is not None:
            found.append(_red_green(span, red_green))
    return found


def _red_green(span: Span, writes: tuple[str, ...]) -> Finding:
    touched = vacuous.touched_tests(span)
    if touched.files and vacuous.excused(writes, touched):
        msg = "the task declares only test files: its tests may pass on the base's code"
        return Finding(vacuous.NAME, True, msg)
    return vacuous.red_run(span, touched)


def for_phase(
    repo: Path, plan: model.Plan, bases: Iterable[str | None], head: str
) -> History | None:
    """Return what the phase gate compares: from the oldest of its tasks' ``bases`` to ``head``.

    Every base is a commit of the integration branch, so their merge base is the oldest.
    """
    found = sorted({b for b in bases if b})
    if not found:
        return None
    result = git.git("merge-base", "--octopus", *found, head, cwd=repo, check=False)
    base = result.stdout.strip() if result.ok else ""
    if not base or base == head:
        return None
    allowed = tuple(p for t in plan.tasks for p in t.removes_tests)
    command = plan.meta.get("test_command")
    return History(base, command.strip() or None if isinstance(command, str) else None, allowed)


def file_allowed(path: str, patterns: Iterable[str]) -> bool:
    """Return True if one of ``patterns`` names the whole file ``path`` (or its folder)."""
    return any(
        fnmatchcase(path, p.strip()) or path.startswith(p.strip().rstrip("/") + "/")
        for p in patterns
        if p.strip()
    )


def unexcused_markers(
    repo: Path, head: str, markers: list[diff.SkipMarker], allowed: tuple[str, ...]
) -> list[diff.SkipMarker]:
    """Return the skip markers that switch off a test the task may not remove."""
    if not allowed:
        return markers
    texts: dict[str, str] = {}
    kept = []
    for m in markers:
        if file_allowed(m.path, allowed):
            continue
        if m.path not in texts:
            texts[m.path] = git.blob_text(head, m.path, cwd=repo) or ""
        owner = weakened.enclosing_test(texts[m.path], m.line)
        if owner and TestRef(f"{m.path}::{owner}", m.path, owner, None, owner).allowed(allowed):
            continue
        kept.append(m)
    return kept


def gates_json(found: list[Finding]) -> list[dict[str, object]]:
    """Return the findings as a record's entries."""
    return [{"check": f.name, "ok": f.ok, "message": f.message} for f in found]
