"""Attempt branches: a failed attempt's work kept (uncommitted files too), never overwritten,
the task branch reset for the retry, and `planfleet clean` to delete them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import CliResult, commit_file, git
from planfleet.engine import attemptsave, runinfo
from planfleet.repo import provision

PLAN = "p"


def _attempt(repo: Path, task: str) -> tuple[Path, str]:
    """Return a task worktree with one commit and one uncommitted file, and its base."""
    wt = provision.create_worktree(repo, PLAN, task)
    assert wt.base is not None
    commit_file(wt.path, "done.txt", "committed\n")
    (wt.path / "draft.txt").write_text("not committed\n")
    return wt.path, wt.base


def test_keep_saves_commits_and_uncommitted_files_then_the_branch_starts_clean(
    git_repo: Path,
) -> None:
    path, base = _attempt(git_repo, "t")
    head = git(path, "rev-parse", "HEAD").strip()
    kept = attemptsave.keep(git_repo, PLAN, "t", 1, path, base)
    assert kept is not None
    assert kept.branch == "planfleet/p/attempts/t/1"
    assert git(git_repo, "show", f"{kept.branch}:done.txt") == "committed\n"
    assert git(git_repo, "show", f"{kept.branch}:draft.txt") == "not committed\n"
    assert git(git_repo, "rev-parse", f"{kept.branch}^").strip() == head
    assert (path / "draft.txt").exists()  # keeping changes nothing in the worktree
    # asked again for the same work (the retry after the failure): the same branch
    assert attemptsave.keep(git_repo, PLAN, "t", 1, path, base) == kept
    attemptsave.start_clean(path, base)
    assert git(path, "rev-parse", "HEAD").strip() == base
    assert git(path, "status", "--porcelain") == ""
    assert attemptsave.keep(git_repo, PLAN, "t", 2, path, base) is None  # nothing to keep
    assert [k.branch for k in attemptsave.kept(git_repo, PLAN)] == [kept.branch]


def test_an_attempt_branch_holding_other_work_is_never_overwritten(git_repo: Path) -> None:
    path, base = _attempt(git_repo, "t")
    first = attemptsave.keep(git_repo, PLAN, "t", 1, path, base)
    attemptsave.start_clean(path, base)
    commit_file(path, "other.txt", "a second life of the task\n")  # e.g. after a hard reset
    second = attemptsave.keep(git_repo, PLAN, "t", 1, path, base)
    assert first is not None
    assert second is not None
    assert second.branch == "planfleet/p/attempts/t/1-2"
    assert git(git_repo, "rev-parse", first.branch).strip() == first.commit


def test_clean_deletes_attempt_branches_and_rescues_only_when_asked(
    git_repo: Path, run_cli: Callable[..., CliResult]
) -> None:
    for task in ("a", "b"):
        path, base = _attempt(git_repo, task)
        attemptsave.keep(git_repo, PLAN, task, 1, path, base)
    git(git_repo, "branch", "planfleet/p/rescue/a-20260101T000000Z", "main")
    git(git_repo, "branch", "planfleet/q/attempts/a/1", "main")  # another plan's
    only_b = run_cli("clean", PLAN, "--task", "b", "--json", cwd=git_repo).json()["data"]
    assert only_b["deleted"] == ["planfleet/p/attempts/b/1"]
    res = run_cli("clean", PLAN, cwd=git_repo)
    assert res.code == 0, res.err
    assert "1 rescue branch(es) kept" in res.out

    def left() -> list[str]:
        listing = git(git_repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return [b for b in listing.split() if "/attempts/" in b or "/rescue/" in b]

    assert left() == ["planfleet/p/rescue/a-20260101T000000Z", "planfleet/q/attempts/a/1"]
    assert run_cli("clean", PLAN, "--rescue", cwd=git_repo).code == 0
    assert left() == ["planfleet/q/attempts/a/1"]
    assert git(git_repo, "rev-parse", "--verify", "-q", "planfleet/p/tasks/a").strip()


def test_clean_is_refused_while_the_engine_runs(
    git_repo: Path, run_cli: Callable[..., CliResult]
) -> None:
    with runinfo.engine_lock(git_repo, PLAN):
        res = run_cli("clean", PLAN, "--json", cwd=git_repo)
    assert res.code == 3
    assert res.json()["errors"][0]["reason"] == "engine_running"
