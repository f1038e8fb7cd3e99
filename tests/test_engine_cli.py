"""The engine's smaller commands: verify, batch, logs, stop --task, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from engine_support import assert_truthful_end, cli, example_repo, plan_repo, state_of

TWO_TASKS = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: a
            title: a
            files: {create: [a.txt]}
            commands: ["echo a > a.txt"]
            verify: ["test -s a.txt"]
          - id: b
            title: b
            files: {create: [b.txt]}
            commands: ["echo b > b.txt"]
"""


def test_batch_runs_the_named_tasks_and_ends_with_batch_result(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    res = cli(
        repo,
        "batch",
        "--tasks-path",
        "plans/p.plan.yaml",
        "--task-ids",
        "a",
        "--project-path",
        str(repo),
        "--batch-number",
        "2",
        "--layer",
        "L1",
        "--runner",
        "shell",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[BATCH L1 #2] a ✓ (1/1)" in res.stdout
    tail = res.stdout.split("BATCH_RESULT:", 1)[1]
    result = json.loads(tail)
    assert result["verified"] == ["a"]
    assert result["abandoned"] == []
    assert result["should_stop"] is False
    assert state_of(repo)["tasks"]["b"]["status"] == "pending"  # not in the batch
    assert_truthful_end(repo, selection={"a"})


def test_verify_runs_the_gates_on_demand_and_logs_show_the_attempt(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    # a task branch made by hand: it misses the file it must create
    git(repo, "branch", "planfleet/p/tasks/b")
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "planfleet/p/tasks/b")
    (tmp_path / "wt" / "other.txt").write_text("x\n")
    git(tmp_path / "wt", "add", "-A")
    git(tmp_path / "wt", "commit", "-qm", "wrong file")
    git(repo, "worktree", "remove", str(tmp_path / "wt"))
    res = cli(repo, "verify", "plans/p.plan.yaml", "b", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["ok"] is False
    assert data["error"]["type"] == "missing_artifact"
    assert not list((repo / ".planfleet" / "worktrees").glob("p/_*"))  # scratch removed

    assert (
        cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--tasks", "a").returncode == 0
    )
    logs = cli(repo, "logs", "p", "a", "--json")
    assert logs.returncode == 0, logs.stderr
    assert json.loads(logs.stdout)["data"]["path"].endswith("a.1.log")
    missing = cli(repo, "logs", "p", "b")
    assert missing.returncode == 3  # b has not run yet: refused, with a next step
    assert "no log for task 'b'" in missing.stderr


def test_a_selection_that_waits_on_unselected_work_is_refused(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    res = cli(repo, "run", "plans/textstats.plan.yaml", "--runner", "shell", "--tasks", "cli")
    assert res.returncode == 3
    assert "cli depends on phase core (its gate)" in res.stderr


def test_bad_flags_and_unknown_ids_are_usage_errors(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    for args, needle in (
        (["run", "plans/p.plan.yaml", "--max-parallel", "0"], "at least 1"),
        (["run", "plans/p.plan.yaml", "--tasks", "nope", "--runner", "shell"], "no task 'nope'"),
        (["run", "plans/p.plan.yaml", "--phase", "9", "--runner", "shell"], "no phase '9'"),
        (["run", "plans/missing.yaml"], "no plan file"),
        (["status", "../etc"], "plan name"),
    ):
        res = cli(repo, *args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    many = cli(repo, "run", "plans/p.plan.yaml", "--max-parallel", "11", "--runner", "shell")
    assert many.returncode == 3
    assert "--accept-cost" in many.stderr


def test_claude_runner_needs_confirmation_when_nobody_can_answer(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "claude", "--json")
    assert res.returncode == 3
    assert json.loads(res.stdout)["errors"][0]["reason"] == "needs_confirmation"
    assert not (repo / ".planfleet" / "state" / "p.json").exists()


def test_stop_of_a_task_without_an_engine_holds_it_until_resume(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    assert cli(repo, "state", "init", "p", "--from", "plans/p.plan.yaml").returncode == 0
    res = cli(repo, "stop", "p", "--task", "b", "--json")
    assert res.returncode == 0, res.stderr
    assert state_of(repo)["tasks"]["b"]["status"] == "held"
    done = cli(repo, "resume", "p", "--runner", "shell")
    assert done.returncode == 0, done.stdout + done.stderr
    assert state_of(repo)["tasks"]["b"]["status"] == "verified"
    assert_truthful_end(repo)
