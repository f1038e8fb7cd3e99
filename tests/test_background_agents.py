"""`planfleet agents`: claude's session list merged with manifests and state; logs, attach
and stop passed through; the real Claude Code CLI's empty list parsed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bg_support import PLANS, FakeBg, install_fake, manifest, phase_repo
from conftest import CliResult, commit_file, git
from planfleet import paths
from planfleet.background import agents
from planfleet.state import records as sm
from planfleet.state.store import StateStore

Run = Callable[..., CliResult]
REAL_CLAUDE = Path("/root/.cache/planfleet-ci/claude-2.1.328/node_modules/.bin/claude")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBg:
    return install_fake(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path, fake: FakeBg, run_cli: Run) -> Path:
    """A repository whose phase 3 was dispatched: sessions phase3-plan1, -plan3, -plan5."""
    path = phase_repo(tmp_path / "repo")
    res = run_cli("dispatch", "--phase", "3", "--yes", cwd=path)
    assert res.code == 0, res.err
    return path


def _ids(repo: Path, phase: int = 3) -> dict[str, str]:
    return {s["name"]: s["session_id"] for s in manifest(repo, phase)["sessions"]}


def test_agents_merges_manifest_and_surfaces_blocked(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    fake.scenario(phase3_plan1="blocked:permission prompt", phase3_plan5="done")
    ids = _ids(repo)
    res = run_cli("agents", "--json", cwd=repo)
    assert res.code == 0, res.err
    env = res.json()
    assert env["status"] == "blocked"
    rows = {s["name"]: s for s in env["data"]["sessions"]}
    assert set(rows) == {"phase3-plan1", "phase3-plan3", "phase3-plan5"}
    one = rows["phase3-plan1"]
    assert (one["id"], one["state"], one["waiting_for"]) == (
        ids["phase3-plan1"],
        "blocked",
        "permission prompt",
    )
    assert one["needs_you"] is True
    assert one["plan"] == f"{PLANS}/plan-001-auth.md"
    assert one["phase"] == 3
    assert one["age_s"] is not None
    assert one["age_s"] < 600
    assert (rows["phase3-plan3"]["state"], rows["phase3-plan3"]["needs_you"]) == ("working", False)
    assert rows["phase3-plan5"]["state"] == "done"
    assert env["data"]["blocked"] == [
        {"id": ids["phase3-plan1"], "name": "phase3-plan1", "waiting_for": "permission prompt"}
    ]
    assert env["data"]["counts"] == {"blocked": 1, "working": 1, "done": 1}

    human = run_cli("agents", cwd=repo)
    assert human.code == 0
    line = next(x for x in human.out.splitlines() if x.startswith(ids["phase3-plan1"]))
    assert "BLOCKED" in line
    assert "permission prompt" in line
    assert "needs you:" in human.out
    assert f"planfleet agents attach {ids['phase3-plan1']}" in human.out


def test_agents_adds_the_task_of_a_planfleet_run(repo: Path, run_cli: Run) -> None:
    ids = _ids(repo)
    state = sm.new_state(name="phase3", format="maxvision", path=PLANS, title="t")
    state["tasks"]["3.plan-003-api"] = sm.new_task(title="API", phase="3", status="in_progress")
    state["tasks"]["3.plan-003-api"]["session_id"] = ids["phase3-plan3"]
    state["order"].append("3.plan-003-api")
    StateStore.for_plan(repo, "phase3").create(state)
    (paths.state_dir(repo) / "broken.json").write_text("{not json")
    res = run_cli("agents", "--json", cwd=repo)
    assert res.code == 0, res.err
    rows = {s["name"]: s for s in res.json()["data"]["sessions"]}
    three = rows["phase3-plan3"]
    assert (three["run"], three["task"], three["task_status"]) == (
        "phase3",
        "3.plan-003-api",
        "in_progress",
    )
    assert rows["phase3-plan1"]["task"] is None
    assert "broken.json" in res.err  # an unreadable state file is a warning, not a failure
    human = run_cli("agents", cwd=repo)
    assert "phase3:3.plan-003-api (in_progress)" in human.out


def test_sessions_of_the_repo_only_and_missing_ones(
    repo: Path, fake: FakeBg, run_cli: Run, tmp_path: Path
) -> None:
    ids = _ids(repo)
    mine = fake.start("by-hand", repo / PLANS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fake.start("other-project", elsewhere)
    fake.forget(ids["phase3-plan5"])
    rows = {s["name"]: s for s in run_cli("agents", "--json", cwd=repo).json()["data"]["sessions"]}
    assert set(rows) == {"phase3-plan1", "phase3-plan3", "phase3-plan5", "by-hand"}
    assert rows["by-hand"]["id"] == mine
    assert rows["by-hand"]["plan"] is None
    assert rows["phase3-plan5"]["state"] == "missing"
    only = run_cli("agents", "--phase", "3", "--json", cwd=repo).json()["data"]["sessions"]
    assert {s["name"] for s in only} == {"phase3-plan1", "phase3-plan3", "phase3-plan5"}
    none = run_cli("agents", "--phase", "4", cwd=repo)
    assert none.code == 0
    assert "no background sessions for phase 4's dispatch" in none.out


def test_stop_all_stops_every_session_of_the_dispatch(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    ids = _ids(repo)
    assert run_cli("agents", "stop", ids["phase3-plan3"], cwd=repo).code == 0
    fake.forget(ids["phase3-plan5"])
    res = run_cli("agents", "stop", "--all", "--phase", "3", "--json", cwd=repo)
    assert res.code == 0, res.err
    data = res.json()["data"]
    results = {r["name"]: r["result"] for r in data["results"]}
    assert results == {
        "phase3-plan1": "stopped",
        "phase3-plan3": "already_stopped",
        "phase3-plan5": "not_listed",
    }
    assert data["stopped"] == 1
    again = run_cli("agents", "--json", "stop", "--all", cwd=repo)  # --json before the verb
    assert [r["result"] for r in again.json()["data"]["results"]] == [
        "already_stopped",
        "already_stopped",
        "not_listed",
    ]
    assert fake.calls("stop") == [["stop", ids["phase3-plan3"]], ["stop", ids["phase3-plan1"]]]
    states = {s["name"]: s["state"] for s in agents.list_sessions(repo).to_json()["sessions"]}
    assert states == {
        "phase3-plan1": "stopped",
        "phase3-plan3": "stopped",
        "phase3-plan5": "missing",
    }


def test_stop_all_without_phase_covers_every_dispatch(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    commit_file(repo, ".maxvision/phase-4/plans/plan-001-more.md", "# More\n")
    git(repo, "status")
    assert run_cli("dispatch", "--phase", "4", "--yes", cwd=repo).code == 0
    res = run_cli("agents", "stop", "--all", "--phase", "4", cwd=repo)
    assert res.code == 0, res.err
    assert len(fake.calls("stop")) == 1
    results = agents.stop_sessions(repo)
    assert sorted(r.result for r in results) == ["already_stopped", *["stopped"] * 3]
    assert len(fake.calls("stop")) == 4


def test_unknown_ids(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    res = run_cli("agents", "logs", "deadbeef", cwd=repo)
    assert res.code == 2
    assert "no background session matching 'deadbeef'" in res.err
    # attach hands the terminal to claude: its own message and exit code come through
    assert run_cli("agents", "attach", "deadbeef", cwd=repo).code == 1
    res = run_cli("agents", "stop", "deadbeef", "--json", cwd=repo)
    assert res.code == 2
    assert res.json()["data"]["results"][0]["result"] == "not_found"
    res = run_cli("agents", "logs", "../etc", cwd=repo)
    assert res.code == 2
    assert "session id" in res.err
    assert fake.calls("logs") == [["logs", "deadbeef"]]  # the bad id never reached claude
    assert run_cli("agents", "stop", cwd=repo).code == 2
    assert run_cli("agents", "stop", "--all", "deadbeef", cwd=repo).code == 2
    assert run_cli("agents", "--bogus", cwd=repo).code == 2


def test_logs_and_attach_pass_through(repo: Path, run_cli: Run) -> None:
    ids = _ids(repo)
    res = run_cli("agents", "logs", ids["phase3-plan1"], "--json", cwd=repo)
    assert res.code == 0, res.err
    assert f"{PLANS}/plan-001-auth.md" in res.json()["data"]["output"]
    # attach runs claude on this terminal, so it is seen from a real planfleet process
    attached = subprocess.run(
        [sys.executable, "-m", "planfleet", "agents", "attach", ids["phase3-plan3"]],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert attached.returncode == 0, attached.stderr
    assert f"attached to {ids['phase3-plan3']}" in attached.stdout
    assert run_cli("agents", "attach", ids["phase3-plan3"], "--json", cwd=repo).code == 2
    assert agents.logs(repo, "phase3-plan5").startswith("[phase3-plan5]")


def _real_claude() -> Path | None:
    explicit = os.environ.get("PLANFLEET_CLAUDE")
    if explicit and Path(explicit).is_file() and "fake_claude" not in explicit:
        return Path(explicit)
    return REAL_CLAUDE if REAL_CLAUDE.is_file() else None


REAL = _real_claude()


@pytest.mark.skipif(REAL is None, reason="the real Claude Code CLI is not installed")
def test_real_claude_lists_no_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    assert REAL is not None
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(REAL))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    repo = phase_repo(tmp_path / "repo")
    assert agents.claude_entries(repo) == []
    res = run_cli("agents", "--json", cwd=repo)
    assert res.code == 0, res.err
    assert res.json()["data"]["sessions"] == []
    # claude's own "No session matching" becomes our exit 2
    res = run_cli("agents", "logs", "deadbeef", cwd=repo)
    assert res.code == 2, res.err
    # the real version passes the --bg preflight; a dry run starts nothing
    res = run_cli("dispatch", "--phase", "3", "--dry-run", "--json", cwd=repo)
    assert res.code == 0, res.err
    assert len(res.json()["data"]["plans"]) == 3
