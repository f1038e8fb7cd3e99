"""The execution folder of a ``.spec`` plan from its Branch and Worktree lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git
from planfleet.errors import RefusedError
from planfleet.repo.execdir import execution_dir


def test_no_worktree_means_here_with_a_branch_check(git_repo: Path) -> None:
    here = execution_dir(git_repo, branch="main", worktree="(none)")
    assert (here.path, here.mode, here.branch_ok, here.switch_command) == (
        git_repo.resolve(),
        "current",
        True,
        None,
    )
    other = execution_dir(git_repo, branch="feature/x", worktree=None)
    assert not other.branch_ok
    assert other.current_branch == "main"
    assert other.switch_command == ["git", "switch", "feature/x"]
    assert git(git_repo, "symbolic-ref", "--short", "HEAD").strip() == "main"  # only offered


def test_missing_worktree_needs_confirmation_then_is_created(git_repo: Path) -> None:
    with pytest.raises(RefusedError, match="does not exist") as exc:
        execution_dir(git_repo, branch="feature/auth", worktree="../auth-wt")
    assert exc.value.reason == "confirm_worktree"
    assert "--yes" in (exc.value.next_step or "")
    target = git_repo.parent / "auth-wt"
    assert not target.exists()
    dry = execution_dir(
        git_repo, branch="feature/auth", worktree="../auth-wt", yes=True, dry_run=True
    )
    assert dry.mode == "planned"
    assert "worktree add -b feature/auth" in dry.commands[0]
    assert not target.exists()
    made = execution_dir(git_repo, branch="feature/auth", worktree="../auth-wt", yes=True)
    assert made.mode == "created"
    assert made.path == target.resolve()
    assert git(target, "symbolic-ref", "--short", "HEAD").strip() == "feature/auth"
    again = execution_dir(git_repo, branch="feature/auth", worktree="../auth-wt")
    assert again.mode == "worktree"
    assert again.branch_ok
    wrong = execution_dir(git_repo, branch="feature/other", worktree="../auth-wt")
    assert not wrong.branch_ok
    assert wrong.current_branch == "feature/auth"
    assert git(git_repo, "symbolic-ref", "--short", "HEAD").strip() == "main"


def test_existing_branch_is_checked_out_in_the_new_worktree(git_repo: Path) -> None:
    git(git_repo, "branch", "feature/old")
    made = execution_dir(git_repo, branch="feature/old", worktree=".wt/old", yes=True)
    assert made.commands[0].endswith("feature/old")
    assert git(made.path, "symbolic-ref", "--short", "HEAD").strip() == "feature/old"


@pytest.mark.parametrize(
    ("branch", "worktree", "reason"),
    [
        ("-f", "../x", "bad_branch"),
        ("a..b", "../x", "bad_branch"),
        ("ok", "/etc/planfleet", "bad_worktree"),
        ("ok", "../../../escape", "bad_worktree"),
        (None, "../x", "no_branch"),
    ],
)
def test_bad_metadata_is_refused(
    git_repo: Path, branch: str | None, worktree: str, reason: str
) -> None:
    with pytest.raises(RefusedError) as exc:
        execution_dir(git_repo, branch=branch, worktree=worktree, yes=True)
    assert exc.value.reason == reason


def test_a_folder_that_is_not_a_worktree_is_refused(git_repo: Path) -> None:
    (git_repo.parent / "plain").mkdir()
    with pytest.raises(RefusedError, match="not a worktree") as exc:
        execution_dir(git_repo, branch="b", worktree="../plain", yes=True)
    assert exc.value.reason == "not_a_worktree"
