"""The history gates with the real Claude Code CLI: `planfleet run --runner claude` starts
`claude -p` 2.1.328 with this plugin's task executor, the model is scripted (reference §6),
and the agent weakens a test or deletes one, as a real agent might."""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import git, make_repo
from history_support import FILES, MONEY, MONEY_ROUNDS_UP, TEST_MONEY, WITHOUT_EMPTY, WORK
from scripted_model import (
    ScriptedModel,
    all_text,
    bash,
    block_text,
    blocks_of,
    system_text,
    text,
    tool_use,
)
from test_plugin_e2e import ROOT, claude, claude_env, everything, run_group, stop_leftovers

__all__ = ["claude"]  # the fixture, imported for the tests below
pytestmark = pytest.mark.e2e

PY = shlex.quote(sys.executable)
DONE = {"status": "done", "summary": "VAT prices added", "tests_run": []}
WEAKENED = TEST_MONEY.replace(
    '        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))\n', ""
)


def shop_repo(tmp: Path, test_command: str) -> Path:
    plan = textwrap.dedent(
        f"""\
        planfleet: 1
        name: shop
        defaults:
          test_command: {json.dumps(test_command)}
        phases:
          - id: pricing
            tasks:
              - id: vat
                title: Add prices with VAT
                files: {{create: [shop/tax.py, tests/test_tax.py], modify: [shop/money.py]}}
        """
    )
    return make_repo(tmp / "shop", {**FILES, "plans/shop.plan.yaml": plan})


def prompt_turn(body: dict[str, Any]) -> tuple[str, int]:
    """Return the newest task prompt the agent got and how many answers it gave since."""
    messages = body.get("messages", [])
    for i in range(len(messages) - 1, -1, -1):
        said = "\n".join(block_text(b) for b in blocks_of(messages[i]))
        if messages[i].get("role") == "user" and "# Task vat" in said:
            return said, sum(1 for later in messages[i:] if later.get("role") == "assistant")
    return "", 0


def agent(files_by_attempt: list[dict[str, str | None]]) -> Any:
    """Return a script: the task executor writes attempt k's files, commits, reports done."""

    def script(body: dict[str, Any]) -> list[dict[str, Any]]:
        if "You are planfleet's task executor" not in system_text(body):
            return [text("unexpected conversation")]
        where = re.search(r"Primary working directory: (\S+)", everything(body))
        assert where, "the agent's system prompt names its worktree"
        prompt, k = prompt_turn(body)
        attempt = 1 if "Attempt 1 failed" not in prompt else 2
        files = files_by_attempt[attempt - 1]
        writes = [
            tool_use("Write", {"file_path": f"{where[1]}/{f}", "content": c})
            for f, c in files.items()
            if c is not None
        ]
        removals = [f for f, c in files.items() if c is None]
        plan = [
            writes or [bash("true", "nothing to write")],
            [bash(f"git rm -q {' '.join(removals)}", "Remove")] if removals else [],
            [bash("git add -A", "Stage the task's files")],
            [bash(f"git commit -m 'vat: attempt {attempt}'", "Commit the task")],
            [tool_use("StructuredOutput", {**DONE, "files_changed": sorted(files)})],
        ]
        plan = [p for p in plan if p]
        return plan[k] if k < len(plan) else [text("done")]

    return script


def run_engine(
    claude_path: str, repo: Path, tmp: Path, script: Any, attempts: int
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    argv = [str(ROOT / "bin" / "planfleet"), "run", "plans/shop.plan.yaml", "--runner", "claude"]
    argv += ["--yes"]
    argv += ["--max-attempts", str(attempts), "--json"]
    try:
        with ScriptedModel(script) as model:
            env = claude_env(claude_path, tmp, model.url)
            code, stdout, stderr = run_group(argv, cwd=repo, env=env, timeout=600)
            assert not model.errors, model.errors
            requests = list(model.requests)
    finally:
        stop_leftovers(tmp)
    out = json.loads(stdout)
    (row,) = [t for t in out["data"]["tasks"] if t["task"] == "vat"]
    row["exit_code"] = code
    return row, requests, stderr


def test_a_weakened_test_is_sent_back_with_its_assertion_and_fixed(
    claude: str, tmp_path: Path
) -> None:
    repo = shop_repo(tmp_path, f"{PY} -m pytest -q -p no:cacheprovider")
    first = {**WORK, "shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": WEAKENED}
    # A retry starts from a clean branch (the task's base): the second attempt does the work
    # again, this time without touching the old code or its test.
    second = dict(WORK)
    row, requests, stderr = run_engine(claude, repo, tmp_path, agent([first, second]), 2)
    assert row["status"] == "verified", (row, stderr)
    assert row["attempts"] == 2
    assert row["exit_code"] == 0
    # the second attempt was told which test and which assertion the first one weakened
    retry = [r for r in requests if "Attempt 1 failed" in all_text(r)]
    assert retry, "no second attempt reached the model"
    told = all_text(retry[0])
    assert "Classification: weakened_test" in told
    assert "tests/test_money.py::RoundCentsTest::test_halves_round_up" in told
    assert "tests/test_money.py:10" in told
    merged = "planfleet/shop/integration"
    assert git(repo, "show", f"{merged}:shop/money.py") == MONEY
    assert git(repo, "show", f"{merged}:tests/test_money.py") == TEST_MONEY
    assert "with_vat" in git(repo, "show", f"{merged}:shop/tax.py")


def test_a_deleted_unittest_method_is_not_merged(claude: str, tmp_path: Path) -> None:
    repo = shop_repo(tmp_path, f"{PY} -m unittest discover -s tests -t .")
    work = {**WORK, "tests/test_text.py": WITHOUT_EMPTY}
    row, _, stderr = run_engine(claude, repo, tmp_path, agent([work]), 1)
    assert row["status"] == "abandoned", (row, stderr)
    assert row["exit_code"] == 1
    assert row["error"]["type"] == "tests_deleted"
    assert "tests.test_text.SlugifyTest.test_slugify_empty" in row["error"]["message"]
    merged = "planfleet/shop/integration"
    assert "test_slugify_empty" in git(repo, "show", f"{merged}:tests/test_text.py")
