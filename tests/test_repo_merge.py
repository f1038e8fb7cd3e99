"""The merge queue and land on real repositories: failures never move the integration branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import commit_file, git
from planfleet.errors import RefusedError
from planfleet.repo import landing, merge, provision, worktrees
from planfleet.repo.merge import MergeItem

INTEG = "planfleet/p/integration"


def _user_view(repo: Path) -> tuple[str, str, str]:
    return (
        git(repo, "symbolic-ref", "HEAD").strip(),
        git(repo, "rev-parse", "HEAD").strip(),
        git(repo, "status", "--porcelain").strip(),
    )


def _task(repo: Path, task: str, files: dict[str, str | None]) -> Path:
    """Create the task's worktree and commit ``files`` there (None deletes a file)."""
    wt = provision.create_worktree(repo, "p", task).path
    for name, text in files.items():
        if text is None:
            git(wt, "rm", "-q", name)
        else:
            (wt / name).parent.mkdir(parents=True, exist_ok=True)
            (wt / name).write_text(text)
            git(wt, "add", name)
    git(wt, "commit", "-qm", f"task {task}")
    return wt


def _integ(repo: Path) -> str:
    return git(repo, "rev-parse", INTEG).strip()


def test_dependent_task_sees_its_dependency(git_repo: Path) -> None:
    before = _user_view(git_repo)
    _task(git_repo, "lib", {"lib.py": "def f():\n    return 1\n"})
    (res,) = merge.merge_queue(git_repo, "p", [MergeItem("lib", ("lib.py",))])
    assert res.status == "merged"
    assert res.after == _integ(git_repo)
    parents = git(git_repo, "log", "-1", "--format=%P", INTEG).split()
    assert parents == [res.before, res.head]  # a real merge commit (--no-ff)
    app = provision.create_worktree(git_repo, "p", "app")
    assert app.base == res.after
    assert (app.path / "lib.py").read_text() == "def f():\n    return 1\n"
    assert _user_view(git_repo) == before


def test_queue_merges_in_the_given_order(git_repo: Path) -> None:
    _task(git_repo, "a", {"a.txt": "a\n"})
    _task(git_repo, "b", {"b.txt": "b\n"})
    results = merge.merge_queue(git_repo, "p", [MergeItem("b"), MergeItem("a")])
    assert [r.status for r in results] == ["merged", "merged"]
    assert results[1].before == results[0].after
    subjects = git(git_repo, "log", "--format=%s", "--first-parent", "-2", INTEG).split("\n")
    assert subjects[:2] == ["planfleet: merge task a", "planfleet: merge task b"]
    again = merge.merge_queue(git_repo, "p", [MergeItem("a")])
    assert again[0].status == "already_merged"


def test_conflict_leaves_integration_as_before_with_hunks(git_repo: Path) -> None:
    _task(git_repo, "one", {"README.md": "# one\n"})
    _task(git_repo, "two", {"README.md": "# two\n"})
    first, second = merge.merge_queue(git_repo, "p", [MergeItem("one"), MergeItem("two")])
    assert first.status == "merged"
    before = _integ(git_repo)
    assert second.status == "conflict"
    assert _integ(git_repo) == before == second.after
    assert [c.path for c in second.conflicts] == ["README.md"]
    hunk = second.conflicts[0].hunks[0]
    assert "<<<<<<<" in hunk
    assert "# one" in hunk
    assert "# two" in hunk
    assert ">>>>>>>" in hunk
    assert "CONFLICT (content): Merge conflict in README.md" in second.messages
    assert "README.md" in second.feedback()
    assert "# two" in second.feedback()


def test_undeclared_deletion_is_refused(git_repo: Path) -> None:
    _task(git_repo, "cleanup", {"README.md": None, "new.txt": "n\n"})
    before = merge.merge_queue(git_repo, "p", [])  # creates the integration branch
    assert before == []
    start = _integ(git_repo)
    (res,) = merge.merge_queue(git_repo, "p", [MergeItem("cleanup", ("new.txt",))])
    assert res.status == "refused_deletion"
    assert res.deleted == ["README.md"]
    assert _integ(git_repo) == start
    assert "README.md" in res.feedback()
    (ok,) = merge.merge_queue(git_repo, "p", [MergeItem("cleanup", ("new.txt", "*.md"))])
    assert ok.status == "merged"


def test_failed_post_merge_check_leaves_integration_as_before(git_repo: Path) -> None:
    _task(git_repo, "good", {"ok.txt": "fine\n"})
    _task(git_repo, "bad", {"BROKEN": "x\n"})
    check = "if test -f BROKEN; then echo the build broke >&2; exit 3; fi; echo checked"
    good, bad = merge.merge_queue(
        git_repo, "p", [MergeItem("good"), MergeItem("bad")], check=check, check_timeout=30
    )
    assert good.status == "merged"
    assert bad.status == "check_failed"
    assert _integ(git_repo) == good.after == bad.after
    assert "exit 3" in bad.output
    assert "the build broke" in bad.output
    assert "post-merge check failed" in bad.feedback()
    merge_wt = worktrees.merge_worktree(git_repo, "p")
    assert git(merge_wt, "status", "--porcelain") == ""


def test_check_timeout_fails_the_merge(git_repo: Path) -> None:
    _task(git_repo, "slow", {"s.txt": "s\n"})
    start = worktrees.ensure_integration(git_repo, "p")
    (res,) = merge.merge_queue(
        git_repo, "p", [MergeItem("slow")], check="sleep 5", check_timeout=0.5
    )
    assert res.status == "check_failed"
    assert "timed out" in res.output
    assert _integ(git_repo) == start


def test_squash_strategy_and_fail_fast(git_repo: Path) -> None:
    _task(git_repo, "a", {"a.txt": "a\n"})
    (res,) = merge.merge_queue(git_repo, "p", [MergeItem("a")], strategy="squash")
    assert res.status == "merged"
    assert git(git_repo, "log", "-1", "--format=%P", INTEG).split() == [res.before]
    (again,) = merge.merge_queue(git_repo, "p", [MergeItem("a")], strategy="squash")
    assert again.status == "already_merged"
    assert again.after == res.after == _integ(git_repo)
    results = merge.merge_queue(
        git_repo, "p", [MergeItem("missing"), MergeItem("a")], fail_fast=True
    )
    assert [r.status for r in results] == ["missing_branch", "skipped"]


def test_merge_refuses_when_integration_is_checked_out(git_repo: Path) -> None:
    _task(git_repo, "a", {"a.txt": "a\n"})
    git(git_repo, "switch", "-q", INTEG)
    with pytest.raises(RefusedError) as exc:
        merge.merge_queue(git_repo, "p", [MergeItem("a")])
    assert exc.value.reason == "integration_checked_out"


def test_merge_dry_run_and_cli(git_repo: Path, run_cli) -> None:
    _task(git_repo, "a", {"a.txt": "a\n"})
    git(git_repo, "update-ref", "-d", f"refs/heads/{INTEG}")
    (planned,) = merge.merge_queue(git_repo, "p", [MergeItem("a")], dry_run=True)
    assert "update-ref" in planned.commands[0]
    assert INTEG in planned.commands[0]
    assert git(git_repo, "branch", "--list", INTEG) == ""
    start = worktrees.ensure_integration(git_repo, "p")
    r = run_cli(
        "merge", "p", "--tasks", "a", "--check", "true", "--dry-run", "--json", cwd=git_repo
    )
    assert r.code == 0, r.err
    commands = r.json()["data"]["results"][0]["commands"]
    assert any("merge-tree --write-tree" in c for c in commands)
    assert any("update-ref" in c and start in c for c in commands)
    assert _integ(git_repo) == start
    before = _integ(git_repo)
    r = run_cli("merge", "p", "--tasks", "a,nope", "--json", cwd=git_repo)
    assert r.code == 2, r.out
    (error,) = r.json()["errors"]
    assert error["field"] == "--tasks"
    assert "nope" in error["message"]
    assert "tasks with a branch: a" in error["hint"]
    assert _integ(git_repo) == before  # nothing merged: the unknown task was found first


def test_land_fast_forwards_a_clean_checkout(git_repo: Path, run_cli) -> None:
    _task(git_repo, "a", {"a.txt": "a\n", "README.md": "from the task\n"})
    merge.merge_queue(git_repo, "p", [MergeItem("a")])
    (git_repo / "README.md").write_text("dirty\n")
    r = run_cli("land", "p", cwd=git_repo)
    assert r.code == 3
    assert "README.md" in r.err
    assert not (git_repo / "a.txt").exists()
    git(git_repo, "checkout", "-q", "--", "README.md")
    r = run_cli("land", "p", "--dry-run", "--json", cwd=git_repo)
    assert "merge --ff-only" in r.json()["data"]["commands"][0]
    assert not (git_repo / "a.txt").exists()
    res = landing.land(git_repo, "p")
    assert res.mode == "fast-forward"
    assert res.target == "main"
    assert git(git_repo, "rev-parse", "HEAD").strip() == _integ(git_repo)
    assert (git_repo / "a.txt").read_text() == "a\n"
    assert landing.land(git_repo, "p").mode == "up-to-date"


def test_land_carries_uncommitted_changes_the_landing_does_not_touch(git_repo: Path) -> None:
    # e.g. the checkboxes planfleet rendered into a tracked plan file during the run
    commit_file(git_repo, "plan.md", "- [ ] a\n")
    _task(git_repo, "a", {"a.txt": "a\n"})
    merge.merge_queue(git_repo, "p", [MergeItem("a")])
    (git_repo / "plan.md").write_text("- [x] a\n")
    assert landing.land(git_repo, "p").mode == "fast-forward"
    assert (git_repo / "a.txt").read_text() == "a\n"
    assert (git_repo / "plan.md").read_text() == "- [x] a\n"


def test_land_merges_when_the_target_moved(git_repo: Path) -> None:
    _task(git_repo, "a", {"a.txt": "a\n"})
    merge.merge_queue(git_repo, "p", [MergeItem("a")])
    mine = commit_file(git_repo, "mine.txt", "mine\n")
    res = landing.land(git_repo, "p")
    assert res.mode == "merge"
    assert git(git_repo, "log", "-1", "--format=%P").split() == [mine, _integ(git_repo)]
    assert (git_repo / "a.txt").exists()
    assert (git_repo / "mine.txt").exists()
    assert git(git_repo, "status", "--porcelain") == ""


def test_land_into_another_branch_and_conflicts(git_repo: Path) -> None:
    _task(git_repo, "a", {"README.md": "# from the task\n"})
    merge.merge_queue(git_repo, "p", [MergeItem("a")])
    head = git(git_repo, "rev-parse", "HEAD").strip()
    res = landing.land(git_repo, "p", into="release")
    assert res.mode == "create"
    assert res.checkout is None
    assert git(git_repo, "rev-parse", "release").strip() == _integ(git_repo)
    assert git(git_repo, "rev-parse", "HEAD").strip() == head  # the user's branch untouched
    user = commit_file(git_repo, "README.md", "# from the user\n")
    with pytest.raises(RefusedError, match="conflicts with main") as exc:
        landing.land(git_repo, "p")
    assert exc.value.reason == "land_conflict"
    assert git(git_repo, "rev-parse", "HEAD").strip() == user
    with pytest.raises(RefusedError):
        landing.land(git_repo, "p", into=INTEG)
