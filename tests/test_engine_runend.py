"""How runs end: never "done" or completed while selected work is left, on every path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine_support import (
    assert_truthful_end,
    cli,
    engine_process,
    live,
    plan_repo,
    processes_under,
    state_of,
    wait_until,
)
from planfleet.engine import runend
from planfleet.state import ops
from planfleet.state import records as sm
from state_support import flat_state

# -- the rule itself, on states built by hand ----------------------------------------------


def _state(**statuses: str) -> sm.State:
    state = flat_state("demo", list(statuses))
    for tid, status in statuses.items():
        record = state["tasks"][tid]
        if status in ("verified", "merged"):
            record.update(status="verified", commit="c" * 40)
            if status == "merged":
                record["merged_at"] = sm.now_iso()
        elif status == "in_progress":
            ops.claim(state, tid, owner="someone else", pid=os.getpid())
        else:
            record["status"] = status
    return state


@pytest.mark.parametrize(
    ("statuses", "scope", "pause", "stop", "expected"),
    [
        ({"a": "merged", "b": "skipped"}, None, None, None, ("completed", runend.COMPLETED)),
        ({"a": "merged", "b": "pending"}, {"a"}, None, None, ("paused", runend.SELECTION_DONE)),
        ({"a": "merged", "b": "pending"}, None, "stopped by planfleet stop", None, ("paused",)),
        ({"a": "merged", "b": "pending"}, None, None, "budget: ...", ("paused", "budget: ...")),
        ({"a": "abandoned", "b": "pending"}, None, None, "--fail-fast", ("failed",)),
        ({"a": "merged", "b": "verified"}, None, None, None, ("paused",)),
        ({"a": "merged", "b": "in_progress"}, None, None, None, ("paused",)),
        ({"a": "failed", "b": "merged"}, {"a"}, None, None, ("paused",)),
    ],
)
def test_the_end_of_a_run_is_never_done_while_selected_work_is_left(
    statuses: dict[str, str],
    scope: set[str] | None,
    pause: str | None,
    stop: str | None,
    expected: tuple[str, ...],
) -> None:
    state = _state(**statuses)
    end = runend.classify(
        state, frozenset(scope) if scope else None, pause_reason=pause, stop_reason=stop
    )
    assert end.status == expected[0]
    if len(expected) > 1:
        assert end.reason == expected[1]
    selected = scope or set(statuses)
    left = [t for t in selected if statuses[t] not in ("merged", "skipped", "abandoned")]
    if left:
        assert end.status != "completed"
        assert end.reason != runend.SELECTION_DONE
    if end.status == "failed":
        assert all(t in end.reason for t, s in statuses.items() if s == "abandoned")
    # work left that nothing started, though nobody asked to stop: named, and an error
    assert end.stuck == bool(left and not pause and not stop and end.status == "paused")
    if end.stuck:
        assert all(t in end.reason for t in left)


# -- every path that ends a run, with real repositories ----------------------------------

TWO = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: a
            title: a
            max_attempts: 1
            files: {create: [a.txt]}
            commands: ["A"]
          - id: b
            title: b
            files: {create: [b.txt]}
            commands: ["echo b > b.txt"]
"""


def _two(tmp: Path, a_command: str = "echo a > a.txt") -> Path:
    return plan_repo(tmp, TWO.replace('["A"]', json.dumps([a_command])))


def _run(repo: Path, *args: str) -> tuple[int, dict]:
    res = cli(repo, *args, "--runner", "shell", "--json")
    assert "Traceback" not in res.stderr
    return res.returncode, json.loads(res.stdout)["data"]


def test_a_plain_run_completes(tmp_path: Path) -> None:
    repo = _two(tmp_path)
    code, data = _run(repo, "run", "plans/p.plan.yaml")
    assert (code, data["status"]) == (0, "completed")
    assert_truthful_end(repo)


def test_a_run_with_a_task_given_up_fails_naming_it(tmp_path: Path) -> None:
    repo = _two(tmp_path, "exit 3")
    code, data = _run(repo, "run", "plans/p.plan.yaml")
    assert (code, data["status"]) == (1, "failed")
    assert "a" in data["reason"].split(": ", 1)[1]
    assert_truthful_end(repo)


def test_fail_fast_ends_failed_with_work_left(tmp_path: Path) -> None:
    repo = _two(tmp_path, "exit 3")
    code, data = _run(repo, "run", "plans/p.plan.yaml", "--fail-fast", "--max-parallel", "1")
    assert (code, data["status"]) == (1, "failed")
    st = assert_truthful_end(repo)
    assert st["tasks"]["b"]["attempts"] == 0  # nothing new started after the failure


def test_a_batch_of_some_tasks_is_done_only_when_those_are(tmp_path: Path) -> None:
    repo = _two(tmp_path)
    res = cli(
        repo, "batch", "--tasks-path", "plans/p.plan.yaml", "--task-ids", "b", "--runner", "shell"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    st = assert_truthful_end(repo, selection={"b"})
    assert st["status"] == "paused"
    assert st["tasks"]["a"]["status"] == "pending"


def test_a_task_whose_attempts_are_used_up_fails_the_run_and_status_says_so(
    tmp_path: Path,
) -> None:
    repo = _two(tmp_path, "exit 3")
    assert _run(repo, "run", "plans/p.plan.yaml")[0] == 1
    # A soft reset keeps the attempts: a is pending with its only attempt used.
    assert cli(repo, "state", "reset", "p", "a").returncode == 0
    assert state_of(repo)["tasks"]["a"]["status"] == "pending"
    status = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    assert status["never_start"] == {"a": "all 1 of its attempts are used"}
    assert "can never start: a (all 1 of its attempts are used)" in cli(repo, "status", "p").stdout
    # Before: resume exited 0, "paused (the selected tasks are done)", and a stayed pending.
    code, data = _run(repo, "resume", "p")
    assert (code, data["status"]) == (1, "failed"), data["reason"]
    assert "abandoned: a" in data["reason"]
    st = assert_truthful_end(repo)
    assert "can never start" in st["tasks"]["a"]["note"]
    # --hard gives it new attempts; fixed, it goes through
    plan = repo / "plans/p.plan.yaml"
    plan.write_text(plan.read_text().replace('"exit 3"', '"echo a > a.txt"'))
    assert cli(repo, "state", "reset", "p", "a", "--hard").returncode == 0
    assert _run(repo, "resume", "p")[1]["status"] == "completed"
    assert_truthful_end(repo)


def test_work_held_elsewhere_is_named_and_the_run_is_not_done(tmp_path: Path) -> None:
    repo = _two(tmp_path)
    assert cli(repo, "state", "init", "p", "--from", "plans/p.plan.yaml").returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claim = cli(
            repo, "state", "claim", "p", "a", "--owner", "a person", "--pid", str(holder.pid)
        )
        assert claim.returncode == 0, claim.stderr
        code, data = _run(repo, "resume", "p")
    finally:
        holder.kill()
        holder.wait()
    assert data["status"] == "paused"
    assert code == 1  # stuck: nothing could finish the selected work
    assert "nothing can start now: a (in progress elsewhere: owner a person" in data["reason"]
    assert state_of(repo)["tasks"]["b"]["status"] == "verified"
    assert_truthful_end(repo)


SLOW = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: slow
            title: slow
            max_attempts: 1
            files: {create: [s.txt]}
            commands:
              - if [ ! -e "$T/once" ]; then touch "$T/once"; exec sleep 120; fi; echo s > s.txt
"""


def _in_attempt(repo: Path, marks: Path, engine: subprocess.Popen[bytes]) -> None:
    def started() -> bool:
        assert engine.poll() is None, "the engine ended early"
        return (marks / "once").exists() and bool(state_of(repo)["tasks"]["slow"].get("pgid"))

    wait_until(started, "the attempt to start")


@pytest.mark.parametrize("how", ["SIGTERM", "stop after kill -9"])
def test_a_stopped_run_is_paused_and_its_attempt_is_given_back(tmp_path: Path, how: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(tmp_path, SLOW)
    with engine_process(repo, {"T": str(marks)}) as engine:
        _in_attempt(repo, marks, engine)
        if how == "SIGTERM":
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(timeout=60) == 0  # paused is not a failure
        else:
            leader = state_of(repo)["tasks"]["slow"]["pgid"]
            engine.send_signal(signal.SIGKILL)
            engine.wait(timeout=10)
            assert live(leader)
            res = cli(repo, "stop", "p", "--json")
            assert res.returncode == 0, res.stdout + res.stderr
            assert not live(leader)  # stop without an engine stops what it left running
    st = state_of(repo)
    assert st["status"] == "paused"
    record = st["tasks"]["slow"]
    assert (record["status"], record["attempts"]) == ("pending", 0)
    assert processes_under(repo) == []
    if how == "SIGTERM":
        assert_truthful_end(repo)
    # its only attempt is still there: the resumed run finishes it
    res = cli(repo, "resume", "p", "--runner", "shell", env={"T": str(marks)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert assert_truthful_end(repo)["status"] == "completed"


TWO_SLOW = """\
    planfleet: 1
    name: p
    phases:
      - id: one
        tasks:
          - id: a
            title: a
            files: {create: [a.txt]}
            commands:
              - if [ ! -e "$T/a" ]; then echo $$ > "$T/a"; exec sleep 120; fi; echo a > a.txt
          - id: b
            title: b
            files: {create: [b.txt]}
            commands:
              - if [ ! -e "$T/b" ]; then echo $$ > "$T/b"; exec sleep 120; fi; echo b > b.txt
"""


def test_stop_of_one_task_after_a_crash_stops_only_that_tasks_processes(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(tmp_path, TWO_SLOW)
    env = {"T": str(marks)}
    with engine_process(repo, env) as engine:

        def both() -> bool:
            if not all((marks / t).exists() for t in "ab"):
                return False
            tasks = state_of(repo)["tasks"]
            return all((marks / t).exists() and tasks[t].get("pgid") for t in "ab")

        wait_until(both, "both attempts to start")
        engine.send_signal(signal.SIGKILL)
        engine.wait(timeout=10)
    a, b = (int((marks / t).read_text()) for t in "ab")
    try:
        assert live(a)
        assert live(b)
        res = cli(repo, "stop", "p", "--task", "a", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert not live(a)
        assert live(b)  # another task's agent: stopped by resume, not by `stop --task a`
        res = cli(repo, "resume", "p", "--runner", "shell", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert not live(b)
    finally:
        for pid in (a, b):
            if live(pid):
                os.kill(pid, signal.SIGKILL)
    assert assert_truthful_end(repo)["status"] == "completed"
