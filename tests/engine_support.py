"""Builders for engine tests: a repository with a native plan, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT, git, make_repo

EXAMPLE = REPO_ROOT / "examples" / "textstats" / "repo"
FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude" / "claude"


def plan_repo(tmp: Path, plan_yaml: str, files: dict[str, str] | None = None) -> Path:
    """Return a repository holding ``plans/p.plan.yaml`` (dedented) and ``files``."""
    content = {"plans/p.plan.yaml": textwrap.dedent(plan_yaml), **(files or {})}
    return make_repo(tmp / "repo", content)


def example_repo(tmp: Path) -> Path:
    """Return a fresh git copy of the bundled example repository."""
    target = tmp / "example"
    shutil.copytree(EXAMPLE, target)
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "start")
    return target


def cli(
    repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m planfleet -C repo ARGS`` as a real process; return what it did."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PLANFLEET_DETACHED", None)
    return subprocess.run(
        [sys.executable, "-m", "planfleet", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=repo,
    )


def state_of(repo: Path, plan: str = "p") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / ".planfleet" / "state" / f"{plan}.json").read_text())
    return data


def task_status(repo: Path, task: str, plan: str = "p") -> str | None:
    """Return the task's recorded status; None while the engine has not written its state.

    A detached engine takes its lock (which ends `run --detach`) before it creates the state.
    """
    try:
        return str(state_of(repo, plan)["tasks"][task]["status"])
    except FileNotFoundError:
        return None


def statuses(repo: Path, plan: str = "p") -> dict[str, str]:
    return {t: r["status"] for t, r in state_of(repo, plan)["tasks"].items()}


def integration_files(repo: Path, plan: str = "p") -> dict[str, str]:
    """Return path -> content of every file on the plan's integration branch."""
    ref = f"planfleet/{plan}/integration"
    names = git(repo, "ls-tree", "-r", "--name-only", ref).split()
    return {n: git(repo, "show", f"{ref}:{n}") for n in names}


def leftover_worktrees(repo: Path) -> list[str]:
    """Return the task worktrees git still knows about (the main checkout excluded)."""
    listing = git(repo, "worktree", "list", "--porcelain")
    paths = [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]
    return [p for p in paths if Path(p).resolve() != repo.resolve()]


def processes_under(path: Path) -> list[int]:
    """Return pids of live processes whose cwd is inside ``path``."""
    found = []
    target = str(path.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            found.append(int(entry.name))
    return found
