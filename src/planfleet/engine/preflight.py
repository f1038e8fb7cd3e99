"""Environment checks before a run, with one structured verdict."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git, proc
from planfleet.errors import CommandError, InputError, PlanfleetError, RefusedError
from planfleet.runners.claude import claude_binary

MIN_CLAUDE_FOREGROUND = "2.0.0"
MIN_CLAUDE_BACKGROUND = "2.1.139"  # `claude --bg` and `claude agents` first shipped here
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
OUTPUT_TAIL = 2000


@dataclass
class Check:
    """One check: its name, whether it passed, and what it saw."""

    name: str
    ok: bool
    detail: str
    reason: str | None = None  # stable code when it fails
    next_step: str | None = None
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> Check | None:
        """Return the first required check that failed, or None."""
        return next((c for c in self.checks if c.required and not c.ok), None)

    def to_json(self) -> dict[str, Any]:
        bad = self.failed
        return {
            "status": "aborted" if bad else "ok",
            "reason": bad.reason if bad else None,
            "next_step": bad.next_step if bad else None,
            "checks": [c.to_json() for c in self.checks],
        }


def parse_version(text: str) -> tuple[int, int, int] | None:
    """Return the first ``X.Y.Z`` in ``text`` as a tuple, or None."""
    m = _VERSION_RE.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def check_claude(minimum: str) -> Check:
    exe = claude_binary()
    if exe is None:
        return Check(
            "claude",
            False,
            "claude not found on PATH",
            reason="missing",
            next_step="install Claude Code: npm install -g @anthropic-ai/claude-code",
        )
    try:
        result = proc.run([exe, "--version"], timeout=30, check=False)
    except (InputError, CommandError) as exc:
        return Check(
            "claude",
            False,
            f"{exe}: {exc.message}",
            reason="missing",
            next_step="reinstall Claude Code",
        )
    found = parse_version(result.stdout)
    want = parse_version(minimum)
    if found is None or want is None:
        return Check(
            "claude",
            False,
            f"cannot read a version from {exe} --version",
            reason="missing",
            next_step="reinstall Claude Code",
        )
    shown = ".".join(map(str, found))
    if found < want:
        return Check(
            "claude",
            False,
            f"{exe} is version {shown}; at least {minimum} is needed",
            reason="too_old",
            next_step="update Claude Code: `claude update`, or npm i -g @anthropic-ai/claude-code",
        )
    return Check("claude", True, f"{exe} {shown} (>= {minimum})")


def check_repo(start: Path) -> tuple[Check, Path | None]:
    root = git.toplevel(start) if start.is_dir() else None
    if root is None:
        return Check(
            "git_repo",
            False,
            f"{start} is not inside a git repository",
            reason="no_repo",
            next_step="run inside your project's repository",
        ), None
    return Check("git_repo", True, str(root)), root


def check_clean(root: Path, allow_dirty: bool) -> Check:
    dirty = [p for p in git.status_porcelain(root) if not p.startswith(".planfleet/")]
    if not dirty:
        return Check("clean_tree", True, "working tree clean")
    shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
    if allow_dirty:
        return Check("clean_tree", True, f"dirty but allowed: {shown}", required=False)
    return Check(
        "clean_tree",
        False,
        f"uncommitted changes: {shown}",
        reason="dirty",
        next_step="commit or stash these changes (agents start from committed code), "
        "or pass --allow-dirty",
    )


def check_path(name: str, path: Path, reason: str) -> Check:
    if path.exists():
        return Check(name, True, str(path))
    return Check(
        name,
        False,
        f"{path} does not exist",
        reason=reason,
        next_step=f"create {path} or pass the right path",
    )


def check_command(name: str, command: str, cwd: Path, timeout: float) -> Check:
    """Run a user-supplied command (test/build/lint) and report its exit code."""
    try:
        result = proc.run(proc.user_command(command), cwd=cwd, timeout=timeout, check=False)
    except CommandError:
        return Check(
            name,
            False,
            f"`{command}` timed out after {timeout:.0f}s",
            reason=f"{name}_failed",
            next_step=f"make `{command}` finish, or raise --timeout",
        )
    if result.ok:
        return Check(name, True, f"`{command}` passed in {result.duration_s:.1f}s")
    tail = (result.stdout + result.stderr)[-OUTPUT_TAIL:].strip()
    return Check(
        name,
        False,
        f"`{command}` exited {result.returncode}\n{tail}",
        reason=f"{name}_failed",
        next_step=f"fix the failures of `{command}` before starting agents",
    )


def check_tests(root: Path, plan_path: Path | None, flag: str | None) -> Check:
    """Say which test command a run would use and why; fail when the plan needs one and
    none was found (it declares a blast radius)."""
    from planfleet.plan import formats, model
    from planfleet.verify import testcmd

    plan: model.Plan | None = None
    if plan_path is not None:
        with contextlib.suppress(PlanfleetError):  # the plan check reports a missing plan
            where = plan_path if plan_path.is_absolute() else root / plan_path
            plan = formats.load_plan(where, repo=root)
    choice = testcmd.choose(root, plan, flag=flag)
    if choice.command is not None:
        return Check("test_cmd", True, choice.describe(), required=False)
    try:
        testcmd.require(plan or model.Plan("-", "", "", "", (), ()), choice)
    except RefusedError as exc:
        return Check("test_cmd", False, exc.message, exc.reason, exc.next_step)
    return Check("test_cmd", True, f"{choice.describe()} (no tests gate)", required=False)


def run_preflight(
    *,
    start: Path,
    minimum_claude: str = MIN_CLAUDE_FOREGROUND,
    require_claude: bool = True,
    allow_dirty: bool = False,
    paths: Sequence[tuple[str, Path, str]] = (),
    commands: Sequence[tuple[str, str]] = (),
    timeout: float = 600,
    tests: tuple[Path | None, str | None] | None = None,
) -> Verdict:
    """Run the checks in order; the commands are skipped once a required check failed.

    ``tests`` (the plan's path and ``--test-cmd``) adds the test command check.
    """
    verdict = Verdict()
    if require_claude:
        verdict.checks.append(check_claude(minimum_claude))
    repo_check, root = check_repo(start)
    verdict.checks.append(repo_check)
    if root is not None:
        verdict.checks.append(check_clean(root, allow_dirty))
        for name, path, reason in paths:
            verdict.checks.append(
                check_path(name, path if path.is_absolute() else root / path, reason)
            )
        if tests is not None:  # (the plan, --test-cmd)
            verdict.checks.append(check_tests(root, *tests))
        if verdict.failed is None:
            for name, command in commands:
                verdict.checks.append(check_command(name, command, root, timeout))
    return verdict
