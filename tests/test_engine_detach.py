"""Detached runs: start, watch, stop (pause), resume; a second engine is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine_support import (
    assert_truthful_end,
    cli,
    leftover_worktrees,
    plan_repo,
    processes_under,
    state_of,
)

SLOW_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
"""


def _slow_plan(n: int, wait: str = "sleep 0.6") -> str:
    text = SLOW_PLAN
    for i in range(n):
        dep = f"\n            depends_on: [s{i - 1}]" if i else ""
        text += (
            f"          - id: s{i}\n            title: slow {i}{dep}\n"
            f"            files: {{create: [s{i}.txt]}}\n"
            f"            commands: ['{wait}', 'echo {i} > s{i}.txt']\n"
        )
    return text


def _wait_engine_gone(repo: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
        if not data["engine"]["running"]:
            return data
        time.sleep(0.2)
    raise AssertionError("the detached engine did not finish")


def test_detach_stop_resume(tmp_path: Path) -> None:
    # Each task waits for a marker file: the run cannot end before the stop, however slow
    # the machine.
    repo = plan_repo(tmp_path, _slow_plan(5, 'while [ ! -e "$T/go" ]; do sleep 0.05; done'))
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
    deadline = time.monotonic() + 60
    while state_of(repo)["tasks"]["s0"]["status"] != "in_progress":
        assert time.monotonic() < deadline, "s0 did not start"
        time.sleep(0.05)
    stop = cli(repo, "stop", "p", "--json")
    assert stop.returncode == 0, stop.stderr
    st = state_of(repo)
    assert st["status"] == "paused"
    assert not any(r["status"] == "in_progress" for r in st["tasks"].values())
    assert processes_under(repo) == []
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
    import os
    import signal

    repo = plan_repo(tmp_path, _slow_plan(3))
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--detach", "--json")
    pid = json.loads(res.stdout)["data"]["pid"]
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    data = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    assert data["engine"]["state"] == "dead"
    assert "resume" in data["engine"]["hint"]
    done = cli(repo, "resume", "p", "--runner", "shell")
    assert done.returncode == 0, done.stdout + done.stderr
    assert state_of(repo)["status"] == "completed"
    assert processes_under(repo) == []
