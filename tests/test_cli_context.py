"""`planfleet context`: a skill's whole preflight from one call, each part as its command prints
it alone, a failing part reported in its place, never failing the call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bg_support import install_fake, phase_repo
from conftest import CliResult
from test_plugin_e2e import example_repo

Run = Callable[..., CliResult]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return example_repo(tmp_path / "textstats")


def alone(run_cli: Run, repo: Path, *argv: str) -> dict[str, Any]:
    """Return the envelope ``planfleet <argv> --json`` prints by itself."""
    found: dict[str, Any] = run_cli(*argv, "--json", cwd=repo).json()
    return found


def part(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one part of a context without what context adds to it."""
    found = dict(data[name])
    found.pop("exit_code")
    found.pop("warnings")
    return found


def test_every_part_is_what_its_command_prints_alone(repo: Path, run_cli: Run) -> None:
    res = run_cli(
        "context",
        "--preflight",
        "authoring",
        "--plans",
        "--runs",
        "--plan=textstats",
        "--run=",
        "--json",
        cwd=repo,
    )
    assert res.code == 0, res.err
    env = res.json()
    assert (env["command"], env["status"]) == ("context", "ok")
    data = env["data"]
    assert part(data, "plan") == alone(run_cli, repo, "plan", "show", "textstats")
    assert part(data, "plans") == alone(run_cli, repo, "plan", "list")
    assert part(data, "runs") == alone(run_cli, repo, "status")
    expected = alone(run_cli, repo, "preflight", "--no-claude", "--allow-dirty")
    assert part(data, "preflight") == expected
    assert data["plan"]["data"]["first_open_task"] == "tokenizer"
    assert data["plan"]["exit_code"] == 0
    # an empty value (an argument the user did not give) leaves its part out
    assert (data["run"], data["agents"], data["dispatch"]) == (None, None, None)
    assert data["environment"]["installed_now"] is False
    assert data["environment"]["planfleet"]


def test_a_failing_part_is_reported_in_its_place(repo: Path, run_cli: Run) -> None:
    res = run_cli(
        "context", "--plan=no-such-plan", "--run=textstats", "--plans", "--json", cwd=repo
    )
    assert res.code == 0, res.err  # a `!` preflight that exits non-zero aborts the skill
    data = res.json()["data"]
    assert data["plan"]["status"] == "error"
    assert data["plan"]["exit_code"] == 2
    assert "no-such-plan" in data["plan"]["errors"][0]["message"]
    assert part(data, "run") == alone(run_cli, repo, "status", "textstats")
    assert data["plans"]["status"] == "ok"
    assert run_cli("context", "--bogus", "--json", cwd=repo).code == 2  # its own bad usage
    human = run_cli("context", "--plans", "--plan=no-such-plan", cwd=repo)
    assert human.code == 0
    assert "plans: ok (exit 0)" in human.out
    assert "plan: error (exit 2)" in human.out


def test_background_parts_and_the_repository_option(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = install_fake(tmp_path, monkeypatch)
    repo = phase_repo(tmp_path / "phases")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_cli(
        "context",
        "-C",
        repo,
        "--preflight",
        "background",
        "--dispatch=3",
        "--agents",
        "--json",
        cwd=elsewhere,
    )
    assert res.code == 0, res.err
    data = res.json()["data"]
    assert data["preflight"]["status"] == "ok", data["preflight"]
    assert data["dispatch"]["data"]["status"] == "dry_run"
    assert len(data["dispatch"]["data"]["plans"]) == 3
    assert data["agents"]["data"]["sessions"] == []
    assert fake.calls("--bg") == []  # a preview starts nothing
    # a warning the part printed (on stderr) comes with it
    (repo / ".planfleet/state").mkdir(parents=True)
    (repo / ".planfleet/state/broken.json").write_text("{not json", encoding="utf-8")
    data = run_cli("context", "--agents", "--json", cwd=repo).json()["data"]
    assert any("broken.json" in w for w in data["agents"]["warnings"])


def test_an_install_is_only_reported_by_the_process_that_made_it(
    repo: Path, tmp_path: Path
) -> None:
    """The launcher sets PLANFLEET_INSTALLED_NOW="<pid> <venv>" and then becomes that pid."""

    def context(value: str) -> dict[str, Any]:
        code = (
            "import os, sys; from planfleet.cli import app; "
            f"os.environ['PLANFLEET_INSTALLED_NOW'] = {value!r}.replace('PID', str(os.getpid())); "
            "sys.exit(app.main(['context', '--json']))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        ).stdout
        environment: dict[str, Any] = json.loads(out)["data"]["environment"]
        return environment

    venv = str(tmp_path / "venv")
    found = context(f"PID {venv}")
    assert (found["installed_now"], found["installed_into"]) == (True, venv)
    assert context(f"1 {venv}")["installed_now"] is False  # inherited from another process
    assert context("")["installed_now"] is False
