"""Retries start from a clean branch (the failed attempt's work kept aside), and changes
outside a task's declared files are reported, or refused with --strict-files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git
from engine_support import FAKE_CLAUDE, cli, integration_files, plan_repo, state_of

# Attempt 1 commits the wrong file (and misses the one to create); attempt 2 does the task.
RETRY_PLAN = """\
    planfleet: 1
    name: p
    defaults: {max_attempts: 3}
    phases:
      - id: one
        tasks:
          - id: fix
            title: fix
            files: {create: [right.txt]}
            commands:
              - '[ "$PLANFLEET_ATTEMPT" = 1 ] && echo no > wrong.txt || echo ok > right.txt'
"""


def test_a_retry_starts_clean_and_the_merge_takes_only_the_attempt_that_passed(
    tmp_path: Path,
) -> None:
    repo = plan_repo(tmp_path, RETRY_PLAN)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell")
    assert res.returncode == 0, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["fix"]
    assert (record["status"], record["attempts"]) == ("verified", 2)
    files = integration_files(repo)
    assert "right.txt" in files
    assert "wrong.txt" not in files  # attempt 1's commit did not come along
    # attempt 1's work is kept on its own branch, named in the timeline and by `logs`
    kept = "planfleet/p/attempts/fix/1"
    assert git(repo, "show", f"{kept}:wrong.txt") == "no\n"
    assert any(
        e["event"] == "attempt_kept" and kept in (e["detail"] or "")
        for e in state_of(repo)["events"]
    )
    logs = json.loads(cli(repo, "logs", "p", "fix", "--json").stdout)["data"]
    assert [(k["attempt"], k["branch"]) for k in logs["kept_attempts"]] == [(1, kept)]
    assert f"[kept] attempt 1: branch {kept}" in cli(repo, "logs", "p", "fix").stdout
    # landing names them; `clean` deletes them (a dry run first changes nothing)
    landed = json.loads(cli(repo, "land", "p", "--into", "landed", "--json").stdout)["data"]
    assert landed["kept_attempts"] == [kept]
    dry = json.loads(cli(repo, "clean", "p", "--dry-run", "--json").stdout)["data"]
    assert dry["deleted"] == [kept]
    assert git(repo, "branch", "--list", kept).strip()
    assert cli(repo, "clean", "p").returncode == 0
    assert git(repo, "branch", "--list", "planfleet/p/attempts/*") == ""


def test_a_resumed_retry_is_told_that_its_branch_was_reset(tmp_path: Path) -> None:
    plan = """\
        planfleet: 1
        name: p
        defaults: {max_attempts: 2}
        phases:
          - id: one
            tasks:
              - id: calc
                title: calc
                files: {create: [out/calc.txt]}
    """
    repo = plan_repo(tmp_path, plan)
    scenario = tmp_path / "scenario.json"
    spec = {
        "behaviour": "wrong_first",
        "wrong": {"out/wrong.txt": "wrong\n"},
        "files": {"out/calc.txt": "calc\n"},
    }
    scenario.write_text(json.dumps({"tasks": {"calc": spec}}))
    argv_log = tmp_path / "argv.jsonl"
    env = {
        "PLANFLEET_CLAUDE": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_SCENARIO": str(scenario),
        "FAKE_CLAUDE_ARGV_LOG": str(argv_log),
    }
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "claude", "--yes", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert state_of(repo)["tasks"]["calc"]["attempts"] == 2
    calls = [json.loads(line)["argv"] for line in argv_log.read_text().splitlines()]
    assert "--resume" not in calls[0]
    assert "--resume" in calls[1]  # the agent ended its turn normally: its session goes on
    (prompt_file,) = (repo / ".planfleet").rglob("calc.2.prompt.md")
    prompt = prompt_file.read_text()
    kept = "planfleet/p/attempts/calc/1"
    assert "You are continuing your session of attempt 1" in prompt
    assert "reset your branch to its base commit" in prompt
    assert f"The work of attempt 1 is kept on branch {kept}" in prompt  # the feedback
    assert f"`git log -p {state_of(repo)['tasks']['calc']['base_commit'][:12]}..{kept}`" in prompt
    assert "out/wrong.txt" not in integration_files(repo)
    assert git(repo, "show", f"{kept}:out/wrong.txt") == "wrong\n"


# A task that declares three files but also rewrites others (and renames one).
WIDE_PLAN = """\
    planfleet: 1
    name: p
    defaults:
      max_attempts: 1
      shared_files: [CHANGELOG.md, "**/__init__.py"]{strict}
    phases:
      - id: one
        tasks:
          - id: percent
            title: percent
            files:
              create: [invoicekit/percent.py, tests/test_percent.py]
              modify: [notes/old.md]   # renamed below: the new name is not declared
            commands:
              - "echo 'PCT = 100' > invoicekit/percent.py"
              - "echo 'def test_pct(): pass' > tests/test_percent.py"
              - "echo 'ROUND = 3' > invoicekit/mathutil.py"
              - "echo 'def test_other(): pass' > tests/test_other.py"
              - "echo '- percent' >> CHANGELOG.md"
              - "echo '# the package' >> invoicekit/__init__.py"
              - "git mv notes/old.md notes/new.md"
"""
FILES = {
    "invoicekit/__init__.py": "",
    "invoicekit/mathutil.py": "ROUND = 2\n",
    "tests/test_other.py": "def test_other():\n    assert True\n",
    "CHANGELOG.md": "# Changes\n",
    "notes/old.md": "A note that is long enough for git to see a rename of it.\n" * 3,
}
UNDECLARED = ["invoicekit/mathutil.py", "notes/new.md", "tests/test_other.py"]


def test_changes_outside_the_declared_files_are_reported(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, WIDE_PLAN.format(strict=""), FILES)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell")
    assert res.returncode == 0, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["percent"]
    assert record["status"] == "verified"
    evidence = json.loads(Path(record["verification"]).read_text())
    assert evidence["undeclared"] == UNDECLARED
    (gate,) = [g for g in evidence["gates"] if g["name"] == "declared_files"]
    assert gate["ok"]
    assert gate["evidence"]["paths"] == UNDECLARED
    line = "percent: changed files it does not declare: " + ", ".join(UNDECLARED)
    assert line in res.stdout  # the run report
    status = cli(repo, "status", "p")
    assert line in status.stdout
    rows = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]["task_rows"]
    assert rows[0]["undeclared"] == UNDECLARED


@pytest.mark.parametrize("how", ["--strict-files", "defaults.strict_files"])
def test_strict_files_refuses_undeclared_changes(tmp_path: Path, how: str) -> None:
    strict = "\n      strict_files: true" if how == "defaults.strict_files" else ""
    repo = plan_repo(tmp_path, WIDE_PLAN.format(strict=strict), FILES)
    flags = ["--strict-files"] if how == "--strict-files" else []
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", *flags)
    assert res.returncode == 1, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["percent"]
    assert record["status"] == "abandoned"
    assert record["error"]["type"] == "undeclared_change"
    for path in UNDECLARED:
        assert path in record["feedback"]
    assert "CHANGELOG.md" not in record["error"]["message"]  # shared files are allowed
    assert "invoicekit/__init__.py" not in record["error"]["message"]
