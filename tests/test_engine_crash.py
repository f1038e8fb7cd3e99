"""kill -9 of the engine in the middle of a run, then `planfleet resume`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git
from engine_support import (
    assert_truthful_end,
    cli,
    engine_process,
    leftover_worktrees,
    live,
    plan_repo,
    processes_under,
    state_of,
    wait_until,
)

N = 8


def chain_plan() -> str:
    """Eight tasks: two chains of four, each task sleeps a little and writes its file.

    The last task of each chain first waits for ``$T/go``: the run cannot end before the
    test has killed it, however slow the machine.
    """
    lines = ["planfleet: 1", "name: p", "phases:", "  - id: one", "    tasks:"]
    for i in range(N):
        dep = f"\n        depends_on: [t{i - 2}]" if i >= 2 else ""
        wait = '"while [ ! -e $T/go ]; do sleep 0.05; done", ' if i >= N - 2 else ""
        lines.append(
            f"      - id: t{i}\n        title: task {i}{dep}\n"
            f"        files: {{create: [f{i}.txt]}}\n"
            f'        commands: [{wait}"echo $PLANFLEET_TASK >> $T/runs", "sleep 0.4", '
            f'"echo {i} > f{i}.txt"]'
        )
    return "\n".join(lines) + "\n"


def _tree(repo: Path) -> str:
    return git(repo, "rev-parse", "planfleet/p/integration^{tree}").strip()


def test_kill_9_then_resume_finishes_without_rerunning_verified_work(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"T": str(marks)}
    reference = plan_repo(tmp_path / "ref", chain_plan())
    (marks / "go").touch()
    assert cli(reference, "run", "plans/p.plan.yaml", "--runner", "shell", env=env).returncode == 0
    (marks / "runs").unlink()
    (marks / "go").unlink()

    repo = plan_repo(tmp_path / "crash", chain_plan())
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "planfleet",
            "-C",
            str(repo),
            "run",
            "plans/p.plan.yaml",
            "--runner",
            "shell",
            "--json",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                tasks = state_of(repo)["tasks"]
            except (OSError, ValueError):
                tasks = {}
            if sum(1 for r in tasks.values() if r.get("merged_at")) >= 3:
                break
            time.sleep(0.05)
        engine.send_signal(signal.SIGKILL)
    finally:
        engine.wait(timeout=10)
        (marks / "go").touch()  # what a killed engine left waiting may end
    before = state_of(repo)["tasks"]
    verified_before = {
        t for t, r in before.items() if r["status"] == "verified" and r["kind"] == "task"
    }
    assert verified_before, "the engine was killed before anything was verified"
    assert len(verified_before) < N

    res = cli(repo, "resume", "p", "--runner", "shell", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    after = state_of(repo)
    assert after["status"] == "completed"
    runs = (marks / "runs").read_text().split()
    for t in verified_before:
        assert runs.count(t) == 1, f"{t} was verified before the kill but ran again"
        assert after["tasks"][t]["attempts"] == before[t]["attempts"]
    assert _tree(repo) == _tree(reference)
    assert leftover_worktrees(repo) == []
    assert processes_under(repo) == []
    assert not list((repo / ".planfleet" / "state").glob("*.tmp*"))
    assert_truthful_end(repo)


# A task whose first attempt leaves a process outside its process group (setsid) and then
# sleeps, so that the engine can be killed in the middle of it. The daemon writes into the
# worktree as soon as a second attempt starts, if it is still alive then. Every later
# attempt first records which of the first attempt's processes are still alive, then writes
# its own output.
LEFTOVER_PLAN = """\
planfleet: 1
name: p
phases:
  - id: one
    tasks:
      - id: t
        title: leaves a daemon behind
        files: {create: [out.txt]}
        commands:
          - |
            if [ ! -e "$T/first" ]; then
              touch "$T/first"
              setsid sh -c 'echo $$ > "$T/daemon.pid"
                while [ ! -e "$T/second" ]; do sleep 0.05; done
                echo old >> out.txt; exec sleep 60' &
              echo $$ > "$T/leader.pid"
              exec sleep 60
            fi
            touch "$T/second"
            "$PY" "$T/alive.py" "$T/daemon.pid" "$T/leader.pid" > "$T/alive-at-second"
            echo new >> out.txt
"""

# Prints the pids (read from the files named) of processes that are alive (zombies are not).
ALIVE_PY = """\
import sys
from pathlib import Path
for name in sys.argv[1:]:
    pid = Path(name).read_text().strip()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        continue
    if stat.rsplit(")", 1)[1].split()[0] != "Z":
        print(pid)
"""


def _kill_pids(*files: Path) -> None:
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(f.read_text()), signal.SIGKILL)


def test_resume_stops_what_the_killed_engine_left_running_before_the_new_attempt(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "alive.py").write_text(ALIVE_PY)
    env = {"T": str(marks), "PY": sys.executable}
    repo = plan_repo(tmp_path, LEFTOVER_PLAN)
    daemon_file, leader_file = marks / "daemon.pid", marks / "leader.pid"

    def recorded() -> bool:
        if not (daemon_file.exists() and leader_file.exists()):
            return False
        record = state_of(repo)["tasks"]["t"]
        return bool(record.get("pgid")) and daemon_file.read_text().strip() != ""

    try:
        with engine_process(repo, env) as engine:
            wait_until(recorded, "the first attempt to start its daemon")
            engine.send_signal(signal.SIGKILL)
            engine.wait(timeout=10)
        daemon, leader = int(daemon_file.read_text()), int(leader_file.read_text())
        record = state_of(repo)["tasks"]["t"]
        assert record["status"] == "in_progress"
        assert record["pgid"] == leader  # the attempt's process group, recorded at dispatch
        assert record["pgid_start"]
        assert live(daemon)
        assert live(leader)

        status = cli(repo, "status", "p", "--json")
        data = json.loads(status.stdout)["data"]
        assert "t" in data["orphans"]
        assert {daemon, leader} <= set(data["orphan_processes"]["t"])
        human = cli(repo, "status", "p").stdout
        assert f"its processes still run: pid {min(daemon, leader)}" in human

        res = cli(repo, "resume", "p", "--runner", "shell", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        _kill_pids(daemon_file, leader_file)
    # Nothing of the first attempt was alive when the second one started...
    assert (marks / "alive-at-second").read_text() == ""
    assert not live(daemon)
    assert not live(leader)
    # ... so only the second attempt's output is in the work
    assert git(repo, "show", "planfleet/p/integration:out.txt") == "new\n"
    after = state_of(repo)
    assert after["status"] == "completed"
    assert after["tasks"]["t"]["attempts"] == 1  # the interrupted attempt is not counted
    assert processes_under(repo) == []


ONE_ATTEMPT_PLAN = """\
planfleet: 1
name: p
phases:
  - id: one
    tasks:
      - id: t
        title: killed in its only attempt
        max_attempts: 1
        files: {create: [out.txt]}
        commands:
          - |
            if [ ! -e "$T/first" ]; then touch "$T/first"; exec sleep 60; fi
            echo done > out.txt
"""


def test_an_attempt_cut_short_by_the_engines_death_does_not_use_up_the_task(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"T": str(marks)}
    repo = plan_repo(tmp_path, ONE_ATTEMPT_PLAN)
    with engine_process(repo, env) as engine:
        wait_until((marks / "first").exists, "the only attempt to start")
        engine.send_signal(signal.SIGKILL)
        engine.wait(timeout=10)
    assert state_of(repo)["tasks"]["t"]["status"] == "in_progress"
    res = cli(repo, "resume", "p", "--runner", "shell", "--json", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["status"] == "completed", data["reason"]
    record = state_of(repo)["tasks"]["t"]
    assert record["status"] == "verified"
    assert record["attempts"] == 1
    assert_truthful_end(repo)
    assert processes_under(repo) == []
