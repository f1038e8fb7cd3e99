"""Start-up cost: the commands skills call most import only what they use.

Each call of `bin/planfleet` from a skill, a background session or the engine pays for its
imports, so `--version` and `state show` must not load jsonschema, rich or the plan readers.
The imports are read from `python -X importtime`, in a real subprocess through bin/planfleet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO_ROOT
from planfleet import schemas

LAUNCHER = REPO_ROOT / "bin" / "planfleet"
EXAMPLE = REPO_ROOT / "examples/textstats/repo/plans/textstats.plan.yaml"
HEAVY = ("jsonschema", "rich", "planfleet.plan.formats", "planfleet.runners", "planfleet.git")


def imported(args: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run bin/planfleet with this Python under -X importtime; return the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANFLEET_")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(LAUNCHER), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name)
    return modules, result


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_version_is_answered_before_any_parser_or_command_is_loaded(tmp_path: Path) -> None:
    modules, result = imported(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("planfleet ")
    assert "planfleet.cli.app" in modules  # the measurement saw the engine's imports
    assert heavy_in(modules) == []
    assert not any(m.startswith("planfleet.cli.commands") for m in modules)


def test_state_show_reads_state_without_the_plan_readers_or_jsonschema(
    git_repo: Path, run_cli: object
) -> None:
    shutil.copy(EXAMPLE, git_repo / "plan.yaml")
    modules, result = imported(["state", "init", "demo", "--from", "plan.yaml"], git_repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "planfleet.plan.formats" in modules  # init reads the plan: the check can fail
    modules, result = imported(["state", "show", "demo", "--json"], git_repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"counts"' in result.stdout
    assert [m for m in heavy_in(modules) if not m.startswith("planfleet.git")] == []


@pytest.mark.parametrize("name", ["state", "plan"])
def test_every_shipped_schema_is_a_valid_json_schema(name: str) -> None:
    schema = schemas.load(name)
    jsonschema.validators.validator_for(schema).check_schema(schema)
