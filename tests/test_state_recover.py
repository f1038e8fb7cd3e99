"""Resume checks: orphaned in-progress tasks go back to the queue; git re-checks verified ones."""

from __future__ import annotations

import datetime as _dt
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import git
from planfleet import proc
from planfleet.state import ops
from planfleet.state import records as sm
from planfleet.state import recover as rec
from state_support import flat_state

NOW = _dt.datetime(2026, 1, 1, 12, 0, tzinfo=_dt.timezone.utc)


def _claimed(tid: str = "a", **fields: object) -> sm.State:
    state = flat_state("demo", [tid, "other"])
    ops.claim(state, tid, owner="me", lease_s=60, now=sm.to_iso(NOW))
    state["tasks"][tid].update(
        worktree=f".planfleet/worktrees/demo/{tid}",
        branch=f"planfleet/demo/tasks/{tid}",
        feedback="last time: x",
    )
    state["tasks"][tid].update(fields)
    return state


def _dead_pid() -> tuple[int, str | None]:
    """Return the pid and start token of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    start = proc.process_start_time(child.pid)
    child.kill()
    child.wait()
    return child.pid, start


def test_a_dead_process_makes_an_orphan_that_keeps_its_worktree() -> None:
    pid, start = _dead_pid()
    assert start is not None
    state = _claimed(pid=pid, pid_start=start, host=sm.hostname())
    assert rec.find_orphans(state, now=NOW) == {"a": f"its process {pid} is gone"}
    found = rec.requeue_orphans(state, now=NOW)
    assert list(found) == ["a"]
    record = state["tasks"]["a"]
    assert record["status"] == "pending"
    assert record["attempts"] == 1  # the attempt counts
    assert record["worktree"] == ".planfleet/worktrees/demo/a"
    assert record["branch"] == "planfleet/demo/tasks/a"
    assert record["feedback"] == "last time: x"
    assert record["pid"] is None and record["lease_until"] is None  # noqa: PT018
    assert record["note"].startswith("orphaned: its process")
    assert state["events"][-1]["event"] == "orphaned"
    assert ops.claim(state, "a")["attempts"] == 2  # and it can be claimed again


def test_an_attempt_cut_short_by_the_engines_death_is_given_back() -> None:
    pid, start = _dead_pid()
    state = _claimed(pid=pid, pid_start=start, host=sm.hostname(), owner="engine:demo")
    assert list(rec.requeue_orphans(state, now=NOW)) == ["a"]
    record = state["tasks"]["a"]
    assert (record["status"], record["attempts"]) == ("pending", 0)
    assert record["note"].endswith("the interrupted attempt is not counted")
    assert record["pgid"] is None


def test_what_a_live_or_remote_holder_runs_is_never_a_leftover() -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        here = _claimed(
            pid=os.getpid(), pid_start=proc.process_start_time(os.getpid()), host=sm.hostname()
        )
        ops.attach_group(here, "a", sleeper.pid)
        assert here["tasks"]["a"]["pgid_start"] == proc.process_start_time(sleeper.pid)
        assert rec.leftover_processes(here["tasks"]["a"]) == []  # its engine is alive
        remote = _claimed(pid=12345, pid_start="1", host="elsewhere.example")
        remote["tasks"]["a"].update(pgid=sleeper.pid, pgid_start=here["tasks"]["a"]["pgid_start"])
        assert rec.leftover_processes(remote["tasks"]["a"]) == []  # another machine's pids
        pid, start = _dead_pid()
        dead = _claimed(pid=pid, pid_start=start, host=sm.hostname())
        dead["tasks"]["a"].update(pgid=sleeper.pid, pgid_start="1")  # the number was reused
        assert rec.leftover_processes(dead["tasks"]["a"]) == []
        dead["tasks"]["a"]["pgid_start"] = proc.process_start_time(sleeper.pid)
        assert [p.pid for p in rec.leftover_processes(dead["tasks"]["a"])] == [sleeper.pid]
        assert rec.stop_leftovers(dead["tasks"].values(), grace_s=0.5) == []
        assert sleeper.wait(timeout=10) == -signal.SIGINT
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_live_pid_with_another_start_time_is_an_orphan() -> None:
    state = _claimed(pid=os.getpid(), pid_start="1", host=sm.hostname())
    assert "start time changed" in rec.find_orphans(state, now=NOW)["a"]


def test_the_live_process_that_claimed_is_not_an_orphan_even_past_its_lease() -> None:
    state = _claimed(
        pid=os.getpid(), pid_start=proc.process_start_time(os.getpid()), host=sm.hostname()
    )
    later = NOW + _dt.timedelta(hours=5)
    assert rec.find_orphans(state, now=later) == {}
    assert rec.requeue_orphans(state, now=later) == {}
    assert state["tasks"]["a"]["status"] == "in_progress"


def test_another_hosts_claim_is_an_orphan_only_once_its_lease_expired() -> None:
    state = _claimed(pid=os.getpid(), pid_start="123", host="elsewhere.example")
    # The pid means nothing here (it is another machine's), only the lease does.
    assert rec.find_orphans(state, now=NOW + _dt.timedelta(seconds=59)) == {}
    found = rec.find_orphans(state, now=NOW + _dt.timedelta(seconds=61))
    assert found == {"a": "its lease on elsewhere.example expired at 2026-01-01T12:01:00.000Z"}


def test_a_claim_without_a_process_lives_by_its_heartbeats() -> None:
    state = _claimed()  # an in-session claim: no pid, this host
    assert state["tasks"]["a"]["pid"] is None
    assert rec.find_orphans(state, now=NOW + _dt.timedelta(seconds=30)) == {}
    ops.heartbeat(state, "a", now=sm.to_iso(NOW + _dt.timedelta(seconds=50)))
    assert rec.find_orphans(state, now=NOW + _dt.timedelta(seconds=100)) == {}
    assert "expired" in rec.find_orphans(state, now=NOW + _dt.timedelta(seconds=111))["a"]


def test_an_in_progress_task_with_no_process_and_no_lease_is_an_orphan() -> None:
    state = _claimed(lease_until=None)
    assert rec.find_orphans(state, now=NOW) == {"a": "it records neither a process nor a lease"}


def test_only_in_progress_tasks_are_checked() -> None:
    state = flat_state("demo", ["a"])
    assert rec.orphan_reason(state["tasks"]["a"]) is None


# -- verified tasks re-checked against git ----------------------------------------------


def _commit_on(repo: Path, branch: str, name: str) -> str:
    git(repo, "checkout", "-q", "-b", branch)
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    sha = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "main")
    return sha


def _verified(state: sm.State, tid: str, commit: str, branch: str | None = None) -> None:
    ops.claim(state, tid)
    state["tasks"][tid]["branch"] = branch
    ops.complete(state, tid, commit=commit)


def test_verified_tasks_are_rechecked_against_git(git_repo: Path) -> None:
    good = _commit_on(git_repo, "planfleet/demo/tasks/good", "good.txt")
    merged_elsewhere = _commit_on(git_repo, "planfleet/demo/tasks/side", "side.txt")
    state = flat_state("demo", ["good", "gone", "side", "imported"])
    _verified(state, "good", good, "planfleet/demo/tasks/good")
    _verified(state, "gone", "0123456789abcdef0123456789abcdef01234567")
    _verified(state, "side", merged_elsewhere)
    state["tasks"]["imported"]["status"] = "verified"  # recorded done by hand: no commit
    sm.enqueue(state, "gone")

    found = rec.find_untrusted(state, git_repo)
    assert list(found) == ["gone"]
    assert "no longer exists" in found["gone"]

    # Against the integration branch, a commit that never reached it is not trusted.
    git(git_repo, "branch", "planfleet/demo/integration", good)
    found = rec.find_untrusted(state, git_repo, ref="planfleet/demo/integration")
    assert list(found) == ["gone", "side"]
    assert "not reachable from planfleet/demo/integration" in found["side"]

    rec.demote_untrusted(state, found)
    assert state["tasks"]["gone"]["status"] == "pending"
    assert state["tasks"]["gone"]["commit"] is None
    assert state["tasks"]["gone"]["note"].startswith("not trusted:")
    assert state["merge_queue"] == []
    assert state["tasks"]["good"]["status"] == "verified"
    assert state["tasks"]["imported"]["status"] == "verified"


def test_a_task_branch_rewritten_without_the_commit_is_not_trusted(git_repo: Path) -> None:
    sha = _commit_on(git_repo, "planfleet/demo/tasks/a", "a.txt")
    state = flat_state("demo", ["a"])
    _verified(state, "a", sha, "planfleet/demo/tasks/a")
    assert rec.find_untrusted(state, git_repo) == {}
    git(git_repo, "branch", "-f", "planfleet/demo/tasks/a", "main")  # reset away
    assert "not reachable from planfleet/demo/tasks/a" in rec.find_untrusted(state, git_repo)["a"]
    git(git_repo, "branch", "-D", "planfleet/demo/tasks/a")  # branch gone: the commit decides
    assert rec.find_untrusted(state, git_repo) == {}
    assert "does not exist" in rec.find_untrusted(state, git_repo, ref="nope")["a"]
