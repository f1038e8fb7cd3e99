"""Shell commands in the seed formats: where each format's authors write them, and the
refusal when the shell runner would run a task that has none."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import git, make_repo
from engine_support import cli, leftover_worktrees
from formats_support import write
from planfleet.plan.formats import load_plan

SCRIPT = "set -e\nmkdir -p src/app\ntouch src/app/__init__.py"


def _files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        write(root, rel, textwrap.dedent(text))


SPEC_PLAN = """\
    # Plan: App skeleton

    - **Branch**: feature/skeleton

    ### Phase 1 - Package

    - [ ] Create the package
      ```sh
      mkdir -p src/app
      touch src/app/__init__.py
      ```
    - [ ] Write the version module
      - Commands:
        - `printf '__version__ = "0.1.0"\\n' > src/app/version.py`
        - `test -s src/app/version.py`
    - [ ] Add the changelog
      - Run: `echo '# Changelog' > CHANGELOG.md`
    - [ ] Describe the release process
"""
IMPLEMENTATION = "# Phase 1\n\nKeep the package importable at every step; no dependencies.\n" * 2


def test_each_markdown_format_carries_commands_where_its_authors_write_them(
    tmp_path: Path,
) -> None:
    _files(tmp_path, {
        ".spec/plans/skeleton/plan.md": SPEC_PLAN,
        ".spec/plans/skeleton/implementation/phase-1.md": IMPLEMENTATION,
        ".ai/plans/2025-08-01.skeleton.md": """\
            # Plan: Skeleton

            ## Phase 1: Package

            **Principal Owner:** Rust Developer

            ```sh
            mkdir -p src/app
            touch src/app/__init__.py
            ```

            ### Technical Details

            ```bash
            cargo test  # an example in a sub-section, not a command
            ```

            ## Phase 2: Version

            **Commands:**
            - `echo 1 > VERSION`
            - `git add VERSION`
        """,
        "docs/plans/skeleton/task_plan.md": """\
            # Skeleton

            ## Phase 1: Package

            ### Task 1.1: Create it

            ```sh
            mkdir -p src/app
            touch src/app/__init__.py
            ```

            ### Task 1.2: Version file

            **Run:** `echo 1 > VERSION`
        """,
        "docs/plans/2026-01-02-skeleton.md": """\
            # Skeleton Implementation Plan

            ### Task 1: Package

            **Commands:**

            ```sh
            mkdir -p src/app
            touch src/app/__init__.py
            ```

            - [ ] **Step 1: Check it imports**

            Run: `python -c "import app"`
            Expected: PASS
        """,
        ".maxvision/phase-1/plans/plan-001-package.md": """\
            ---
            status: pending
            commands: ["mkdir -p src/app"]
            ---
            # Package

            ## Commands
            - `touch src/app/__init__.py`
        """,
        "tasks/skeleton/1-base/S-001-package.xml": """\
            <task id="S-001">
              <title>Package</title>
              <commands>
                mkdir -p src/app
                touch src/app/__init__.py
              </commands>
            </task>
        """,
    })  # fmt: skip

    def commands(rel: str) -> dict[str, tuple[str, ...]]:
        return {t.id: t.commands for t in load_plan(tmp_path / rel, repo=tmp_path).tasks}

    assert commands(".spec/plans/skeleton") == {
        "1.1": (SCRIPT,),
        "1.2": (
            "printf '__version__ = \"0.1.0\"\\n' > src/app/version.py",
            "test -s src/app/version.py",
        ),
        "1.3": ("echo '# Changelog' > CHANGELOG.md",),
        "1.4": (),
    }
    assert commands(".ai/plans/2025-08-01.skeleton.md") == {
        "1": (SCRIPT,),
        "2": ("echo 1 > VERSION", "git add VERSION"),
    }
    assert commands("docs/plans/skeleton") == {"1.1": (SCRIPT,), "1.2": ("echo 1 > VERSION",)}
    superpowers = load_plan(tmp_path / "docs/plans/2026-01-02-skeleton.md", repo=tmp_path)
    (task,) = superpowers.tasks
    assert (task.commands, task.verify) == ((SCRIPT,), ('python -c "import app"',))
    assert commands(".maxvision") == {
        "1.plan-001-package": ("mkdir -p src/app", "touch src/app/__init__.py")
    }
    assert commands("tasks/skeleton") == {
        "S-001": ("mkdir -p src/app", "touch src/app/__init__.py")
    }


def _spec_repo(tmp_path: Path, plan: str) -> Path:
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# app\n",
            ".spec/plans/skeleton/plan.md": textwrap.dedent(plan),
            ".spec/plans/skeleton/implementation/phase-1.md": IMPLEMENTATION,
        },
    )


def test_the_shell_runner_refuses_tasks_without_commands_before_dispatch(
    tmp_path: Path,
) -> None:
    repo = _spec_repo(tmp_path, SPEC_PLAN)

    res = cli(repo, "run", ".spec/plans/skeleton", "--runner", "shell", "--json")

    assert res.returncode == 3, res.stdout + res.stderr
    (error,) = json.loads(res.stdout)["errors"]
    assert error["reason"] == "no_commands"
    assert error["details"] == {"tasks": ["1.4"]}
    assert "1.4" in error["message"]
    assert "--runner claude" in error["next_step"]
    assert not (repo / ".planfleet/state/skeleton.json").exists()  # nothing was dispatched
    assert leftover_worktrees(repo) == []
    dry = cli(repo, "run", ".spec/plans/skeleton", "--runner", "shell", "--dry-run", "--json")
    assert json.loads(dry.stdout)["data"]["tasks_without_commands"] == ["1.4"]


def test_a_spec_plan_with_commands_runs_with_the_shell_runner(tmp_path: Path) -> None:
    repo = _spec_repo(tmp_path, SPEC_PLAN)

    res = cli(repo, "run", ".spec/plans/skeleton", "--runner", "shell", "--tasks", "1.1,1.2,1.3")

    assert res.returncode == 0, res.stdout + res.stderr
    ref = "planfleet/skeleton/integration"
    files = set(git(repo, "ls-tree", "-r", "--name-only", ref).split())
    assert {"src/app/__init__.py", "src/app/version.py", "CHANGELOG.md"} <= files
    assert "- [x] Create the package" in (repo / ".spec/plans/skeleton/plan.md").read_text()
    # resuming the whole plan: the verified tasks are not run again, so only 1.4 is named
    again = cli(repo, "resume", "skeleton", "--json")
    assert again.returncode == 3, again.stdout + again.stderr
    assert json.loads(again.stdout)["errors"][0]["details"] == {"tasks": ["1.4"]}
