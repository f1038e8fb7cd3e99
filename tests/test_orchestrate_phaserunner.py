"""`planfleet phase-runner`: the per-phase protocol with the fake claude, on real repos.

Every step is its own fake `claude -p` process; the gates between steps are checked with
artifacts that are missing, malformed, or lie about the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, git
from engine_support import processes_under
from orchestrate_support import (
    DIV_FIXED,
    MUL_DOC,
    PLAN_DIR,
    TEST_CMD,
    fake_env,
    finding,
    fix_report,
    fixture_repo,
    happy,
    invoked,
    make_test_report,
    pipeline_doc,
    review,
    step,
    step_statuses,
)
from planfleet.orchestrate import mode as phasemode
from planfleet.plan import model

Run = Callable[..., CliResult]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return fixture_repo(tmp_path)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Point planfleet at the fake claude; call it with the scenario's tasks."""

    def use(tasks: dict[str, Any]) -> None:
        for key, value in fake_env(tmp_path, tasks).items():
            monkeypatch.setenv(key, value)

    monkeypatch.delenv("CLAUDE_PLUGIN_ROOT", raising=False)
    return use


def phase_runner(run_cli: Run, repo: Path, *args: str) -> CliResult:
    return run_cli("-C", repo, "phase-runner", "--plan-dir", repo / PLAN_DIR, *args, cwd=repo)


def test_a_whole_phase_runs_every_step_in_order_and_lands_on_integration(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    res = phase_runner(run_cli, repo, "--phase", "1")
    assert res.code == 0, res.out + res.err
    ran = invoked(tmp_path)
    assert sorted(ran[:2]) == ["1.1", "1.2"]  # implement: one agent per task (the engine)
    assert ran[2:] == ["p1-test", "p1-review", "p1-fix-1", "p1-fix-3", "p1-commit"]
    assert step_statuses(repo, "1") == {
        "implement": "done",
        "test": "done",
        "review": "done",
        "fix-1": "done",
        "fix-2": "skipped",
        "fix-3": "done",
        "commit": "done",
    }
    doc = pipeline_doc(repo)["phases"]["1"]
    assert doc["status"] == "done"
    # the P0 and P1 findings were fixed in pass 1, the P3 one in pass 3
    assert {f: v["resolved_in"] for f, v in doc["findings"].items()} == {
        "R1": "fix-1",
        "R2": "fix-1",
        "R3": "fix-3",
    }
    integ = "planfleet/calc-tools/integration"
    assert git(repo, "show", f"{integ}:calc/div.py") == DIV_FIXED
    assert git(repo, "show", f"{integ}:calc/mul.py") == MUL_DOC
    assert git(repo, "log", "-1", "--format=%s", integ).strip() == "phase 1: done"
    assert doc["commit"] == git(repo, "rev-parse", integ).strip()
    # pass 3 was told only about its own finding, and what earlier passes resolved
    prompt = (repo / ".planfleet/logs/calc-tools/p1-fix-3.1.prompt.md").read_text()
    todo = prompt.split("## Findings to address in this pass")[1].split("##")[0]
    assert "R3" in todo
    assert "R1" not in todo
    assert "R1 [P0] fixed in fix-1" in prompt
    # progress.md shows every step; the phase checkout is gone; the user's tree untouched
    progress = (repo / PLAN_DIR / "progress.md").read_text()
    assert "| fix-2 | skipped |" in progress
    assert "| R1 | P0 | fixed (fix-1) |" in progress
    assert not (repo / ".planfleet/worktrees/calc-tools/_phase-1").exists()
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert not (repo / "calc" / "div.py").exists()


def test_fix_passes_skip_findings_an_earlier_pass_resolved(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = {
        "p1-review": step(
            review(
                "1",
                finding("R1", "P0", "calc/core.py", 4, "add() accepts strings"),
                finding("R2", "P2", "calc/core.py", 8, "sub() has no docstring"),
                finding("R3", "P3", "tests/test_core.py", 1, "import order"),
            )
        ),
        # pass 1 fixes its P0 and, touching the same file, the P2 one too
        "p1-fix-1": step(
            fix_report("1", 1, ("R1", "fixed", "typed"), ("R2", "fixed", "docstring")),
            files={
                "calc/core.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n"
                '    """a - b"""\n    return a - b\n'
            },
            commit="fix R1 R2",
        ),
        "p1-fix-3": step(fix_report("1", 3, ("R3", "invalid", "the order is fine"))),
    }
    fake(tasks)
    assert phase_runner(run_cli, repo, "--phase", "1", "--step", "review").code == 0
    res = phase_runner(run_cli, repo, "--phase", "1", "--step", "fix")
    assert res.code == 0, res.out + res.err
    assert invoked(tmp_path) == ["p1-review", "p1-fix-1", "p1-fix-3"]  # no pass 2 agent
    steps_ = pipeline_doc(repo)["phases"]["1"]["steps"]
    assert steps_["fix-2"]["status"] == "skipped"
    assert steps_["fix-2"]["message"] == "no open P2 findings"
    found = pipeline_doc(repo)["phases"]["1"]["findings"]
    assert (found["R2"]["status"], found["R2"]["resolved_in"]) == ("fixed", "fix-1")
    assert (found["R3"]["status"], found["R3"]["note"]) == ("invalid", "the order is fine")


@pytest.mark.parametrize(
    ("artifact", "expected"),
    [
        (review("1", finding("R1", "P5", "calc/core.py", 1, "x")), "severity"),
        (review("1", finding("R1", "P1", "calc/core.py", 99, "x")), "has 9 lines, so line 99"),
        (review("1", finding("R1", "P1", "calc/nope.py", 1, "x")), "not a file"),
        ("{not json", "not valid JSON"),
        ({"version": 1, "phase": "1", "step": "review", "findings": []}, "'summary'"),
    ],
    ids=["bad-severity", "line-out-of-range", "missing-file", "not-json", "missing-field"],
)
def test_a_bad_review_artifact_stops_the_phase_before_any_fix(
    repo: Path,
    tmp_path: Path,
    fake: Callable[[dict[str, Any]], None],
    run_cli: Run,
    artifact: Any,
    expected: str,
) -> None:
    tasks = happy()
    tasks["p1-review"] = step(artifact)
    fake(tasks)
    res = run_cli(
        "-C",
        repo,
        "phase-runner",
        "--plan-dir",
        repo / PLAN_DIR,
        "--phase",
        "1",
        "--step",
        "review",
        "--json",
        cwd=repo,
    )
    assert res.code == 1
    data = res.json()
    assert data["status"] == "failed"
    assert data["data"]["message"].startswith("gate review:")
    assert expected in data["data"]["message"]
    assert invoked(tmp_path) == ["p1-review"]  # no fix pass ran
    assert step_statuses(repo, "1")["review"] == "failed"
    assert pipeline_doc(repo)["phases"]["1"]["status"] == "failed"
    rejected = repo / ".planfleet/worktrees/calc-tools/_phase-1/.planfleet/artifacts"
    assert (rejected / "review.json.rejected").exists()
    assert "| review | failed |" in (repo / PLAN_DIR / "progress.md").read_text()


def test_a_step_that_skips_its_artifact_stops_the_phase(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = happy()
    tasks["p1-test"] = step()  # says it is done, writes nothing
    fake(tasks)
    res = phase_runner(run_cli, repo, "--phase", "1")
    assert res.code == 1
    assert "gate test: the step wrote no artifact" in res.err
    assert invoked(tmp_path)[-1] == "p1-test"  # review never started
    assert step_statuses(repo, "1") == {"implement": "done", "test": "failed"}


def test_a_test_step_that_claims_pass_while_the_tests_fail_is_caught(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    failing = (
        "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_x(self):\n"
        "        self.assertEqual(1, 2)\n"
    )
    tasks = {
        "p1-test": step(
            make_test_report("1"), files={"tests/test_extra.py": failing}, commit="add a test"
        )
    }
    fake(tasks)
    before = git(repo, "rev-parse", "main").strip()
    res = phase_runner(run_cli, repo, "--phase", "1", "--step", "test")
    assert res.code == 1
    assert "the test step reports that the tests pass, but planfleet ran" in res.err
    assert f"`{TEST_CMD}` and it exited 1" in res.err
    # the lie never reached the integration branch
    assert git(repo, "rev-parse", "planfleet/calc-tools/integration").strip() == before
    assert step_statuses(repo, "1")["test"] == "failed"


def test_a_fix_that_claims_a_finding_fixed_without_touching_its_file_is_refused(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    tasks = {
        "p1-review": step(review("1", finding("R1", "P1", "calc/core.py", 4, "no types"))),
        "p1-fix-1": step(fix_report("1", 1, ("R1", "fixed", "done"))),  # changes nothing
    }
    fake(tasks)
    assert phase_runner(run_cli, repo, "--phase", "1", "--step", "review").code == 0
    res = phase_runner(run_cli, repo, "--phase", "1", "--step", "fix")
    assert res.code == 1
    assert "R1 (P1) is reported fixed, but calc/core.py was not changed" in res.err
    assert invoked(tmp_path) == ["p1-review", "p1-fix-1"]
    assert pipeline_doc(repo)["phases"]["1"]["findings"]["R1"]["status"] == "open"


def test_resume_after_a_crash_between_steps_restarts_at_the_interrupted_step(
    repo: Path, tmp_path: Path
) -> None:
    tasks = happy()
    marker = tmp_path / "review-hung"
    tasks["p1-review"]["hang_first"] = str(marker)
    env = {**os.environ, **fake_env(tmp_path, tasks)}
    argv = [
        sys.executable,
        "-m",
        "planfleet",
        "-C",
        str(repo),
        "phase-runner",
        "--plan-dir",
        str(repo / PLAN_DIR),
        "--phase",
        "1",
    ]
    first = subprocess.Popen(
        argv,
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the review step never started"
        os.killpg(first.pid, signal.SIGKILL)  # the runner dies mid-step
        first.wait(10)
    finally:
        for pid in processes_under(repo):  # the orphaned agent
            os.kill(pid, signal.SIGKILL)
    assert step_statuses(repo, "1") == {
        "implement": "done",
        "test": "done",
        "review": "in_progress",
    }
    before = invoked(tmp_path)
    second = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    after = invoked(tmp_path)[len(before) :]
    assert after == ["p1-review", "p1-fix-1", "p1-fix-3", "p1-commit"]  # not implement/test
    recs = pipeline_doc(repo)["phases"]["1"]["steps"]
    assert (recs["implement"]["attempts"], recs["test"]["attempts"]) == (1, 1)
    assert recs["review"]["attempts"] == 2
    assert processes_under(repo) == []


@pytest.mark.parametrize(
    ("tasks", "coupled", "confidence", "force", "mode"),
    [
        (1, False, None, None, "classic"),
        (2, True, "low", None, "classic"),  # 1-2 tasks: classic, whatever else holds
        (3, False, "high", None, "classic"),  # 3+ independent
        (6, False, None, None, "classic"),
        (4, True, "high", None, "team"),  # 4+ with shared files or dependencies
        (3, True, "high", None, "classic"),  # coupled but only 3, high confidence
        (3, False, "medium", None, "team"),  # low/medium confidence with 3+
        (5, False, "low", None, "team"),
        (1, False, None, True, "team"),  # --team
        (8, True, "low", False, "classic"),  # --no-team
    ],
)
def test_mode_selection_table(
    tasks: int, coupled: bool, confidence: str | None, force: bool | None, mode: str
) -> None:
    assert phasemode.rule(tasks, coupled, confidence, force)[0] == mode


def test_team_mode_falls_back_to_classic_with_a_warning(repo: Path, run_cli: Run) -> None:
    src = model.Source("p.md")
    plan = model.Plan(
        "p",
        "P",
        "plan-dir",
        "p.md",
        (model.Phase("1", "One", src, meta={"confidence": "low"}),),
        tuple(model.Task(f"1.{i}", f"t{i}", "1", src) for i in range(3)),
    )
    choice = phasemode.select(plan, plan.phases[0], None)
    assert (choice.wanted, choice.mode) == ("team", "classic")
    assert choice.warning is not None
    assert "agent teams are unavailable" in choice.warning
    res = run_cli(
        "-C",
        repo,
        "phase-runner",
        "--plan-dir",
        repo / PLAN_DIR,
        "--phase",
        "1",
        "--dry-run",
        "--team",
        "--json",
        cwd=repo,
    )
    assert res.code == 0, res.err
    data = res.json()["data"]
    assert (data["mode"], data["mode_wanted"], data["mode_reason"]) == ("classic", "team", "--team")
    assert "agent teams are unavailable" in res.err


def test_dry_run_shows_every_step_and_starts_nothing(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake(happy())
    res = phase_runner(run_cli, repo, "--phase", "1", "--dry-run")
    assert res.code == 0, res.err
    assert invoked(tmp_path) == []
    for name in ("implement", "test", "review", "fix-1", "fix-2", "fix-3", "commit"):
        assert f"  {name} [pending]" in res.out
    assert "--output-format stream-json" in res.out
    assert not git(repo, "branch", "--list", "planfleet/*").strip()


def test_without_a_subprocess_each_step_goes_to_the_session_and_is_still_gated(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake({})
    args = ("--phase", "1", "--step", "review", "--no-subprocess", "--json")
    first = phase_runner(run_cli, repo, *args)
    assert first.code == 0, first.err
    assert first.json()["status"] == "needs_agent"
    todo = first.json()["data"]["instructions"]
    assert Path(todo["prompt_file"]).read_text().startswith("# Review phase 1")
    assert "--no-subprocess" in todo["then_run"]
    assert "phase-runner" in todo["then_run"]
    artifact = Path(todo["artifact"])
    # the in-session agent writes a review whose finding points past the end of the file
    artifact.write_text(json.dumps(review("1", finding("R1", "P2", "calc/core.py", 50, "x"))))
    second = phase_runner(run_cli, repo, *args)
    assert second.code == 1
    assert "line 50 does not exist" in second.json()["data"]["message"]
    assert not artifact.exists()  # set aside: the next call gives instructions again
    third = phase_runner(run_cli, repo, *args)
    assert third.json()["status"] == "needs_agent"
    artifact.write_text(json.dumps(review("1", finding("R1", "P2", "calc/core.py", 5, "x"))))
    fourth = phase_runner(run_cli, repo, *args)
    assert fourth.code == 0, fourth.out
    assert step_statuses(repo, "1")["review"] == "done"
    assert invoked(tmp_path) == []  # no claude -p at any point


def test_when_claude_cannot_start_the_step_falls_back_to_the_session(
    repo: Path, tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(tmp_path / "no-such-claude"))
    res = phase_runner(run_cli, repo, "--phase", "1", "--step", "test", "--json")
    assert res.code == 0
    assert res.json()["status"] == "needs_agent"
    assert "claude -p could not start" in res.err
    assert res.json()["data"]["instructions"]["step"] == "p1-test"


def test_an_in_session_implement_step_is_checked_against_git_and_the_tests(
    repo: Path, tmp_path: Path, fake: Callable[[dict[str, Any]], None], run_cli: Run
) -> None:
    fake({})
    args = ("--phase", "1", "--step", "implement", "--no-subprocess", "--json")
    todo = phase_runner(run_cli, repo, *args).json()["data"]["instructions"]
    where = Path(todo["cwd"])
    assert "# Task 1.1: Multiply" in Path(todo["prompt_file"]).read_text()
    report = {
        "version": 1,
        "phase": "1",
        "step": "implement",
        "summary": "both done",
        "tasks": [{"id": "1.1", "status": "done"}, {"id": "1.2", "status": "done"}],
    }
    # the session's agent reports both tasks done but wrote only one file
    (where / "calc" / "mul.py").write_text("def mul(a, b):\n    return a * b\n")
    git(where, "add", "-A")
    git(where, "commit", "-qm", "mul")
    Path(todo["artifact"]).write_text(json.dumps(report))
    res = phase_runner(run_cli, repo, *args)
    assert res.code == 1
    assert (
        "task 1.2: calc/div.py does not exist in the committed tree"
        in res.json()["data"]["message"]
    )
    todo = phase_runner(run_cli, repo, *args).json()["data"]["instructions"]
    assert (where / "calc" / "mul.py").exists()  # the checkout keeps its work for the retry
    (where / "calc" / "div.py").write_text("def div(a, b):\n    return a / b\n")
    git(where, "add", "-A")
    git(where, "commit", "-qm", "div")
    Path(todo["artifact"]).write_text(json.dumps(report))
    res = phase_runner(run_cli, repo, *args)
    assert res.code == 0, res.out
    assert step_statuses(repo, "1")["implement"] == "done"
    assert git(repo, "show", "planfleet/calc-tools/integration:calc/div.py").startswith("def div")
