"""The model that ran an attempt, against the one asked for: evidence, and --strict-model.

Real repositories, the engine as a process and the fake claude, whose result names the
models that ran in ``modelUsage``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine_support import FAKE_CLAUDE, cli, plan_repo, state_of

PLAN = """\
    planfleet: 1
    name: p
    defaults: {max_attempts: 1}
    phases:
      - id: one
        tasks:
          - id: calc
            title: calc
            files: {create: [out/calc.txt]}
"""
OPUS = "claude-opus-4-1-20250805"
SONNET = "claude-sonnet-4-5-20250929"


def run(tmp_path: Path, model_usage: Any, *flags: str, plan: str = PLAN) -> tuple[Path, Any]:
    repo = plan_repo(tmp_path, plan if "--strict-model" not in flags else PLAN)
    scenario = tmp_path / "scenario.json"
    spec = {"files": {"out/calc.txt": "calc\n"}, "model_usage": model_usage}
    scenario.write_text(json.dumps({"tasks": {"calc": spec}}))
    env = {"PLANFLEET_CLAUDE": str(FAKE_CLAUDE), "FAKE_CLAUDE_SCENARIO": str(scenario)}
    argv = ["run", "plans/p.plan.yaml", "--runner", "claude", "--yes", *flags]
    return repo, cli(repo, *argv, env=env)


def evidence(repo: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        Path(state_of(repo)["tasks"]["calc"]["verification"]).read_text()
    )
    return data


def usage(model_id: str, cost: float = 0.02) -> dict[str, Any]:
    return {model_id: {"inputTokens": 100, "outputTokens": 50, "costUSD": cost}}


def test_another_model_is_a_warning_in_the_evidence(tmp_path: Path) -> None:
    repo, res = run(tmp_path, usage(OPUS), "--model", "sonnet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert state_of(repo)["tasks"]["calc"]["status"] in ("verified", "merged")
    rec = evidence(repo)
    assert rec["ok"] is True
    assert rec["models"] == {OPUS: 0.02}
    assert rec["model_mismatch"] == {"requested": "sonnet", "ran": [OPUS]}
    line = f"model 'sonnet' was requested but {OPUS} ran"
    assert line in rec["warnings"]
    rows = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]["task_rows"]
    assert rows[0]["model_mismatch"] == {"requested": "sonnet", "ran": [OPUS]}
    assert line in cli(repo, "status", "p").stdout


@pytest.mark.parametrize("how", ["--strict-model", "defaults.strict_model"])
def test_strict_model_fails_the_attempt(tmp_path: Path, how: str) -> None:
    plan = PLAN.replace("{max_attempts: 1}", "{max_attempts: 1, strict_model: true}")
    flags = ("--strict-model",) if how == "--strict-model" else ()
    repo, res = run(tmp_path, usage(OPUS), "--model", "sonnet", *flags, plan=plan)
    assert res.returncode == 1, res.stdout + res.stderr
    record = state_of(repo)["tasks"]["calc"]
    assert record["status"] == "abandoned"
    assert record["error"]["type"] == "model_mismatch"
    assert record["error"]["message"] == f"model 'sonnet' was requested but {OPUS} ran"
    assert "--strict-model" in record["feedback"]
    assert f"model 'sonnet' was requested but {OPUS} ran" in record["feedback"]
    rec = evidence(repo)
    assert rec["ok"] is False
    assert rec["model_mismatch"] == {"requested": "sonnet", "ran": [OPUS]}


def test_the_model_asked_for_is_no_mismatch(tmp_path: Path) -> None:
    for i, (requested, ran) in enumerate(
        [("sonnet", SONNET), ("claude-sonnet-4-5", SONNET), (SONNET, SONNET)]
    ):
        where = tmp_path / str(i)
        where.mkdir()
        repo, res = run(
            where,
            {**usage(ran), **usage("claude-haiku-4-5", 0.01)},
            "--model",
            requested,
            "--strict-model",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        rec = evidence(repo)
        assert rec["ok"] is True
        assert "model_mismatch" not in rec
        assert rec["models"] == {ran: 0.02, "claude-haiku-4-5": 0.01}


def test_unknown_models_are_not_checked(tmp_path: Path) -> None:
    repo, res = run(tmp_path, None, "--model", "sonnet", "--strict-model")
    assert res.returncode == 0, res.stdout + res.stderr
    rec = evidence(repo)
    assert "models" not in rec
    assert "model_mismatch" not in rec
