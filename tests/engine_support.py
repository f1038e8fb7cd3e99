"""Builders for engine tests: a repository with a native plan, the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT, git, make_repo

EXAMPLE = REPO_ROOT / "examples" / "textstats" / "repo"
FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude" / "claude"
DEAD_STATUSES = ("abandoned", "blocked")


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


@contextlib.contextmanager
def engine_process(
    repo: Path,
    env: dict[str, str],
    args: tuple[str, ...] = ("run", "plans/p.plan.yaml", "--runner", "shell", "--json"),
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``planfleet ARGS`` (a shell-runner run) as a process; kill it at the end."""
    engine = subprocess.Popen(
        [sys.executable, "-m", "planfleet", "-C", str(repo), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield engine
    finally:
        if engine.poll() is None:
            engine.kill()
        engine.wait(timeout=10)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def live(pid: int) -> bool:
    """Return True if ``pid`` is a running process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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


def assert_truthful_end(
    repo: Path, plan: str = "p", *, selection: set[str] | None = None, default_max: int = 5
) -> dict[str, Any]:
    """Check how the last run of ``plan`` ended against its state; return that state.

    No run says completed (or "the selected tasks are done") while a node of its
    selection is pending, in progress or failed with attempts left; a failed run names
    every abandoned task; no node waits to be claimed with its attempts used up.
    """
    st = state_of(repo, plan)
    tasks = st["tasks"]
    ends = [e for e in st["events"] if e["event"] == "run_end"]
    assert ends, "the run recorded no end"
    reason = ends[-1]["detail"] or ""

    def merged(r: dict[str, Any]) -> bool:
        if r["status"] == "skipped":
            return True
        return r["status"] == "verified" and (
            bool(r.get("merged_at")) or not r.get("commit") or r["kind"] == "gate"
        )

    nodes = selection if selection is not None else set(tasks)
    open_ = sorted(
        n for n in nodes if not merged(tasks[n]) and tasks[n]["status"] not in DEAD_STATUSES
    )
    everything_open = [n for n, r in tasks.items() if not merged(r)]
    if st["status"] == "completed":
        assert not everything_open, (reason, everything_open)
    if reason == "the selected tasks are done":
        assert not open_, open_
    if open_:
        assert st["status"] != "completed", (reason, open_)
        assert reason != "the selected tasks are done"
        assert st["status"] == "paused" or any(n in reason for n in tasks), (st["status"], reason)
    if st["status"] == "failed":
        for n, r in tasks.items():
            if r["status"] == "abandoned":
                assert n in reason, (n, reason)
    for n in sorted(nodes):
        r = tasks[n]
        limit = r.get("max_attempts") or default_max
        if r["status"] in ("pending", "failed", "timeout"):
            assert r["attempts"] < limit, f"{n} waits with all {limit} attempts used"
        assert r["status"] != "in_progress" or st["status"] == "paused", n
    return st
