"""`planfleet orchestrate`: the six stages, their records, resume, the user gate, the dry
run, the plan review and the knowledge store, with the fake claude on real repos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, git, make_repo
from orchestrate_support import (
    PLAN_DIR,
    fake_env,
    fixture_repo,
    happy,
    invoked,
    pipeline_doc,
    stage_statuses,
    step,
)

Run = Callable[..., CliResult]
TASK_AGENTS = {"1.1", "1.2", "2.1"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return fixture_repo(tmp_path)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    def use(tasks: dict[str, Any]) -> None:
        for key, value in fake_env(tmp_path, tasks).items():
            monkeypatch.setenv(key, value)

    monkeypatch.delenv("CLAUDE_PLUGIN_ROOT", raising=False)
    return use


def orchestrate(run_cli: Run, repo: Path, *args: str) -> CliResult:
    return run_cli("-C", repo, "orchestrate", repo / PLAN_DIR, *args, cwd=repo)


def test_stages_are_recorded_the_gate_refuses_without_yes_and_a_rerun_skips_done_stages(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    refused = orchestrate(run_cli, repo, "--json")  # piped, no --yes: nothing may run
    assert refused.code == 3
    error = refused.json()["errors"][0]
    assert error["reason"] == "needs_confirmation"
    assert error["details"]["execution_plan"]["phases"][0]["tasks"][0]["id"] == "1.1"
    assert stage_statuses(repo) == {
        "ingest": "done",
        "review": "done",
        "skill_match": "done",
        "research": "done",
        "gate": "pending",
        "execute": "pending",
    }
    assert TASK_AGENTS.isdisjoint(invoked(tmp_path))
    confirmed = orchestrate(run_cli, repo, "--yes")
    assert confirmed.code == 0, confirmed.out + confirmed.err
    for name in ("ingest", "review", "skill_match", "research"):
        assert f"stage {name}: done earlier, skipped" in confirmed.out
    assert "Execution plan for calc-tools" in confirmed.out  # shown even with --yes
    assert set(stage_statuses(repo).values()) == {"done"}
    ran = invoked(tmp_path)
    assert ran.count("plan-review") == 1
    assert ran.count("research-sqlite") == 1
    assert set(ran) >= TASK_AGENTS
    assert pipeline_doc(repo)["phases"]["2"]["status"] == "done"
    again = orchestrate(run_cli, repo, "--yes")
    assert again.code == 0
    assert "stage execute: done earlier, skipped" in again.out
    assert invoked(tmp_path) == ran  # nothing ran a second time
    assert "| execute | done |" in (repo / PLAN_DIR / "progress.md").read_text()


def test_dry_run_stops_after_stage_4_and_shows_the_execution_plan(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    res = orchestrate(run_cli, repo, "--dry-run", "--yes")
    assert res.code == 0, res.err
    assert stage_statuses(repo)["research"] == "done"
    assert stage_statuses(repo)["gate"] == "pending"
    assert stage_statuses(repo)["execute"] == "pending"
    assert invoked(tmp_path) == ["plan-review", "research-sqlite"]
    assert "Phase 1: Arithmetic - classic mode (2 task(s))" in res.out
    assert "1.2 Divide - skill python-math (plan)" in res.out
    assert "2.1 CLI entry point for the calculator - agent cli-developer (registry)" in res.out
    assert "matched no skill or agent" in res.err  # 1.1 falls through the cascade
    assert "dry run: stopped at the user gate" in res.out
    assert not git(repo, "branch", "--list", "planfleet/*").strip()


def test_a_second_run_reuses_the_knowledge_store_instead_of_researching_again(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    assert orchestrate(run_cli, repo, "--dry-run").code == 0
    sheet = repo / ".planfleet" / "knowledge" / "sqlite.md"
    assert sheet.read_text().startswith("# sqlite")
    index = json.loads((sheet.parent / "index.json").read_text())
    assert index["sqlite"]["plan"] == "calc-tools"
    again = orchestrate(run_cli, repo, "--dry-run", "--restart", "--json")
    assert again.code == 0, again.err
    assert invoked(tmp_path).count("research-sqlite") == 1
    assert invoked(tmp_path).count("plan-review") == 2  # the restart re-ran stages 1-4
    research = again.json()["data"]["stages"]["research"]
    assert research["data"]["technologies"]["sqlite"]["status"] == "reused"
    assert (repo / ".planfleet/runs/calc-tools/pipeline.json.bak").exists()


def test_a_research_step_that_writes_no_cheat_sheet_fails_its_gate(
    repo: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = happy()
    del tasks["research-sqlite"]["write"]  # claims a sheet it never wrote
    fake(tasks)
    res = orchestrate(run_cli, repo, "--dry-run")
    assert res.code == 1
    assert "sqlite.md does not exist" in res.err
    assert stage_statuses(repo)["research"] == "failed"


def test_a_plan_review_artifact_that_breaks_its_schema_stops_the_pipeline(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = happy()
    tasks["plan-review"] = step({"version": 1, "step": "plan-review", "summary": "x"})
    fake(tasks)
    res = orchestrate(run_cli, repo, "--dry-run", "--json")
    assert res.code == 1
    message = res.json()["data"]["stages"]["review"]["message"]
    assert "plan_review.schema.json" in message
    assert "'revised' is a required property" in message
    assert stage_statuses(repo)["review"] == "failed"
    assert stage_statuses(repo)["skill_match"] == "pending"
    assert invoked(tmp_path) == ["plan-review"]


def test_a_revised_plan_is_shown_as_a_diff_and_replaces_the_plan_only_when_confirmed(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    original = (repo / PLAN_DIR / "task_plan.md").read_text()
    revised = original.replace(
        "## Phase 2: Command line",
        "### Task 1.3: Tests for division by zero\n- Files: `tests/test_div.py` (new)\n\n"
        "## Phase 2: Command line",
    )
    tasks = happy()
    tasks["1.3"] = {"behaviour": "succeed", "files": {"tests/test_div.py": "# division\n"}}
    tasks["plan-review"] = step(
        {
            "version": 1,
            "step": "plan-review",
            "summary": "one gap",
            "revised": True,
            "issues": [{"kind": "gap", "message": "division by zero is untested"}],
        },
        write={"revised plan": revised},
    )
    fake(tasks)
    res = orchestrate(run_cli, repo, "--dry-run")
    assert res.code == 0, res.err
    assert "plan review: REVISED (1 issue(s))" in res.out
    assert "1.3 Tests for division by zero" in res.out  # the plan shown is the revision
    diff = (repo / ".planfleet/runs/calc-tools/review/plan.diff").read_text()
    assert "+### Task 1.3: Tests for division by zero" in diff
    assert (repo / PLAN_DIR / "task_plan.md").read_text() == original  # not yet applied
    refused = orchestrate(run_cli, repo)
    assert refused.code == 3
    assert (repo / PLAN_DIR / "task_plan.md").read_text() == original
    confirmed = orchestrate(run_cli, repo, "--yes")
    assert confirmed.code == 0, confirmed.out + confirmed.err
    assert (
        "### Task 1.3: Tests for division by zero" in (repo / PLAN_DIR / "task_plan.md").read_text()
    )
    kept = repo / ".planfleet/runs/calc-tools/review/original-task_plan.md"
    assert kept.read_text() == original
    assert "1.3" in invoked(tmp_path)  # the revised plan is the one executed


def test_a_revision_that_is_not_a_valid_plan_is_refused(
    repo: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = happy()
    tasks["plan-review"] = step(
        {"version": 1, "step": "plan-review", "summary": "s", "revised": True, "issues": []},
        write={"revised plan": "# Task Plan\n\nJust prose, no phases and no tasks.\n"},
    )
    fake(tasks)
    res = orchestrate(run_cli, repo, "--dry-run")
    assert res.code == 2
    assert "no phases or tasks found" in res.err
    assert stage_statuses(repo)["review"] == "failed"


def test_resume_skips_the_plan_review(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    res = orchestrate(run_cli, repo, "--resume", "--dry-run")
    assert res.code == 0, res.err
    assert stage_statuses(repo)["review"] == "skipped"
    assert "plan-review" not in invoked(tmp_path)


def test_without_a_subprocess_the_review_is_handed_to_the_session_and_still_gated(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake({})
    first = orchestrate(run_cli, repo, "--no-subprocess", "--dry-run", "--json")
    assert first.code == 0, first.err
    assert first.json()["status"] == "needs_agent"
    todo = first.json()["data"]["next"]
    assert todo["step"] == "plan-review"
    assert "orchestrate" in todo["then_run"]
    assert "--no-subprocess" in todo["then_run"]
    Path(todo["artifact"]).write_text(
        json.dumps(
            {"version": 1, "step": "plan-review", "summary": "ok", "revised": False, "issues": []}
        )
    )
    second = orchestrate(run_cli, repo, "--no-subprocess", "--dry-run", "--json")
    assert second.json()["data"]["next"]["step"] == "research-sqlite"
    assert stage_statuses(repo)["review"] == "done"
    assert invoked(tmp_path) == []


@pytest.mark.parametrize(
    ("layout", "message"),
    [("missing", "plan directory not found"), ("empty", "no task_plan.md or manifest.md")],
)
def test_a_bad_plan_directory_is_a_clear_error(
    tmp_path: Path, run_cli: Run, layout: str, message: str
) -> None:
    repo = make_repo(tmp_path / "r")
    target = repo / "plans" / "x"
    if layout == "empty":
        target.mkdir(parents=True)
        (target / "notes.md").write_text("# notes\n")
    res = run_cli("-C", repo, "orchestrate", target, cwd=repo)
    assert res.code == 2
    assert message in res.err
    assert str(target) in res.err  # the absolute path is named
    assert "Traceback" not in res.err
