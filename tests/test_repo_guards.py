"""Guards: a dirty checkout named, work rescued before removal, stale records pruned safely."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import commit_file, git
from planfleet.errors import RefusedError
from planfleet.repo import guards, provision, worktrees


def test_dirty_checkout_is_refused_naming_the_files(git_repo: Path, run_cli) -> None:
    (git_repo / "README.md").write_text("changed\n")
    (git_repo / "notes.txt").write_text("new\n")
    with pytest.raises(RefusedError) as exc:
        guards.require_clean(git_repo)
    assert exc.value.reason == "dirty_checkout"
    assert "README.md" in exc.value.message
    assert "notes.txt" in exc.value.message
    assert exc.value.details["files"] == ["README.md", "notes.txt"]
    assert guards.require_clean(git_repo, allow_dirty=True) == ["README.md", "notes.txt"]
    r = run_cli("worktree", "create", "p", "a", cwd=git_repo)
    assert r.code == 3
    assert "uncommitted changes: README.md, notes.txt" in r.err
    assert "--allow-dirty" in r.err
    assert run_cli("worktree", "create", "p", "a", "--allow-dirty", cwd=git_repo).code == 0


def test_planfleet_folder_never_counts_as_dirty(git_repo: Path) -> None:
    (git_repo / ".planfleet").mkdir()
    (git_repo / ".planfleet" / "x").write_text("ours\n")  # before the exclude line exists
    assert guards.require_clean(git_repo) == []


def test_rescue_of_uncommitted_work_keeps_the_worktree_as_it_was(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    (wt / "README.md").write_text("edited\n")
    (wt / "new.txt").write_text("brand new\n")
    status = git(wt, "status", "--porcelain")
    res = guards.rescue(git_repo, "p", "a")
    assert res.branch is not None
    assert res.branch.startswith("planfleet/p/rescue/a-")
    assert sorted(res.uncommitted) == ["README.md", "new.txt"]
    assert git(git_repo, "show", f"{res.branch}:README.md") == "edited\n"
    assert git(git_repo, "show", f"{res.branch}:new.txt") == "brand new\n"
    assert git(wt, "status", "--porcelain") == status  # index and files untouched
    author = git(git_repo, "log", "-1", "--format=%an <%ae>", res.branch).strip()
    assert author == "planfleet <planfleet@localhost>"
    assert "saved 2 uncommitted file(s)" in res.describe()


def test_remove_with_uncommitted_work_leaves_a_rescue_branch(git_repo: Path, run_cli) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    (wt / "draft.txt").write_text("half done\n")
    r = run_cli("worktree", "remove", "p", "a", "--json", cwd=git_repo)
    assert r.code == 0, r.err
    data = r.json()["data"]
    branch = data["rescue"]["branch"]
    assert branch
    assert data["removed_worktree"]
    assert data["deleted_branch"]
    assert git(git_repo, "show", f"{branch}:draft.txt") == "half done\n"
    assert not wt.exists()
    assert git(git_repo, "branch", "--list", "planfleet/p/tasks/a") == ""


def test_remove_with_unmerged_commits_leaves_a_rescue_branch(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    head = commit_file(wt, "feature.txt", "done\n")
    res = guards.remove(git_repo, "p", "a")
    assert res.rescue.unmerged_commits == 1
    assert res.rescue.uncommitted == []
    assert res.rescue.branch is not None
    assert git(git_repo, "rev-parse", res.rescue.branch).strip() == head
    assert not wt.exists()


def test_remove_of_clean_merged_worktree_saves_nothing(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    res = guards.remove(git_repo, "p", "a")
    assert res.rescue.branch is None
    assert "no uncommitted or unmerged work" in res.rescue.describe()
    assert not wt.exists()
    assert "planfleet/p/rescue" not in git(git_repo, "branch", "--list")


def test_remove_dry_run_changes_nothing(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    (wt / "draft.txt").write_text("x\n")
    refs = git(git_repo, "for-each-ref")
    res = guards.remove(git_repo, "p", "a", dry_run=True)
    assert any("GIT_INDEX_FILE=" in c and "add -A" in c for c in res.commands)
    assert any("worktree remove --force" in c for c in res.commands)
    assert git(git_repo, "for-each-ref") == refs
    assert (wt / "draft.txt").exists()


def test_remove_refuses_a_worktree_someone_holds(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    (wt / "draft.txt").write_text("x\n")
    git(git_repo, "worktree", "lock", "--reason", worktrees.owner_reason(), str(wt))
    with pytest.raises(RefusedError, match="is locked") as exc:
        guards.remove(git_repo, "p", "a")
    assert exc.value.reason == "worktree_locked"
    assert (wt / "draft.txt").exists()
    assert "planfleet/p/rescue" not in git(git_repo, "branch", "--list")


def test_prune_drops_stale_records_and_keeps_healthy_ones(git_repo: Path, run_cli) -> None:
    healthy = provision.create_worktree(git_repo, "p", "healthy").path
    (healthy / "work.txt").write_text("keep me\n")
    deleted = provision.create_worktree(git_repo, "p", "deleted").path
    held = provision.create_worktree(git_repo, "p", "held").path
    git(git_repo, "worktree", "lock", "--reason", "claude agent running", str(held))
    # what `claude -p --worktree` leaves: a worktree it locked, later deleted by hand
    claude_wt = git_repo / ".claude" / "worktrees" / "fix"
    git(git_repo, "worktree", "add", "-q", "-b", "worktree-fix", str(claude_wt))
    git(git_repo, "worktree", "lock", "--reason", "claude session", str(claude_wt))
    for gone in (deleted, claude_wt):
        subprocess.run(["rm", "-rf", str(gone)], check=True)

    dry = run_cli("worktree", "prune", "--dry-run", "--json", cwd=git_repo)
    assert dry.code == 0
    assert any("worktree prune" in c for c in dry.json()["data"]["commands"])
    assert len(git(git_repo, "worktree", "list").splitlines()) == 5

    report = guards.prune(git_repo)
    assert sorted(report.pruned) == sorted([str(deleted), str(claude_wt)])
    assert report.unlocked == [str(claude_wt)]
    assert report.kept == [{"path": str(held), "why": "locked: claude agent running"}]
    listed = git(git_repo, "worktree", "list", "--porcelain")
    assert str(healthy) in listed
    assert str(held) in listed
    assert str(deleted) not in listed
    assert str(claude_wt) not in listed
    assert (healthy / "work.txt").read_text() == "keep me\n"
    assert "planfleet/p/tasks/deleted" in git(git_repo, "branch", "--list")  # commits stay


def test_prune_keeps_a_locked_missing_worktree_outside_the_repo(
    git_repo: Path, tmp_path: Path
) -> None:
    usb = tmp_path / "usb-drive" / "wt"
    git(git_repo, "worktree", "add", "-q", "-b", "portable", str(usb))
    git(git_repo, "worktree", "lock", "--reason", "on a removable drive", str(usb))
    subprocess.run(["rm", "-rf", str(usb)], check=True)
    report = guards.prune(git_repo)
    assert report.pruned == []
    assert report.kept == [{"path": str(usb), "why": "locked, outside the repo"}]
    assert str(usb) in git(git_repo, "worktree", "list")


def test_inspect_reports_health(git_repo: Path) -> None:
    provision.create_worktree(git_repo, "p", "ok")
    wrong = provision.create_worktree(git_repo, "p", "wrong").path
    git(wrong, "switch", "-q", "-c", "other")
    gone = provision.create_worktree(git_repo, "p", "gone").path
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    states = {h.task: h.state for h in guards.inspect(git_repo)}
    assert states == {"ok": "ok", "wrong": "wrong_branch", "gone": "missing"}
    assert guards.inspect(git_repo, plan="other-plan") == []


def test_remove_keeps_a_task_branch_the_worktree_switched_away_from(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a").path
    head = commit_file(wt, "feature.txt", "on the task branch\n")
    git(wt, "switch", "-q", "--detach", "HEAD~1")
    res = guards.remove(git_repo, "p", "a")
    assert res.removed_worktree
    assert not res.deleted_branch
    assert git(git_repo, "rev-parse", "planfleet/p/tasks/a").strip() == head
