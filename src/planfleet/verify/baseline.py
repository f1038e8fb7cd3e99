"""The test baseline: the plan's test command run once on the commit a run starts from.

Failures already present there are not blamed on any task. It runs in a temporary detached
worktree, so the user's checkout and the task worktrees are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.plan import model
from planfleet.repo import include
from planfleet.repo.scratch import scratch_worktree
from planfleet.verify import testrun

BASELINE_VERSION = 1


@dataclass(frozen=True)
class Baseline:
    """The test command's result on the commit a run started from (``run`` None: no tests)."""

    commit: str
    command: str | None
    run: testrun.TestRun | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": BASELINE_VERSION,
            "commit": self.commit,
            "command": self.command,
            "run": self.run.to_json() if self.run else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        """Return the baseline stored by :meth:`to_json`; ValueError/TypeError when malformed."""
        if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION:
            raise ValueError(f"not a version {BASELINE_VERSION} baseline")
        commit, command = data.get("commit"), data.get("command")
        if not isinstance(commit, str) or not (command is None or isinstance(command, str)):
            raise TypeError("a baseline needs a commit (string) and a command (string or null)")
        run = data.get("run")
        return cls(commit, command, testrun.TestRun.from_json(run) if run is not None else None)


def take_baseline(repo: Path, plan: model.Plan, commit: str, *, timeout_s: float) -> Baseline:
    """Run the plan's test command on ``commit`` in a temporary detached worktree.

    It may take the plan's test time limit (``--test-timeout``), else ``timeout_s``.
    """
    command = testrun.test_command(plan)
    if command is None:
        return Baseline(commit, None)
    repo = repo.resolve()
    limit = testrun.test_timeout(plan) or timeout_s
    with scratch_worktree(repo, plan.name, "baseline", commit) as path:
        # the same untracked files (.env, ...) a task's worktree gets
        include.copy_into(repo, path, include.sources(repo))
        run, _, _ = testrun.run_tests(command, cwd=path, timeout_s=limit)
    return Baseline(commit, command, run)
