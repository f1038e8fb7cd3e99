"""Detached runs: start, watch, stop (pause), resume; a second engine is refused."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import wait_for
from engine_support import (
    assert_truthful_end,
    cli,
    leftover_worktrees,
    plan_repo,
    processes_under,
    state_of,
    task_status,
)
from planfleet import proc

SLOW_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
"""


# Each task waits for a marker file: a run cannot end before the test has stopped or
# killed its engine, however slow the machine.
WAIT_FOR_GO = 'while [ ! -e "$T/go" ]; do sleep 0.05; done'


def _slow_plan(n: int) -> str:
    """Return a chain of ``n`` tasks, each waiting for ``$T/go`` before it writes its file."""
    text = SLOW_PLAN
    for i in range(n):
        dep = f"\n            depends_on: [s{i - 1}]" if i else ""
        text += (
            f"          - id: s{i}\n            title: slow {i}{dep}\n"
            f"            files: {{create: [s{i}.txt]}}\n"
            f"            commands: ['{WAIT_FOR_GO}', 'echo {i} > s{i}.txt']\n"
        )
    return text


def _wait_engine_gone(repo: Path) -> dict:
    """Return the status once the detached engine has finished."""

    def finished() -> dict | None:
        data: dict = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
        return None if data["engine"]["running"] else data

    found: dict = wait_for("the detached engine to finish", finished)
    return found


def test_detach_stop_resume(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, _slow_plan(5))
    env = {"T": str(tmp_path)}
    started = time.monotonic()
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--detach", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 15
    info = json.loads(res.stdout)["data"]
    assert info["pid"] > 0
    assert Path(info["log"]).exists()
    status = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    assert status["engine"]["state"] == "detached"
    # a second engine on the same plan is refused and told who holds it
    second = cli(repo, "resume", "p", "--runner", "shell", "--json")
    assert second.returncode == 3
    assert json.loads(second.stdout)["errors"][0]["reason"] == "engine_running"
    wait_for("s0 to start", lambda: task_status(repo, "s0") == "in_progress")
    stop = cli(repo, "stop", "p", "--json")
    assert stop.returncode == 0, stop.stderr
    st = state_of(repo)
    assert st["status"] == "paused"
    assert not any(r["status"] == "in_progress" for r in st["tasks"].values())
    # proc.stop_group sends its last KILL to the group without waiting for it to empty: a
    # killed `sleep` can show in /proc for a moment after `stop` returns.
    wait_for("the stopped agents to be gone", lambda: processes_under(repo) == [], 10)
    (tmp_path / "go").touch()
    assert_truthful_end(repo)
    resumed = cli(repo, "resume", "p", "--runner", "shell", "--detach", env=env)
    assert resumed.returncode == 0, resumed.stderr
    final = _wait_engine_gone(repo)
    assert final["status"] == "completed"
    assert final["merged"] == 5
    assert leftover_worktrees(repo) == []
    assert_truthful_end(repo)


def test_an_engine_killed_while_detached_is_reported_dead_and_resumable(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, _slow_plan(3))
    env = {"T": str(tmp_path)}
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--detach", "--json", env=env)
    pid = json.loads(res.stdout)["data"]["pid"]
    try:
        wait_for("s0 to start", lambda: task_status(repo, "s0") == "in_progress")
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for("the killed engine to be gone", lambda: not proc.pid_alive(pid))
    data = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    assert data["engine"]["state"] == "dead"
    assert "resume" in data["engine"]["hint"]
    (tmp_path / "go").touch()
    done = cli(repo, "resume", "p", "--runner", "shell", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert state_of(repo)["status"] == "completed"
    assert processes_under(repo) == []
