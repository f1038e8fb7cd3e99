"""`/planfleet:stop PLAN --task ID` in the real Claude Code CLI, on a live detached run."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import git, wait_for
from scripted_model import bash, steps, text
from test_engine_hold import HOLD_PLAN
from test_plugin_e2e import (  # noqa: F401 - fixtures
    Session,
    claude,
    drive,
    engine,
    envelope,
    rendered_skill,
    repo,
)

pytestmark = pytest.mark.e2e


def test_typed_stop_task_holds_the_task_of_a_live_run(
    drive: Callable[..., Session],  # noqa: F811
    repo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    (repo / "plans" / "p.plan.yaml").write_text(textwrap.dedent(HOLD_PLAN))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a plan with a task that waits for a marker file")
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"T": str(marks)}
    started = engine(repo, "run", "p", "--runner", "shell", "--detach", "--yes", env=env)
    assert started["status"] == "ok", started

    def rows() -> dict[str, dict]:
        return {r["task"]: r for r in engine(repo, "status", "p")["data"]["task_rows"]}

    def running() -> bool:
        return bool(engine(repo, "status", "p")["data"]["engine"]["running"])

    try:
        wait_for("money to start", (marks / "money.started").exists)
        script = steps(
            [bash("planfleet stop p --task money --json", "Stop the task")],
            [text("money is held; the rest of the run goes on.")],
        )
        session = drive("/planfleet:stop p --task money", script)
        assert session.code == 0, session.stderr
        shown = rendered_skill(session, "stop")
        assert "# Stop background sessions or a task" in shown
        assert '"plan":"p"' in shown  # the preflight showed the model the runs
        assert session.result["permission_denials"] == []
        wait_for("money to be held", lambda: rows()["money"]["status"] == "held", timeout=30)
        (result,) = session.results_of('"command":"stop"')
        assert envelope(result)["data"]["held"] is True
        wait_for("the engine to end", lambda: not running())
    finally:
        (marks / "go").touch()
        if running():
            engine(repo, "stop", "p")
    got = rows()
    assert (got["money"]["status"], got["money"]["attempts"]) == ("held", 0)
    assert (got["other"]["status"], got["other"]["merged"]) == ("verified", True)
    assert got["after-money"]["status"] == "pending"
    assert engine(repo, "status", "p")["data"]["status"] == "paused"
