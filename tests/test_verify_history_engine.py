"""History gates inside the engine and the CLI: retried, abandoned, never merged; the phase
gate catches what two tasks that pass alone do together; `planfleet verify` runs them too."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

from conftest import commit_file, git, make_repo
from engine_support import cli, integration_files, plan_repo, state_of
from history_support import FILES, MONEY, MONEY_ROUNDS_UP, PYTEST, TEST_MONEY, UNITTEST
from planfleet.engine import phasegate
from planfleet.plan import model
from planfleet.verify import history as verify_history

# Each test's assertions, rewritten as a table that leaves out the case that notices
# rounding up: with correct code the base's tests still pass, so this task alone is fine.
TABLE_TESTS = """\
import unittest
from decimal import Decimal

from shop.money import round_cents

CASES = [("0.125", "0.13"), ("3", "3.00")]


class RoundCentsTest(unittest.TestCase):
    def test_halves_round_up(self):
        for value, expected in CASES:
            self.assertEqual(round_cents(Decimal(value)), Decimal(expected))

    def test_whole_amounts_stay(self):
        self.assertEqual(round_cents(Decimal("3")), Decimal("3.00"))
"""


def plan(command: str, tasks: str) -> str:
    head = f"""\
        planfleet: 1
        name: p
        defaults:
          test_command: {json.dumps(command)}
        phases:
          - id: money
            sequential: true
            tasks:
        """
    return textwrap.dedent(head) + textwrap.indent(textwrap.dedent(tasks), " " * 6)


def with_sources(tmp: Path) -> Path:
    """Return a folder with the files the plan's shell commands copy in."""
    src = tmp / "sources"
    src.mkdir()
    (src / "money_up.py").write_text(MONEY_ROUNDS_UP)
    (src / "table.py").write_text(TABLE_TESTS)
    weakened = TEST_MONEY.replace(
        '        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))\n', ""
    )
    (src / "weakened.py").write_text(weakened)
    return src


def test_a_weakened_test_is_retried_with_feedback_then_abandoned_and_never_merged(
    tmp_path: Path,
) -> None:
    tasks = """\
        - id: weak
          title: round up and hide it
          files: {modify: [shop/money.py, tests/test_money.py]}
          commands:
            - cp "$T/money_up.py" shop/money.py
            - cp "$T/weakened.py" tests/test_money.py
        """
    repo = plan_repo(tmp_path, plan(PYTEST, tasks), FILES)
    src = with_sources(tmp_path)
    res = cli(
        repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--max-attempts", "2",
        env={"T": str(src)}, timeout=600,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["weak"]
    assert record["status"] == "abandoned"
    assert record["attempts"] == 2
    assert record["error"]["type"] == "weakened_test"
    assert "tests/test_money.py:10" in record["feedback"]
    assert "test_halves_round_up" in record["feedback"]
    assert integration_files(repo)["shop/money.py"] == MONEY  # never merged
    # `planfleet verify` runs the same gates on the task's branch
    res = cli(repo, "verify", "plans/p.plan.yaml", "weak", "--json", timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["error"]["type"] == "weakened_test"
    gates = {g["name"]: g for g in data["gates"]}
    assert gates["tests"]["ok"]
    assert not gates["old_tests"]["ok"]
    assert gates["old_tests"]["error_type"] == "weakened_test"


def test_the_phase_gate_catches_a_test_weakened_by_one_task_and_broken_by_another(
    tmp_path: Path,
) -> None:
    tasks = """\
        - id: table
          title: table-driven rounding tests
          files: {modify: [tests/test_money.py]}
          commands: ['cp "$T/table.py" tests/test_money.py']
        - id: roundup
          title: round up
          files: {modify: [shop/money.py]}
          commands: ['cp "$T/money_up.py" shop/money.py']
        """
    repo = plan_repo(tmp_path, plan(UNITTEST, tasks), FILES)
    src = with_sources(tmp_path)
    res = cli(
        repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--max-attempts", "1",
        env={"T": str(src)}, timeout=600,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    tasks_state = state_of(repo)["tasks"]
    # each task alone passes every gate and is merged
    assert tasks_state["table"]["status"] == "verified"
    assert tasks_state["roundup"]["status"] == "verified"
    gate = tasks_state["money:gate"]
    assert gate["status"] == "abandoned"
    assert gate["error"]["type"] == "weakened_test"
    assert "tests.test_money.RoundCentsTest.test_halves_round_up" in gate["error"]["message"]
    assert "tests/test_money.py:10" in gate["error"]["message"]
    record = json.loads((repo / ".planfleet/runs/p/verify/money.gate.json").read_text())
    assert [c["check"] for c in record["checks"]] == ["removed_tests", "old_tests"]
    assert [c["ok"] for c in record["checks"]] == [True, False]


def test_a_phase_gate_with_legitimate_changes_passes(tmp_path: Path) -> None:
    tasks = """\
        - id: table
          title: table-driven rounding tests
          files: {modify: [tests/test_money.py]}
          commands: ['cp "$T/table.py" tests/test_money.py']
        """
    repo = plan_repo(tmp_path, plan(PYTEST, tasks), FILES)
    res = cli(
        repo, "run", "plans/p.plan.yaml", "--runner", "shell",
        env={"T": str(with_sources(tmp_path))}, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads((repo / ".planfleet/runs/p/verify/money.gate.json").read_text())
    assert record["ok"]
    assert [c["ok"] for c in record["checks"]] == [True, True]


class StopsAfterTheCommands(threading.Event):
    """A stop event that is set once the gate's own commands have run (a pause mid-gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > 1


def test_a_phase_gate_paused_before_its_history_checks_is_stopped_not_passed(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    base = git(repo, "rev-parse", "HEAD").strip()
    head = commit_file(repo, "tests/test_text.py", "")
    phase = model.Phase("money", "money", model.Source("p"), gate_commands=("true",))
    history = verify_history.History(base, PYTEST)
    out = phasegate.run_gate(repo, "p", phase, head, 60, StopsAfterTheCommands(), history)
    assert out.stopped
    assert not out.ok
