"""Red/green proof through the engine: a real run, the fake claude, the shop's tests.

The VAT task's agent writes the module and a test; the test either checks the module or
asserts nothing that the base's code would fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine_support import FAKE_CLAUDE, cli, plan_repo, state_of
from history_support import FILES, PYTEST, WORK
from test_verify_vacuous import TAX_ALWAYS_TRUE

PLAN = """\
    planfleet: 1
    name: p
    defaults: {max_attempts: MAX, test_command: "COMMAND"STRICT}
    phases:
      - id: one
        tasks:
          - id: vat
            title: VAT
            files: {create: [shop/tax.py, tests/test_tax.py]}
"""
SMOKE_ID = "tests/test_tax.py::VatSmokeTest::test_vat_module_exists"
VACUOUS = {**WORK, "tests/test_tax.py": TAX_ALWAYS_TRUE}


def run(
    tmp_path: Path,
    spec: dict[str, Any],
    *flags: str,
    max_attempts: int = 1,
    plan_strict: bool = False,
) -> tuple[Path, Any]:
    plan = (
        PLAN.replace("MAX", str(max_attempts))
        .replace("COMMAND", PYTEST.replace('"', '\\"'))
        .replace("STRICT", ", strict_tests: true" if plan_strict else "")
    )
    repo = plan_repo(tmp_path, plan, FILES)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"tasks": {"vat": spec}}))
    env = {"PLANFLEET_CLAUDE": str(FAKE_CLAUDE), "FAKE_CLAUDE_SCENARIO": str(scenario)}
    argv = ["run", "plans/p.plan.yaml", "--runner", "claude", "--yes", *flags]
    return repo, cli(repo, *argv, env=env, timeout=300)


def test_a_vacuous_test_is_merged_with_a_warning_shown_in_status(tmp_path: Path) -> None:
    repo, res = run(tmp_path, {"files": VACUOUS})
    assert res.returncode == 0, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["vat"]
    assert record["status"] in ("verified", "merged")
    evidence = json.loads(Path(record["verification"]).read_text())
    assert evidence["vacuous"] == {"tests": [SMOKE_ID], "files": ["tests/test_tax.py"]}
    line = f"1 test(s) pass without its code: {SMOKE_ID}"
    assert f"vat: {line}" in res.stdout  # the run's summary
    status = cli(repo, "status", "p")
    assert f"vat: {line}" in status.stdout
    rows = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]["task_rows"]
    assert rows[0]["vacuous"]["tests"] == [SMOKE_ID]


@pytest.mark.parametrize("how", ["--strict-tests", "defaults.strict_tests"])
def test_strict_tests_sends_the_test_names_back_and_the_real_test_passes(
    tmp_path: Path, how: str
) -> None:
    spec = {"behaviour": "wrong_first", "wrong": VACUOUS, "files": WORK, "needs_feedback": SMOKE_ID}
    flags = ("--strict-tests",) if how == "--strict-tests" else ()
    repo, res = run(tmp_path, spec, *flags, max_attempts=2, plan_strict=not flags)
    assert res.returncode == 0, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["vat"]
    assert record["status"] in ("verified", "merged")
    assert record["attempts"] == 2
    first = json.loads((repo / ".planfleet/runs/p/verify/vat.1.json").read_text(encoding="utf-8"))
    assert first["ok"] is False
    assert first["error"]["type"] == "vacuous_test"
    assert SMOKE_ID in first["feedback"]
    second = json.loads(Path(record["verification"]).read_text(encoding="utf-8"))
    assert second["ok"] is True
    assert "vacuous" not in second
