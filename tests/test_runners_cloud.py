"""The cloud runner against the stand-in cloud: a bare remote and the fake `claude --cloud`."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_support import FAKE_CLOUD, Cloud, make_cloud
from conftest import commit_file, git
from planfleet.runners import AgentRequest, AgentResult, cloudgit, cloudpty, get_runner
from runners_support import make_plan, make_request, make_task

FAST = {"poll_s": 0.05, "poll_max_s": 0.3}


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """A stand-in cloud whose workers are all gone when the test ends."""
    c = make_cloud(tmp_path, monkeypatch)
    try:
        yield c
    finally:
        c.wait_workers()


def _request(c: Cloud, task: str = "t1", **fields: object) -> AgentRequest:
    plan = make_plan(make_task(task))
    return make_request(c.repo, plan, task, **fields)  # type: ignore[arg-type]


def _run(request: AgentRequest, **options: object) -> AgentResult:
    runner = get_runner("cloud", {**FAST, **options})
    return runner.run(request, threading.Event())


def test_the_stand_in_refuses_without_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(FAKE_CLOUD), "--cloud", "do it"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: --cloud requires an interactive terminal.")


def test_a_session_that_pushes_the_marker_is_fetched_into_the_task_branch(cloud: Cloud) -> None:
    cloud.script({"t1": {"files": {"out/t1.txt": "one\n"}}})
    request = _request(cloud)
    result = _run(request)
    assert result.ending == "exited", result.message
    assert result.exit_code == 0
    assert result.error_kind is None
    assert result.claims is not None
    assert result.claims["status"] == "done"
    assert result.session_id is not None
    assert result.session_id.startswith("session_")
    assert result.session_url == f"https://claude.ai/code/{result.session_id}"
    names = cloudgit.names("demo", "t1")
    # the base went to the remote, the session's commit came back into the worktree
    assert cloud.remote_tip(names.base) == request.base_commit
    head = git(request.worktree, "rev-parse", "HEAD").strip()
    assert head == cloud.remote_tip(names.task)
    assert (request.worktree / "out" / "t1.txt").read_text() == "one\n"
    # the session got the prompt on a terminal; the log names the session
    (argv,) = cloud.sessions()
    assert argv[0] == "--cloud"
    assert names.task in argv[1]
    assert "Do the task." in argv[1]
    assert f"session {result.session_id}" in request.log_path.read_text()


def test_the_environment_is_passed_and_the_session_reported_at_once(cloud: Cloud) -> None:
    seen: list[tuple[str, str | None]] = []
    request = _request(cloud, on_session=lambda sid, url: seen.append((sid, url)))
    result = _run(request, environment="ccpool_abc123")
    assert result.ending == "exited", result.message
    (argv,) = cloud.sessions()
    assert argv[-2:] == ["--environment", "ccpool_abc123"]
    assert seen == [(result.session_id, result.session_url)]


def test_an_attached_cli_is_stopped_when_the_attempt_ends(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLOUD_ATTACH", "1")
    pgids: list[int] = []
    result = _run(_request(cloud, on_start=pgids.append))
    assert result.ending == "exited", result.message
    (pgid,) = pgids
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_nothing_pushed_by_the_timeout_is_a_timeout(cloud: Cloud) -> None:
    cloud.script({"t1": {"behaviour": "nothing"}})
    request = _request(cloud, timeout_s=1.0)
    result = _run(request)
    assert result.ending == "timeout"
    assert "pushed nothing" in result.message


def test_a_push_without_the_marker_is_not_taken(cloud: Cloud) -> None:
    cloud.script({"t1": {"behaviour": "no_marker"}})
    request = _request(cloud, timeout_s=120.0, stall_s=0.5)
    result = _run(request)
    assert result.ending == "exited"
    assert result.error_kind == "no_result"
    assert "without a Planfleet-Result trailer" in result.message
    # the worktree still stands at the base: the gates find no commit
    assert git(request.worktree, "rev-parse", "HEAD").strip() == request.base_commit
    assert cloud.remote_tip(cloudgit.names("demo", "t1").task)


def test_a_base_name_taken_by_another_commit_is_refused(cloud: Cloud) -> None:
    other = commit_file(cloud.repo, "other.txt", "x\n")
    git(cloud.repo, "push", "-q", "origin", f"{other}:refs/heads/planfleet/demo/base/t1")
    git(cloud.repo, "reset", "-q", "--hard", "HEAD~1")
    result = _run(_request(cloud))
    assert result.ending == "not_started"
    assert "not to the base" in result.message
    assert cloud.sessions() == []


def test_a_cli_that_fails_to_start_is_a_start_failure(cloud: Cloud) -> None:
    cloud.script({"t1": {"behaviour": "fail_start"}})
    result = _run(_request(cloud, timeout_s=60.0))
    assert result.ending == "not_started"
    assert result.error_kind == "start_failed"
    assert "not logged in" in result.message


def test_retries_use_names_of_their_own() -> None:
    assert cloudgit.names("p", "t", 1) == cloudgit.Names(
        "planfleet/p/base/t", "planfleet/p/tasks/t"
    )
    assert cloudgit.names("p", "t", 3).task == "planfleet/p/tasks/t@3"


def test_describe_names_the_branches_and_the_session(cloud: Cloud) -> None:
    lines = get_runner("cloud", {"remote": "up"}).describe(_request(cloud))
    text = "\n".join(lines)
    assert "git push up <base>:refs/heads/planfleet/demo/base/t1" in text
    assert "--cloud '<prompt: " in text
    assert "git ls-remote up refs/heads/planfleet/demo/tasks/t1" in text


def test_session_urls_are_read_from_terminal_output() -> None:
    text = cloudpty.plain("\x1b[1mStarted\x1b[0m\r\n  https://claude.ai/code/session_01ABCdef\r\n")
    found = cloudpty.find_session(text)
    assert found == cloudpty.Session("session_01ABCdef", "https://claude.ai/code/session_01ABCdef")
    assert cloudpty.find_session("nothing here") is None


def test_a_stopped_attempt_leaves_its_session_for_a_resume(cloud: Cloud, tmp_path: Path) -> None:
    cloud.script({"t1": {"wait_file": str(tmp_path / "never")}})
    stop = threading.Event()
    request = _request(cloud, on_session=lambda sid, url: stop.set())
    result = get_runner("cloud", FAST).run(request, stop)
    assert result.ending == "stopped"
    assert result.session_id is not None
    assert "may still run" in result.message
    (tmp_path / "never").write_text("")  # let the stand-in's worker finish
    # a later engine adopts it: no new session, the push is taken
    adopted = {"adopt": {"session_id": result.session_id, "url": result.session_url}}
    again = get_runner("cloud", {**FAST, **adopted}).run(request, threading.Event())
    assert again.ending == "exited", again.message
    assert again.claims is not None
    assert again.session_id == result.session_id
    assert len(cloud.sessions()) == 1
    assert "adopting session" in request.log_path.read_text()
