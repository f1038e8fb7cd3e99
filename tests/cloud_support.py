"""The stand-in cloud for the cloud runner's tests: a bare remote, the fake `claude --cloud`.

:func:`cloud_env` gives a repository whose ``origin`` is a bare repository in the test's
folder and puts the fake CLI first (PLANFLEET_CLAUDE). Every "cloud" worker the fake starts
is waited for (then killed, if it hangs) by :meth:`Cloud.wait_workers`, which a test's fixture
calls when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import git, make_repo

FAKE_CLOUD = Path(__file__).resolve().parent / "fake_claude_cloud" / "claude"
WORKER_WAIT_S = 60.0


@dataclass
class Cloud:
    repo: Path
    remote: Path
    scenario: Path
    pids: Path
    log: Path
    argv_log: Path

    def script(self, tasks: dict[str, dict[str, Any]]) -> None:
        """Say what the fake cloud does per task (see the fake's docstring)."""
        self.scenario.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")

    def remote_tip(self, branch: str) -> str | None:
        out = git(self.remote, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
        return out.strip() or None

    def sessions(self) -> list[list[str]]:
        """Return the argv of every `claude --cloud` the fake was started with."""
        if not self.argv_log.is_file():
            return []
        return [json.loads(line) for line in self.argv_log.read_text().splitlines() if line]

    def wait_workers(self) -> None:
        """Wait for every worker the fake started; kill the ones that outlive the wait."""
        deadline = time.monotonic() + WORKER_WAIT_S
        for entry in sorted(self.pids.iterdir()):
            pid = int(entry.name)
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def make_cloud(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str] | None = None
) -> Cloud:
    """Return a repository with a bare ``origin`` and the fake cloud CLI set up."""
    remote = tmp / "remote.git"
    remote.mkdir()
    git(remote, "init", "-q", "--bare", "-b", "main")
    repo = make_repo(tmp / "repo", files)
    git(repo, "remote", "add", "origin", str(remote))
    pids = tmp / "cloud-pids"
    pids.mkdir()
    cloud = Cloud(repo, remote, tmp / "cloud.json", pids, tmp / "cloud.log", tmp / "cloud-argv.log")
    cloud.script({})
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(FAKE_CLOUD))
    monkeypatch.setenv("FAKE_CLOUD_SCENARIO", str(cloud.scenario))
    monkeypatch.setenv("FAKE_CLOUD_PIDS", str(pids))
    monkeypatch.setenv("FAKE_CLOUD_LOG", str(cloud.log))
    monkeypatch.setenv("FAKE_CLOUD_ARGV_LOG", str(cloud.argv_log))
    return cloud
