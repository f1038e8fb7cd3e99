"""`planfleet stop PLAN --task ID` on a live run: the task is held, the rest goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, wait_for
from engine_support import cli, integration_files, plan_repo, processes_under, state_of
from planfleet.engine import runinfo

HELD_NOTE = "stopped by request (planfleet stop --task)"
# `money` announces that it started, then waits for a marker file the test creates.
HOLD_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: money
            title: money
            files: {create: [money.txt]}
            commands:
              - 'touch "$T/money.started"; while [ ! -e "$T/go" ]; do sleep 0.05; done'
              - echo m > money.txt
          - id: after-money
            title: after money
            depends_on: [money]
            files: {create: [after.txt]}
            commands: ["echo a > after.txt"]
          - id: other
            title: other
            files: {create: [other.txt]}
            commands:
              - 'while [ ! -e "$T/money.started" ]; do sleep 0.05; done; echo o > other.txt'
"""


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "marks"
    folder.mkdir()
    yield folder
    (folder / "go").touch()  # whatever happened, no command waits forever


def _events(repo: Path, task: str) -> list[tuple[str, str | None]]:
    return [(e["event"], e["detail"]) for e in state_of(repo)["events"] if e["task"] == task]


def test_stop_task_holds_it_while_the_rest_of_the_run_goes_on(tmp_path: Path, marks: Path) -> None:
    repo = plan_repo(tmp_path, HOLD_PLAN)
    env = {"T": str(marks)}
    started = cli(
        repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--detach", "--json", env=env
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for("money to start", (marks / "money.started").exists)
        stop = cli(repo, "stop", "p", "--task", "money", "--json")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        # Held (the command returns once it is): not restarted, its attempt not counted,
        # its agent gone.
        record = wait_for(
            "money to be held",
            lambda: (r := state_of(repo)["tasks"]["money"])["status"] == "held" and r,
            timeout=30,
        )
        data = json.loads(stop.stdout)["data"]
        assert data["held"] is True
        assert data["requested"] == "stop money"
        assert record == state_of(repo)["tasks"]["money"]
        assert record["status"] == "held"
        assert record["attempts"] == 0
        assert record["note"] == HELD_NOTE
        # (proc.stop_group sends its last KILL to the group without waiting for it to empty)
        money_wt = repo / ".planfleet" / "worktrees" / "p" / "money"
        wait_for("money's agent to be gone", lambda: processes_under(money_wt) == [], 10)
        # The rest of the run goes on and the engine ends when only held work is left.
        wait_for("the engine to end", lambda: not runinfo.is_running(repo, "p"))
    finally:
        if runinfo.is_running(repo, "p"):
            cli(repo, "stop", "p")
    st = state_of(repo)
    tasks = st["tasks"]
    assert tasks["other"]["status"] == "verified"
    assert tasks["other"]["merged_at"]
    assert tasks["money"]["status"] == "held"
    assert tasks["after-money"]["status"] == "pending"  # waits for what it depends on
    assert st["status"] == "paused"
    assert st["events"][-1]["detail"] == "held by planfleet stop --task: money"
    events = _events(repo, "money")
    assert ("released", HELD_NOTE) in events
    assert "stopped: the run was paused" not in [d for _, d in events]
    assert [e for e, _ in events].count("claimed") == 1  # never claimed again
    status = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    rows = {r["task"]: r for r in status["task_rows"]}
    assert rows["money"]["status"] == "held"
    assert status["counts"]["held"] == 1
    assert "held" in cli(repo, "status", "p").stdout

    # `resume --tasks money` releases only it; a plain resume finishes the plan.
    (marks / "go").touch()
    one = cli(repo, "resume", "p", "--tasks", "money", "--runner", "shell", env=env)
    assert one.returncode == 0, one.stdout + one.stderr
    tasks = state_of(repo)["tasks"]
    assert tasks["money"]["status"] == "verified"
    assert tasks["money"]["attempts"] == 1  # the stopped attempt did not count
    assert tasks["after-money"]["status"] == "pending"
    assert ("unheld", "released by resume") in _events(repo, "money")
    rest = cli(repo, "resume", "p", "--runner", "shell", env=env)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert state_of(repo)["status"] == "completed"
    assert set(integration_files(repo)) >= {"money.txt", "after.txt", "other.txt"}
    assert processes_under(repo) == []


def test_stop_task_holds_waiting_work_and_refuses_finished_work(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, HOLD_PLAN)
    assert cli(repo, "state", "init", "p", "--from", "plans/p.plan.yaml").returncode == 0
    head = git(repo, "rev-parse", "HEAD").strip()
    assert cli(repo, "state", "claim", "p", "other").returncode == 0
    assert cli(repo, "state", "complete", "p", "other", "--commit", head).returncode == 0
    held = cli(repo, "stop", "p", "--task", "after-money", "--json")
    assert held.returncode == 0, held.stderr
    assert state_of(repo)["tasks"]["after-money"]["status"] == "held"
    assert json.loads(held.stdout)["data"]["was"] == "pending"
    again = cli(repo, "stop", "p", "--task", "after-money", "--json")
    assert again.returncode == 0  # already held: nothing more to do
    done = cli(repo, "stop", "p", "--task", "other", "--json")
    assert done.returncode == 3, done.stdout
    error = json.loads(done.stdout)["errors"][0]
    assert error["reason"] == "not_stoppable"
    assert "verified" in error["message"]
    unknown = cli(repo, "stop", "p", "--task", "nope")
    assert unknown.returncode == 2
    assert "no task 'nope'" in unknown.stderr
