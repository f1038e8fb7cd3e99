"""Which test command a run uses and why: --test-cmd, the plan, planfleet.toml, pyproject.toml
[tool.planfleet], then what the repository shows; shown by plan show, the dry run and
preflight; a plan with a blast radius and no test command is refused before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult, git, make_repo
from planfleet.errors import InputError, RefusedError
from planfleet.plan import model
from planfleet.state.store import StateStore
from planfleet.verify import testcmd, testdetect

AI_PLAN = ".ai/plans/2025-03-01.adder.md"
AI_TEXT = """\
# Keep the adder right

**Status:** Reviewed - Ready for Implementation

## Phase 1: Rewrite add

**Principal Owner:** implementer
**Dependencies:** None
**Blast Radius:** ``

### Acceptance Criteria
- add() still adds

### Files to Modify
- calc.py
"""


def plan_with(meta: dict[str, object] | None = None, blast: str | None = None) -> model.Plan:
    src = model.Source("plan.md")
    phase = model.Phase("1", "one", src, blast_radius=blast)
    task = model.Task("1", "one", "1", src, blast_radius=blast)
    return model.Plan("p", "p", "ai", "plan.md", (phase,), (task,), meta=meta or {})


PY = testdetect.python  # the interpreter detection picks for a repository


@pytest.mark.parametrize(
    ("files", "tail", "why"),
    [
        ({"pytest.ini": "[pytest]\n"}, " -m pytest", "pytest.ini"),
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"},
            " -m pytest",
            "pytest configured in pyproject.toml [tool.pytest.ini_options]",
        ),
        ({"setup.cfg": "[tool:pytest]\n"}, " -m pytest", "setup.cfg [tool:pytest]"),
        ({"tox.ini": "[tox]\n[pytest]\n"}, " -m pytest", "tox.ini [pytest]"),
        ({"conftest.py": ""}, " -m pytest", "conftest.py"),
        ({"Cargo.toml": "[package]\nname = 'x'\n"}, "cargo test", "Cargo.toml"),
        ({"go.mod": "module x\n"}, "go test ./...", "go.mod"),
        ({"package.json": '{"scripts": {"test": "vitest run"}}'}, "npm test", "vitest run"),
        (
            {"package.json": '{"scripts": {"test": "jest"}}', "yarn.lock": ""},
            "yarn test",
            "scripts.test",
        ),
        (
            {"tests/test_a.py": "import unittest\n\n\nclass A(unittest.TestCase):\n    pass\n"},
            " -m unittest discover -s tests",
            "tests/ holds unittest tests",
        ),
        (
            {"tests/__init__.py": "", "tests/unit/test_a.py": "from unittest import TestCase\n"},
            " -m unittest discover -s tests -t .",
            "unittest",
        ),
        ({"test/test_a.py": "def test_a():\n    assert 1\n"}, " -m pytest", "test/ holds"),
        ({"justfile": "build:\n  cargo build\n\ntest *ARGS:\n  go test\n"}, "just test", "just"),
        ({"Makefile": "all:\n\techo\n\ntest: all\n\techo ok\n"}, "make test", "Makefile"),
    ],
)
def test_detection(tmp_path: Path, files: dict[str, str], tail: str, why: str) -> None:
    repo = make_repo(tmp_path / "r", files)
    found = testdetect.detect(repo)
    assert found is not None
    assert found.command.endswith(tail)
    if tail.startswith(" -m"):
        assert found.command == PY(repo)[0] + tail
    assert why in found.reason


@pytest.mark.parametrize(
    "files",
    [
        {"README.md": "# nothing to test\n"},
        {"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'},
        {"Makefile": "TEST := yes\ntests:\n\techo\n"},
        {"tests/data.txt": "not a test\n"},
        {"setup.cfg": "[metadata]\nname = x\n", "tox.ini": "not [ini"},
    ],
)
def test_nothing_to_detect(tmp_path: Path, files: dict[str, str]) -> None:
    assert testdetect.detect(make_repo(tmp_path / "r", files)) is None


def test_the_repositorys_own_venv_runs_the_tests(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pytest.ini": "[pytest]\n"})
    exe = repo / ".venv" / "bin" / "python"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    found = testdetect.detect(repo)
    assert found is not None
    assert found.command == f"{exe} -m pytest"
    assert "the repository's .venv" in found.reason


def test_precedence_flag_plan_config_detection(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "pytest.ini": "[pytest]\n",
            "pyproject.toml": '[tool.planfleet]\ntest_command = "make check"\ntest_timeout = 90\n',
        },
    )
    plain = plan_with()
    got = testcmd.choose(repo, plain)
    assert (got.command, got.source) == ("make check", "pyproject.toml")
    assert "pyproject.toml [tool.planfleet]" in got.reason
    assert (got.timeout_s, got.timeout_source) == (90.0, "pyproject.toml")
    (repo / "planfleet.toml").write_text('test_command = "tox -e py"\n')
    got = testcmd.choose(repo, plain)
    assert (got.command, got.source, got.timeout_s) == ("tox -e py", "planfleet.toml", None)
    own = plan_with({"test_command": "python3 -m unittest", "test_timeout": 7})
    got = testcmd.choose(repo, own)
    assert (got.command, got.source, got.timeout_s, got.timeout_source) == (
        "python3 -m unittest",
        "plan",
        7.0,
        "plan",
    )
    got = testcmd.choose(repo, own, flag="pytest -x", flag_timeout=3.0)
    assert (got.command, got.source, got.timeout_s) == ("pytest -x", "--test-cmd", 3.0)
    # applied to the plan, the choice is what every gate reads, and choosing again keeps it
    applied = testcmd.apply(own, got)
    assert (applied.meta["test_command"], applied.meta["test_timeout"]) == ("pytest -x", 3.0)
    assert testcmd.choose(repo, applied) == got
    (repo / "planfleet.toml").unlink()
    (repo / "pyproject.toml").unlink()
    got = testcmd.choose(repo, plain)
    assert (got.command, got.source) == (f"{PY(repo)[0]} -m pytest", "detected")


def test_an_empty_command_turns_the_gate_off_and_is_not_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"planfleet.toml": 'test_command = ""\n'})
    needs = plan_with(blast="")
    got = testcmd.choose(repo, needs)
    assert got.command is None
    assert got.off
    testcmd.require(needs, got)  # turned off on purpose: no refusal
    applied = testcmd.apply(needs, got)
    assert "test_command" not in applied.meta
    assert testcmd.choose(repo, applied) == got
    (repo / "planfleet.toml").unlink()
    got = testcmd.choose(repo, needs)
    assert (got.command, got.source, got.off) == (None, "none", False)
    with pytest.raises(RefusedError) as caught:
        testcmd.require(needs, got)
    assert caught.value.reason == "no_test_command"
    assert "--test-cmd" in str(caught.value.next_step)
    testcmd.require(plan_with(), got)  # no blast radius declared: nothing to refuse


@pytest.mark.parametrize(
    ("name", "text", "what"),
    [
        ("planfleet.toml", "test_command = [1]\n", "test_command"),
        ("planfleet.toml", "test_timeout = -1\n", "test_timeout"),
        ("planfleet.toml", "tests = 'x'\n", "unknown key(s) tests"),
        ("planfleet.toml", "test_command = 'a'\nb = = 2\n", "line 2"),
        ("pyproject.toml", "[tool.planfleet]\ntest_timeout = true\n", "test_timeout"),
    ],
)
def test_a_bad_config_is_a_clear_error(tmp_path: Path, name: str, text: str, what: str) -> None:
    repo = make_repo(tmp_path / "r", {name: text})
    with pytest.raises(InputError) as caught:
        testcmd.choose(repo, plan_with())
    assert what in caught.value.render()
    assert name in caught.value.render()


# --- what the user sees -----------------------------------------------------------------------


def test_plan_show_dry_run_and_preflight_say_which_command_and_why(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    repo = make_repo(
        tmp_path / "r",
        {AI_PLAN: AI_TEXT, "calc.py": "def add(a, b):\n    return a + b\n", "tests/test_c.py": ""},
    )
    run = run_cli
    res = run("plan", "show", AI_PLAN, "--json", cwd=repo)
    tests = res.json()["data"]["tests"]
    command = f"{PY(repo)[0]} -m pytest"
    assert (tests["command"], tests["source"]) == (command, "detected")
    assert "tests/ holds Python tests" in tests["reason"]
    assert tests["needs_tests"] == ["phase 1"]
    assert tests["refused"] is None
    text = run("plan", "show", AI_PLAN, cwd=repo).out
    assert f"- Tests: {command}" in text
    assert "blast radius (all tests)" in text

    res = run("run", AI_PLAN, "--dry-run", "--runner", "shell", "--json", cwd=repo)
    tests = res.json()["data"]["tests"]
    assert (tests["command"], tests["source"]) == (command, "detected")
    assert "3 x the baseline's duration + 30 s" in tests["limits"]
    res = run(
        "run", AI_PLAN, "--dry-run", "--runner", "shell", "--test-cmd", "make check",
        "--test-timeout", "45", cwd=repo,
    )  # fmt: skip
    assert "tests: make check  (--test-cmd: given on the command line)" in res.out
    assert "45 s per test run (--test-timeout)" in res.out

    res = run("preflight", "--no-claude", "--plan", AI_PLAN, "--json", cwd=repo)
    check = next(c for c in res.json()["data"]["checks"] if c["name"] == "test_cmd")
    assert check["ok"]
    assert command in check["detail"]
    assert "detected" in check["detail"]


def test_a_blast_radius_without_a_test_command_is_refused_before_anything_starts(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    repo = make_repo(tmp_path / "r", {AI_PLAN: AI_TEXT, "calc.py": "x = 1\n"})
    run = run_cli
    res = run("run", AI_PLAN, "--runner", "shell", "--json", cwd=repo)
    assert res.code == 3
    error = res.json()["errors"][0]
    assert "blast radius (phase 1)" in error["message"]
    assert "--test-cmd" in error["next_step"]
    assert not (repo / ".planfleet" / "state").exists()
    assert "planfleet/" not in git(repo, "branch", "--list")
    res = run("run", AI_PLAN, "--dry-run", "--runner", "shell", cwd=repo)
    assert res.code == 0
    assert "a run would be refused" in res.out
    res = run("preflight", "--no-claude", "--plan", AI_PLAN, "--json", cwd=repo)
    assert res.code == 3
    assert res.json()["data"]["reason"] == "no_test_command"


def test_a_test_command_that_cannot_start_refuses_the_run_unrecorded(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    # The task has shell commands, so the shell runner itself has nothing to refuse.
    text = AI_TEXT + "\n**Commands:**\n- `true`\n"
    repo = make_repo(tmp_path / "r", {AI_PLAN: text, "calc.py": "x = 1\n"})
    run = run_cli
    args = ("run", AI_PLAN, "--runner", "shell", "--json", "--test-cmd")
    res = run(*args, "no-such-program-anywhere --x", cwd=repo)
    assert res.code == 3
    assert res.json()["errors"][0]["next_step"].startswith("pass a command")
    assert "could not run" in res.json()["errors"][0]["message"]
    assert not StateStore.for_plan(repo, "adder").exists()  # no run recorded: `run` again works
    assert not (repo / ".planfleet" / "runs" / "adder" / "baseline.json").exists()


def test_only_a_plans_own_test_command_counts_as_the_plans_commands(tmp_path: Path) -> None:
    """A plan from outside the repository may not run its commands; a test command found in
    the repository (or given with --test-cmd) is not the plan's."""
    from planfleet.engine.setup import refuse_foreign_commands

    repo = make_repo(tmp_path / "r", {"pytest.ini": "[pytest]\n"})
    outside = plan_with()
    outside = type(outside)(**{**outside.__dict__, "path": str(tmp_path / "elsewhere.md")})
    refuse_foreign_commands(testcmd.apply(outside, testcmd.choose(repo, outside)), repo)
    flagged = testcmd.choose(repo, outside, flag="pytest")
    refuse_foreign_commands(testcmd.apply(outside, flagged), repo)
    own = type(outside)(**{**outside.__dict__, "meta": {"test_command": "sh evil.sh"}})
    with pytest.raises(RefusedError) as caught:
        refuse_foreign_commands(testcmd.apply(own, testcmd.choose(repo, own)), repo)
    assert caught.value.reason == "plan_outside_repo"
