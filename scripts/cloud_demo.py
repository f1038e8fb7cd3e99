#!/usr/bin/env python3
"""Demo: a 6-task plan run with local and cloud slots mixed, against the stand-in cloud.

Makes a repository and a bare ``origin`` in a temporary folder, runs ``planfleet run`` with
the shell runner for the local slots and ``--cloud-parallel 2`` for cloud sessions (the
test double ``tests/fake_claude_cloud/claude`` stands in for `claude --cloud`: it clones the
bare remote, commits and pushes), then prints the run's report and ``planfleet status``.
Nothing of the real cloud service is used. Usage: ``python scripts/cloud_demo.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fake_claude_cloud" / "claude"
PLAN = """\
planfleet: 1
name: demo
defaults:
  max_attempts: 2
phases:
  - id: build
    tasks:
      - id: parse
        title: parser (local)
        runner: local
        files: {create: [out/parse.txt]}
        commands: ["mkdir -p out && echo parse > out/parse.txt"]
      - id: lexer
        title: lexer (cloud)
        runner: cloud
        files: {create: [out/lexer.txt]}
      - id: docs
        title: docs (either)
        files: {create: [out/docs.txt]}
        commands: ["mkdir -p out && echo docs > out/docs.txt"]
      - id: eval
        title: evaluator (cloud, after parse and lexer)
        runner: cloud
        depends_on: [parse, lexer]
        files: {create: [out/eval.txt]}
        verify: ["test -f out/parse.txt", "test -f out/lexer.txt"]
      - id: cli
        title: command line (local, after eval)
        runner: local
        depends_on: [eval]
        files: {create: [out/cli.txt]}
        commands: ["mkdir -p out && echo cli > out/cli.txt"]
      - id: bench
        title: benchmark (either, after parse)
        depends_on: [parse]
        files: {create: [out/bench.txt]}
        commands: ["mkdir -p out && echo bench > out/bench.txt"]
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="planfleet-cloud-demo-") as tmp:
        base = Path(tmp)
        env = _env(base)
        remote, repo = base / "remote.git", base / "repo"
        _git(base, env, "init", "-q", "--bare", "-b", "main", str(remote))
        _git(base, env, "init", "-q", "-b", "main", str(repo))
        (repo / "plans").mkdir()
        (repo / "plans" / "demo.plan.yaml").write_text(PLAN, encoding="utf-8")
        _git(repo, env, "add", "-A")
        _git(repo, env, "commit", "-qm", "start")
        _git(repo, env, "remote", "add", "origin", str(remote))
        flags = ["--runner", "shell", "--max-parallel", "2", "--cloud-parallel", "2"]
        flags += ["--cloud-poll", "0.2", "--yes"]
        started = time.monotonic()
        run = _planfleet(repo, env, "run", "plans/demo.plan.yaml", *flags)
        took = time.monotonic() - started
        print(f"$ planfleet run plans/demo.plan.yaml {' '.join(flags)}   ({took:.1f} s)")
        print(run.stdout + run.stderr)
        status = _planfleet(repo, env, "status", "demo")
        print("$ planfleet status demo")
        print(status.stdout + status.stderr)
        report = _planfleet(repo, env, "report", "demo")
        print("$ planfleet report demo")
        print(report.stdout + report.stderr)
        state = json.loads((repo / ".planfleet" / "state" / "demo.json").read_text())
        where = {
            e["task"]: "cloud" if "cloud" in (e["detail"] or "") else "local"
            for e in state["events"]
            if e["event"] == "dispatched"
        }
        print("ran where:", json.dumps(where, sort_keys=True))
        _wait_workers(base / "pids")
        return run.returncode


def _env(base: Path) -> dict[str, str]:
    (base / "home").mkdir()
    (base / "pids").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(base / "home"),
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Demo",
        GIT_AUTHOR_EMAIL="demo@example.com",
        GIT_COMMITTER_NAME="Demo",
        GIT_COMMITTER_EMAIL="demo@example.com",
        PLANFLEET_CLAUDE=str(FAKE),
        FAKE_CLOUD_PIDS=str(base / "pids"),
        PYTHONPATH=str(ROOT / "src"),
    )
    return env


def _git(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True)


def _planfleet(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "planfleet", "-C", str(repo), *args]
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, check=False)


def _wait_workers(pids: Path) -> None:
    """Wait for the stand-in cloud's workers (they end after their one push)."""
    deadline = time.monotonic() + 60
    for entry in pids.iterdir():
        while Path(f"/proc/{entry.name}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
