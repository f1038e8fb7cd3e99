"""What the disk-and-git sub-cases share: the engine command lines, the context of one
sub-case, and the checks of how a command ended and of the end state."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torturelib import common, procs

RUN_TIMEOUT_S = 120.0


@dataclass
class Setup:
    template: Path
    work: Path
    env: dict[str, str]
    reference: dict[str, str]  # path -> blob id of the uninterrupted run's integration tree
    main: str  # the user's branch: no sub-case may move it


def run_argv(repo: Path) -> list[str]:
    return common.shell_run(repo, resume=False, parallel=2, attempts=3)


def resume_argv(repo: Path) -> list[str]:
    return common.shell_run(repo, resume=True, parallel=2, attempts=3)


def tree_files(repo: Path) -> dict[str, str]:
    """Return path -> blob id on the integration branch (empty if there is none)."""
    out = common.git(repo, "ls-tree", "-r", "refs/heads/planfleet/p/integration", check=False)
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


@dataclass
class Ctx:
    setup: Setup
    repo: Path
    launcher: procs.Launcher
    rng: random.Random
    folder: Path

    def run(self, argv: list[str]) -> tuple[int | None, str, str]:
        code, out, err, _ = self.launcher.run(argv, cwd=self.repo, timeout=RUN_TIMEOUT_S)
        return code, out, err

    def start(self, argv: list[str]) -> Any:
        return self.launcher.start(argv, cwd=self.repo, log=self.folder / "engine.log")

    def wait(self, p: Any) -> tuple[int | None, str, str]:
        try:
            p.wait(timeout=RUN_TIMEOUT_S)
        except Exception:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return None, "", "timed out"
        text = (self.folder / "engine.log").read_text(errors="replace")
        return p.returncode, text, text


def ending(
    problems: list[str],
    what: str,
    code: int | None,
    out: str,
    err: str,
    *,
    allowed: tuple[int, ...] = (0, 2, 3),
) -> None:
    """Note what is wrong with how a command ended (a hang, exit 4, a traceback, an error
    without a message, an exit code outside ``allowed``)."""
    if code is None:
        problems.append(f"{what} did not end within {RUN_TIMEOUT_S:g} s")
        return
    if common.has_traceback(out + err):
        problems.append(f"{what} printed a traceback: {(err or out).strip()[-300:]}")
    if code not in allowed:
        problems.append(f"{what} exit {code}: {_why(out, err)}")
    elif code in (2, 3) and not _why(out, err):
        problems.append(f"{what} exit {code} without a message")


def _why(out: str, err: str) -> str:
    env = common.envelope(out)
    if env and env.get("errors"):
        return "; ".join(str(e.get("message")) for e in env["errors"])[:300]
    if env and isinstance(env.get("data"), dict) and env["data"].get("reason"):
        return str(env["data"]["reason"])[:300]
    return err.strip()[-300:]


def final(
    problems: list[str], repo: Path, setup: Setup, *, extra: dict[str, str] | None = None
) -> None:
    """The end of a sub-case: the run completed with the reference's files (plus ``extra``
    paths that must exist), the user's branch untouched, state valid, no lock or stale
    worktree."""
    main = common.git(repo, "rev-parse", "refs/heads/main").strip()
    if main != setup.main:
        problems.append(f"the user's branch main moved: {setup.main[:10]} -> {main[:10]}")
    state, problem = common.load_state(repo)
    if problem or state is None:
        problems.append(problem or "no state file at the end")
        return
    if state["status"] != "completed":
        problems.append(f"run status {state['status']} at the end")
    files = tree_files(repo)
    for path, blob in setup.reference.items():
        if files.get(path) != blob:
            problems.append(f"integration branch: {path} {'differs' if path in files else 'lost'}")
    for path in extra or {}:
        if path not in files:
            problems.append(f"integration branch: {path} (someone else's commit) was lost")
    locks = common.held_locks(repo)
    if locks:
        problems.append(f"locks left: {', '.join(locks)}")
    stale = common.stale_worktrees(repo)
    if stale:
        problems.append(f"stale worktrees: {', '.join(stale)}")


def state_loads(problems: list[str], ctx: Ctx, when: str) -> dict[str, Any] | None:
    state, problem = common.load_state(ctx.repo)
    if problem:
        problems.append(f"{when}: {problem}")
    return state


def wait_for(ctx: Ctx, p: Any, test: Callable[[dict[str, Any]], bool], limit: float = 60) -> bool:
    """Poll the state file until ``test(state)`` holds; False if the engine ended first."""
    path = ctx.repo / ".planfleet" / "state" / "p.json"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and p.poll() is None:
        try:
            if test(json.loads(path.read_text())):
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return False


def merged(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: (
        sum(1 for r in s["tasks"].values() if r["kind"] == "task" and r.get("merged_at")) >= n
    )
