"""Task worktrees on real repositories: concurrent creation, reuse, includes, safe names."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import commit_file, git, make_repo
from planfleet.errors import InputError, RefusedError
from planfleet.repo import include, provision, worktrees

N = 16


def _user_view(repo: Path) -> tuple[str, str, str]:
    """What the person sees: branch, HEAD commit and status of the main checkout."""
    return (
        git(repo, "symbolic-ref", "HEAD").strip(),
        git(repo, "rev-parse", "HEAD").strip(),
        git(repo, "status", "--porcelain").strip(),
    )


def _assert_healthy(repo: Path, plan: str, task: str, base: str) -> None:
    wt = repo / ".planfleet" / "worktrees" / plan / task
    assert git(wt, "symbolic-ref", "--short", "HEAD").strip() == f"planfleet/{plan}/tasks/{task}"
    assert git(wt, "rev-parse", "HEAD").strip() == base
    assert worktrees.recorded_base(wt) == base
    assert (wt / "README.md").read_text() == "# test repo\n"
    assert git(wt, "status", "--porcelain") == ""


def test_names_and_paths(git_repo: Path) -> None:
    assert worktrees.task_branch("p", "t1") == "planfleet/p/tasks/t1"
    assert worktrees.integration_branch("p") == "planfleet/p/integration"
    assert worktrees.rescue_branch("p", "t1").startswith("planfleet/p/rescue/t1-")
    assert worktrees.task_worktree(git_repo, "p", "t1") == git_repo / ".planfleet/worktrees/p/t1"
    assert worktrees.merge_worktree(git_repo, "p").name == "_integration"


def test_sixteen_worktrees_from_threads(git_repo: Path) -> None:
    before = _user_view(git_repo)
    barrier = threading.Barrier(N)
    errors: list[BaseException] = []

    def make(i: int) -> None:
        barrier.wait()
        try:
            provision.create_worktree(git_repo, "p", f"t{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    base = git(git_repo, "rev-parse", "planfleet/p/integration").strip()
    assert base == before[1]
    for i in range(N):
        _assert_healthy(git_repo, "p", f"t{i}", base)
    assert _user_view(git_repo) == before


def test_sixteen_worktrees_from_processes(git_repo: Path) -> None:
    before = _user_view(git_repo)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planfleet",
                "worktree",
                "create",
                "-C",
                str(git_repo),
                "q",
                f"t{i}",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(N)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        outputs.append((p.returncode, out, err))
    assert [o for o in outputs if o[0] != 0] == []
    assert not any("lock" in err for _, _, err in outputs)
    base = git(git_repo, "rev-parse", "planfleet/q/integration").strip()
    for i in range(N):
        _assert_healthy(git_repo, "q", f"t{i}", base)
    assert _user_view(git_repo) == before


def test_batch_create_then_reuse_on_resume(git_repo: Path) -> None:
    first = provision.create_worktrees(git_repo, "p", ["a", "b"])
    assert [w.action for w in first] == ["created", "created"]
    base = first[0].base
    (first[0].path / "work.txt").write_text("in progress\n")
    again = provision.create_worktrees(git_repo, "p", ["a", "b"])
    assert [w.action for w in again] == ["reused", "reused"]
    assert [w.base for w in again] == [base, base]
    assert (first[0].path / "work.txt").read_text() == "in progress\n"  # untouched


def test_reuse_refuses_wrong_branch_and_wrong_base(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a")
    git(wt.path, "switch", "-q", "-c", "elsewhere")
    with pytest.raises(RefusedError, match="is on elsewhere") as exc:
        provision.create_worktree(git_repo, "p", "a")
    assert exc.value.reason == "wrong_branch"
    git(wt.path, "switch", "-q", "planfleet/p/tasks/a")
    commit_file(git_repo, "new.txt", "x\n")
    with pytest.raises(RefusedError, match="was created from") as exc:
        provision.create_worktree(git_repo, "p", "a", base="HEAD")
    assert exc.value.reason == "base_mismatch"


def test_explicit_base_is_recorded(git_repo: Path) -> None:
    first = git(git_repo, "rev-parse", "HEAD").strip()
    commit_file(git_repo, "later.txt", "later\n")
    wt = provision.create_worktree(git_repo, "p", "a", base=first)
    assert wt.base == first
    assert not (wt.path / "later.txt").exists()
    with pytest.raises(RefusedError, match="does not name a commit"):
        provision.create_worktree(git_repo, "p", "b", base="no-such-branch")


def test_locked_by_someone_else_is_reported(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a")
    git(git_repo, "worktree", "lock", "--reason", "claude session 7c5d", str(wt.path))
    with pytest.raises(RefusedError, match="locked by someone else: claude session") as exc:
        provision.create_worktree(git_repo, "p", "a")
    assert exc.value.reason == "worktree_locked"


def test_lock_of_a_dead_planfleet_owner_is_taken_over(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a")
    dead = subprocess.Popen(["true"])
    dead.wait()
    reason = worktrees.owner_reason(dead.pid)
    assert worktrees.lock_owner_alive(reason) is False
    assert worktrees.lock_owner_alive(worktrees.owner_reason()) is True
    assert worktrees.lock_owner_alive("claude") is None
    git(git_repo, "worktree", "lock", "--reason", reason, str(wt.path))
    assert provision.create_worktree(git_repo, "p", "a").action == "reused"
    assert "locked" not in git(git_repo, "worktree", "list", "--porcelain")


def test_directory_deleted_by_hand_is_recreated_on_its_branch(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a")
    commit_file(wt.path, "f.txt", "committed\n")
    subprocess.run(["rm", "-rf", str(wt.path)], check=True)
    again = provision.create_worktree(git_repo, "p", "a")
    assert again.action == "attached"
    assert (wt.path / "f.txt").read_text() == "committed\n"


def test_stale_branch_without_the_base_is_refused(git_repo: Path) -> None:
    git(git_repo, "branch", "planfleet/p/tasks/a", "HEAD")
    commit_file(git_repo, "n.txt", "n\n")
    with pytest.raises(RefusedError, match="earlier attempt") as exc:
        provision.create_worktree(git_repo, "p", "a", base="HEAD")
    assert exc.value.reason == "stale_branch"


def test_occupied_path_is_refused(git_repo: Path) -> None:
    target = git_repo / ".planfleet" / "worktrees" / "p" / "a"
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("mine\n")
    with pytest.raises(RefusedError, match="not a git worktree"):
        provision.create_worktree(git_repo, "p", "a")
    assert (target / "precious.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("plan", "task", "why"),
    [
        ("p", "..", "must start with a letter or digit"),
        ("p", "a..b", "contains '..'"),
        ("p", "/etc/passwd", "not allowed ('/')"),
        ("p", "-rf", "starts with '-'"),
        ("p", "two words", "not allowed (' ')"),
        ("p", "$(touch pwned)", "not allowed"),
        ("p", "tâche", "not allowed ('â')"),
        ("../up", "a", "not allowed ('/')"),
        ("p", "_integration", "must start with a letter or digit"),
    ],
)
def test_path_and_name_attacks_are_refused(git_repo: Path, plan: str, task: str, why: str) -> None:
    with pytest.raises(InputError) as exc:
        provision.create_worktrees(git_repo, plan, [task])
    assert why in exc.value.render()
    assert not (git_repo / ".planfleet" / "worktrees").exists()
    assert not (git_repo / "pwned").exists()


def test_symlink_out_of_the_root_is_refused(git_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = git_repo / ".planfleet" / "worktrees"
    root.mkdir(parents=True)
    (root / "p").symlink_to(outside)
    with pytest.raises(RefusedError, match="is a symbolic link") as exc:
        provision.create_worktree(git_repo, "p", "a")
    assert exc.value.reason == "planfleet_symlink"
    assert list(outside.iterdir()) == []


def test_worktreeinclude_copies_ignored_files_only(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".gitignore": ".env\nconfig/*.local\nbuild/\nsecret.key\n",
            ".worktreeinclude": "# copied into each worktree\n.env\nconfig/*.local\ntracked.txt\n",
            "tracked.txt": "tracked\n",
            "config/app.toml": "x = 1\n",
        },
    )
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / "config" / "app.local").write_text("local\n")
    (repo / "secret.key").write_text("not listed\n")
    (repo / "tracked.txt").write_text("edited in the main checkout\n")
    assert include.sources(repo) == [".env", "config/app.local"]
    wt = provision.create_worktree(repo, "p", "a")
    assert sorted(wt.copied) == [".env", "config/app.local"]
    assert (wt.path / ".env").read_text() == "TOKEN=1\n"
    assert (wt.path / "config" / "app.local").read_text() == "local\n"
    assert not (wt.path / "secret.key").exists()
    assert (wt.path / "tracked.txt").read_text() == "tracked\n"  # committed version, not copied
    assert git(wt.path, "status", "--porcelain") == ""


def test_stale_index_lock_removed_only_when_safe(git_repo: Path) -> None:
    wt = provision.create_worktree(git_repo, "p", "a")
    adm = worktrees.admin_dir(wt.path)
    assert adm is not None
    lock = adm / "index.lock"
    lock.write_text("")
    assert not worktrees.clear_stale_index_lock(wt.path, min_age_s=60)  # too young
    os.utime(lock, (1, 1))
    holder = subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=wt.path,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_exec(holder.pid, "git")
        assert not worktrees.clear_stale_index_lock(wt.path, min_age_s=60)  # git works there
    finally:
        holder.communicate(timeout=10)
    assert lock.exists()
    assert worktrees.clear_stale_index_lock(wt.path, min_age_s=60)
    assert not lock.exists()


def _wait_for_exec(pid: int, name: str) -> None:
    """Popen may return before the child's exec shows in /proc: wait until it does."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != name:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_dry_run_changes_nothing(git_repo: Path) -> None:
    refs = git(git_repo, "for-each-ref")
    wts = provision.create_worktrees(git_repo, "p", ["a"], dry_run=True)
    assert wts[0].action == "planned"
    assert any("worktree add --no-checkout -b planfleet/p/tasks/a" in c for c in wts[0].commands)
    assert any("read-tree -u --reset HEAD" in c for c in wts[0].commands)
    assert git(git_repo, "for-each-ref") == refs
    assert not (git_repo / ".planfleet").exists()


def test_cli_create_list_and_errors(git_repo: Path, run_cli) -> None:
    r = run_cli("worktree", "create", "p", "a", "b", "--json", cwd=git_repo)
    assert r.code == 0, r.err
    data = r.json()["data"]["worktrees"]
    assert [w["action"] for w in data] == ["created", "created"]
    r = run_cli("worktree", "list", "--json", cwd=git_repo)
    listed = r.json()["data"]["worktrees"]
    assert [(w["task"], w["state"]) for w in listed] == [("a", "ok"), ("b", "ok")]
    r = run_cli("worktree", "create", "p", "../x", cwd=git_repo)
    assert r.code == 2
    assert "task id '../x' contains characters that are not allowed" in r.err
    r = run_cli("worktree", "create", "p", "c", "--dry-run", cwd=git_repo)
    assert r.code == 0
    assert "$ git -C" in r.out
    assert not (git_repo / ".planfleet" / "worktrees" / "p" / "c").exists()


def test_a_task_named_twice_gets_one_worktree(git_repo: Path) -> None:
    wts = provision.create_worktrees(git_repo, "p", ["a", "a"])
    assert [(w.task, w.action, w.error) for w in wts] == [("a", "created", None)]
