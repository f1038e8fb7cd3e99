"""A repository that plants symbolic links in (or commits) ``.planfleet/`` must not make
planfleet write outside it: every writer of ``.planfleet/`` is refused with exit 3."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import git, make_repo
from planfleet import paths
from planfleet.engine import runinfo
from planfleet.engine.attempt import AttemptSpec, run_attempt
from planfleet.errors import RefusedError
from planfleet.orchestrate import knowledge
from planfleet.orchestrate.record import PipelineStore, PlanDir
from planfleet.plan import formats
from planfleet.repo import provision, worktrees
from planfleet.runners import get_runner
from planfleet.state.store import StateStore
from planfleet.verify import gates, verdict

PLAN = """\
planfleet: 1
name: x
phases:
  - id: one
    tasks:
      - id: t1
        title: write a file
        commands: ["echo hi > out.txt"]
"""


def _repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"plans/x.plan.yaml": PLAN, "README.md": "# r\n"})


def _outside(tmp_path: Path) -> Path:
    """A folder outside the repository with a file a write through a link would replace."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "README.md").write_text("mine\n")
    out.chmod(0o755)
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes | None]]:
    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(path.relative_to(folder))] = (st.st_mode, st.st_size, data)
    found["."] = (folder.lstat().st_mode, 0, None)
    return found


def _link(repo: Path, rel: str, target: Path) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)


def _refused(r, rel: str) -> None:
    assert r.code == 3, (r.code, r.out, r.err)
    (error,) = r.json()["errors"]
    assert error["reason"] == "planfleet_symlink", error
    assert error["details"]["path"] == rel
    assert f"rm {rel}" in error["next_step"]


def test_a_committed_planfleet_link_is_refused_and_nothing_outside_changes(
    tmp_path: Path, run_cli
) -> None:
    repo = _repo(tmp_path)
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    (repo / ".planfleet").symlink_to(outside)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a link")
    r = run_cli("state", "init", "x", "--from", "plans/x.plan.yaml", "--json", cwd=repo)
    _refused(r, ".planfleet")
    assert _snapshot(outside) == before  # README not replaced, no .git, mode kept


@pytest.mark.parametrize(
    ("link", "argv"),
    [
        (".planfleet/state", ["state", "init", "x", "--from", "plans/x.plan.yaml"]),
        (".planfleet/locks", ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"]),
        (".planfleet/logs", ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"]),
        (".planfleet/logs/x", ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"]),
        (".planfleet/runs/x", ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"]),
        (".planfleet/worktrees/x", ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"]),
        (".planfleet/locks", ["worktree", "create", "x", "t1"]),
    ],
)
def test_a_linked_subfolder_is_refused(tmp_path: Path, run_cli, link: str, argv: list[str]) -> None:
    repo = _repo(tmp_path)
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    (repo / ".planfleet").mkdir()
    _link(repo, link, outside)
    r = run_cli(*argv, "--json", cwd=repo)
    _refused(r, link)
    assert _snapshot(outside) == before
    assert not (repo / "out.txt").exists()  # the task never ran


def test_a_linked_state_file_is_refused_not_read_and_replaced(tmp_path: Path, run_cli) -> None:
    repo = _repo(tmp_path)
    assert run_cli("state", "init", "x", "--from", "plans/x.plan.yaml", cwd=repo).code == 0
    state = paths.state_path(repo, "x")
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(state.read_bytes())
    state.unlink()
    state.symlink_to(elsewhere)
    kept = elsewhere.read_bytes()
    for argv in (["status", "x"], ["resume", "x", "--runner", "shell", "--yes"]):
        r = run_cli(*argv, "--json", cwd=repo)
        _refused(r, ".planfleet/state/x.json")
    assert state.is_symlink()
    assert elsewhere.read_bytes() == kept


def test_a_planfleet_folder_tracked_by_git_is_refused(tmp_path: Path, run_cli) -> None:
    repo = _repo(tmp_path)
    (repo / ".planfleet" / "state").mkdir(parents=True)
    (repo / ".planfleet" / "state" / "x.json").write_text("{}\n")
    git(repo, "add", "-f", ".planfleet")
    git(repo, "commit", "-qm", "ship some state")
    r = run_cli("state", "init", "x", "--from", "plans/x.plan.yaml", "--force", "--json", cwd=repo)
    assert r.code == 3, r.out
    (error,) = r.json()["errors"]
    assert error["reason"] == "planfleet_tracked"
    assert error["details"]["path"] == ".planfleet/state/x.json"
    assert "git rm -r --cached .planfleet" in error["next_step"]
    assert (repo / ".planfleet" / "state" / "x.json").read_text() == "{}\n"


# -- every writer, called directly: the one check refuses before anything is written ------


def _state(repo: Path) -> None:
    from planfleet.state.records import new_state

    StateStore.for_plan(repo, "x").create(new_state(name="x", format="native", path="p", title="x"))


def _locks(repo: Path) -> None:
    with worktrees.repo_lock(repo, "test.lock"):
        pass


def _runs(repo: Path) -> None:
    with runinfo.engine_lock(repo, "x"):
        pass


def _requests(repo: Path) -> None:
    runinfo.request(repo, "x", runinfo.PAUSE)


def _worktree(repo: Path) -> None:
    provision.create_worktree(repo, "x", "t1")


def _evidence(repo: Path) -> None:
    gates.save_record(repo, "x", "t1", 1, verdict.Verification(ok=True, commit=None, gates=[]))


def _knowledge(repo: Path) -> None:
    knowledge.record(repo, knowledge.Technology("redis", "Redis", (), "plan"), plan="x", report={})


def _pipeline(repo: Path) -> None:
    (repo / "plans" / "x").mkdir()
    pdir = PlanDir(repo, repo / "plans" / "x", repo / "plans" / "x" / "plan.md")
    with PipelineStore(pdir).transaction():
        pass


WRITERS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "state": (".planfleet/state", _state),
    "locks": (".planfleet/locks", _locks),
    "runs": (".planfleet/runs/x", _runs),
    "requests": (".planfleet/runs/x/requests", _requests),
    "worktrees": (".planfleet/worktrees/x", _worktree),
    "evidence": (".planfleet/runs/x/verify", _evidence),
    "knowledge": (".planfleet/knowledge", _knowledge),
    "pipeline": (".planfleet/runs/x", _pipeline),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_writer_refuses_a_link_on_its_way(tmp_path: Path, name: str) -> None:
    link, write = WRITERS[name]
    repo = _repo(tmp_path)
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    paths.ensure_planfleet_dir(repo)
    _link(repo, link, outside)
    with pytest.raises(RefusedError) as exc:
        write(repo)
    assert exc.value.reason == "planfleet_symlink"
    assert exc.value.details["path"] == link
    assert _snapshot(outside) == before


def test_an_attempt_does_not_log_through_a_link(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    plan = formats.load_plan(repo / "plans" / "x.plan.yaml", repo=repo)
    spec = AttemptSpec(repo, plan, plan.task("t1"), 1, 1, timeout_s=60, stall_s=60)
    paths.ensure_planfleet_dir(repo)
    _link(repo, ".planfleet/logs/x", outside)  # made during the run, after its own check
    out = run_attempt(spec, get_runner("shell"), threading.Event())
    assert out.verdict == "failed"
    assert out.error is not None
    assert ".planfleet/logs/x is a symbolic link" in out.error["message"]
    assert _snapshot(outside) == before
    assert out.worktree is not None
    assert not (Path(out.worktree) / "out.txt").exists()  # the command never ran


def test_missing_folders_are_made_one_at_a_time_and_real(git_repo: Path) -> None:
    target = paths.verify_dir(git_repo, "x") / "t1.1.json"
    assert paths.writable(git_repo, target) == target
    for folder in (git_repo / ".planfleet", target.parent.parent, target.parent):
        assert stat.S_ISDIR(os.lstat(folder).st_mode)
    assert (git_repo / ".planfleet" / "README.md").is_file()
    # nothing is made when asked not to, and a file in the way is no folder
    assert paths.writable(git_repo, paths.logs_dir(git_repo, "y") / "a.log", create=False)
    assert not paths.logs_dir(git_repo, "y").exists()
    (git_repo / ".planfleet" / "logs").write_text("not a folder")
    with pytest.raises(RefusedError) as exc:
        paths.writable(git_repo, paths.logs_dir(git_repo, "y"), folder=True)
    assert exc.value.reason == "planfleet_path_not_folder"
