"""The reliability suite (scripts/torture.py) in its short form, plus checks that its own
detectors catch planted faults (a suite that cannot fail proves nothing).

The seed is random unless TORTURE_SEED is set; a failure names it, so that
``python scripts/torture.py --scenarios NAME --seed N`` replays the same trials.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, git, make_repo, wait_for

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import torture
from torturelib import common, hostile_gen, hostile_run, procs, symlinks
from torturelib.common import ScenarioResult, Trial

SEED = int(os.environ.get("TORTURE_SEED") or random.randrange(2**31))


def _short(name: str, tmp_path: Path) -> ScenarioResult:
    (result,) = torture.run([name], work=tmp_path, long=False, seed=SEED)
    failures = "\n".join(f"- {t.name}: {'; '.join(t.problems)}" for t in result.trials if not t.ok)
    assert result.trials, f"{name} ran no trial"
    assert result.failed == 0, f"{name} (seed {SEED}):\n{failures}"
    return result


def test_crash_and_resume(tmp_path: Path) -> None:
    result = _short("crash-and-resume", tmp_path)
    assert len(result.trials) == 10


def test_agent_faults(tmp_path: Path) -> None:
    result = _short("agent-faults", tmp_path)
    assert len(result.trials) >= 3


def test_hostile_input(tmp_path: Path) -> None:
    result = _short("hostile-input", tmp_path)
    assert len(result.trials) >= 300


def test_disk_and_git_faults(tmp_path: Path) -> None:
    result = _short("disk-and-git", tmp_path)
    assert len(result.trials) == 9


def test_symlinks_in_every_folder_planfleet_writes(tmp_path: Path) -> None:
    result = _short("symlinks", tmp_path)
    assert len(result.trials) == len(symlinks.CASES) + 1
    covered = {t.name.split(" -> ")[0] for t in result.trials if " -> " in t.name}
    assert covered == set(symlinks.folders())
    assert {".planfleet", ".planfleet/state", ".planfleet/locks", ".planfleet/logs"} <= covered
    assert {".planfleet/runs/p", ".planfleet/worktrees/p", ".planfleet/knowledge"} <= covered
    assert symlinks.TRACKED in {t.name for t in result.trials}


# -- the report -------------------------------------------------------------------------------


def test_the_table_and_the_json_carry_the_same_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake(work: Path, env: dict[str, str], long: bool, seed: int) -> ScenarioResult:
        result = ScenarioResult("fake", "seconds")
        result.trials = [Trial("a", True, metric=1.5), Trial("b", False, ["it broke"], 0.2)]
        return result

    monkeypatch.setitem(torture.SCENARIOS, "fake", fake)
    monkeypatch.setattr(torture, "isolate", lambda home: None)  # conftest isolates already
    out = tmp_path / "report.json"
    code = torture.main(["--scenarios", "fake", "--json-out", str(out), "--seed", "7"])
    printed = capsys.readouterr().out
    assert code == 1
    data = json.loads(out.read_text())
    (row,) = data["scenarios"]
    assert (row["trials"], row["passed"], row["failed"]) == (2, 1, 1)
    assert row["worst_case"] == "FAIL b: it broke"
    assert data["seed"] == 7
    assert data["passed"] is False
    line = next(ln for ln in printed.splitlines() if ln.startswith("fake"))
    assert line.split()[1:4] == ["2", "1", "1"]
    closing = printed.strip().splitlines()[-1]
    assert closing == "total: 2 trials in 1 scenarios, 1 passed, 1 failed"
    assert data["summary"] == closing


def test_the_closing_line_counts_the_symlink_scenario() -> None:
    links = ScenarioResult("symlinks", "seconds")
    links.trials = [Trial("a", True), Trial("b", True), Trial("c", False, ["x"])]
    other = ScenarioResult("other", "seconds")
    other.trials = [Trial("d", True)]
    assert torture.closing_line([other, links]) == (
        "total: 4 trials in 2 scenarios, 3 passed, 1 failed; symlinks: 2/3 refused safely, "
        f"{len(symlinks.folders())} folders and files under .planfleet/ covered"
    )


def test_an_unknown_scenario_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        torture.main(["--scenarios", "nope"])
    assert exc.value.code == 2


# -- the detectors catch what they are meant to catch ------------------------------------------


def test_a_corrupt_state_file_is_reported(tmp_path: Path) -> None:
    state = tmp_path / ".planfleet" / "state" / "p.json"
    state.parent.mkdir(parents=True)
    assert common.load_state(tmp_path) == (None, None)
    state.write_text('{"schema_version": 1, "plan": ')
    loaded, problem = common.load_state(tmp_path)
    assert loaded is None
    assert problem
    assert "does not load" in problem


def test_held_locks_and_git_lock_files_are_reported(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    lock_path = repo / ".planfleet" / "state" / "p.json.lock"
    lock_path.parent.mkdir(parents=True)
    assert common.held_locks(repo) == []
    (repo / ".git" / "index.lock").write_text("")
    # filelock locks are per process: another process must hold it for us to see it held
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys, time; "
            f"l = filelock.FileLock({str(lock_path)!r}); l.acquire(); print('x', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline()
        found = common.held_locks(repo)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert ".planfleet/state/p.json.lock" in found
    assert ".git/index.lock" in found


def test_stale_worktrees_are_reported_and_parked_spares_are_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    root = repo / ".planfleet" / "worktrees" / "p"
    assert common.stale_worktrees(repo) == []
    git(repo, "worktree", "add", "-q", "--detach", str(root / "_spare-0"))
    assert common.stale_worktrees(repo) == []
    git(repo, "worktree", "add", "-q", "-b", "t", str(root / "t1"))
    (root / "orphan").mkdir()
    stale = common.stale_worktrees(repo)
    assert str(root / "t1") in stale
    assert any("orphan" in s for s in stale)


def test_a_tagged_process_left_running_is_found_and_killed(tmp_path: Path) -> None:
    launcher = procs.Launcher(dict(os.environ), "tag-for-this-test")
    p = launcher.start(["sleep", "30"], cwd=tmp_path, log=tmp_path / "log")
    # a grandchild in its own session, as an agent of a killed engine would be
    launcher.start(["sh", "-c", "setsid sleep 31 & wait"], cwd=tmp_path, log=tmp_path / "log")
    deadline = time.monotonic() + 5
    while len(procs.tagged("tag-for-this-test")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(procs.tagged("tag-for-this-test")) >= 3
    assert any(i.pid == p.pid for i in procs.under(tmp_path))
    left = launcher.close()
    assert any("sleep 31" in i.cmdline for i in left)
    assert procs.tagged("tag-for-this-test") == []


def test_a_child_its_parent_never_waits_for_is_a_zombie_leak(tmp_path: Path) -> None:
    launcher = procs.Launcher(dict(os.environ), "zombie-test")
    go = tmp_path / "go"
    code = (
        "import pathlib, subprocess, time\n"
        "p = subprocess.Popen(['true'])\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
    )
    try:
        with procs.ZombieWatch("zombie-test", grace_s=1.0) as watch:
            neglectful = launcher.start(
                [sys.executable, "-c", code], cwd=tmp_path, log=tmp_path / "l"
            )
            # The parent lives on, never waiting, until the watch has seen the zombie outlast
            # its grace (a fixed lifetime would assume how soon the watch gets to look).
            wait_for("the watch to flag the zombie", lambda: watch.leaks)
            go.touch()
            neglectful.wait(timeout=30)
    finally:
        go.touch()
        launcher.close()
    assert [z.ppid for z in watch.leaks.values()] == [neglectful.pid]


def test_the_symlink_judge_flags_what_it_must(tmp_path: Path) -> None:
    case = symlinks.Case(".planfleet/state", ("state", "init"))

    def envelope(error: dict[str, object]) -> str:
        return json.dumps({"command": "state init", "errors": [error]})

    good = {"reason": "planfleet_symlink", "next_step": "rm it", "details": {"path": case.link}}
    assert symlinks.judge(case, 3, envelope(good), "", python=False) == []
    assert symlinks.judge(case, 0, "{}", "", python=False)
    assert symlinks.judge(case, 3, envelope({**good, "reason": "other"}), "", python=False)
    assert symlinks.judge(case, 3, envelope({**good, "next_step": ""}), "", python=False)
    wrong = {**good, "details": {"path": ".planfleet"}}
    assert symlinks.judge(case, 3, envelope(wrong), "", python=False)
    assert symlinks.judge(
        case, 3, envelope(good), "Traceback (most recent call last)", python=False
    )
    assert symlinks.judge(case, 0, "", "", python=True)
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "f").write_text("x")
    before = symlinks.snapshot(bait)
    bait.chmod(0o700)
    assert symlinks.snapshot(bait) != before
    bait.chmod(before["."][0] & 0o777)
    (bait / "f").write_text("y")
    assert symlinks.snapshot(bait) != before


def test_the_hostile_judge_flags_what_it_must() -> None:
    case = hostile_gen.Case(1, "mutation", "planfleet", "plans/p.plan.yaml")
    ctx = hostile_gen.Context({}, {}, "/nonexistent/canary", Path("/nonexistent"), "SECRET-1")

    def envelope(errors: list[dict[str, object]]) -> str:
        return json.dumps({"command": "plan validate", "data": None, "errors": errors})

    named = envelope([{"message": "bad id", "file": "plans/p.plan.yaml"}])
    assert hostile_run.judge(case, ctx, 2, named, "") == []
    assert hostile_run.judge(case, ctx, 0, "{}", "") == []
    assert hostile_run.judge(case, ctx, 4, "", "internal error")
    assert hostile_run.judge(case, ctx, None, "", "")
    assert hostile_run.judge(case, ctx, 2, envelope([{"message": "bad"}]), "")
    assert hostile_run.judge(case, ctx, 2, named, "Traceback (most recent call last):\n")
    assert hostile_run.judge(case, ctx, 0, "SECRET-1", "")
    assert hostile_run.judge(case, ctx, 2, "not json", "")


def test_hostile_cases_are_reproducible_and_cover_every_category(tmp_path: Path) -> None:
    repos = hostile_run.make_repos(tmp_path / "repos")
    outside = tmp_path / "outside"
    hostile_run.make_outside(outside, canary="/nonexistent/c", marker="S")
    ctx = hostile_run.make_context(repos, outside=outside, canary="/nonexistent/c", marker="S")
    first = [hostile_gen.generate(ctx, 11, i) for i in range(400)]
    again = [hostile_gen.generate(ctx, 11, i) for i in range(400)]
    assert [(c.category, c.fmt, c.writes, c.links) for c in first] == [
        (c.category, c.fmt, c.writes, c.links) for c in again
    ]
    assert {c.category for c in first} == set(hostile_gen.CATEGORIES)
    # applying and undoing a case leaves the fixture repository exactly as it was
    for case in first[:60]:
        if case.category == hostile_gen.SPECIAL:
            continue
        repo = repos[case.fmt]
        hostile_run.apply(repo, case).restore()
        assert git(repo, "status", "--porcelain", "--ignored", "-uall") == "", case.describe()
