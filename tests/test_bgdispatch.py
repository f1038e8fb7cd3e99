"""`planfleet dispatch`: plan resolution, the cost cap, preflight refusals, confirmation,
the dispatch itself and its manifest, against real repositories and the fake bg CLI."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bg_support import FAKE_CLAUDE, PLANS, FakeBg, install_fake, manifest, phase_repo
from conftest import CliResult, git
from planfleet import bgdispatch
from planfleet.commands import dispatch as dispatch_cmd
from planfleet.output import Out

Run = Callable[..., CliResult]
OPEN = [f"{PLANS}/plan-001-auth.md", f"{PLANS}/plan-003-api.md", f"{PLANS}/plan-005-docs.md"]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBg:
    return install_fake(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return phase_repo(tmp_path / "repo")


def test_dry_run_resolves_statuses_and_dispatches_nothing(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    res = run_cli("dispatch", "--phase", "3", "--dry-run", "--json", cwd=repo)
    assert res.code == 0, res.err
    data = res.json()["data"]
    assert data["status"] == "dry_run"
    assert [p["plan"] for p in data["plans"]] == OPEN
    # names keep the plan's position among all plan files of the phase
    assert [p["name"] for p in data["plans"]] == ["phase3-plan1", "phase3-plan3", "phase3-plan5"]
    assert {s["plan"]: s["reason"] for s in data["skipped"]} == {
        f"{PLANS}/plan-002-db.md": "completed",
        f"{PLANS}/plan-004-ui.md": "blocked",
    }
    assert "3 session(s) cost about 3 x one session" in data["cost_note"]
    assert fake.calls("--bg") == []
    assert not (repo / ".maxvision/phase-3/bg-dispatch.json").exists()


def test_dry_run_prints_the_exact_command(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    res = run_cli("dispatch", "--phase", "3", "--dry-run", "--model", "sonnet", cwd=repo)
    assert res.code == 0, res.err
    commands = [line.strip()[2:] for line in res.out.splitlines() if line.strip().startswith("$ ")]
    assert len(commands) == 3
    argv = shlex.split(commands[0])
    assert argv[:8] == [
        str(FAKE_CLAUDE),
        "--bg",
        "--agent",
        "planfleet:executor",
        "--name",
        "phase3-plan1",
        "--model",
        "sonnet",
    ]
    assert len(argv) == 9
    prompt = argv[8]
    assert f"{PLANS}/plan-001-auth.md" in prompt
    assert "commit" in prompt
    assert "report" in prompt
    assert "cap 10" in res.out
    assert "skipped  .maxvision/phase-3/plans/plan-002-db.md  (completed)" in res.out
    assert "Manifest: .maxvision/phase-3/bg-dispatch.json" in res.out
    assert fake.calls("--bg") == []


def test_limit_caps_and_above_ten_needs_accept_cost(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    res = run_cli("dispatch", "--phase", "3", "--limit", "1", "--dry-run", "--json", cwd=repo)
    data = res.json()["data"]
    assert [p["plan"] for p in data["plans"]] == OPEN[:1]
    assert data["open_plans"] == 3
    assert {"plan": OPEN[1], "reason": "over the cap of 1"} in data["skipped"]

    res = run_cli("dispatch", "--phase", "3", "--limit", "12", "--dry-run", "--json", cwd=repo)
    assert res.code == 3
    error = res.json()["errors"][0]
    assert error["reason"] == "cost"
    assert "12 parallel sessions cost about 12 times one" in error["message"]
    assert "--accept-cost" in error["next_step"]

    res = run_cli(
        "dispatch", "--phase", "3", "--limit", "12", "--accept-cost", "--dry-run", cwd=repo
    )
    assert res.code == 0, res.err
    assert "cap 12" in res.out

    assert run_cli("dispatch", "--phase", "3", "--limit", "0", cwd=repo).code == 2


@pytest.mark.parametrize("reason", ["missing", "too_old", "dirty", "no_phase"])
def test_preflight_refusals_are_structured(
    reason: str,
    repo: Path,
    fake: FakeBg,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    phase = "3"
    if reason == "missing":
        monkeypatch.setenv("PLANFLEET_CLAUDE", str(tmp_path / "no-such-claude"))
    elif reason == "too_old":
        monkeypatch.setenv("FAKE_CLAUDE_VERSION", "2.1.138")
    elif reason == "dirty":
        (repo / "README.md").write_text("changed\n", encoding="utf-8")
    else:
        phase = "7"
    res = run_cli("dispatch", "--phase", phase, "--yes", "--json", cwd=repo)
    assert res.code == 3
    env = res.json()
    assert env["status"] == "aborted"
    data = env["data"]
    assert data["status"] == "aborted"
    assert data["reason"] == reason
    assert data["next_step"]
    assert env["errors"][0]["reason"] == reason
    assert fake.calls("--bg") == []
    human = run_cli("dispatch", "--phase", phase, "--yes", cwd=repo)
    assert human.code == 3
    assert f"aborted ({reason})" in human.err
    assert "next step:" in human.err


def test_manifest_of_an_earlier_dispatch_does_not_make_the_tree_dirty(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    (repo / ".maxvision/phase-3/bg-dispatch.json").write_text('{"sessions": []}\n')
    (repo / ".claude/worktrees/phase3-plan1").mkdir(parents=True)
    (repo / ".claude/worktrees/phase3-plan1/file.txt").write_text("agent work\n")
    res = run_cli("dispatch", "--phase", "3", "--dry-run", cwd=repo)
    assert res.code == 0, res.err
    (repo / ".claude/notes.md").write_text("mine\n")
    res = run_cli("dispatch", "--phase", "3", "--dry-run", "--json", cwd=repo)
    assert res.code == 3
    assert res.json()["data"]["reason"] == "dirty"


def test_without_yes_and_no_terminal_it_refuses(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    res = run_cli("dispatch", "--phase", "3", cwd=repo)
    assert res.code == 3
    assert "phase3-plan1" in res.out  # the plan is shown before the refusal
    assert "aborted (not_confirmed)" in res.err
    assert "--yes" in res.err
    res = run_cli("dispatch", "--phase", "3", "--json", cwd=repo)
    assert res.code == 3
    data = res.json()["data"]
    assert (data["status"], data["reason"]) == ("aborted", "not_confirmed")
    assert len(data["plans"]) == 3
    assert fake.calls("--bg") == []


def _run_asking(repo: Path, answer: str) -> tuple[int, list[str]]:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return answer

    kwargs: dict[str, Any] = {
        "start": repo,
        "phase": 3,
        "limit": 1,
        "accept_cost": False,
        "yes": False,
        "dry_run": False,
        "model": None,
        "permission_mode": None,
        "plugin_dirs": [],
    }
    return dispatch_cmd.run(Out(), ask=ask, **kwargs), asked


def test_on_a_terminal_it_asks(repo: Path, fake: FakeBg) -> None:
    code, asked = _run_asking(repo, "n")
    assert code == 0
    assert asked == ["Start these sessions? [y/N] "]
    assert fake.calls("--bg") == []
    code, _ = _run_asking(repo, "y")
    assert code == 0
    assert len(fake.calls("--bg")) == 1
    assert [s["name"] for s in manifest(repo)["sessions"]] == ["phase3-plan1"]


def test_dispatch_starts_each_session_and_writes_the_manifest(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    data = res.json()["data"]
    assert data["status"] == "dispatched"
    assert data["session_count"] == 3
    calls = fake.calls("--bg")
    assert [c[1:5] for c in calls] == [
        ["--agent", "planfleet:executor", "--name", n]
        for n in (
            "phase3-plan1",
            "phase3-plan3",
            "phase3-plan5",
        )
    ]
    assert [[str(FAKE_CLAUDE), *c] for c in calls] == [p["argv"] for p in data["plans"]]
    written = manifest(repo)
    assert written["phase"] == 3
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", written["dispatched_at"])
    sessions = written["sessions"]
    assert [s["plan"] for s in sessions] == [Path(p).name for p in OPEN]
    assert [s["path"] for s in sessions] == OPEN
    assert all(re.fullmatch(r"[a-f0-9]{8}", s["session_id"]) for s in sessions)
    started = {p.stem for p in (fake.home / "sessions").glob("*.json")}
    assert {s["session_id"] for s in sessions} == started
    assert git(repo, "rev-parse", "HEAD") == head

    # run again: plans whose session still works are not dispatched twice
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    assert res.json()["data"]["status"] == "nothing"
    assert len(fake.calls("--bg")) == 3


def test_a_stopped_or_failed_session_may_be_dispatched_again(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    assert run_cli("dispatch", "--phase", "3", "--yes", cwd=repo).code == 0
    fake.scenario(phase3_plan1="failed", phase3_plan3="done")
    first = {s["name"]: s["session_id"] for s in manifest(repo)["sessions"]}
    assert run_cli("agents", "stop", first["phase3-plan5"], cwd=repo).code == 0
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    assert [p["name"] for p in res.json()["data"]["plans"]] == ["phase3-plan1", "phase3-plan5"]
    sessions = manifest(repo)["sessions"]
    assert len(sessions) == 5  # the old records are kept
    assert [s["name"] for s in sessions[:3]] == ["phase3-plan1", "phase3-plan3", "phase3-plan5"]


def test_a_failure_midway_keeps_what_was_dispatched(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    fake.scenario(phase3_plan3="dispatch-fail")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 1
    data = res.json()["data"]
    assert data["status"] == "failed"
    assert data["failure"]["reason"] == "claude_failed"
    assert data["failure"]["name"] == "phase3-plan3"
    assert "could not start the background service" in data["failure"]["output"]
    assert data["not_dispatched"] == OPEN[1:]
    assert [s["name"] for s in manifest(repo)["sessions"]] == ["phase3-plan1"]
    assert len(fake.calls("--bg")) == 2  # stopped at the failure: plan 5 was not tried
    assert "dispatch --phase 3" in data["next_step"]

    res = run_cli("dispatch", "--phase", "3", "--yes", cwd=repo)
    assert res.code == 1
    assert "FAILED to start phase3-plan3 (claude_failed)" in res.out


def test_a_crash_midway_leaves_the_manifest_of_what_started(repo: Path, fake: FakeBg) -> None:
    fake.scenario(phase3_plan5="dispatch-kill-parent")
    crashed = subprocess.run(
        [sys.executable, "-m", "planfleet", "dispatch", "--phase", "3", "--yes"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL
    sessions = manifest(repo)["sessions"]
    assert [s["name"] for s in sessions] == ["phase3-plan1", "phase3-plan3"]
    left = sorted(p.name for p in (repo / ".maxvision/phase-3").iterdir())
    assert left == ["bg-dispatch.json", "plans"]  # no temp file beside it


def test_output_without_a_session_id_is_refused(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    fake.scenario(phase3_plan1="dispatch-noid")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 3
    data = res.json()["data"]
    assert data["failure"]["reason"] == "no_session_id"
    assert data["session_count"] == 0
    assert "cannot be tracked" in data["next_step"]
    assert not (repo / ".maxvision/phase-3/bg-dispatch.json").exists()


def test_unknown_flags_and_bad_manifests(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    assert run_cli("dispatch", "--phase", "3", "--bogus", cwd=repo).code == 2
    assert run_cli("dispatch", "--limit", "3", cwd=repo).code == 2  # --phase is required
    assert run_cli("dispatch", "--phase", "three", cwd=repo).code == 2
    path = repo / ".maxvision/phase-3/bg-dispatch.json"
    path.write_text('{"sessions": [{"plan": "a.md", "session_id": "../x", "name": "n"}]}')
    res = run_cli("dispatch", "--phase", "3", "--dry-run", cwd=repo)
    assert res.code == 2
    assert "bg-dispatch.json" in res.err
    assert "session id" in res.err


def test_nothing_open(tmp_path: Path, fake: FakeBg, run_cli: Run) -> None:
    done = {f"{PLANS}/a.md": "---\nstatus: completed\n---\n# A\n"}
    repo = phase_repo(tmp_path / "other", done)
    for rel in (
        f"{PLANS}/plan-001-auth.md",
        f"{PLANS}/plan-003-api.md",
        f"{PLANS}/plan-005-docs.md",
    ):
        git(repo, "rm", "-q", rel)
    git(repo, "commit", "-qm", "only finished plans left")
    res = run_cli("dispatch", "--phase", "3", "--yes", cwd=repo)
    assert res.code == 0, res.err
    assert "no open plans" in res.out
    assert fake.calls("--bg") == []


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Starting background service…\nbackgrounded · 7c5dcf5d · fix\n", "7c5dcf5d"),
        ("\x1b[1mbackgrounded\x1b[0m · \x1b[36m0a1b2c3d\x1b[0m · x\n", "0a1b2c3d"),
        ("  claude attach 89abcdef    open in this terminal\n", "89abcdef"),
        ("backgrounded · 7C5DCF5D · upper is not an id\n", None),
        ("backgrounded · 7c5dcf5 · seven\n", None),
        ("", None),
    ],
)
def test_parse_short_id(output: str, expected: str | None) -> None:
    assert bgdispatch.parse_short_id(output) == expected


def test_phase_folder_with_a_label(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / ".maxvision/phase-03-auth/plans").mkdir(parents=True)
    assert bgdispatch.phase_dir(repo, 3) == repo / ".maxvision/phase-03-auth"
    assert bgdispatch.phase_dir(repo, 30) == repo / ".maxvision/phase-30"
