"""Parked spare worktrees on real repositories: park, recycle, cap, drain, concurrency."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import commit_file, git, make_repo
from planfleet.errors import RefusedError
from planfleet.git import worktree_list as git_worktree_list
from planfleet.repo import guards, provision, worktrees
from planfleet.repo import pool as worktree_pool


def _merge(repo: Path, plan: str, worktree: Path) -> str:
    """Fast-forward the plan's integration branch to the worktree's HEAD; return it."""
    head = git(worktree, "rev-parse", "HEAD").strip()
    git(repo, "update-ref", f"refs/heads/planfleet/{plan}/integration", head)
    return head


def _branches(repo: Path) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split())


def _registered(repo: Path) -> list[Path]:
    listing = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [Path(line[len("worktree ") :]) for line in listing if line.startswith("worktree ")]


def _park(repo: Path, task: str, merged: bool, **kw: int) -> Path | None:
    """Park ``task``; with ``merged``, as the engine does right after merging its branch."""
    head = None
    if merged:
        head = git(repo, "rev-parse", f"refs/heads/planfleet/p/tasks/{task}").strip()
    return worktree_pool.park(repo, "p", task, merged=head, **kw)


MERGED = pytest.mark.parametrize("merged", [False, True], ids=["asked", "just-merged"])


def _spare(repo: Path, plan: str, n: int) -> Path:
    return repo / ".planfleet" / "worktrees" / plan / f"_spare-{n}"


def _assert_fresh(wt: provision.Worktree, start: str) -> None:
    """The worktree looks as a new one would: its branch, at ``start``, nothing changed."""
    assert git(wt.path, "symbolic-ref", "--short", "HEAD").strip() == wt.branch
    assert git(wt.path, "rev-parse", "HEAD").strip() == start
    assert worktrees.recorded_base(wt.path) == start
    assert git(wt.path, "status", "--porcelain") == ""
    assert worktree_pool.pending(wt.path) is None


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {
        "README.md": "# test repo\n",
        ".gitignore": "build/\n.env\n",
        ".worktreeinclude": ".env\n",
        "src/keep.txt": "kept\n",
    }
    made = make_repo(tmp_path / "repo", files)
    (made / ".env").write_text("TOKEN=1\n")
    return made


@MERGED
def test_a_parked_worktree_is_recycled_for_the_next_task(repo: Path, merged: bool) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    a = provision.create_worktree(repo, "p", "a")
    assert a.action == "created"
    adm = worktrees.admin_dir(a.path)
    commit_file(a.path, "from_a.txt", "a\n")
    (a.path / "build").mkdir()
    (a.path / "build" / "cache.bin").write_text("cache\n")  # ignored: a build cache
    head_a = _merge(repo, "p", a.path)

    spare = _park(repo, "a", merged)
    assert spare == _spare(repo, "p", 0)
    assert not a.path.exists()
    assert "planfleet/p/tasks/a" not in _branches(repo)
    assert git(spare, "rev-parse", "HEAD").strip() == head_a
    detached = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=spare, check=False)
    assert detached.returncode == 1  # a spare holds no branch

    (repo / ".env").write_text("TOKEN=2\n")  # copies are made anew, not kept from task a
    b = provision.create_worktree(repo, "p", "b", base=first)
    assert (b.action, b.path) == ("recycled", repo / ".planfleet/worktrees/p/b")
    assert not spare.exists()
    assert worktrees.admin_dir(b.path) == adm  # the same registration, moved
    _assert_fresh(b, first)
    assert not (b.path / "from_a.txt").exists()  # not on b's start commit
    assert (b.path / "src" / "keep.txt").read_text() == "kept\n"
    assert (b.path / "build" / "cache.bin").read_text() == "cache\n"  # ignored files stay
    assert b.copied == [".env"]
    assert (b.path / ".env").read_text() == "TOKEN=2\n"

    assert _park(repo, "b", merged) == spare  # b's start is in the integration
    c = provision.create_worktree(repo, "p", "c")  # default base: the integration branch
    assert c.action == "recycled"
    _assert_fresh(c, head_a)
    assert (c.path / "from_a.txt").read_text() == "a\n"
    assert _registered(repo) == [repo, c.path]
    assert _branches(repo) == {"main", "planfleet/p/integration", "planfleet/p/tasks/c"}
    removal = guards.remove(repo, "p", "c")  # a recycled worktree is removed like any other
    assert removal.removed_worktree
    assert removal.deleted_branch
    assert _registered(repo) == [repo]


def _modified(path: Path) -> None:
    (path / "README.md").write_text("changed\n")


def _untracked(path: Path) -> None:
    (path / "new.txt").write_text("new\n")


def _staged(path: Path) -> None:
    _modified(path)
    git(path, "add", "README.md")


def _detached(path: Path) -> None:
    git(path, "checkout", "-q", "--detach")


def _locked(path: Path) -> None:
    git(path, "worktree", "lock", "--reason", "claude session", str(path))


@MERGED
@pytest.mark.parametrize("spoil", [_modified, _untracked, _staged, _detached, _locked])
def test_a_worktree_that_is_not_clean_is_never_parked(
    repo: Path, spoil: Callable[[Path], None], merged: bool
) -> None:
    a = provision.create_worktree(repo, "p", "a")
    commit_file(a.path, "done.txt", "done\n")
    _merge(repo, "p", a.path)
    spoil(a.path)
    before = git(a.path, "status", "--porcelain")
    assert _park(repo, "a", merged) is None
    assert a.path.is_dir()
    assert not _spare(repo, "p", 0).exists()
    assert git(a.path, "status", "--porcelain") == before
    assert "planfleet/p/tasks/a" in _branches(repo)
    if spoil is _locked:
        git(repo, "worktree", "unlock", str(a.path))
    assert guards.remove(repo, "p", "a").removed_worktree  # the caller's fallback


def test_unmerged_work_is_never_parked(repo: Path) -> None:
    a = provision.create_worktree(repo, "p", "a")
    _merge(repo, "p", a.path)
    work = commit_file(a.path, "late.txt", "not merged\n")
    assert worktree_pool.park(repo, "p", "a") is None
    assert git(a.path, "rev-parse", "HEAD").strip() == work
    git(repo, "update-ref", "-d", "refs/heads/planfleet/p/integration")
    assert worktree_pool.park(repo, "p", "a") is None  # nothing to compare with: kept
    assert worktree_pool.park(repo, "p", "missing") is None
    assert _registered(repo) == [repo, a.path]


def test_a_branch_that_moved_after_its_merge_is_not_parked(repo: Path) -> None:
    a = provision.create_worktree(repo, "p", "a")
    merged = _merge(repo, "p", a.path)
    work = commit_file(a.path, "late.txt", "not merged\n")
    assert worktree_pool.park(repo, "p", "a", merged=merged) is None
    assert git(a.path, "symbolic-ref", "HEAD").strip() == "refs/heads/planfleet/p/tasks/a"
    assert git(repo, "rev-parse", "refs/heads/planfleet/p/tasks/a").strip() == work


def test_a_spare_folder_deleted_by_hand_does_not_stop_parking(repo: Path) -> None:
    a = provision.create_worktree(repo, "p", "a")
    _merge(repo, "p", a.path)
    assert _park(repo, "a", True) == _spare(repo, "p", 0)
    shutil.rmtree(_spare(repo, "p", 0))  # still registered with git, gone from disk
    b = provision.create_worktree(repo, "p", "b")
    assert b.action == "created"
    assert _park(repo, "b", True) == _spare(repo, "p", 0)
    assert _registered(repo) == [repo, _spare(repo, "p", 0)]


@MERGED
def test_at_most_keep_spares_the_rest_are_removed(repo: Path, merged: bool) -> None:
    wts = provision.create_worktrees(repo, "p", ["a", "b", "c"])
    parked = [_park(repo, w.task, merged, keep=2) for w in wts]
    assert parked == [_spare(repo, "p", 0), _spare(repo, "p", 1), None]
    assert not wts[2].path.exists()
    assert _branches(repo) == {"main", "planfleet/p/integration"}
    assert _registered(repo) == [repo, _spare(repo, "p", 0), _spare(repo, "p", 1)]


def test_drain_leaves_no_spare_of_the_plan(repo: Path) -> None:
    wts = provision.create_worktrees(repo, "p", ["a", "b", "c"])
    other = provision.create_worktree(repo, "q", "a")
    for w in [*wts, other]:
        assert worktree_pool.park(repo, w.plan, w.task) is not None
    (_spare(repo, "p", 0) / "junk.txt").write_text("x\n")  # a spare holds no work
    subprocess.run(["rm", "-rf", str(_spare(repo, "p", 2))], check=True)  # deleted by hand
    removed = worktree_pool.drain(repo, "p")
    assert removed == [_spare(repo, "p", 0), _spare(repo, "p", 1)]
    assert _registered(repo) == [repo, _spare(repo, "q", 0)]  # another plan's spare stays
    assert not any(_spare(repo, "p", n).exists() for n in range(3))
    assert worktree_pool.drain(repo, "p") == []
    assert worktree_pool.drain(repo, "q") == [_spare(repo, "q", 0)]
    assert _registered(repo) == [repo]


def test_drain_reports_a_spare_it_could_not_remove(repo: Path) -> None:
    a = provision.create_worktree(repo, "p", "a")
    spare = worktree_pool.park(repo, "p", "a")
    assert spare is not None
    git(repo, "worktree", "lock", "--reason", "held", str(spare))
    with pytest.raises(RefusedError, match="could not remove spare") as exc:
        worktree_pool.drain(repo, "p")
    assert exc.value.reason == "spare_not_removed"
    assert worktree_pool.spare_for(repo, "p", git_worktree_list(repo)) is None
    assert provision.create_worktree(repo, "p", "b").action == "created"  # a locked one: not taken
    git(repo, "worktree", "unlock", str(spare))
    assert worktree_pool.drain(repo, "p") == [spare]
    assert a.path.exists() is False


def test_concurrent_creates_never_share_a_spare(repo: Path) -> None:
    start = git(repo, "rev-parse", "HEAD").strip()
    for w in provision.create_worktrees(repo, "p", ["s0", "s1", "s2"]):
        assert worktree_pool.park(repo, "p", w.task) is not None
    n = 8
    barrier = threading.Barrier(n)

    def make(i: int) -> provision.Worktree:
        barrier.wait()  # all at once: each must get its own spare or a new worktree
        return provision.create_worktree(repo, "p", f"t{i}")

    with ThreadPoolExecutor(max_workers=n) as pool:
        made = list(pool.map(make, range(n)))
    assert sorted(w.action for w in made) == ["created"] * 5 + ["recycled"] * 3
    for w in made:
        _assert_fresh(w, start)
    assert len({worktrees.admin_dir(w.path) for w in made}) == n
    assert sorted(_registered(repo)[1:]) == sorted(w.path for w in made)
    assert not any(_spare(repo, "p", i).exists() for i in range(4))


def test_a_recycle_cut_short_is_finished_by_the_next_create(repo: Path) -> None:
    start = git(repo, "rev-parse", "HEAD").strip()
    provision.create_worktree(repo, "p", "a")
    spare = worktree_pool.park(repo, "p", "a")
    assert spare is not None
    path, branch = worktrees.task_worktree(repo, "p", "b"), worktrees.task_branch("p", "b")
    # what a process that died right after the metadata step leaves behind
    worktree_pool.prepare(spare, path, branch, start)
    worktree_pool.adopt_plan(repo, spare, path, branch, start, None).run()
    assert worktree_pool.pending(path) == (branch, start)
    b = provision.create_worktree(repo, "p", "b")
    assert b.action == "recycled"
    _assert_fresh(b, start)
    # without the mark, a detached worktree at a task's path is someone's, not ours to switch
    git(b.path, "checkout", "-q", "--detach")
    with pytest.raises(RefusedError, match="detached HEAD") as exc:
        provision.create_worktree(repo, "p", "b")
    assert exc.value.reason == "wrong_branch"


def test_a_spare_written_into_is_still_reset_to_the_task_start(repo: Path) -> None:
    provision.create_worktree(repo, "p", "a")
    spare = worktree_pool.park(repo, "p", "a")
    assert spare is not None
    (spare / "README.md").write_text("scribbled\n")
    (spare / "src" / "stray.txt").write_text("stray\n")
    b = provision.create_worktree(repo, "p", "b")
    assert b.action == "recycled"
    _assert_fresh(b, git(repo, "rev-parse", "HEAD").strip())
    assert (b.path / "README.md").read_text() == "# test repo\n"
    assert not (b.path / "src" / "stray.txt").exists()


def test_an_empty_folder_at_the_task_path_does_not_swallow_the_spare(repo: Path) -> None:
    provision.create_worktree(repo, "p", "a")
    assert worktree_pool.park(repo, "p", "a") is not None
    target = worktrees.task_worktree(repo, "p", "b")
    target.mkdir()
    b = provision.create_worktree(repo, "p", "b")
    assert (b.action, _registered(repo)) == ("recycled", [repo, target])
    assert (target / "README.md").exists()
    assert not (target / "_spare-0").exists()


def test_dry_run_shows_the_recycle_and_changes_nothing(repo: Path) -> None:
    provision.create_worktree(repo, "p", "a")
    spare = worktree_pool.park(repo, "p", "a")
    refs = git(repo, "for-each-ref")
    (plan_b, plan_c) = provision.create_worktrees(repo, "p", ["b", "c"], dry_run=True)
    assert any(f"worktree move {spare}" in c for c in plan_b.commands)
    assert any("read-tree -u --reset refs/heads/planfleet/p/tasks/b" in c for c in plan_b.commands)
    assert any("worktree add --no-checkout -b" in c for c in plan_c.commands)  # one spare only
    assert git(repo, "for-each-ref") == refs
    assert _registered(repo) == [repo, spare]
    made = provision.create_worktrees(repo, "p", ["b", "c"])
    assert [(w.action, w.error) for w in made] == [("recycled", None), ("created", None)]


def test_a_spare_takes_up_the_branch_an_earlier_attempt_left(repo: Path) -> None:
    start = git(repo, "rev-parse", "HEAD").strip()
    _, b = provision.create_worktrees(repo, "p", ["x", "b"])
    work = commit_file(b.path, "b.txt", "earlier attempt\n")
    git(repo, "worktree", "remove", str(b.path))  # the branch stays
    assert worktree_pool.park(repo, "p", "x") is not None
    again = provision.create_worktree(repo, "p", "b")
    assert again.action == "recycled"
    assert git(again.path, "symbolic-ref", "--short", "HEAD").strip() == again.branch
    assert git(again.path, "rev-parse", "HEAD").strip() == work
    assert (again.path / "b.txt").read_text() == "earlier attempt\n"
    assert worktrees.recorded_base(again.path) == start
    assert git(again.path, "status", "--porcelain") == ""


def test_a_folder_git_lost_is_saved_on_a_rescue_branch_then_removed(repo: Path) -> None:
    wt = provision.create_worktree(repo, "p", "lost")
    (wt.path / "work.txt").write_text("unsaved work\n")
    (wt.path / ".git").unlink()  # git no longer knows the folder
    git(repo, "worktree", "prune")
    branch = worktree_pool.set_aside(repo, "p", "lost")
    assert branch is not None
    assert branch.startswith("planfleet/p/rescue/lost-")
    assert git(repo, "show", f"{branch}:work.txt") == "unsaved work\n"
    assert not wt.path.exists()
    assert worktree_pool.set_aside(repo, "p", "lost") is None
