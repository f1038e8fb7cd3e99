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

import pytest

from bg_support import FAKE_CLAUDE, PLANS, FakeBg, install_fake, manifest, phase_repo
from conftest import CliResult, commit_file, git
from planfleet import paths
from planfleet.background import dispatch, launch
from planfleet.cli.commands import dispatch as dispatch_cmd
from planfleet.cli.output import Out
from planfleet.engine import runinfo
from planfleet.errors import RefusedError
from planfleet.repo import provision

Run = Callable[..., CliResult]
OPEN = [f"{PLANS}/plan-001-auth.md", f"{PLANS}/plan-003-api.md", f"{PLANS}/plan-005-docs.md"]
RUN = "maxvision-phase-3"
WORKTREES = f".planfleet/worktrees/{RUN}"


def worktree_entries(repo: Path) -> list[dict[str, str]]:
    """Return `git worktree list --porcelain` as one dict per worktree."""
    found: list[dict[str, str]] = []
    for line in git(repo, "worktree", "list", "--porcelain").splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            found.append({"path": value})
        elif key:
            found[-1][key] = value
    return found


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
        "--permission-mode",
        "acceptEdits",
    ]
    # run's rules: edits, reads and the git calls a task needs (nothing else is allowed)
    assert argv[8] == "--allowedTools"
    rules = argv[9].split(",")
    assert {"Edit", "Write", "Bash(git add *)", "Bash(git commit *)"} <= set(rules)
    assert not [r for r in rules if r in ("Bash", "Bash(*)")]
    assert argv[10:12] == ["--model", "sonnet"]
    assert argv[12] == "--"  # --allowedTools takes a list: it would swallow the prompt
    assert len(argv) == 14
    prompt = argv[13]
    assert f"{PLANS}/plan-001-auth.md" in prompt
    wt = repo / ".planfleet/worktrees/maxvision-phase-3/3.plan-001-auth"
    assert f"git worktree, {wt}, on branch planfleet/maxvision-phase-3/tasks/" in prompt
    assert "commit" in prompt
    assert "report" in prompt
    assert "a commit on your branch with a non-empty diff" in prompt  # what collect checks
    assert "worktree .planfleet/worktrees/maxvision-phase-3/3.plan-001-auth" in res.out
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

    opts = dispatch_cmd.DispatchOptions(start=repo, phase=3, limit=1)
    return dispatch_cmd.run(Out(), opts, ask=ask), asked


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
    assert git(repo, "status", "--porcelain") == "?? .maxvision/phase-3/bg-dispatch.json\n"

    # each session was started in planfleet's own worktree of its plan, on run's task branch
    tasks = ["3.plan-001-auth", "3.plan-003-api", "3.plan-005-docs"]
    assert [s["task"] for s in sessions] == tasks
    assert {s["run"] for s in sessions} == {RUN}
    assert [s["worktree"] for s in sessions] == [f"{WORKTREES}/{t}" for t in tasks]
    assert [s["branch"] for s in sessions] == [f"planfleet/{RUN}/tasks/{t}" for t in tasks]
    assert [c["cwd"] for c in fake.call_records("--bg")] == [
        str(repo / s["worktree"]) for s in sessions
    ]
    listed = {e["path"]: e for e in worktree_entries(repo)}
    for s in sessions:
        entry = listed[str(repo / s["worktree"])]
        assert entry["branch"] == f"refs/heads/{s['branch']}"
        assert entry["HEAD"] == head.strip()  # the integration branch, made from HEAD
        # held for the session: an engine or `worktree remove` leaves it alone
        assert entry["locked"] == f"planfleet bg session {s['session_id']}"
        assert (repo / s["worktree"] / s["path"]).is_file()  # the session can read its plan
    assert git(repo, "rev-parse", f"planfleet/{RUN}/integration") == head
    assert [p["worktree"] for p in data["plans"]] == [s["worktree"] for s in sessions]
    assert data["problems"] == []

    # run again: plans whose session still works are not dispatched twice
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    assert res.json()["data"]["status"] == "nothing"
    assert len(fake.calls("--bg")) == 3


def test_a_stopped_or_failed_session_may_be_dispatched_again(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    assert run_cli("dispatch", "--phase", "3", "--yes", cwd=repo).code == 0
    first = {s["name"]: s["session_id"] for s in manifest(repo)["sessions"]}
    # by id: the plan's next session (same name) must not inherit the state
    fake.scenario(**{first["phase3-plan1"]: "failed", first["phase3-plan3"]: "done"})
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
    assert launch.parse_short_id(output) == expected


def test_phase_folder_with_a_label(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / ".maxvision/phase-03-auth/plans").mkdir(parents=True)
    assert dispatch.phase_dir(repo, 3) == repo / ".maxvision/phase-03-auth"
    assert dispatch.phase_dir(repo, 30) == repo / ".maxvision/phase-30"


def test_a_read_only_permission_mode_is_refused(repo: Path, fake: FakeBg, run_cli: Run) -> None:
    res = run_cli("dispatch", "--phase", "3", "--permission-mode", "plan", "--yes", cwd=repo)
    assert res.code == 2
    assert "read but never write" in res.err
    assert fake.calls("--bg") == []
    res = run_cli("dispatch", "--phase", "3", "--permission-mode", "auto", "--dry-run", cwd=repo)
    assert res.code == 0, res.err
    assert "--permission-mode auto" in res.out


def test_sessions_that_cannot_work_in_their_worktree_are_reported_at_dispatch(
    repo: Path, fake: FakeBg, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # plan 1's session reports the user's checkout as its folder; plan 3's fails at once
    monkeypatch.setenv("FAKE_CLAUDE_BG_CWD", f"phase3-plan1={repo}")
    fake.scenario(phase3_plan3="failed")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 1, res.err
    env = res.json()
    data = env["data"]
    assert data["status"] == "failed"
    assert data["session_count"] == 3  # they were started and are recorded: they run
    assert len(manifest(repo)["sessions"]) == 3
    problems = {p["name"]: p for p in data["problems"]}
    assert set(problems) == {"phase3-plan1", "phase3-plan3"}
    one = problems["phase3-plan1"]
    assert one["reason"] == "not_in_worktree"
    assert str(repo) in one["message"]
    assert f"{WORKTREES}/3.plan-001-auth" in one["message"]
    assert f"planfleet agents stop {one['session_id']}" in one["next_step"]
    assert problems["phase3-plan3"]["reason"] == "session_failed"
    assert {e["reason"] for e in env["errors"]} == {"not_in_worktree", "session_failed"}
    # the failed plan may be dispatched again (the others are live); it fails again here
    human = run_cli("dispatch", "--phase", "3", "--yes", cwd=repo)
    assert human.code == 1
    assert "PROBLEM" in human.out
    assert "(session_failed): the session of .maxvision/phase-3/plans/plan-003-api.md" in (
        human.out
    )
    assert [c[4] for c in fake.calls("--bg")][3:] == ["phase3-plan3"]


def test_a_worktree_that_cannot_be_made_stops_the_dispatch(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    paths.ensure_planfleet_dir(repo)  # .planfleet/ is ignored, as after any run
    occupied = repo / WORKTREES / "3.plan-003-api"
    occupied.mkdir(parents=True)
    (occupied / "notes.txt").write_text("someone's files\n", encoding="utf-8")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 1, res.err
    data = res.json()["data"]
    assert data["failure"]["reason"] == "no_worktree"
    assert data["failure"]["name"] == "phase3-plan3"
    assert "exists but is not a git worktree" in data["failure"]["output"]
    assert data["not_dispatched"] == OPEN[1:]
    assert [c[4] for c in fake.calls("--bg")] == ["phase3-plan1"]  # nothing without a home
    assert (occupied / "notes.txt").read_text(encoding="utf-8") == "someone's files\n"


def test_a_plan_the_integration_branch_lacks_is_not_dispatched(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    # the phase's integration branch exists from before plan 6 was written
    git(repo, "branch", f"planfleet/{RUN}/integration")
    commit_file(repo, f"{PLANS}/plan-006-late.md", "# Late\n\nWritten afterwards.\n")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 1, res.err
    data = res.json()["data"]
    assert data["failure"]["reason"] == "plan_not_in_worktree"
    assert f"has no {PLANS}/plan-006-late.md" in data["failure"]["output"]
    assert [s["name"] for s in manifest(repo)["sessions"]] == [
        "phase3-plan1",
        "phase3-plan3",
        "phase3-plan5",
    ]


def test_dispatch_and_the_engine_keep_off_each_others_work(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    with runinfo.engine_lock(repo, RUN):
        res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 3
    assert res.json()["errors"][0]["reason"] == "engine_running"
    assert fake.calls("--bg") == []

    assert run_cli("dispatch", "--phase", "3", "--yes", cwd=repo).code == 0
    first = {s["name"]: s for s in manifest(repo)["sessions"]}
    # an engine run of the plan does not adopt a worktree a session works in
    with pytest.raises(RefusedError) as refused:
        provision.create_worktree(repo, RUN, "3.plan-001-auth")
    assert refused.value.reason == "worktree_locked"
    assert first["phase3-plan1"]["session_id"] in refused.value.message

    # the session is stopped and its plan dispatched again: the new session takes over the
    # same worktree, with what the first one committed there
    wt = repo / first["phase3-plan1"]["worktree"]
    work = commit_file(wt, "src/auth.py", "def login():\n    return True\n")
    assert run_cli("agents", "stop", first["phase3-plan1"]["session_id"], cwd=repo).code == 0
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    (again,) = res.json()["data"]["sessions"]
    assert (again["name"], again["worktree"]) == ("phase3-plan1", first["phase3-plan1"]["worktree"])
    assert git(wt, "rev-parse", "HEAD").strip() == work
    locked = {e["path"]: e.get("locked") for e in worktree_entries(repo)}
    assert locked[str(wt)] == f"planfleet bg session {again['session_id']}"


def test_a_worktree_that_cannot_be_held_still_records_its_session(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    fake.scenario(phase3_plan3="dispatch-lock")
    res = run_cli("dispatch", "--phase", "3", "--yes", "--json", cwd=repo)
    assert res.code == 0, res.err
    data = res.json()["data"]
    assert [s["name"] for s in manifest(repo)["sessions"]] == [
        "phase3-plan1",
        "phase3-plan3",
        "phase3-plan5",
    ]
    (warning,) = data["warnings"]
    assert f"could not lock {WORKTREES}/3.plan-003-api" in warning
    assert "warning: could not lock" in res.err
