"""Test helpers for background dispatch: a phase of .maxvision plans and the fake bg CLI."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import make_repo

FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude_bg" / "claude"
PLANS = ".maxvision/phase-3/plans"

PHASE_3 = {
    f"{PLANS}/plan-001-auth.md": "---\nstatus: pending\n---\n# Auth\n\nAdd login.\n",
    f"{PLANS}/plan-002-db.md": "---\nstatus: completed\n---\n# Database\n",
    f"{PLANS}/plan-003-api.md": "# API\n\nNo frontmatter: open.\n",
    f"{PLANS}/plan-004-ui.md": "---\nstatus: blocked\n---\n# UI\n",
    f"{PLANS}/plan-005-docs.md": "---\ntitle: Docs\n---\n# Docs\n",
}


def phase_repo(path: Path, extra: dict[str, str] | None = None) -> Path:
    """Return a committed repository holding the plans of phase 3 (and ``extra`` files)."""
    return make_repo(path, {"README.md": "# app\n", **PHASE_3, **(extra or {})})


@dataclass
class FakeBg:
    """The fake background CLI of one test: where it keeps sessions, and what it was asked."""

    home: Path
    monkeypatch: pytest.MonkeyPatch

    def call_records(self, verb: str | None = None) -> list[dict[str, Any]]:
        """Return every call as {argv, cwd} (only those starting with ``verb`` if given)."""
        log = self.home / "calls.jsonl"
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        found = [json.loads(line) for line in lines]
        return [c for c in found if verb is None or c["argv"][:1] == [verb]]

    def calls(self, verb: str | None = None) -> list[list[str]]:
        """Return the argv of every call (only those starting with ``verb`` if given)."""
        return [c["argv"] for c in self.call_records(verb)]

    def scenario(self, **states: str) -> None:
        """Set what the fake reports per session name, e.g. phase3_plan1="blocked:x"."""
        text = ",".join(f"{k.replace('_', '-')}={v}" for k, v in states.items())
        self.monkeypatch.setenv("FAKE_CLAUDE_BG_SCENARIO", text)

    def start(self, name: str, cwd: Path) -> str:
        """Start a session directly with the fake (not through planfleet); return its id."""
        out = subprocess.run(
            [str(FAKE_CLAUDE), "--bg", "--name", name, "hello"],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split("backgrounded · ")[1][:8]

    def forget(self, session_id: str) -> None:
        """Remove a session from the fake, as `claude rm` would."""
        (self.home / "sessions" / f"{session_id}.json").unlink()


def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBg:
    """Point planfleet at the fake bg CLI with a fresh session folder."""
    home = tmp_path / "fake-claude-home"
    home.mkdir()
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(FAKE_CLAUDE))
    monkeypatch.setenv("FAKE_CLAUDE_BG_HOME", str(home))
    monkeypatch.delenv("FAKE_CLAUDE_BG_SCENARIO", raising=False)
    monkeypatch.delenv("FAKE_CLAUDE_VERSION", raising=False)
    assert os.access(FAKE_CLAUDE, os.X_OK)
    return FakeBg(home, monkeypatch)


def manifest(repo: Path, phase: int = 3) -> dict[str, Any]:
    """Return the dispatch manifest of ``phase``."""
    path = repo / f".maxvision/phase-{phase}/bg-dispatch.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
