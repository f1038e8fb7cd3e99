"""kill -9 of the engine in the middle of a run, then `planfleet resume`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git
from engine_support import cli, leftover_worktrees, plan_repo, processes_under, state_of

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
