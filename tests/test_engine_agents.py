"""The engine with the claude runner against the fake `claude` test double: every way an
agent can behave ends in the right state with the right feedback."""

from __future__ import annotations

import json
from pathlib import Path

from engine_support import (
    FAKE_CLAUDE,
    assert_truthful_end,
    cli,
    leftover_worktrees,
    plan_repo,
    processes_under,
    state_of,
)

TESTS = {
    "src/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/__init__.py": "",
    "tests/test_calc.py": (
        "import unittest\nfrom src.calc import add\n\n\n"
        "class T(unittest.TestCase):\n"
        "    def test_add(self):\n"
        "        self.assertEqual(add(1, 2), 3)\n"
    ),
    "src/__init__.py": "",
}

BEHAVIOURS = {
    "good": "succeed",
    "liar": "lie",
    "empty": "empty_files",
    "deleter": "delete_test",
    "breaker": "break_test",
    "learner": "fail_then_succeed",
    "hanger": "hang",
    "quiet": "silent",
    "crasher": "crash",
    "spender": "budget",
}


def _plan(ids: list[str]) -> str:
    lines = [
        "planfleet: 1",
        "name: p",
        "defaults:",
        "  max_attempts: 2",
        "  test_command: python3 -m unittest discover -s tests -t .",
        "phases:",
        "  - id: one",
        "    tasks:",
    ]
    for tid in ids:
        lines += [
            f"      - id: {tid}",
            f"        title: task {tid}",
            f"        files: {{create: [out/{tid}.txt]}}",
        ]
        if BEHAVIOURS[tid] == "hang":
            # Its own short timeout: a run-wide one would also end agents that are merely
            # slow on a loaded machine.
            lines.append("        timeout: 4")
    return "\n".join(lines) + "\n"


def _scenario(tmp: Path, ids: list[str]) -> Path:
    tasks = {}
    for tid in ids:
        spec = {"behaviour": BEHAVIOURS[tid], "files": {f"out/{tid}.txt": f"{tid}\n"}}
        if tid == "deleter":
            spec["delete"] = ["tests/test_calc.py"]
        if tid == "breaker":
            spec["files"]["src/calc.py"] = "def add(a, b):\n    return a - b\n"
        tasks[tid] = spec
    path = tmp / "scenario.json"
    path.write_text(json.dumps({"tasks": tasks}))
    return path


def _run(tmp: Path, ids: list[str], *extra: str) -> tuple[Path, dict, str]:
    repo = plan_repo(tmp, _plan(ids), TESTS)
    env = {
        "PLANFLEET_CLAUDE": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_SCENARIO": str(_scenario(tmp, ids)),
    }
    res = cli(
        repo,
        "run",
        "plans/p.plan.yaml",
        "--runner",
        "claude",
        "--yes",
        "--max-parallel",
        "10",
        *extra,
        env=env,
        timeout=180,
    )
    return repo, state_of(repo), res.stdout + res.stderr


def test_every_agent_behaviour_ends_in_the_right_state_with_the_right_feedback(
    tmp_path: Path,
) -> None:
    ids = [tid for tid, behaviour in BEHAVIOURS.items() if behaviour != "silent"]
    repo, st, output = _run(tmp_path / "most", ids)
    # The short stall in a run of its own: it would also end agents slow to start or commit.
    quiet_repo, quiet_st, _ = _run(tmp_path / "quiet", ["quiet"], "--stall", "2")
    tasks = {**st["tasks"], "quiet": quiet_st["tasks"]["quiet"]}

    def error(tid: str) -> str:
        return tasks[tid]["error"]["type"]

    assert tasks["good"]["status"] == "verified", output
    assert tasks["good"]["attempts"] == 1
    assert tasks["good"]["cost_usd"] > 0  # read from the result event
    assert tasks["good"]["session_id"]
    assert tasks["learner"]["status"] == "verified"
    assert tasks["learner"]["attempts"] == 2
    for tid in ("liar", "empty", "deleter", "breaker", "hanger", "quiet", "crasher", "spender"):
        assert tasks[tid]["status"] == "abandoned", (tid, tasks[tid])
        assert tasks[tid]["attempts"] == 2
    assert error("liar") in ("no_commit", "false_claim")
    assert error("empty") == "empty_artifact"
    assert error("deleter") == "tests_deleted"
    assert error("breaker") == "test_failure"
    assert error("hanger") == "timeout"
    assert error("quiet") == "stall"
    assert error("crasher") == "crash"
    assert error("spender") == "budget"
    # the feedback the next attempt got names the failing gate and its evidence
    assert "test_calc" in tasks["deleter"]["feedback"]
    assert "FAIL" in tasks["breaker"]["feedback"] or "test_add" in tasks["breaker"]["feedback"]
    assert "timeout" in tasks["hanger"]["feedback"]
    # every agent was stopped: no process, no worktree of a merged task left behind
    assert processes_under(repo) == []
    assert processes_under(quiet_repo) == []
    assert all("good" not in w for w in leftover_worktrees(repo))
    assert st["status"] == "failed"
    assert_truthful_end(repo, default_max=2)
    assert quiet_st["status"] == "failed"


def test_a_usage_limit_pauses_the_run_without_using_up_an_attempt(tmp_path: Path) -> None:
    BEHAVIOURS["limited"] = "usage_limit"
    try:
        repo, st, output = _run(tmp_path, ["limited"])
    finally:
        del BEHAVIOURS["limited"]
    record = st["tasks"]["limited"]
    assert st["status"] == "paused", output
    assert record["status"] == "pending"
    assert record["attempts"] == 0
    assert "resume" in output
    assert processes_under(repo) == []
    assert_truthful_end(repo)


def test_the_run_budget_stops_new_dispatches_before_it_is_crossed(tmp_path: Path) -> None:
    ids = ["good", "good2", "good3"]
    BEHAVIOURS.update(good2="succeed", good3="succeed")
    try:
        repo, st, output = _run(
            tmp_path,
            ids,
            "--max-parallel",
            "1",
            "--budget-usd",
            "0.015",
            "--task-budget-usd",
            "0.01",
        )
    finally:
        del BEHAVIOURS["good2"], BEHAVIOURS["good3"]
    started = [t for t in ids if st["tasks"][t]["attempts"] > 0]
    assert len(started) == 1, output
    assert st["status"] == "paused"
    assert "budget" in output
    assert st["totals"]["cost_usd"] <= 0.015
    assert_truthful_end(repo)
    argv_ok = json.loads((repo / ".planfleet" / "state" / "p.json").read_text())
    assert argv_ok["tasks"][started[0]]["status"] == "verified"
