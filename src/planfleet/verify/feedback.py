"""What a failed attempt is told: the first failing gate as its error, evidence and advice."""

from __future__ import annotations

from typing import Any

from planfleet.verify import diff
from planfleet.verify.verdict import Attempt, Gate, Verification

MAX_FEEDBACK_CHARS = 6000
_DONE = frozenset({"done", "success", "succeeded", "complete", "completed", "ok", "passed"})
ADVICE = {
    "no_commit": "Make the changes the task asks for and commit them on branch {branch}.",
    "uncommitted": "Commit your work on branch {branch}: `git add -A && git commit -m ...`.",
    "empty_diff": "Your commits change nothing compared with the base: make the change.",
    "missing_artifact": "Create every file the task lists and commit it.",
    "empty_artifact": "Write the content of every file the task lists, then commit it.",
    "dependency_missing": "Declare the package in the project's manifest and commit it.",
    "verify_failed": "Make this command pass in the worktree, then commit.",
    "test_failure": "Fix the tests that your change broke; failures present before it are "
    "not counted.",
    "test_timeout": "A test did not finish in time after your change (the one named above "
    "was running when it was stopped): make it finish, e.g. remove the endless loop or wait.",
    "tests_deleted": "Restore the deleted tests under their old names; change the code, not "
    "the tests.",
    "weakened_test": "Make the code pass the tests as they were before your change (the base's "
    "version named above), then commit; editing a test to match new behaviour does not count.",
    "vacuous_test": "Make each test named above fail without your change and pass with it: "
    "assert the behaviour the task adds, not what the code did already (--strict-tests).",
    "tests_skipped": "Remove the skip markers you added and make those tests pass instead.",
    "false_claim": "You reported the task done, but nothing was committed on {branch}. "
    "Do the work and commit it.",
    "undeclared_change": "Change only the files this task lists (and the plan's shared "
    "files); leave the files named above as they are on the base.",
}


def some(items: set[str] | list[str], n: int = 10) -> str:
    shown = sorted(items)
    return ", ".join(shown[:n]) + (f" and {len(shown) - n} more" if len(shown) > n else "")


def claimed_done(claims: dict[str, Any] | None) -> bool:
    """Return True if the agent's own report says the task is done."""
    if not isinstance(claims, dict):
        return False
    status = claims.get("status")
    return (isinstance(status, str) and status.strip().lower() in _DONE) or any(
        claims.get(k) is True for k in ("success", "done")
    )


def error_of(a: Attempt, gates: list[Gate], claims: dict[str, Any] | None) -> dict[str, str]:
    """Return ``{type, step, message}`` of the first failing gate, a false claim named."""
    first = next(g for g in gates if not g.ok)
    kind, msg = first.error_type or "verify_failed", first.message
    if claimed_done(claims):
        msg = f"the agent reported the task done, but {msg}"
        if not a.commits and not a.dirty and not (a.design and _any_artifact(a)):
            kind = "false_claim"  # the claim is the only evidence there is
    return {"type": kind, "step": first.name, "message": msg}


def _any_artifact(a: Attempt) -> bool:
    return any(diff.on_disk(a.worktree, f) for f in a.task.files_create)


def feedback_for(a: Attempt, v: Verification) -> str:
    """Return what the next attempt is told: each failing gate, its evidence, what to do."""
    error = v.error or {}
    failing = [g for g in v.gates if not g.ok and g.name != "claims"]
    lines = [
        f"Verification failed at gate {failing[0].name!r} ({error['type']}): {error['message']}",
        "The engine ran these checks itself after your attempt:",
    ]
    outputs: list[str] = []
    for n, g in enumerate(failing, start=1):
        kind = error["type"] if n == 1 else g.error_type or "verify_failed"
        lines.append(f"{n}. {g.name} ({kind}): {g.message}")
        if g.evidence and "command" in g.evidence:
            ev = g.evidence
            lines.append(f"   Command: {ev['command']} -> exit code {_code(ev['exit_code'])}")
            if ev.get("output_tail"):
                outputs.append(f"Output of {ev['command']} (last lines):\n{ev['output_tail']}")
        advice = ADVICE.get(kind, "Fix the failure above, then commit.")
        lines.append("   What to do: " + advice.format(branch=a.branch))
    if v.uncommitted and error["type"] != "uncommitted":
        lines.append(f"Uncommitted changes left in the worktree: {some(v.uncommitted)}")
    # Outputs go last: when the text is too long, they are what gets cut.
    text = "\n".join([*lines, *outputs])
    return text if len(text) <= MAX_FEEDBACK_CHARS else text[: MAX_FEEDBACK_CHARS - 6] + "\n[...]"


def _code(code: int | None) -> str:
    return "none (timed out)" if code is None else str(code)
