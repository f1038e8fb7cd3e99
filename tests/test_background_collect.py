"""`planfleet agents collect`: a done session's commit goes through the gates, is recorded and
merged; a failure comes with its feedback; blocked sessions are surfaced; collecting twice
changes nothing; the user's checkout and the sessions' worktrees are never touched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bg_support import FakeBg, install_fake, manifest
from conftest import CliResult, git, make_repo
from planfleet import paths
from planfleet.background import collect
from planfleet.engine import runinfo
from planfleet.state.store import StateStore

Run = Callable[..., CliResult]
PLANS = ".maxvision/phase-3/plans"
PLAN = "maxvision-phase-3"
INTEGRATION = f"planfleet/{PLAN}/integration"
AUTH, API, UI = "3.plan-001-auth", "3.plan-002-api", "3.plan-003-ui"
FILES = {
    "README.md": "# app\n",
    f"{PLANS}/plan-001-auth.md": "---\nstatus: pending\nfiles_created:\n  - src/auth.py\n"
    "verify:\n  - test -s src/auth.py\n---\n# Auth\n\nAdd login.\n",
    f"{PLANS}/plan-002-api.md": "---\nfiles_created:\n  - src/api.py\n---\n# API\n",
    f"{PLANS}/plan-003-ui.md": "---\ntitle: UI\n---\n# UI\n",
}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBg:
    return install_fake(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path, fake: FakeBg, run_cli: Run) -> Path:
    """A repository whose phase 3 was dispatched: sessions phase3-plan1, -plan2, -plan3."""
    path = make_repo(tmp_path / "repo", FILES)
    res = run_cli("dispatch", "--phase", "3", "--yes", cwd=path)
    assert res.code == 0, res.err
    return path


def session_work(repo: Path, name: str, files: dict[str, str]) -> Path:
    """Return the worktree session ``name`` was started in, with ``files`` committed there."""
    (entry,) = [s for s in manifest(repo)["sessions"][-3:] if s["name"] == name]
    wt = repo / entry["worktree"]
    commit(wt, files, f"work of {name}")
    return wt


def claude_worktree(repo: Path, name: str, files: dict[str, str]) -> Path:
    """Return a worktree Claude Code made for a session under .claude/worktrees/, committed."""
    wt = repo / ".claude" / "worktrees" / name
    git(repo, "worktree", "add", "-q", "-b", f"worktree-{name}", str(wt))
    commit(wt, files, f"work of {name}")
    return wt


def commit(wt: Path, files: dict[str, str], message: str) -> None:
    """Write ``files`` in the checkout ``wt`` and commit them."""
    for rel, text in files.items():
        (wt / rel).parent.mkdir(parents=True, exist_ok=True)
        (wt / rel).write_text(text, encoding="utf-8")
        git(wt, "add", rel)
    git(wt, "commit", "-qm", message)


def snapshot(path: Path) -> tuple[str, str, str]:
    """Return what a checkout shows: HEAD, its branch and its status."""
    return (
        git(path, "rev-parse", "HEAD"),
        git(path, "symbolic-ref", "-q", "HEAD"),
        git(path, "status", "--porcelain", "--untracked-files=all"),
    )


def ref(repo: Path, name: str) -> str:
    """Return the commit of branch ``name`` ("" when it does not exist)."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"refs/heads/{name}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip()


def worktree_locks(repo: Path) -> dict[str, str | None]:
    """Return worktree path -> its lock reason (None when not locked)."""
    found: dict[str, str | None] = {}
    path = ""
    for line in git(repo, "worktree", "list", "--porcelain").splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            path = value
            found[path] = None
        elif key == "locked":
            found[path] = value
    return found


def found_again(repo: Path) -> dict[str | None, collect.Collected]:
    return {c.name: c for c in collect.collect(repo, 3)}


def state(repo: Path) -> dict[str, Any]:
    return StateStore.for_plan(repo, PLAN).load()


def sessions(res: CliResult) -> dict[str, dict[str, Any]]:
    assert res.out, res.err
    env = res.json()
    assert env["command"] == "agents collect"
    return {s["name"]: s for s in env["data"]["sessions"]}


def uuids(fake: FakeBg) -> dict[str, str]:
    found = [json.loads(p.read_text()) for p in (fake.home / "sessions").glob("*.json")]
    return {s["name"]: s["sessionId"] for s in found}


def _two_done_one_blocked(repo: Path, fake: FakeBg, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Plan 1 committed its file, plan 2 committed the wrong file, plan 3 waits for you."""
    good = session_work(repo, "phase3-plan1", {"src/auth.py": "def login():\n    return True\n"})
    session_work(repo, "phase3-plan2", {"src/other.py": "x = 1\n"})
    # where the session says it is does not matter: its worktree is the recorded one
    monkeypatch.setenv("FAKE_CLAUDE_BG_CWD", f"phase3-plan1={good / 'src'}")
    fake.scenario(
        phase3_plan1="done", phase3_plan2="done", phase3_plan3="blocked:permission prompt"
    )
    return good


def test_collect_verifies_merges_fails_and_surfaces_blocked(
    repo: Path, fake: FakeBg, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _two_done_one_blocked(repo, fake, monkeypatch)
    bad = repo / f".planfleet/worktrees/{PLAN}/{API}"
    ids = {s["name"]: s["session_id"] for s in manifest(repo)["sessions"]}
    user, sessions_before = snapshot(repo), (snapshot(good), snapshot(bad))
    readme = (repo / "README.md").read_text()

    res = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    assert res.code == 1, res.err
    assert res.json()["status"] == "failed"
    rows = sessions(res)

    one = rows["phase3-plan1"]
    assert (one["result"], one["task"], one["run"]) == ("merged", AUTH, PLAN)
    head = git(good, "rev-parse", "HEAD").strip()
    assert one["commit"] == head
    assert Path(one["worktree"]).resolve() == good.resolve()
    assert one["branch"] == f"planfleet/{PLAN}/tasks/{AUTH}"
    assert ref(repo, f"planfleet/{PLAN}/tasks/{AUTH}") == head  # committed on it, as asked
    assert git(repo, "show", f"{INTEGRATION}:src/auth.py") == "def login():\n    return True\n"
    assert git(repo, "merge-base", "--is-ancestor", head, INTEGRATION) == ""
    record = state(repo)["tasks"][AUTH]
    assert (record["status"], record["commit"], record["session_id"]) == (
        "verified",
        head,
        uuids(fake)["phase3-plan1"],  # the full id: `claude --resume` takes it
    )
    assert record["merged_at"] is not None
    assert Path(one["verification"]).is_file()
    assert {g["name"]: g["ok"] for g in json.loads(Path(one["verification"]).read_text())["gates"]}[
        "verify"
    ]

    two = rows["phase3-plan2"]
    assert two["result"] == "failed"
    assert "src/api.py" in two["message"]
    assert "src/api.py" in two["feedback"]
    assert two["resume_argv"][1:4] == ["--resume", uuids(fake)["phase3-plan2"], "--bg"]
    assert "src/api.py" in two["resume_argv"][4]
    assert two["resume_command"].startswith(f"claude --resume {uuids(fake)['phase3-plan2']} --bg ")
    assert two["next_step"].endswith(two["resume_command"])
    assert two["feedback_sent"] is False
    assert fake.calls("--resume") == []  # shown, not run
    failed = state(repo)["tasks"][API]
    assert (failed["status"], failed["error"]["type"]) == ("failed", "missing_artifact")
    assert "src/api.py" in failed["feedback"]
    assert git(repo, "ls-tree", "--name-only", "-r", INTEGRATION).count("src/") == 1

    three = rows["phase3-plan3"]
    assert (three["result"], three["waiting_for"]) == ("blocked", "permission prompt")
    assert three["next_step"] == f"planfleet agents attach {ids['phase3-plan3']}"
    assert res.json()["data"]["blocked"] == [
        {"id": ids["phase3-plan3"], "name": "phase3-plan3", "waiting_for": "permission prompt"}
    ]
    assert state(repo)["tasks"][UI]["attempts"] == 0

    # nothing of the user's checkout or of the sessions' worktrees moved
    assert snapshot(repo) == user
    assert (repo / "README.md").read_text() == readme
    assert (snapshot(good), snapshot(bad)) == sessions_before
    # merged: the session's hold on its worktree is dropped; a failed one keeps it (feedback)
    locks = worktree_locks(repo)
    assert locks[str(good)] is None
    assert locks[str(bad)] == f"planfleet bg session {ids['phase3-plan2']}"
    assert state(repo)["status"] == "paused"  # no engine runs it: not shown as a dead engine

    # `planfleet agents` now shows the task each session is recorded under
    listed = {
        s["name"]: s for s in run_cli("agents", "--json", cwd=repo).json()["data"]["sessions"]
    }
    assert (listed["phase3-plan1"]["task"], listed["phase3-plan1"]["task_status"]) == (
        AUTH,
        "verified",
    )


def test_second_collect_is_a_no_op(
    repo: Path, fake: FakeBg, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_done_one_blocked(repo, fake, monkeypatch)
    first = run_cli("agents", "collect", "--json", cwd=repo)
    assert first.code == 1, first.err
    integration, before = ref(repo, INTEGRATION), state(repo)
    records = sorted(paths.verify_dir(repo, PLAN).iterdir())

    again = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    assert again.code == 1, again.err
    rows = sessions(again)
    assert rows["phase3-plan1"]["result"] == "already_merged"
    assert rows["phase3-plan2"]["result"] == "failed"
    assert "src/api.py" in rows["phase3-plan2"]["feedback"]
    assert rows["phase3-plan3"]["result"] == "blocked"
    assert not any(r["changed"] for r in rows.values())
    assert ref(repo, INTEGRATION) == integration
    assert sorted(paths.verify_dir(repo, PLAN).iterdir()) == records
    after = state(repo)
    assert after["revision"] == before["revision"]
    assert after["tasks"] == before["tasks"]

    human = run_cli("agents", "collect", cwd=repo)
    assert human.code == 1
    assert "already_merged" in human.out
    assert f"claude --resume {uuids(fake)['phase3-plan2']} --bg" in human.out
    assert "planfleet agents attach" in human.out


def test_feedback_sent_once_then_the_fixed_commit_merges(
    repo: Path, fake: FakeBg, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_done_one_blocked(repo, fake, monkeypatch)
    res = run_cli("agents", "collect", "--phase", "3", "--send-feedback", "--json", cwd=repo)
    two = sessions(res)["phase3-plan2"]
    assert (two["result"], two["feedback_sent"]) == ("failed", True)
    (call,) = fake.calls("--resume")
    assert call[:3] == ["--resume", uuids(fake)["phase3-plan2"], "--bg"]
    assert "src/api.py" in call[3]

    # resumed: the session works again; collecting (even with --send-feedback) sends nothing
    again = sessions(run_cli("agents", "collect", "--send-feedback", "--json", cwd=repo))
    assert again["phase3-plan2"]["result"] == "working"
    assert len(fake.calls("--resume")) == 1

    # the session fixes its work in its own worktree and reports done again
    bad = repo / f".planfleet/worktrees/{PLAN}/{API}"
    commit(bad, {"src/api.py": "def api():\n    return 1\n"}, "add the api")
    monkeypatch.setenv("FAKE_CLAUDE_BG_RESUMED", "done")
    fixed = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    assert fixed.code == 0, fixed.err
    assert fixed.json()["status"] == "blocked"
    assert sessions(fixed)["phase3-plan2"]["result"] == "merged"
    record = state(repo)["tasks"][API]
    assert (record["status"], record["attempts"]) == ("verified", 2)
    assert git(repo, "show", f"{INTEGRATION}:src/api.py") == "def api():\n    return 1\n"
    assert git(repo, "show", f"{INTEGRATION}:src/auth.py")


def test_unfinished_sessions_and_missing_work_are_reported(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    ids = {s["name"]: s["session_id"] for s in manifest(repo)["sessions"]}
    states = {"phase3-plan1": "working", "phase3-plan2": "failed", "phase3-plan3": "done"}
    fake.scenario(**{ids[name]: state for name, state in states.items()})
    # plan 3 is done, but its worktree was removed by hand: there is no work to take
    wt = repo / f".planfleet/worktrees/{PLAN}/{UI}"
    git(repo, "worktree", "unlock", str(wt))
    git(repo, "worktree", "remove", str(wt))
    found = found_again(repo)
    assert found["phase3-plan1"].result == "working"
    assert f"planfleet agents logs {ids['phase3-plan1']}" in str(found["phase3-plan1"].next_step)
    assert found["phase3-plan2"].result == "session_failed"
    assert "planfleet dispatch --phase 3" in str(found["phase3-plan2"].next_step)
    assert found["phase3-plan3"].result == "no_work"
    assert f"its worktree {wt} is gone" in found["phase3-plan3"].message
    assert ref(repo, f"planfleet/{PLAN}/tasks/{UI}") != ""  # the branch is still there
    assert state(repo)["tasks"][UI]["attempts"] == 0

    run_cli("agents", "stop", ids["phase3-plan1"], cwd=repo)
    assert run_cli("dispatch", "--phase", "3", "--yes", cwd=repo).code == 0  # plans 1 and 2 again
    again = {c.id: c for c in collect.collect(repo, 3)}
    assert len(again) == 5
    assert again[ids["phase3-plan1"]].result == "superseded"
    assert again[ids["phase3-plan2"]].result == "superseded"
    new = {s["name"]: s["session_id"] for s in manifest(repo)["sessions"][3:]}
    assert again[new["phase3-plan1"]].result == "working"
    assert again[new["phase3-plan2"]].result == "working"
    assert again[ids["phase3-plan3"]].result == "no_work"

    run_cli("agents", "stop", new["phase3-plan1"], cwd=repo)
    stopped = {c.id: c for c in collect.collect(repo, 3)}[new["phase3-plan1"]]
    assert stopped.result == "stopped"
    assert f"planfleet agents attach {new['phase3-plan1']}" in str(stopped.next_step)

    res = run_cli("agents", "collect", "--phase", "4", "--json", cwd=repo)
    assert res.code == 3
    assert res.json()["errors"][0]["reason"] == "not_dispatched"


def test_a_running_engine_keeps_collect_off_its_plan(
    repo: Path, fake: FakeBg, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_done_one_blocked(repo, fake, monkeypatch)

    with runinfo.engine_lock(repo, PLAN):
        found = {c.name: c for c in collect.collect(repo, 3)}
    assert found["phase3-plan1"].result == "busy"
    assert "already being run" in found["phase3-plan1"].message
    assert found["phase3-plan3"].result == "blocked"
    assert not StateStore.for_plan(repo, PLAN).exists()


def test_sessions_of_an_older_dispatch_are_found_in_claudes_worktrees(
    tmp_path: Path, fake: FakeBg, run_cli: Run
) -> None:
    """Manifests written before planfleet made the worktrees name none: the work is found."""
    repo = make_repo(tmp_path / "older", FILES)
    sid = fake.start("phase3-plan1", repo)
    entry = {
        "plan": "plan-001-auth.md",
        "path": f"{PLANS}/plan-001-auth.md",
        "name": "phase3-plan1",
    }
    (repo / ".maxvision/phase-3/bg-dispatch.json").write_text(
        json.dumps({"phase": 3, "sessions": [{**entry, "session_id": sid}]}), encoding="utf-8"
    )
    wt = claude_worktree(repo, "phase3-plan1", {"src/auth.py": "def login():\n    return 1\n"})
    fake.scenario(phase3_plan1="done")
    res = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    assert res.code == 0, res.err
    one = sessions(res)["phase3-plan1"]
    assert one["result"] == "merged"
    assert Path(one["worktree"]).resolve() == wt.resolve()
    assert git(repo, "show", f"{INTEGRATION}:src/auth.py") == "def login():\n    return 1\n"


def test_a_manifest_pointing_elsewhere_is_not_followed(
    repo: Path, fake: FakeBg, run_cli: Run
) -> None:
    """The manifest is a file in the user's tree: its worktree must be the task's own."""
    session_work(repo, "phase3-plan1", {"src/auth.py": "def login():\n    return True\n"})
    other = claude_worktree(repo, "decoy", {"src/auth.py": "print('not the session')\n"})
    path = repo / ".maxvision/phase-3/bg-dispatch.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["sessions"][0]["worktree"] = str(other.relative_to(repo))
    path.write_text(json.dumps(data), encoding="utf-8")
    fake.scenario(phase3_plan1="done")
    res = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    assert res.code == 1, res.err
    one = sessions(res)["phase3-plan1"]
    assert one["result"] == "no_work"
    assert "not the worktree and branch of task 3.plan-001-auth" in one["message"]
    assert ref(repo, INTEGRATION) == git(repo, "rev-parse", "main").strip()  # nothing merged


def test_collect_runs_the_repositorys_tests_when_the_plan_names_none(
    tmp_path: Path, fake: FakeBg, run_cli: Run
) -> None:
    """A maxvision plan carries no test command: collect finds the repository's (a unittest
    `tests/` folder) and refuses a session whose work breaks a test that passed before."""
    files = {
        **FILES,
        "src/money.py": "def cents(x):\n    return round(x * 100)\n",
        "tests/__init__.py": "",
        "tests/test_money.py": "import unittest\nimport sys\nsys.path.insert(0, 'src')\n"
        "from money import cents\n\n\nclass T(unittest.TestCase):\n"
        "    def test_cents(self):\n        self.assertEqual(cents(1.25), 125)\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    assert run_cli("dispatch", "--phase", "3", "--yes", cwd=repo).code == 0
    session_work(
        repo,
        "phase3-plan1",
        {
            "src/auth.py": "def login():\n    return True\n",
            "src/money.py": "def cents(x):\n    return 0\n",
        },
    )
    fake.scenario(
        phase3_plan1="done",
        phase3_plan2="blocked:input needed",
        phase3_plan3="blocked:input needed",
    )

    res = run_cli("agents", "collect", "--phase", "3", "--json", cwd=repo)
    one = sessions(res)["phase3-plan1"]
    assert one["result"] == "failed", one
    record = state(repo)["tasks"][AUTH]
    assert record["error"]["type"] == "test_failure", record["error"]
    assert "tests.test_money.T.test_cents" in record["error"]["message"]
    assert "test_cents" in record["feedback"]
    assert "return 0" not in git(repo, "show", f"{INTEGRATION}:src/money.py")
