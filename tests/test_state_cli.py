"""`planfleet state ...`: the in-session primitives, in-process through the real parser."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, CliResult
from planfleet.errors import ExitCode
from planfleet.plan import formats
from state_support import make_plan, read_valid

EXAMPLE = REPO_ROOT / "examples/textstats/repo/plans/textstats.plan.yaml"
Run = Callable[..., CliResult]


@pytest.fixture
def repo(git_repo: Path, run_cli: Run) -> Path:
    """A repository with the bundled example plan and a state initialised from it."""
    shutil.copy(EXAMPLE, git_repo / "plan.yaml")
    result = run_cli("state", "init", "demo", "--from", "plan.yaml", "--json", cwd=git_repo)
    assert result.code == 0, result.err
    return git_repo


def _ok(result: CliResult) -> dict[str, Any]:
    assert result.code == 0, result.err
    envelope: dict[str, Any] = result.json()
    assert envelope["status"] == "ok"
    assert envelope["errors"] == []
    data: dict[str, Any] = envelope["data"]
    return data


def _refused(result: CliResult, reason: str) -> dict[str, Any]:
    assert result.code == ExitCode.REFUSED, result.err
    error: dict[str, Any] = result.json()["errors"][0]
    assert error["reason"] == reason
    return error


def test_init_creates_the_state_from_a_plan_file(repo: Path) -> None:
    doc = read_valid(repo / ".planfleet/state/demo.json")
    assert doc["plan"]["name"] == "demo"
    assert doc["order"][:3] == ["tokenizer", "counter", "core:gate"]
    assert doc["tasks"]["report"]["depends_on"] == ["core:gate"]
    assert (repo / ".planfleet/README.md").exists()
    assert "/.planfleet/" in (repo / ".git/info/exclude").read_text()


def test_init_twice_is_refused_unless_forced(repo: Path, run_cli: Run) -> None:
    again = run_cli("state", "init", "demo", "--from", "plan.yaml", "--json", cwd=repo)
    _refused(again, "state_exists")
    data = _ok(
        run_cli("state", "init", "demo", "--from", "plan.yaml", "--force", "--json", cwd=repo)
    )
    assert data["tasks"] == 5
    assert data["gates"] == 3
    assert (repo / ".planfleet/state/demo.json.bak").exists()


def test_init_carries_statuses_recorded_in_the_plan(
    git_repo: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan(
        [("p1", ["a", "b"], []), ("p2", ["c"], ["p1"])],
        statuses={"a": "done", "b": "skipped", "p1": "done"},
    )
    (git_repo / "plan.md").write_text("# a plan in a format being written elsewhere\n")
    monkeypatch.setattr(formats, "resolve", lambda arg, *, repo, format=None: repo / arg)
    monkeypatch.setattr(formats, "load_plan", lambda path, *, repo, format=None: plan)
    data = _ok(run_cli("state", "init", "run-2", "--from", "plan.md", "--json", cwd=git_repo))
    assert data["counts"] == {"verified": 2, "skipped": 1, "pending": 2}
    shown = _ok(run_cli("state", "show", "run-2", "--json", cwd=git_repo))
    assert shown["ready"] == ["c"]
    assert "imported" in shown["state"]["tasks"]["a"]["note"]


def test_show_prints_a_table_and_json(repo: Path, run_cli: Run) -> None:
    text = run_cli("state", "show", "demo", cwd=repo)
    assert text.code == 0
    for word in ("TASK", "tokenizer", "core:gate"):
        assert word in text.out
    assert "ready to claim: tokenizer, counter, usage-doc" in text.out
    data = _ok(run_cli("state", "show", "demo", "--json", cwd=repo))
    assert data["counts"] == {"pending": 8}
    assert data["orphans"] == {}
    assert data["state"]["schema_version"] == 1


def test_a_task_through_claim_heartbeat_fail_claim_complete(repo: Path, run_cli: Run) -> None:
    claim = _ok(
        run_cli(
            "state",
            "claim",
            "demo",
            "tokenizer",
            "--owner",
            "agent-1",
            "--lease",
            "120",
            "--json",
            cwd=repo,
        )
    )
    assert claim["record"]["status"] == "in_progress"
    assert claim["record"]["owner"] == "agent-1"
    assert claim["record"]["lease_s"] == 120
    assert claim["revision"] == 2
    beat = _ok(
        run_cli("state", "heartbeat", "demo", "tokenizer", "--owner", "agent-1", "--json", cwd=repo)
    )
    assert beat["record"]["heartbeat_at"] >= claim["record"]["heartbeat_at"]
    failed = _ok(
        run_cli(
            "state",
            "fail",
            "demo",
            "tokenizer",
            "--type",
            "test_failure",
            "--step",
            "verify",
            "--message",
            "2 failed",
            "--feedback",
            "fix it",
            "--cost",
            "0.5",
            "--json",
            cwd=repo,
        )
    )
    assert failed["record"]["status"] == "failed"
    assert failed["record"]["error"]["message"] == "2 failed"
    _ok(run_cli("state", "claim", "demo", "tokenizer", "--json", cwd=repo))
    done = _ok(
        run_cli(
            "state",
            "complete",
            "demo",
            "tokenizer",
            "--commit",
            "abc1234",
            "--verification",
            ".planfleet/logs/demo/tokenizer.json",
            "--json",
            cwd=repo,
        )
    )
    assert done["record"]["status"] == "verified"
    assert done["record"]["attempts"] == 2
    assert done["record"]["verification"] == ".planfleet/logs/demo/tokenizer.json"
    doc = read_valid(repo / ".planfleet/state/demo.json")
    assert doc["totals"]["cost_usd"] == 0.5
    assert [e["event"] for e in doc["events"]] == [
        "init",
        "claimed",
        "failed",
        "claimed",
        "verified",
    ]
    human = run_cli("state", "show", "demo", cwd=repo).out
    assert "commit abc1234" in human


def test_a_second_claim_gets_exit_3_naming_the_holder(repo: Path, run_cli: Run) -> None:
    _ok(run_cli("state", "claim", "demo", "counter", "--owner", "agent-1", "--json", cwd=repo))
    error = _refused(
        run_cli("state", "claim", "demo", "counter", "--owner", "agent-2", "--json", cwd=repo),
        "already_claimed",
    )
    assert "owner agent-1" in error["message"]
    text = run_cli("state", "claim", "demo", "counter", cwd=repo)
    assert text.code == 3
    assert "already claimed by owner agent-1" in text.err


def test_claim_refuses_unmet_dependencies(repo: Path, run_cli: Run) -> None:
    error = _refused(
        run_cli("state", "claim", "demo", "report", "--json", cwd=repo), "dependencies_unmet"
    )
    assert error["details"]["unmet"] == ["core:gate"]


def test_illegal_transitions_exit_3(repo: Path, run_cli: Run) -> None:
    error = _refused(
        run_cli("state", "complete", "demo", "counter", "--commit", "abc1234", "--json", cwd=repo),
        "illegal_transition",
    )
    assert "is pending; it cannot become verified" in error["message"]
    _refused(
        run_cli("state", "heartbeat", "demo", "counter", "--json", cwd=repo), "not_in_progress"
    )


def test_fail_with_type_timeout_records_a_timeout(repo: Path, run_cli: Run) -> None:
    _ok(run_cli("state", "claim", "demo", "counter", "--json", cwd=repo))
    data = _ok(
        run_cli(
            "state",
            "fail",
            "demo",
            "counter",
            "--type",
            "timeout",
            "--step",
            "agent",
            "--message",
            "no output for 600 s",
            "--json",
            cwd=repo,
        )
    )
    assert data["record"]["status"] == "timeout"


def test_reset_keeps_attempts_unless_hard(repo: Path, run_cli: Run) -> None:
    _ok(run_cli("state", "claim", "demo", "counter", "--json", cwd=repo))
    soft = _ok(
        run_cli("state", "reset", "demo", "counter", "--reason", "agent died", "--json", cwd=repo)
    )
    assert soft["record"]["status"] == "pending"
    assert soft["record"]["attempts"] == 1
    assert soft["record"]["note"] == "agent died"
    hard = _ok(run_cli("state", "reset", "demo", "counter", "--hard", "--json", cwd=repo))
    assert hard["record"]["attempts"] == 0


def test_orphans_show_up_in_show(repo: Path, run_cli: Run) -> None:
    _ok(run_cli("state", "claim", "demo", "counter", "--lease", "0.001", "--json", cwd=repo))
    data = _ok(run_cli("state", "show", "demo", "--json", cwd=repo))
    assert "expired" in data["orphans"]["counter"]
    assert "ORPHAN" in run_cli("state", "show", "demo", cwd=repo).out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["complete", "demo", "counter", "--commit", "not-a-sha"], "--commit"),
        (["claim", "demo", "nope"], "task"),
        (["claim", "demo", "counter", "--lease", "0"], "--lease"),
        (["show", "../etc"], "plan name"),
    ],
)
def test_bad_input_exits_2(repo: Path, run_cli: Run, args: list[str], field: str) -> None:
    result = run_cli("state", *args, "--json", cwd=repo)
    assert result.code == ExitCode.USAGE, result.err
    assert result.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("command", ["show", "claim", "reset"])
def test_a_plan_without_state_names_the_init_command(
    git_repo: Path, run_cli: Run, command: str
) -> None:
    args = ["demo"] if command == "show" else ["demo", "t1"]
    error = _refused(run_cli("state", command, *args, "--json", cwd=git_repo), "no_state")
    assert "planfleet state init demo" in error["next_step"]


def test_the_state_file_is_the_contract(repo: Path, run_cli: Run) -> None:
    _ok(run_cli("state", "claim", "demo", "tokenizer", "--pid", "1", "--json", cwd=repo))
    text = (repo / ".planfleet/state/demo.json").read_text()
    assert text.endswith("}\n")
    assert json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text


def _changes(path: Path, changes: Any) -> Path:
    path.write_text(json.dumps(changes), encoding="utf-8")
    return path


def test_apply_makes_several_changes_in_one_transaction(repo: Path, run_cli: Run) -> None:
    state_file = repo / ".planfleet/state/demo.json"
    before = read_valid(state_file)["revision"]
    batch = [
        {"op": "claim", "task": "tokenizer", "owner": "skill", "lease": 60},
        {"op": "claim", "task": "counter", "owner": "skill", "pid": 4242},
        {"op": "complete", "task": "tokenizer", "commit": "a" * 40, "owner": "skill", "cost": 0.5},
        {"op": "fail", "task": "counter", "type": "test_failure", "step": "tests",
         "message": "2 tests fail", "feedback": "fix count()"},
        {"op": "reset", "task": "counter"},
    ]  # fmt: skip
    data = _ok(
        run_cli("state", "apply", "demo", _changes(repo / "c.json", batch), "--json", cwd=repo)
    )
    assert data["applied"] == 5
    assert [c["record"]["status"] for c in data["changes"]] == [
        "in_progress", "in_progress", "verified", "failed", "pending"
    ]  # fmt: skip
    after = read_valid(state_file)
    assert after["revision"] == before + 1 == data["revision"]  # one write for five changes
    assert after["tasks"]["tokenizer"]["commit"] == "a" * 40
    assert after["tasks"]["counter"]["feedback"] == "fix count()"
    assert after["totals"]["cost_usd"] == 0.5


def test_apply_reads_standard_input(
    repo: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO('[{"op": "claim", "task": "counter"}]'))
    data = _ok(run_cli("state", "apply", "demo", "-", "--json", cwd=repo))
    assert data["changes"][0]["record"]["owner"]  # the default owner, as `state claim` gives


def test_apply_refused_change_makes_none_of_them(repo: Path, run_cli: Run) -> None:
    state_file = repo / ".planfleet/state/demo.json"
    text = state_file.read_bytes()
    batch = [
        {"op": "claim", "task": "tokenizer"},
        {"op": "claim", "task": "cli"},  # its dependencies are not verified
    ]
    result = run_cli("state", "apply", "demo", _changes(repo / "c.json", batch), cwd=repo)
    assert result.code == ExitCode.REFUSED
    assert "change 2 (claim cli), none made" in result.err
    assert state_file.read_bytes() == text


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"op": "claim"}, None, "non-empty JSON array"),
        ([], None, "non-empty JSON array"),
        ([{"op": "merge", "task": "a"}], "change 1.op", "unknown op 'merge'"),
        ([{"op": "claim"}], "change 1.task", "task id is required"),
        (
            [{"op": "claim", "task": "tokenizer", "commit": "ab12345"}],
            "change 1.commit",
            "no field",
        ),
        ([{"op": "claim", "task": "tokenizer", "pid": "12"}], "change 1.pid", "must be an integer"),
        (
            [{"op": "reset", "task": "tokenizer", "hard": 1}],
            "change 1.hard",
            "must be true or false",
        ),
        ([{"op": "claim", "task": "t", "lease": 0}], "change 1.lease", "positive"),
        ([{"op": "claim", "task": "t"}, {"op": "fail", "task": "t"}], "change 2.type", "needs"),
        ([{"op": "complete", "task": "t", "commit": "xyz"}], "change 1.commit", "not a commit"),
    ],
)
def test_apply_bad_input_names_the_change_and_field(
    repo: Path, run_cli: Run, changes: Any, field: str | None, words: str
) -> None:
    text = (repo / ".planfleet/state/demo.json").read_bytes()
    path = _changes(repo / "c.json", changes)
    result = run_cli("state", "apply", "demo", path, "--json", cwd=repo)
    assert result.code == ExitCode.USAGE, result.err
    (error,) = result.json()["errors"]
    assert words in error["message"]
    assert error.get("field") == field
    assert error["file"] == str(path)
    assert (repo / ".planfleet/state/demo.json").read_bytes() == text


def test_apply_not_json_gives_the_line(repo: Path, run_cli: Run) -> None:
    (repo / "c.json").write_text('[\n{"op": "claim",\n', encoding="utf-8")
    result = run_cli("state", "apply", "demo", repo / "c.json", cwd=repo)
    assert result.code == ExitCode.USAGE
    assert "c.json:3: not JSON" in result.err
    missing = run_cli("state", "apply", "demo", repo / "absent.json", cwd=repo)
    assert missing.code == ExitCode.USAGE
    assert "cannot read the changes" in missing.err
