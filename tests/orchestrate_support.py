"""Builders for orchestrate/phase-runner tests: the calc fixture repository, fake claude
scenarios for every pipeline step, and readers of what the runs recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import FIXTURES, git

FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude" / "claude"
PLAN = "calc-tools"
PLAN_DIR = f"plans/{PLAN}"
TEST_CMD = "python3 -m unittest discover -s tests -t ."
SHEET = (
    "# sqlite\n\nUse the sqlite3 module of the standard library.\n\n## Pitfalls\n\n"
    "- connections are not shared between threads\n- call commit() after writes\n"
)
DIV_FIXED = (
    "def div(a, b):\n    if b == 0:\n        raise ValueError('division by zero')\n"
    "    return a / b\n"
)
MUL_DOC = '"""Multiplication."""\n\n\ndef mul(a, b):\n    return a * b\n'


def fixture_repo(tmp: Path) -> Path:
    """Return a fresh git repository holding the calc project and its plan directory."""
    repo = tmp / "repo"
    shutil.copytree(FIXTURES / "orchestrate" / "repo", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def step(artifact: Any = None, **extra: Any) -> dict[str, Any]:
    """Return a fake claude spec for one pipeline step (no artifact when None)."""
    spec: dict[str, Any] = {"behaviour": "step", **extra}
    if artifact is not None:
        spec["artifact"] = artifact
    return spec


def make_test_report(phase: str, status: str = "pass") -> dict[str, Any]:
    return {
        "version": 1,
        "phase": phase,
        "step": "test",
        "status": status,
        "summary": "ran them",
        "commands": [{"command": TEST_CMD, "exit_code": 0 if status == "pass" else 1}],
    }


def finding(fid: str, severity: str, file: str, line: int, message: str) -> dict[str, Any]:
    return {
        "id": fid,
        "severity": severity,
        "file": file,
        "line": line,
        "message": message,
        "status": "open",
    }


def review(phase: str, *findings: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "phase": phase,
        "step": "review",
        "summary": "reviewed",
        "findings": list(findings),
    }


def fix_report(phase: str, pass_no: int, *results: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "version": 1,
        "phase": phase,
        "step": f"fix-{pass_no}",
        "pass": pass_no,
        "summary": f"pass {pass_no}",
        "results": [{"id": i, "status": s, "note": n} for i, s, n in results],
    }


def commit_step(phase: str) -> dict[str, Any]:
    art = {
        "version": 1,
        "phase": phase,
        "step": "commit",
        "commit": "{HEAD}",
        "message": f"phase {phase}",
        "summary": "committed",
    }
    return step(art, commit=f"phase {phase}: done", allow_empty=True)


def phase1_findings() -> list[dict[str, Any]]:
    return [
        finding("R1", "P0", "calc/div.py", 2, "dividing by zero is not handled"),
        finding("R2", "P1", "calc/div.py", 1, "no ValueError as the acceptance asks"),
        finding("R3", "P3", "calc/mul.py", 1, "module has no docstring"),
    ]


def happy() -> dict[str, Any]:
    """Return a scenario in which every step of both phases does its job."""
    files = {
        "1.1": {"calc/mul.py": "def mul(a, b):\n    return a * b\n"},
        "1.2": {"calc/div.py": "def div(a, b):\n    return a / b\n"},
        "2.1": {"calc/cli.py": "import sys\n\nprint(sys.argv)\n"},
    }
    tasks: dict[str, Any] = {t: {"behaviour": "succeed", "files": f} for t, f in files.items()}
    tasks["plan-review"] = step(
        {
            "version": 1,
            "step": "plan-review",
            "summary": "well sized",
            "revised": False,
            "issues": [{"kind": "gap", "task": "1.2", "message": "no test for zero"}],
        }
    )
    tasks["research-sqlite"] = step(
        {
            "version": 1,
            "step": "research",
            "technology": "sqlite",
            "summary": "sqlite3 basics",
            "sources": ["https://sqlite.org/docs.html"],
            "cheat_sheet": "{cheat sheet path}",
        },
        write={"cheat sheet": SHEET},
    )
    for phase in ("1", "2"):
        tasks[f"p{phase}-test"] = step(make_test_report(phase))
        tasks[f"p{phase}-commit"] = commit_step(phase)
    tasks["p1-review"] = step(review("1", *phase1_findings()))
    tasks["p1-fix-1"] = step(
        fix_report("1", 1, ("R1", "fixed", "raise"), ("R2", "fixed", "ValueError")),
        files={"calc/div.py": DIV_FIXED},
        commit="fix R1 R2",
    )
    tasks["p1-fix-3"] = step(
        fix_report("1", 3, ("R3", "fixed", "docstring")),
        files={"calc/mul.py": MUL_DOC},
        commit="fix R3",
    )
    tasks["p2-review"] = step(review("2"))
    return tasks


def write_scenario(tmp: Path, tasks: dict[str, Any]) -> Path:
    path = tmp / "scenario.json"
    path.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    return path


def fake_env(tmp: Path, tasks: dict[str, Any]) -> dict[str, str]:
    """Return the environment that points planfleet at the fake claude with ``tasks``."""
    return {
        "PLANFLEET_CLAUDE": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_SCENARIO": str(write_scenario(tmp, tasks)),
        "FAKE_CLAUDE_ARGV_LOG": str(tmp / "argv.jsonl"),
    }


def invoked(tmp: Path) -> list[str]:
    """Return the PLANFLEET_TASK of every fake claude run so far, in order."""
    log = tmp / "argv.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["task"] for line in log.read_text().splitlines() if line.strip()]


def pipeline_doc(repo: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (repo / ".planfleet" / "runs" / PLAN / "pipeline.json").read_text()
    )
    return data


def stage_statuses(repo: Path) -> dict[str, str]:
    return {k: v["status"] for k, v in pipeline_doc(repo)["stages"].items()}


def step_statuses(repo: Path, phase: str) -> dict[str, str]:
    return {k: v["status"] for k, v in pipeline_doc(repo)["phases"][phase]["steps"].items()}


def integration_file(repo: Path, path: str) -> str:
    return git(repo, "show", f"planfleet/{PLAN}/integration:{path}")
