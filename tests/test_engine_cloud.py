"""The engine with `--runner cloud` against the stand-in cloud: gates, merges, retries,
refusals and the dry run, through the command line in-process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_support import Cloud, make_cloud
from conftest import CliResult, git, wait_for
from engine_support import integration_files, state_of

RUN = ("run", "plans/p.plan.yaml", "--runner", "cloud", "--cloud-poll", "0.05", "--yes")


def _plan(tasks: str, max_attempts: int = 2) -> dict[str, str]:
    head = f"planfleet: 1\nname: p\ndefaults:\n  max_attempts: {max_attempts}\n"
    body = "phases:\n  - id: one\n    tasks:\n" + textwrap.indent(textwrap.dedent(tasks), " " * 6)
    return {"plans/p.plan.yaml": head + body}


def _simple(*ids: str, max_attempts: int = 2, **extra: str) -> dict[str, str]:
    """Return a one-phase plan whose tasks each create ``out/<id>.txt`` (``extra``: a line)."""
    tasks = ""
    for t in ids:
        tasks += f"- id: {t}\n  title: task {t}\n  files: {{create: [out/{t}.txt]}}\n"
        tasks += f"  {extra[t]}\n" if t in extra else ""
    return _plan(tasks, max_attempts)


THREE = _plan(
    """\
    - id: a
      title: task a
      files: {create: [out/a.txt]}
    - id: b
      title: task b
      files: {create: [out/b.txt]}
    - id: c
      title: task c
      depends_on: [a]
      files: {create: [out/c.txt]}
      verify: ["test -f out/a.txt"]
    """
)


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Cloud]]:
    """Make a stand-in cloud around a repository holding ``files``; its workers are waited for."""
    made: list[Cloud] = []

    def _make(files: dict[str, str]) -> Cloud:
        made.append(make_cloud(tmp_path, monkeypatch, files))
        return made[-1]

    try:
        yield _make
    finally:
        for c in made:
            c.wait_workers()


def _events(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in state["events"] if e["event"] == name]


def test_a_plan_with_a_dependency_runs_in_cloud_sessions(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    res = run_cli(*RUN, "--json", cwd=c.repo)
    assert res.code == 0, res.out + res.err
    st = state_of(c.repo)
    assert {t: st["tasks"][t]["status"] for t in "abc"} == dict.fromkeys("abc", "verified")
    files = integration_files(c.repo)
    assert {f: files[f] for f in ("out/a.txt", "out/b.txt", "out/c.txt")} == {
        "out/a.txt": "a\n",
        "out/b.txt": "b\n",
        "out/c.txt": "c\n",
    }
    # one session per task, each recorded while it ran
    assert len(c.sessions()) == 3
    recorded = {e["task"] for e in _events(st, "cloud_session")}
    assert recorded == {"a", "b", "c"}
    for t in "abc":
        assert st["tasks"][t]["session_id"].startswith("session_")
    # status and logs show where each session can be watched
    url = f"https://claude.ai/code/{st['tasks']['a']['session_id']}"
    status = run_cli("status", "p", cwd=c.repo)
    assert f"a: cloud attempt 1: session {st['tasks']['a']['session_id']} {url}" in status.out
    assert run_cli("status", "p", "--json", cwd=c.repo).json()["data"]["cloud_sessions"]["a"]
    logs = run_cli("logs", "p", "a", cwd=c.repo).out
    assert url in logs
    # c started from a base holding a's merged work: its base on the remote has out/a.txt
    assert git(c.remote, "show", "planfleet/p/base/c:out/a.txt") == "a\n"
    assert "out/a.txt" not in git(c.remote, "ls-tree", "-r", "--name-only", "planfleet/p/base/b")
    # only planfleet/p/... branches were pushed
    heads = git(c.remote, "for-each-ref", "--format=%(refname)").split()
    assert heads
    assert all(h.startswith("refs/heads/planfleet/p/") for h in heads), heads


def test_a_session_that_pushes_nothing_times_out_and_is_retried(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(_simple("slow", slow="timeout: 10"))
    c.script({"slow": {"attempts": {"1": "nothing"}}})
    res = run_cli(*RUN, "--json", cwd=c.repo)
    assert res.code == 0, res.out + res.err
    record = state_of(c.repo)["tasks"]["slow"]
    assert record["status"] == "verified"
    assert record["attempts"] == 2
    first, second = c.sessions()
    assert "planfleet/p/tasks/slow`" in first[1]
    assert "planfleet/p/tasks/slow@2`" in second[1]
    assert "timeout" in second[1]  # the retry's prompt carries the feedback
    assert c.remote_tip("planfleet/p/tasks/slow") is None
    assert integration_files(c.repo)["out/slow.txt"] == "slow\n"


def test_a_retry_after_a_failed_gate_starts_a_new_session(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(_simple("t"))
    c.script({"t": {"attempts": {"1": "lie"}}})
    res = run_cli(*RUN, "--json", cwd=c.repo)
    assert res.code == 0, res.out + res.err
    assert state_of(c.repo)["tasks"]["t"]["attempts"] == 2
    _, second = c.sessions()
    assert "planfleet/p/tasks/t@2`" in second[1]
    assert "empty_diff" in second[1]
    assert "You are continuing your session" not in second[1]
    assert integration_files(c.repo)["out/t.txt"] == "t\n"


def test_no_marker_and_a_lying_marker_fail_their_attempts(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(_simple("unmarked", "liar", max_attempts=1))
    c.script({"unmarked": {"behaviour": "no_marker"}, "liar": {"behaviour": "lie"}})
    res = run_cli(*RUN, "--stall", "1", "--json", cwd=c.repo)
    assert res.code == 1, res.out + res.err
    tasks = state_of(c.repo)["tasks"]
    assert tasks["unmarked"]["status"] == "abandoned"
    assert tasks["unmarked"]["error"]["type"] == "no_result"
    assert "Planfleet-Result" in tasks["unmarked"]["error"]["message"]
    # the work stays on the remote branch; none of it was merged
    assert c.remote_tip("planfleet/p/tasks/unmarked")
    assert tasks["liar"]["status"] == "abandoned"
    # the gates caught it: the commit the marker came with changes nothing
    assert tasks["liar"]["error"]["type"] == "empty_diff"
    assert tasks["liar"]["error"]["step"] == "commit"
    files = integration_files(c.repo)
    assert "out/unmarked.txt" not in files
    assert "out/liar.txt" not in files


def test_preflight_refuses_without_a_remote(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    res = run_cli(*RUN, "--remote", "nowhere", "--json", cwd=c.repo)
    assert res.code == 3
    err = res.json()["errors"][0]
    assert err["reason"] == "no_remote"
    assert "--remote" in err["next_step"]
    assert c.sessions() == []


def test_preflight_refuses_branch_names_already_taken(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    git(c.repo, "push", "-q", "origin", "HEAD:refs/heads/planfleet/p/tasks/b")
    res = run_cli(*RUN, "--json", cwd=c.repo)
    assert res.code == 3
    err = res.json()["errors"][0]
    assert err["reason"] == "remote_branches_taken"
    assert "planfleet/p/tasks/b" in err["message"]
    assert c.sessions() == []


def test_preflight_refuses_a_remote_that_cannot_be_pushed_to(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    git(c.repo, "remote", "add", "ro", str(c.repo.parent / "missing.git"))
    res = run_cli(*RUN, "--remote", "ro", "--json", cwd=c.repo)
    assert res.code == 3
    assert res.json()["errors"][0]["reason"] == "remote_not_pushable"


def test_the_dry_run_shows_branches_command_and_prompt_size(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    res = run_cli(*RUN, "--environment", "ccpool_x1", "--dry-run", cwd=c.repo)
    assert res.code == 0, res.err
    assert "engine pushes planfleet/p/base/c, the session pushes planfleet/p/tasks/c" in res.out
    assert "--cloud '<prompt: " in res.out
    assert "--environment ccpool_x1" in res.out
    data = run_cli(*RUN, "--dry-run", "--json", cwd=c.repo).json()["data"]
    row = data["tasks"][0]
    assert row["remote_branches"] == {"base": "planfleet/p/base/a", "task": "planfleet/p/tasks/a"}
    assert row["prompt_chars"] > 0
    assert c.sessions() == []
    assert c.remote_tip("planfleet/p/base/a") is None


def test_clean_remote_deletes_the_runs_cloud_branches_after_asking(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(THREE)
    assert run_cli(*RUN, "--json", cwd=c.repo).code == 0
    git(c.repo, "push", "-q", "origin", "HEAD:refs/heads/main")  # not planfleet's
    dry = run_cli("clean", "p", "--remote", "origin", "--dry-run", "--json", cwd=c.repo).json()
    assert len(dry["data"]["deleted"]) == 6
    assert c.remote_tip("planfleet/p/tasks/a")
    asked = run_cli("clean", "p", "--remote", "origin", "--json", cwd=c.repo)
    assert asked.code == 3
    assert asked.json()["errors"][0]["reason"] == "needs_confirmation"
    done = run_cli("clean", "p", "--remote", "origin", "--yes", "--json", cwd=c.repo)
    assert done.code == 0, done.out
    heads = git(c.remote, "for-each-ref", "--format=%(refname)").split()
    assert heads == ["refs/heads/main"]


def test_resume_adopts_the_sessions_of_a_killed_engine(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    c = make(_simple("a", "b"))
    go = tmp_path / "go"
    c.script({"a": {"wait_file": str(go)}, "b": {"wait_file": str(go)}})
    argv = [sys.executable, "-m", "planfleet", "-C", str(c.repo), *RUN, "--json"]
    engine = subprocess.Popen(
        argv, cwd=c.repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            "both sessions recorded",
            lambda: (
                c.repo.joinpath(".planfleet/state/p.json").exists()
                and len(_events(state_of(c.repo), "cloud_session")) == 2
            ),
        )
    finally:
        engine.kill()
        engine.wait(timeout=30)
    assert len(c.sessions()) == 2
    go.write_text("")  # the sessions go on without the engine, and push
    res = run_cli("resume", "p", "--yes", "--json", cwd=c.repo)
    assert res.code == 0, res.out + res.err
    st = state_of(c.repo)
    assert len(c.sessions()) == 2  # no new session was started
    assert {e["task"] for e in _events(st, "cloud_adopted")} == {"a", "b"}
    assert {t: st["tasks"][t]["status"] for t in "ab"} == {"a": "verified", "b": "verified"}
    assert {t: st["tasks"][t]["attempts"] for t in "ab"} == {"a": 1, "b": 1}
    files = integration_files(c.repo)
    assert (files["out/a.txt"], files["out/b.txt"]) == ("a\n", "b\n")


MIXED = _plan(
    """\
    - id: a
      title: local first
      runner: local
      files: {create: [out/a.txt]}
      commands: ["mkdir -p out && echo local-a > out/a.txt"]
    - id: b
      title: in the cloud, after a
      runner: cloud
      depends_on: [a]
      files: {create: [out/b.txt]}
      verify: ["test -f out/a.txt"]
    - id: c
      title: wherever a slot is free
      files: {create: [out/c.txt]}
      commands: ["mkdir -p out && echo local-c > out/c.txt"]
    - id: d
      title: local, after b
      runner: local
      depends_on: [b]
      files: {create: [out/d.txt]}
      commands: ["mkdir -p out && echo local-d > out/d.txt"]
      verify: ["test -f out/b.txt"]
    """
)


def test_local_and_cloud_tasks_share_one_graph(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(MIXED)
    mixed = ("run", "plans/p.plan.yaml", "--runner", "shell", "--cloud-parallel", "1")
    flags = ("--max-parallel", "1", "--cloud-poll", "0.05", "--yes")
    dry = run_cli(*mixed, *flags, "--dry-run", "--json", cwd=c.repo).json()["data"]
    where = {r["task"]: r["runs_on"] for r in dry["tasks"]}
    assert where == {"a": "local", "b": "cloud", "c": "local or cloud", "d": "local"}
    res = run_cli(*mixed, *flags, "--json", cwd=c.repo)
    assert res.code == 0, res.out + res.err
    st = state_of(c.repo)
    assert all(st["tasks"][t]["status"] == "verified" for t in "abcd")
    files = integration_files(c.repo)
    assert files["out/a.txt"] == "local-a\n"
    assert files["out/b.txt"] == "b\n"  # written by the stand-in cloud
    assert files["out/d.txt"] == "local-d\n"
    cloud_tasks = {e["task"] for e in _events(st, "dispatched") if "cloud" in e["detail"]}
    assert "b" in cloud_tasks
    assert not cloud_tasks & {"a", "d"}
    # c took whichever slot was free: its file says which
    assert files["out/c.txt"] == ("c\n" if "c" in cloud_tasks else "local-c\n")
    assert len(c.sessions()) == len(cloud_tasks)
    runs_on = run_cli("status", "p", "--json", cwd=c.repo).json()["data"]["runs_on"]
    assert runs_on == {t: "cloud" if t in cloud_tasks else "local" for t in "abcd"}


def test_a_task_pinned_to_cloud_needs_cloud_slots(
    make: Callable[..., Cloud], run_cli: Callable[..., CliResult]
) -> None:
    c = make(MIXED)
    res = run_cli("run", "plans/p.plan.yaml", "--runner", "shell", "--yes", "--json", cwd=c.repo)
    assert res.code == 2
    assert "--cloud-parallel" in res.json()["errors"][0]["hint"]
    res = run_cli(*RUN, "--json", cwd=c.repo)
    assert res.code == 2
    assert "runner: local" in res.json()["errors"][0]["message"]
