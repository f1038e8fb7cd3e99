"""The engine end to end with the shell runner: real repositories, worktrees, gates, merges."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from engine_support import (
    cli,
    example_repo,
    integration_files,
    leftover_worktrees,
    plan_repo,
    processes_under,
    state_of,
    statuses,
)


def test_bundled_example_runs_end_to_end_with_the_shell_runner(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    head_before = git(repo, "rev-parse", "HEAD")
    res = cli(repo, "run", "plans/textstats.plan.yaml", "--runner", "shell")
    assert res.returncode == 0, res.stdout + res.stderr
    state = state_of(repo, "textstats")
    assert state["status"] == "completed"
    assert all(r["status"] == "verified" for r in state["tasks"].values())
    files = integration_files(repo, "textstats")
    for name in ("src/textstats/tokenize.py", "src/textstats/__main__.py", "docs/usage.md"):
        assert files[name].strip()
    # the user's checkout and branch are untouched
    assert git(repo, "rev-parse", "HEAD") == head_before
    # ... apart from the execution log planfleet renders next to the plan
    dirty = git(repo, "status", "--porcelain").split()
    assert dirty in ([], ["??", "plans/textstats.execution-log.md"])
    assert leftover_worktrees(repo) == []
    assert "[BATCH core #1]" in res.stdout
    assert "completed" in res.stdout
    # every verified task has a verification record with its gates
    record = json.loads(Path(state["tasks"]["tokenizer"]["verification"]).read_text())
    assert record["ok"] is True
    # the phase gates really ran on the integration branch
    gate = json.loads((repo / ".planfleet/runs/textstats/verify/core.gate.json").read_text())
    assert gate["ok"]
    assert gate["commands"][0]["exit_code"] == 0


PARALLEL_PLAN = """\
    planfleet: 1
    name: p
    defaults:
      max_attempts: 2
    phases:
      - id: one
        tasks:
          - id: slow
            title: slow
            files: {create: [slow.txt]}
            # Slow until after-fast has started (or 30 s have passed: then the test fails).
            commands:
              - for i in $(seq 600); do [ -s "$T/after.start" ] && break; sleep 0.05; done
              - echo slow > slow.txt
              - date +%s.%N > $T/slow.end
          - id: fast
            title: fast
            files: {create: [fast.txt]}
            commands: ["echo fast > fast.txt"]
          - id: after-fast
            title: after fast
            depends_on: [fast]
            files: {create: [after.txt]}
            commands: ["date +%s.%N > $T/after.start", "echo after > after.txt"]
"""


def test_a_task_starts_when_its_own_dependencies_are_merged_not_after_a_wave(
    tmp_path: Path,
) -> None:
    repo = plan_repo(tmp_path, PARALLEL_PLAN)
    marks = tmp_path / "marks"
    marks.mkdir()
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", env={"T": str(marks)})
    assert res.returncode == 0, res.stdout + res.stderr
    started_after = float((marks / "after.start").read_text())
    slow_end = float((marks / "slow.end").read_text())
    assert started_after < slow_end, "after-fast waited for an unrelated slow task"


FAILING_PLAN = """\
    planfleet: 1
    name: p
    defaults:
      max_attempts: 2
    phases:
      - id: one
        tasks:
          - id: broken
            title: always fails
            files: {create: [b.txt]}
            commands: ["echo nope >&2; exit 3"]
          - id: needs-broken
            title: depends on the broken one
            depends_on: [broken]
            files: {create: [n.txt]}
            commands: ["echo n > n.txt"]
          - id: independent
            title: independent
            files: {create: [i.txt]}
            commands: ["echo i > i.txt"]
"""


def test_failures_retry_then_abandon_block_dependents_and_spare_independent_work(
    tmp_path: Path,
) -> None:
    repo = plan_repo(tmp_path, FAILING_PLAN)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell")
    assert res.returncode == 1, res.stdout + res.stderr
    st = state_of(repo)
    assert st["status"] == "failed"
    broken = st["tasks"]["broken"]
    assert broken["status"] == "abandoned"
    assert broken["attempts"] == 2
    assert "nope" in (broken["feedback"] or "")
    assert st["tasks"]["needs-broken"]["status"] == "blocked"
    assert st["tasks"]["independent"]["status"] == "verified"
    assert "i.txt" in integration_files(repo)
    assert "broken" in st["abandoned"]


CLASH_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: a
            title: a
            files: {modify: [shared.txt]}
            commands:
              - echo start-a >> $T/order; sleep 0.4; echo a >> shared.txt; echo end-a >> $T/order
          - id: b
            title: b
            files: {modify: [shared.txt], create: [b.txt]}
            commands:
              - echo start-b >> $T/order; sleep 0.4; echo b > b.txt; echo end-b >> $T/order
"""


def test_tasks_with_overlapping_write_sets_never_run_together(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, CLASH_PLAN, {"shared.txt": "base\n"})
    marks = tmp_path / "marks"
    marks.mkdir()
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", env={"T": str(marks)})
    assert res.returncode == 0, res.stdout + res.stderr
    order = (marks / "order").read_text().split()
    assert order in (
        ["start-a", "end-a", "start-b", "end-b"],
        ["start-b", "end-b", "start-a", "end-a"],
    )


CONFLICT_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: left
            title: left
            files: {create: [left.txt]}
            commands:
              # wait until right has its worktree (made from the integration before this merge)
              - while [ ! -f "$T/right-started" ]; do sleep 0.05; done
              - echo left > left.txt
              - echo from-left > same.txt
          - id: right
            title: right
            files: {create: [right.txt]}
            commands:
              - touch "$T/right-started"
              - sleep 0.5
              - echo right > right.txt
              - echo from-right > same.txt
"""


def test_a_merge_conflict_sends_the_task_back_and_it_succeeds_from_the_new_integration(
    tmp_path: Path,
) -> None:
    repo = plan_repo(tmp_path, CONFLICT_PLAN, {"same.txt": "base\n"})
    marks = tmp_path / "marks"
    marks.mkdir()
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", env={"T": str(marks)})
    assert res.returncode == 0, res.stdout + res.stderr
    st = state_of(repo)
    # the conflict is caught when right's agent ends (left was merged by then), or at
    # right's merge (when its agent ended first): either way right goes back
    caught = [
        e
        for e in st["events"]
        if e["event"] == "merge_failed"
        or (e["event"] == "failed" and "merge_conflict at conflict" in (e["detail"] or ""))
    ]
    assert [e["task"] for e in caught] == ["right"]
    assert st["tasks"]["right"]["attempts"] == 2
    files = integration_files(repo)
    assert {"left.txt", "right.txt"} <= set(files)
    assert files["same.txt"].strip() in ("from-left", "from-right")
    assert leftover_worktrees(repo) == []


GATE_PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        gate: ["test -f one.txt && false"]
        tasks:
          - id: first
            title: first
            files: {create: [one.txt]}
            commands: ["echo 1 > one.txt"]
      - id: two
        depends_on: [one]
        tasks:
          - id: second
            title: second
            files: {create: [two.txt]}
            commands: ["echo 2 > two.txt"]
"""


def test_a_failing_phase_gate_blocks_the_phases_after_it(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, GATE_PLAN)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell")
    assert res.returncode == 1, res.stdout + res.stderr
    st = statuses(repo)
    assert st["first"] == "verified"
    assert st["one:gate"] == "abandoned"
    assert st["second"] == "blocked"


def test_a_run_that_exists_is_refused_and_resume_continues_it(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, FAILING_PLAN)
    first = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell")
    assert first.returncode == 1
    again = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--json")
    assert again.returncode == 3
    assert json.loads(again.stdout)["errors"][0]["reason"] == "run_exists"
    # fix the plan, reset the task by hand, resume: only the broken chain runs again
    plan = repo / "plans/p.plan.yaml"
    plan.write_text(plan.read_text().replace("echo nope >&2; exit 3", "echo b > b.txt"))
    git(repo, "commit", "-qam", "fix the plan")
    assert cli(repo, "state", "reset", "p", "broken", "--hard").returncode == 0
    assert cli(repo, "state", "reset", "p", "needs-broken").returncode == 0
    res = cli(repo, "resume", "p", "--runner", "shell")
    assert res.returncode == 0, res.stdout + res.stderr
    st = state_of(repo)
    assert st["status"] == "completed"
    assert st["tasks"]["independent"]["attempts"] == 1  # not run again


def test_dry_run_shows_prompts_commands_and_parallelism_and_starts_nothing(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    res = cli(repo, "run", "plans/textstats.plan.yaml", "--runner", "shell", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["dry_run"] is True
    rows = {r["task"]: r for r in data["tasks"]}
    assert rows["tokenizer"]["prompt_chars"] > 0
    assert any("cp .example" in c for c in rows["tokenizer"]["agent_commands"])
    assert data["projected_parallelism"] == 3
    assert not (repo / ".planfleet" / "state").exists()
    assert git(repo, "branch", "--list", "planfleet/*") == ""


def test_status_shows_a_finished_run_and_a_dead_engine_is_reported(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    assert cli(repo, "run", "plans/textstats.plan.yaml", "--runner", "shell").returncode == 0
    res = cli(repo, "status", "textstats", "--json")
    data = json.loads(res.stdout)["data"]
    assert data["status"] == "completed"
    assert data["merged"] == 5
    assert data["engine"]["state"] == "none"
    listing = json.loads(cli(repo, "status", "--json").stdout)["data"]["runs"]
    assert [r["plan"] for r in listing] == ["textstats"]
    assert processes_under(repo) == []
