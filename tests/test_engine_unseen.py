"""The user's own uncommitted work: named before dispatch, since no agent will see it."""

from __future__ import annotations

import json
from pathlib import Path

from engine_support import cli, plan_repo, state_of

PLAN = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: app
            title: app
            files: {modify: [src/app.py]}
            commands: ["echo 'VALUE = 2' > src/app.py"]
          - id: docs
            title: docs
            files: {create: [docs/a.md]}
            commands: ["mkdir -p docs && echo hi > docs/a.md"]
"""
FILES = {"src/app.py": "VALUE = 1\n", "notes.txt": "mine\n"}


def dirty_repo(tmp_path: Path) -> Path:
    repo = plan_repo(tmp_path, PLAN, FILES)
    (repo / "src/app.py").write_text("VALUE = 1  # my edit\n")
    (repo / "notes.txt").write_text("mine, edited\n")  # nothing in the plan reads it
    (repo / "docs").mkdir()
    (repo / "docs/a.md").write_text("untracked\n")
    return repo


def test_the_dry_run_names_uncommitted_files_the_plan_reads_or_changes(
    tmp_path: Path,
) -> None:
    repo = dirty_repo(tmp_path)
    with (repo / "plans/p.plan.yaml").open("a") as f:
        f.write("# an edit of the plan itself\n")
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    unseen = json.loads(res.stdout)["data"]["unseen_changes"]
    assert unseen == [
        {"path": "docs/a.md", "why": "task docs changes it"},
        {"path": "plans/p.plan.yaml", "why": "the plan"},
        {"path": "src/app.py", "why": "task app changes it"},
    ]
    text = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--dry-run").stdout
    assert "warning: uncommitted changes the agents will not see" in text
    assert "notes.txt" not in text


def test_a_run_warns_before_dispatch_and_records_each_attempts_base(tmp_path: Path) -> None:
    repo = dirty_repo(tmp_path)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    warning = next(ln for ln in res.stderr.splitlines() if "will not see" in ln)
    assert "src/app.py (task app changes it)" in warning
    assert "docs/a.md (task docs changes it)" in warning
    assert "notes.txt" not in warning
    # the user's edit is left alone; the agent worked from the committed file
    assert (repo / "src/app.py").read_text() == "VALUE = 1  # my edit\n"
    record = state_of(repo)["tasks"]["app"]
    evidence = json.loads(Path(record["verification"]).read_text())
    assert evidence["base"] == record["base_commit"]
    assert len(evidence["base"]) == 40


def test_a_clean_checkout_gets_no_warning(tmp_path: Path) -> None:
    repo = plan_repo(tmp_path, PLAN, FILES)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--dry-run", "--json")
    assert json.loads(res.stdout)["data"]["unseen_changes"] == []
    assert "will not see" not in res.stderr
