"""The seeds' own records stay in step after a real run: execute-state.json in the batch
workflow's words, and a .spec plan's Status and Last Updated lines."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from conftest import git, make_repo
from engine_support import cli

TASK = """\
<task id="{tid}">
  <title>{title}</title>
  <files><create>{out}</create></files>
  <commands>
    {command}
  </commands>
</task>
"""


def test_execute_state_keeps_the_batch_workflows_own_fields_in_step(tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    # the first attempt of L1-002 fails, the second passes: its attempt count must say 2
    flaky = f"test -f {flag} || {{ touch {flag}; exit 1; }}; echo model > model.txt"
    state = {
        "tasks": {
            "L1-001": {"status": "pending", "attempt": 0},
            "L1-002": {"status": "pending", "attempt": 0, "worktree_path": ""},
        },
        "merge_queue": [],
        "abandoned": [],
    }
    repo = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# shop\n",
            "docs/tasks/shop/execute-state.json": json.dumps(state, indent=2) + "\n",
            "docs/tasks/shop/1-foundation/L1-001-create-enums.xml": TASK.format(
                tid="L1-001", title="Enums", out="enums.txt", command="echo enums > enums.txt"
            ),
            "docs/tasks/shop/1-foundation/L1-002-create-model.xml": TASK.format(
                tid="L1-002", title="Model", out="model.txt", command=flaky
            ),
        },
    )

    res = cli(repo, "run", "docs/tasks/shop", "--runner", "shell", "--json")

    assert res.returncode == 0, res.stdout + res.stderr
    written = json.loads((repo / "docs/tasks/shop/execute-state.json").read_text("utf-8"))
    first, second = written["tasks"]["L1-001"], written["tasks"]["L1-002"]
    assert (first["status"], first["attempt"], second["status"], second["attempt"]) == (
        "verified",
        1,
        "verified",
        2,
    )
    assert "attempts" not in first  # the file's own word, not a second counter
    assert first["worktree"] == ".planfleet/worktrees/shop/L1-001"
    assert second["worktree_path"] == ".planfleet/worktrees/shop/L1-002"
    assert "worktree" not in second
    assert str(tmp_path) not in json.dumps(written)


PLAN = """\
    # Plan: Audit log

    - **Status**: Ready
    - **Branch**: feature/audit
    - **Worktree**: (none)
    - **Last Updated**: 2025-06-10T09:00:00Z

    ## Phases

    ### Phase 1 - Log writer

    - [ ] Create the log module
      - Run: `echo 'def log(): pass' > audit.py`

    ## Insights

    - Status: this line is the author's note and stays
    - Keep entries append-only.

    ### Background Execution
    - Status: RUNNING
    - Started: 2025-06-10T09:00:00Z
"""


def test_a_spec_plans_status_and_last_updated_lines_follow_the_run(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# audit\n",
            ".spec/plans/README.md": "# Plans\n\n| Plan | Status | Last Updated |\n|---|---|---|\n"
            "| [audit-log](audit-log/plan.md) | Ready | 2025-06-10T09:00:00Z |\n",
            ".spec/plans/audit-log/plan.md": textwrap.dedent(PLAN),
            ".spec/plans/audit-log/implementation/phase-1.md": "# Phase 1\n\n" + "Append. " * 20,
        },
    )

    res = cli(repo, "run", ".spec/plans/audit-log", "--runner", "shell")

    assert res.returncode == 0, res.stdout + res.stderr
    lines = (repo / ".spec/plans/audit-log/plan.md").read_text("utf-8").splitlines()
    assert "- **Status**: Complete" in lines
    (updated,) = [ln for ln in lines if ln.startswith("- **Last Updated**: ")]
    assert re.fullmatch(r"- \*\*Last Updated\*\*: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", updated)
    assert updated != "- **Last Updated**: 2025-06-10T09:00:00Z"
    assert "- Status: this line is the author's note and stays" in lines
    assert lines[lines.index("### Background Execution") + 1] == "- Status: COMPLETE"
    assert "- [x] Create the log module" in lines
    index = (repo / ".spec/plans/README.md").read_text("utf-8")
    assert f"| Complete | {updated.split(': ', 1)[1]} |" in index


def _checkout(repo: Path) -> dict[str, bytes]:
    """Return every file of the checkout outside .git and .planfleet, with its bytes."""
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and p.relative_to(repo).parts[0] not in (".git", ".planfleet")
    }


TWO_TASKS = """\
    # Plan: Audit log

    - **Status**: Ready
    - **Last Updated**: 2025-06-10T09:00:00Z

    ### Phase 1 - Log writer

    - [ ] Create the log module
      - Run: `echo 'def log(): pass' > audit.py`
    - [ ] Add a reader
      - Run: `echo 'def read(): pass' > reader.py`
"""


def test_no_projections_leaves_the_checkout_byte_identical(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# audit\n",
            ".spec/plans/README.md": "| Plan | Status |\n|---|---|\n| audit-log | Ready |\n",
            ".spec/plans/audit-log/plan.md": textwrap.dedent(TWO_TASKS),
            ".spec/plans/audit-log/implementation/phase-1.md": "# Phase 1\n\n" + "Append. " * 20,
        },
    )
    plan = ".spec/plans/audit-log"
    dry = cli(repo, "run", plan, "--runner", "shell", "--dry-run", "--json")
    assert json.loads(dry.stdout)["data"]["updates_in_place"] == [
        ".spec/plans/README.md",
        ".spec/plans/audit-log/execution-log.md",
        ".spec/plans/audit-log/plan.md",
    ]
    human = cli(repo, "run", plan, "--runner", "shell", "--dry-run")
    assert "updates these files in place: .spec/plans/README.md, " in human.stdout
    before = _checkout(repo)
    head = (repo / ".git/HEAD").read_bytes()

    quiet = ("--runner", "shell", "--no-projections")
    assert "updates no file in your checkout (--no-projections)" in (
        cli(repo, "run", plan, *quiet, "--dry-run").stdout
    )
    first = cli(repo, "run", plan, *quiet, "--tasks", "1.1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert _checkout(repo) == before
    # resume keeps --no-projections (it is not given again) and runs the rest
    rest = cli(repo, "resume", "audit-log")
    assert rest.returncode == 0, rest.stdout + rest.stderr

    assert _checkout(repo) == before
    assert (repo / ".git/HEAD").read_bytes() == head
    assert git(repo, "status", "--porcelain") == ""
    done = git(repo, "ls-tree", "-r", "--name-only", "planfleet/audit-log/integration").split()
    assert {"audit.py", "reader.py"} <= set(done)
