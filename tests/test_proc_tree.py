"""Processes that leave their group: found by their lineage mark, stopped with the rest."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from planfleet import proc, proctree
from planfleet.errors import CommandError

# A child that leaves the group with setsid and sleeps; it writes its pid first, and the
# command waits for that file so that the kill finds the child running.
SETSID_CHILD = (
    "setsid sh -c 'echo $$ > {pidfile}; exec sleep 120' & "
    "while [ ! -s {pidfile} ]; do sleep 0.02; done; "
)
# The same, started by a subshell that exits at once: the child's parent is gone, so only
# its mark leads to it (it was adopted by init, or by a subreaper).
DOUBLE_FORK = (
    "(setsid sh -c 'echo $$ > {pidfile}; exec sleep 120' &); "
    "while [ ! -s {pidfile} ]; do sleep 0.02; done; "
)


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "child.pid"
    yield path
    with contextlib.suppress(OSError, ValueError):  # anything a test starts, it stops
        os.kill(int(path.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("start", [SETSID_CHILD, DOUBLE_FORK], ids=["setsid", "double-fork"])
def test_a_timeout_stops_children_that_left_the_group_and_returns_in_bounded_time(
    pidfile: Path, start: str
) -> None:
    script = start.format(pidfile=pidfile) + "sleep 120"
    began = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        proc.run(["sh", "-c", script], timeout=3)
    elapsed = time.monotonic() - began
    # Before: the read after the kill waited for the escaped child's sleep (120 s).
    # Now: the timeout, then INT (ignored by a background job), TERM after the grace period.
    assert elapsed < 3 + 3 + proc.READ_AFTER_KILL_S + 10, elapsed
    assert not proc.pid_alive(int(pidfile.read_text()))


def test_a_command_that_exits_while_its_daemon_holds_the_output_does_not_hold_us(
    pidfile: Path,
) -> None:
    script = SETSID_CHILD.format(pidfile=pidfile) + "echo finished"
    began = time.monotonic()
    result = proc.run(["sh", "-c", script], timeout=200)
    assert result.ok
    assert result.stdout == "finished\n"
    assert time.monotonic() - began < 60  # before: until the daemon's sleep ended (120 s)
    assert not proc.pid_alive(int(pidfile.read_text()))


def test_stop_group_also_stops_a_child_that_left_the_group(pidfile: Path, tmp_path: Path) -> None:
    script = DOUBLE_FORK.format(pidfile=pidfile) + "echo ready; sleep 120"
    child = proc.spawn(["sh", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    escaped = int(pidfile.read_text())
    assert os.getpgid(escaped) != child.pid  # it really left the group
    proc.stop_group(child, grace_s=0.5)
    child.stdout.close()
    assert not proc.pid_alive(escaped)
    assert child.poll() is not None


def test_each_child_carries_its_own_token_after_its_ancestors(tmp_path: Path) -> None:
    env = {**os.environ, proctree.LINEAGE_ENV: "outer.1.1"}
    out = proc.run(
        [sys.executable, "-c", f"import os; print(os.environ[{proctree.LINEAGE_ENV!r}])"],
        env=env,
    ).stdout.split()
    assert out[0] == "outer.1.1"
    me = proctree.holder_prefix(os.getpid(), proc.process_start_time(os.getpid()))
    assert out[1].startswith(me)
    again = proc.run([sys.executable, "-c", "import os; print(os.environ['PLANFLEET_LINEAGE'])"])
    assert again.stdout.split()[-1] != out[1]  # a new token per child
    deep = {proctree.LINEAGE_ENV: " ".join(f"t.{i}.1" for i in range(20))}
    _, token = proctree.mark(deep)
    child_env, _ = proctree.mark(deep)
    assert len(child_env[proctree.LINEAGE_ENV].split()) == proctree.MAX_LINEAGE
    assert token.startswith(me)


def test_processes_in_skips_what_it_cannot_inspect(tmp_path: Path) -> None:
    # Before: one unreadable /proc/<pid>/cwd (pid 1, even for root) made it give up (None).
    child = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    try:
        assert child.pid in proctree.processes_in(tmp_path, name_prefix="")
        assert child.pid in proctree.processes_in(tmp_path, name_prefix="sle")
        assert child.pid not in proctree.processes_in(tmp_path, name_prefix="git")
    finally:
        child.kill()
        child.wait()


def test_a_process_group_number_is_trusted_only_while_it_names_the_same_group() -> None:
    me = os.getpid()
    start = proc.process_start_time(me)
    assert proctree.group_is(me, start)
    assert not proctree.group_is(me, "1")  # the number now names a process started later
    assert not proctree.group_is(me, None)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert proctree.group_is(gone.pid, "1")  # no leader: members left are its own
    assert not proctree.group_is(1, None)


def test_terminate_escalates_and_never_touches_its_own_group(tmp_path: Path) -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    sibling = subprocess.Popen(["sleep", "60"])  # in our own process group
    try:
        assert stubborn.stdout is not None
        assert stubborn.stdout.readline() == b"ready\n"
        ps = [psutil.Process(stubborn.pid), psutil.Process(sibling.pid)]
        assert proctree.terminate(ps, grace_s=0.2) == []
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
        assert sibling.poll() is None
    finally:
        for p in (stubborn, sibling):
            p.kill()
            p.wait()
        if stubborn.stdout is not None:
            stubborn.stdout.close()


def test_without_proc_the_portable_code_finds_and_stops_the_same_processes(
    pidfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What macOS runs (no /proc): psutil's process list, environments and start times.
    monkeypatch.setattr(proctree, "_HAVE_PROC", False)
    me = os.getpid()
    start = proc.process_start_time(me)
    assert start is not None
    assert "." in start  # psutil's creation time, not Linux clock ticks
    assert proc.process_start_time(me) == start
    assert proc.pid_alive(me)
    script = DOUBLE_FORK.format(pidfile=pidfile) + "echo ready; sleep 120"
    child = proc.spawn(["sh", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    escaped = int(pidfile.read_text())
    assert escaped in proctree.processes_in(tmp_path, name_prefix="")
    token = proctree.lineage_of(escaped)
    assert token is not None
    found = {p.pid for p in proctree.marked(lambda t: t == token.split()[-1])}
    assert {child.pid, escaped} <= found  # the leader, the escaped one (and the sleep)
    proc.stop_group(child, grace_s=0.5)
    child.stdout.close()
    assert not proc.pid_alive(escaped)


def test_a_command_that_starts_a_service_keeps_it_and_its_output(pidfile: Path) -> None:
    # `claude --bg` leaves its session (and maybe the user's daemon) running by design.
    script = SETSID_CHILD.format(pidfile=pidfile) + "echo 'backgrounded · 1a2b3c4d · x'"
    began = time.monotonic()
    result = proc.run(["sh", "-c", script], timeout=200, services=True)
    assert result.stdout == "backgrounded · 1a2b3c4d · x\n"
    assert time.monotonic() - began < 60
    service = int(pidfile.read_text())
    assert proc.pid_alive(service)
    ours = proctree.holder_prefix(os.getpid(), proc.process_start_time(os.getpid()))
    assert not any(t.startswith(ours) for t in (proctree.lineage_of(service) or "").split())
