"""Real processes against one state file: no lost update, no torn file, one claim winner."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from planfleet.errors import RefusedError
from planfleet.state import ops
from planfleet.state import records as sm
from planfleet.state.store import StateStore
from state_support import create_store, flat_state, fork, read_valid, temp_files, wait_ok

WRITERS = 8
TX_PER_WRITER = 250
CRASH_TRIALS = 200


def _writer(path: Path, me: str) -> None:
    store = StateStore(path, lock_timeout=120)
    for _ in range(TX_PER_WRITER):
        with store.transaction() as state:
            state["tasks"][me]["attempts"] += 1
            state["tasks"]["shared"]["attempts"] += 1


def _reader(path: Path, stop: Path, report: Path) -> None:
    reads, last_revision = 0, 0
    while not stop.exists():
        doc = read_valid(path)  # parses, and jsonschema validates, every read
        assert doc["revision"] >= last_revision, "the revision went backwards"
        last_revision = doc["revision"]
        reads += 1
        time.sleep(0.002)
    report.write_text(str(reads))


def test_eight_writers_lose_no_update_and_the_file_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    mine = [f"w{i}" for i in range(WRITERS)]
    create_store(path, [*mine, "shared"])
    stop, report = tmp_path / "stop", tmp_path / "reads"
    reader = fork(partial(_reader, path, stop, report))
    writers = [fork(partial(_writer, path, me)) for me in mine]
    try:
        for pid in writers:
            wait_ok(pid, "(writer)")
    finally:
        stop.touch()
        wait_ok(reader, "(reader: a read was torn or invalid)")
    doc = read_valid(path)
    assert doc["tasks"]["shared"]["attempts"] == WRITERS * TX_PER_WRITER
    assert all(doc["tasks"][me]["attempts"] == TX_PER_WRITER for me in mine)
    assert doc["revision"] == 1 + WRITERS * TX_PER_WRITER
    assert int(report.read_text()) > 0
    assert temp_files(path) == []


def _count_forever(path: Path, report_fd: int) -> None:
    """Move every counter of the file from n to n+1, report n+1, and again, until killed."""
    store = StateStore(path)
    while True:
        with store.transaction() as state:
            n = state["tasks"]["t0"]["attempts"]
            for record in state["tasks"].values():
                record["attempts"] = n + 1
                record["note"] = f"step {n + 1} " + "x" * 200
            state["plan"]["title"] = f"n={n + 1}"
            sm.add_event(state, "step", None, str(n + 1))
        os.write(report_fd, struct.pack("I", n + 1))


def _await_report(fd: int, pid: int, where: str) -> list[int]:
    """Block until the writer ``pid`` reports a commit; return what it reported so far."""
    deadline = time.monotonic() + 60
    while not (ready := select.select([fd], [], [], 0.1)[0]):
        assert time.monotonic() < deadline, f"the writer never committed {where}"
        done, status = os.waitpid(pid, os.WNOHANG)
        assert not done, f"the writer died (status {status}) before a commit {where}"
    assert ready == [fd]
    return _drain(fd)


def _drain(fd: int) -> list[int]:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [v for (v,) in struct.iter_unpack("I", data)]


def test_sigkill_at_random_moments_leaves_the_before_or_after_state(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    state = flat_state("demo", [f"t{i}" for i in range(40)])
    state["plan"]["title"] = "n=0"
    StateStore(path).create(state)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    committed, torn_writes, unreported = 0, 0, 0
    try:
        for trial in range(CRASH_TRIALS):
            where = f"(trial {trial}, seed {seed})"
            pid = fork(partial(_count_forever, path, write_fd))
            # Each writer commits at least once before its kill, however slow the machine;
            # the kill then lands at a random moment of the transactions that follow.
            first = _await_report(read_fd, pid, where)
            time.sleep(rng.uniform(0, 0.025))  # the random moment, not a wait for a point
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            reported = max([committed, *first, *_drain(read_fd)])
            doc = read_valid(path)  # parses and validates
            values = {r["attempts"] for r in doc["tasks"].values()}
            values |= {int(doc["plan"]["title"][2:]), doc["revision"] - 1}
            assert len(values) == 1, f"a mixed state {values} {where}"
            (n,) = values
            # Either the state before the interrupted transaction, or the one after it.
            assert n in (reported, reported + 1), f"{n} vs last committed {reported} {where}"
            unreported += n == reported + 1
            assert n > committed, f"the state lost the commit reported before the kill {where}"
            committed = n
            torn_writes += bool(temp_files(path))
            with StateStore(path).transaction():
                pass
            assert temp_files(path) == [], where
    finally:
        os.close(read_fd)
        os.close(write_fd)
    print(
        f"{CRASH_TRIALS} kills: {committed} commits, {torn_writes} left a temp file, "
        f"{unreported} died between commit and report"
    )


def _claim_as(path: Path, owner: str, go_fd: int) -> None:
    os.read(go_fd, 1)  # everyone starts together
    with StateStore(path, lock_timeout=60).transaction() as state:
        try:
            ops.claim(state, "t1", owner=owner)
        except RefusedError:
            os._exit(3)


def test_concurrent_claims_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    store = create_store(path, ["t1"])
    racers = 4
    for _round in range(8):
        go_read, go_write = os.pipe()
        pids = [fork(partial(_claim_as, path, f"racer{i}", go_read)) for i in range(racers)]
        os.write(go_write, b"x" * racers)
        codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
        os.close(go_read)
        os.close(go_write)
        assert sorted(codes) == [0] + [3] * (racers - 1)
        winner = f"racer{codes.index(0)}"
        state = store.load()
        assert state["tasks"]["t1"]["owner"] == winner
        assert state["tasks"]["t1"]["attempts"] == 1
        with store.transaction() as state:
            ops.reset(state, "t1", hard=True)


def test_concurrent_cli_claims_have_exactly_one_winner(git_repo: Path) -> None:
    store = StateStore.for_plan(git_repo, "demo")
    store.create(
        sm.new_state(name="demo")
        | {"tasks": {"t1": sm.new_task(title="t", phase="p")}, "order": ["t1"]}
    )
    for _round in range(3):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "planfleet",
                    "state",
                    "claim",
                    "demo",
                    "t1",
                    "--owner",
                    f"racer{i}",
                    "--json",
                ],
                cwd=git_repo,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 3], results
        winner = next(json.loads(out) for code, out, _ in results if code == 0)
        loser = next(json.loads(out) for code, out, _ in results if code == 3)
        owner = winner["data"]["record"]["owner"]
        assert loser["status"] == "aborted"
        assert loser["errors"][0]["reason"] == "already_claimed"
        assert owner in loser["errors"][0]["message"]
        with store.transaction() as state:
            ops.reset(state, "t1", hard=True)
