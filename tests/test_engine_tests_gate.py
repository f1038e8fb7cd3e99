"""A plan that writes no test command still gets the tests gate: the command comes from the
repository, and a task that breaks an existing test ends abandoned with the test named.

One plan in planfleet's own format run by the shell runner, one `.ai/plans` plan (a seed
format) run by the fake `claude`; neither names a test command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import make_repo
from engine_support import FAKE_CLAUDE, cli, integration_files, state_of

GOOD = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
BROKEN = GOOD.replace("return a + b", "return a * b")
REPO = {
    ".gitignore": ".venv/\n",
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\naddopts = "-p no:cacheprovider"\n',
    "calc.py": GOOD,
    "tests/test_calc.py": (
        "from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_sub():\n    assert sub(5, 3) == 2\n"
    ),
    "fixtures/broken_calc.py": BROKEN,
}

NATIVE = """\
planfleet: 1
name: p
defaults:
  max_attempts: 2
phases:
  - id: one
    blast_radius: tests
    tasks:
      - id: notes
        title: Write the notes
        files: {create: [NOTES.md]}
        commands: ["echo 'adding is addition' > NOTES.md"]
      - id: breaker
        title: Speed up add
        files: {modify: [calc.py]}
        commands: ["cp fixtures/broken_calc.py calc.py"]
"""

AI_PLAN = ".ai/plans/2025-03-01.speedup.md"
AI = """\
# Speed up the calculator

**Status:** Reviewed - Ready for Implementation

## Phase 1: Faster add

**Principal Owner:** implementer
**Dependencies:** None
**Blast Radius:** ``

### Acceptance Criteria
- add() is faster and still adds

### Files to Modify
- calc.py
"""


def repo_with(tmp: Path, files: dict[str, str]) -> Path:
    """Return a repository whose own .venv (gitignored) is the Python running these tests."""
    repo = make_repo(tmp / "repo", {**REPO, **files})
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    return repo


def test_shell_runner_plan_without_test_command_abandons_the_task_that_breaks_a_test(
    tmp_path: Path,
) -> None:
    repo = repo_with(tmp_path, {"plans/p.plan.yaml": NATIVE})
    dry = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--dry-run", "--json")
    tests = json.loads(dry.stdout)["data"]["tests"]
    assert tests["source"] == "detected", dry.stdout
    assert tests["command"] == f"{repo / '.venv' / 'bin' / 'python'} -m pytest"
    assert "pytest configured in pyproject.toml" in tests["reason"]

    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--json", timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    tasks = state_of(repo)["tasks"]
    assert tasks["notes"]["status"] == "verified", out
    assert tasks["breaker"]["status"] == "abandoned", out
    assert tasks["breaker"]["attempts"] == 2
    error = tasks["breaker"]["error"]
    assert error["type"] == "test_failure"
    assert "new failures: tests/test_calc.py::test_add" in error["message"]
    assert "test_sub" not in error["message"]
    assert integration_files(repo)["calc.py"] == GOOD
    assert "NOTES.md" in integration_files(repo)
    row = next(r for r in json.loads(res.stdout)["data"]["tasks"] if r["task"] == "breaker")
    assert "tests/test_calc.py::test_add" in json.dumps(row)


def test_seed_format_plan_without_test_command_abandons_the_task_that_breaks_a_test(
    tmp_path: Path,
) -> None:
    repo = repo_with(tmp_path, {AI_PLAN: AI})
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps({"tasks": {"1": {"behaviour": "break_test", "files": {"calc.py": BROKEN}}}})
    )
    env = {"PLANFLEET_CLAUDE": str(FAKE_CLAUDE), "FAKE_CLAUDE_SCENARIO": str(scenario)}
    args = ("run", AI_PLAN, "--runner", "claude", "--yes", "--max-attempts", "2")
    res = cli(repo, *args, env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    record = state_of(repo, "speedup")["tasks"]["1"]
    assert record["status"] == "abandoned", out
    assert record["error"]["type"] == "test_failure"
    assert "tests/test_calc.py::test_add" in record["error"]["message"]
    assert "tests/test_calc.py::test_add" in out  # the final report names it too
    assert "test_add" in record["feedback"]  # and so did the retry's feedback
    baseline = json.loads((repo / ".planfleet" / "runs" / "speedup" / "baseline.json").read_text())[
        "baseline"
    ]
    assert baseline["command"].endswith(" -m pytest")
    assert baseline["run"]["failing"] == []
    assert integration_files(repo, "speedup")["calc.py"] == GOOD


THREE = """\
planfleet: 1
name: p
phases:
  - id: one
    sequential: true
    tasks:
      - id: a
        title: a
        files: {create: [a.txt]}
        commands: ["echo a > a.txt"]
      - id: b
        title: b
        files: {create: [b.txt]}
        commands: ["echo b > b.txt"]
      - id: c
        title: c
        files: {create: [c.txt]}
        commands: ["echo c > c.txt"]
"""


def gate_command(repo: Path, task: str) -> str:
    """Return the test command the tests gate of ``task``'s first attempt ran."""
    record = json.loads(
        (repo / ".planfleet" / "runs" / "p" / "verify" / f"{task}.1.json").read_text()
    )
    gate = next(g for g in record["gates"] if g["name"] == "tests")
    return str(gate["evidence"]["command"])


def test_resume_keeps_the_test_command_given_to_run(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"plans/p.plan.yaml": THREE, "check.py": "print('checked')\n"})
    runs = repo / ".planfleet" / "runs" / "p"
    command = f"{sys.executable} check.py"
    first = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--tasks", "a",
                "--test-cmd", command, "--test-timeout", "50")  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    res = cli(repo, "resume", "p", "--tasks", "b", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert gate_command(repo, "b") == command  # not the pytest detected in the repository
    saved = json.loads((runs / "options.json").read_text())
    assert (saved["test_command"], saved["test_timeout_s"]) == (command, 50.0)
    baseline = json.loads((runs / "baseline.json").read_text())
    assert baseline["baseline"]["command"] == command
    # another command later: its baseline is taken on the run's starting commit
    other = f"{sys.executable} -c pass"
    res = cli(repo, "resume", "p", "--test-cmd", other, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert gate_command(repo, "c") == other
    retaken = json.loads((runs / "baseline.json").read_text())
    assert retaken["baseline"]["command"] == other
    assert retaken["commit"] == baseline["commit"]
