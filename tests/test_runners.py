"""Runners on real repositories and real processes: the fake claude, shell, command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, git, make_repo
from planfleet import proc
from planfleet.engine import prompts
from planfleet.errors import UsageError
from planfleet.plan import model
from planfleet.runners import AgentResult, get_runner
from planfleet.runners.base import REDACTED, Supervised, agent_env, supervise, tail_file
from planfleet.runners.claude import DEFAULT_ALLOWED_TOOLS, SYSTEM_PROMPT, plugin_root
from runners_support import (
    FAKE_CLAUDE,
    add_worktree,
    argv_log,
    head,
    make_plan,
    make_request,
    make_task,
    printed,
    watch_once_ready,
    write_scenario,
)

BASE_FILES = {
    "README.md": "# demo\n",
    "src/core.py": "def add(a, b):\n    return a + b\n",
    "tests/test_core.py": (
        "from src.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", BASE_FILES)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point planfleet at the fake claude; return the file its argv is logged to."""
    log = tmp_path / "claude-argv.jsonl"
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(FAKE_CLAUDE))
    monkeypatch.setenv("FAKE_CLAUDE_ARGV_LOG", str(log))
    monkeypatch.setenv("FAKE_CLAUDE_SCENARIO", str(tmp_path / "scenario.json"))
    monkeypatch.delenv("CLAUDE_PLUGIN_ROOT", raising=False)
    write_scenario(tmp_path / "scenario.json", {})
    return log


def scenario(tmp_path: Path, **tasks: dict[str, Any]) -> None:
    write_scenario(tmp_path / "scenario.json", tasks)


def run_claude(repo: Path, plan: model.Plan, task_id: str, **fields: Any) -> AgentResult:
    request = make_request(repo, plan, task_id, **fields)
    return get_runner("claude").run(request, threading.Event())


def gone(pid: int) -> bool:
    """Return True once ``pid`` has ended (a SIGKILL lands a moment after it is sent)."""
    deadline = time.monotonic() + 2.0
    while proc.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def committed_files(worktree: Path, base: str) -> list[str]:
    return git(worktree, "diff", "--name-only", base, "HEAD").split()


# --- the claude runner against every behaviour of the fake -------------------------------


def test_claude_succeed_commits_and_reports_cost_session_claims(
    repo: Path, fake: Path, tmp_path: Path
) -> None:
    scenario(tmp_path, t1={"behaviour": "succeed", "files": {"src/new.py": "X = 1\n"}})
    plan = make_plan(make_task("t1", files_create=("src/new.py",)))
    request = make_request(repo, plan, "t1")
    result = get_runner("claude").run(request, threading.Event())
    assert (result.ending, result.exit_code, result.error_kind, result.limit) == (
        "exited",
        0,
        None,
        None,
    )
    assert result.cost_usd == pytest.approx(0.01)
    assert result.turns == 1
    sent = argv_log(fake)[0]["argv"]
    assert result.session_id == sent[sent.index("--session-id") + 1]
    assert result.claims is not None
    assert result.claims["status"] == "done"
    assert committed_files(request.worktree, request.base_commit) == ["src/new.py"]
    events = [json.loads(line) for line in request.log_path.read_text().splitlines()]
    assert [e["type"] for e in events] == ["system", "assistant", "result"]
    assert (request.log_path.parent / "t1.1.prompt.md").read_text() == request.prompt


def test_claude_lie_claims_done_but_changes_nothing(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(tmp_path, t1={"behaviour": "lie", "files": {"src/new.py": "X = 1\n"}})
    plan = make_plan(make_task("t1"))
    request = make_request(repo, plan, "t1")
    result = get_runner("claude").run(request, threading.Event())
    assert result.error_kind is None
    assert result.claims is not None
    assert result.claims["files_changed"] == ["src/new.py"]
    assert head(request.worktree) == request.base_commit
    assert not (request.worktree / "src/new.py").exists()


def test_claude_empty_files_and_delete_test_and_break_test(
    repo: Path, fake: Path, tmp_path: Path
) -> None:
    scenario(
        tmp_path,
        empty={"behaviour": "empty_files", "files": {"src/a.py": "A = 1\n"}},
        deleter={
            "behaviour": "delete_test",
            "files": {"src/b.py": "B = 1\n"},
            "delete": ["tests/test_core.py"],
        },
        breaker={
            "behaviour": "break_test",
            "files": {"src/core.py": "def add(a, b):\n    return a - b\n"},
        },
    )
    plan = make_plan(make_task("empty"), make_task("deleter"), make_task("breaker"))
    runner = get_runner("claude")
    for task_id in ("empty", "deleter", "breaker"):
        request = make_request(repo, plan, task_id)
        result = runner.run(request, threading.Event())
        assert (result.ending, result.error_kind) == ("exited", None), task_id
        wt, base = request.worktree, request.base_commit
        if task_id == "empty":
            assert committed_files(wt, base) == ["src/a.py"]
            assert (wt / "src/a.py").read_text() == ""
        elif task_id == "deleter":
            assert committed_files(wt, base) == ["src/b.py", "tests/test_core.py"]
            assert not (wt / "tests/test_core.py").exists()
        else:
            assert committed_files(wt, base) == ["src/core.py"]
            assert "a - b" in (wt / "src/core.py").read_text()


def test_claude_fail_then_succeed_needs_the_feedback_in_the_prompt(
    repo: Path, fake: Path, tmp_path: Path
) -> None:
    scenario(tmp_path, t1={"behaviour": "fail_then_succeed", "files": {"src/x.py": "X = 2\n"}})
    plan = make_plan(make_task("t1", files_create=("src/x.py",)))
    task = plan.task("t1")
    wt = add_worktree(repo, "t1")
    runner = get_runner("claude")

    def attempt(n: int, feedback: str | None) -> AgentResult:
        prompt = prompts.build_prompt(
            plan, task, repo=repo, attempt=n, feedback=feedback, checks=["pytest -q"]
        )
        request = make_request(repo, plan, "t1", worktree=wt, attempt=n, prompt=prompt)
        return runner.run(request, threading.Event())

    base = head(wt)
    first = attempt(1, None)
    assert first.claims is not None
    assert first.claims["status"] == "failed"
    assert head(wt) == base
    assert attempt(2, None).claims == first.claims  # no feedback: still stuck
    assert head(wt) == base
    third = attempt(3, "no commit on the task branch; create src/x.py")
    assert third.claims is not None
    assert third.claims["status"] == "done"
    assert committed_files(wt, base) == ["src/x.py"]


def test_claude_hang_times_out_and_the_process_is_gone(
    repo: Path, fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(tmp_path, t1={"behaviour": "hang"})
    plan = make_plan(make_task("t1"))
    # The 1.5 s clock starts before the fake does: it must be up and talking by then.
    watch_once_ready(monkeypatch, printed("still thinking"))
    start = time.monotonic()
    result = run_claude(repo, plan, "t1", timeout_s=1.5, stall_s=10)
    assert result.ending == "timeout"
    assert time.monotonic() - start < 8
    assert "timed out after 1.5 s" in result.message
    assert "still thinking" in result.output_tail
    assert result.session_id is not None  # the init event was seen: resumable
    assert gone(argv_log(fake)[0]["pid"])


def test_claude_silent_is_a_stall(
    repo: Path, fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(tmp_path, t1={"behaviour": "silent"})
    plan = make_plan(make_task("t1"))
    # Silent after its init event, not merely slow to start (then it had logged no argv).
    watch_once_ready(monkeypatch, printed('"subtype": "init"'))
    started: list[int] = []  # the process group, as the engine is told
    result = run_claude(repo, plan, "t1", timeout_s=20, stall_s=0.8, on_start=started.append)
    assert result.ending == "stall"
    assert result.duration_s < 8
    assert "stall" in result.message
    assert len(started) == 1
    assert gone(started[0])


def test_claude_crash_without_result(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(tmp_path, t1={"behaviour": "crash"})
    result = run_claude(repo, make_plan(make_task("t1")), "t1")
    assert (result.ending, result.exit_code, result.error_kind) == ("exited", 1, "crash")
    assert "without a result event" in result.message
    assert "fatal: the fake agent crashed" in result.output_tail


def test_claude_usage_limit(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(tmp_path, t1={"behaviour": "usage_limit", "resets": "4pm (Europe/Paris)"})
    result = run_claude(repo, make_plan(make_task("t1")), "t1")
    assert (result.exit_code, result.error_kind, result.limit) == (1, "limit", "usage_limit")
    assert result.limit_detail == "4pm (Europe/Paris)"
    assert "usage limit" in result.message


def test_limit_kinds_from_result_events(tmp_path: Path) -> None:
    from planfleet.runners import claude_stream

    def classify(*events: dict[str, Any], code: int = 1) -> AgentResult:
        log = tmp_path / "log.jsonl"
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
        result = AgentResult(ending="exited", exit_code=code, duration_s=1.0)
        claude_stream.fill(result, claude_stream.read(log), prior_cost_usd=0.0, secrets=[])
        return result

    rate = classify({"type": "result", "is_error": True, "api_error_status": 429, "errors": []})
    assert (rate.limit, rate.limit_detail) == ("rate_limit", None)
    epoch = classify(
        {"type": "result", "is_error": True, "result": "Claude AI usage limit reached|1767225600"}
    )
    assert (epoch.limit, epoch.limit_detail) == ("usage_limit", "2026-01-01T00:00:00+00:00")
    # Words about limits in a successful run are not a limit.
    fine = classify(
        {"type": "result", "is_error": False, "result": "added a rate limit to the API"}, code=0
    )
    assert (fine.limit, fine.error_kind) == (None, None)
    # A run killed while the CLI kept retrying on 429s.
    retry = {"type": "system", "subtype": "api_retry", "error_status": 429, "error": "overload"}
    killed = AgentResult(ending="timeout", exit_code=-2, duration_s=1.0)
    (tmp_path / "log.jsonl").write_text(json.dumps(retry) + "\n")
    claude_stream.fill(
        killed, claude_stream.read(tmp_path / "log.jsonl"), prior_cost_usd=0, secrets=[]
    )
    assert killed.limit == "rate_limit"


def test_models_that_ran_from_model_usage(tmp_path: Path) -> None:
    from planfleet.runners import claude_stream

    def models(usage: Any) -> dict[str, float] | None:
        log = tmp_path / "log.jsonl"
        final = {"type": "result", "is_error": False, "total_cost_usd": 0.3}
        if usage is not None:
            final["modelUsage"] = usage
        log.write_text(json.dumps(final) + "\n")
        result = AgentResult(ending="exited", exit_code=0, duration_s=1.0)
        claude_stream.fill(result, claude_stream.read(log), prior_cost_usd=0.0, secrets=[])
        return result.models

    two = {
        "claude-sonnet-4-5-20250929": {"inputTokens": 10, "outputTokens": 5, "costUSD": 0.25},
        "claude-haiku-4-5-20251001": {"inputTokens": 3, "costUSD": 0.05},
    }
    assert models(two) == {"claude-sonnet-4-5-20250929": 0.25, "claude-haiku-4-5-20251001": 0.05}
    # Malformed entries are left out; a bad or missing cost counts 0.
    bad = {
        "": {"costUSD": 1.0},
        "not-an-object": [1, 2],
        "no-cost": {"inputTokens": 1},
        "text-cost": {"costUSD": "0.5"},
        "negative": {"costUSD": -1},
        "flag": {"costUSD": True},
        "claude-opus-4-1": {"costUSD": 0.5},
    }
    assert models(bad) == {
        "no-cost": 0.0,
        "text-cost": 0.0,
        "negative": 0.0,
        "flag": 0.0,
        "claude-opus-4-1": 0.5,
    }
    for unknown in (None, [], "claude-sonnet-4-5", {}, {"": {}}, {"x": None}):
        assert models(unknown) is None  # models unknown: nothing recorded


def test_claude_reports_the_models_that_ran(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(tmp_path, t1={"cost": 0.2})
    result = run_claude(repo, make_plan(make_task("t1")), "t1", model="claude-opus-4-1")
    assert result.models == {"claude-opus-4-1": pytest.approx(0.2)}
    assert result.to_json()["models"] == result.models


def test_claude_budget(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(tmp_path, t1={"behaviour": "budget"})
    result = run_claude(repo, make_plan(make_task("t1")), "t1", budget_usd=0.25)
    assert (result.exit_code, result.error_kind, result.limit) == (1, "budget", None)
    assert result.cost_usd == pytest.approx(0.25)
    assert "--max-budget-usd" in result.message


def test_claude_max_turns_denials_and_plugin_errors(repo: Path, fake: Path, tmp_path: Path) -> None:
    scenario(
        tmp_path,
        turns={"behaviour": "max_turns"},
        denied={"behaviour": "denied", "command": "curl https://example.com"},
        plugin={"behaviour": "plugin_error"},
    )
    plan = make_plan(make_task("turns"), make_task("denied"), make_task("plugin"))
    turns = run_claude(repo, plan, "turns")
    assert turns.error_kind == "max_turns"
    denied = run_claude(repo, plan, "denied")
    assert denied.error_kind is None
    assert "denied tool calls" in denied.message
    assert "Bash(curl https://example.com)" in denied.message
    plugin = run_claude(repo, plan, "plugin")
    assert plugin.error_kind == "plugin_failed"
    assert "task-executor.md: bad frontmatter" in plugin.message


def test_claude_resume_uses_the_session_and_counts_only_new_cost(
    repo: Path, fake: Path, tmp_path: Path
) -> None:
    scenario(tmp_path, t1={"behaviour": "lie", "cost": 0.05})
    plan = make_plan(make_task("t1"))
    wt = add_worktree(repo, "t1")
    runner = get_runner("claude")
    first = runner.run(make_request(repo, plan, "t1", worktree=wt), threading.Event())
    assert first.session_id is not None
    second = runner.run(
        make_request(
            repo,
            plan,
            "t1",
            worktree=wt,
            attempt=2,
            resume_session=first.session_id,
            prior_cost_usd=first.cost_usd,
        ),
        threading.Event(),
    )
    assert second.session_id == first.session_id
    assert second.cost_usd == pytest.approx(0.05)
    sent = argv_log(fake)[1]["argv"]
    assert sent[sent.index("--resume") + 1] == first.session_id
    assert "--session-id" not in sent
    unknown = runner.run(
        make_request(repo, plan, "t1", worktree=wt, attempt=3, resume_session="nope"),
        threading.Event(),
    )
    assert (unknown.error_kind, unknown.exit_code) == ("crash", 1)
    assert "No conversation found" in unknown.output_tail


def test_claude_argv_has_every_flag_and_never_bypasses(
    repo: Path, fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "plugin"
    (plugin / ".claude-plugin").mkdir(parents=True)
    (plugin / ".claude-plugin" / "plugin.json").write_text('{"name": "planfleet"}')
    (plugin / "agents").mkdir()
    (plugin / "agents" / "task-executor.md").write_text("---\nname: task-executor\n---\n")
    monkeypatch.setenv("CLAUDE_PLUGIN_ROOT", str(plugin))
    task = make_task("t1", verify=("pytest -q tests/test_core.py", "ruff check src"))
    plan = make_plan(task, meta={"test_command": "pytest -q"})
    result = run_claude(repo, plan, "t1", model="opus", budget_usd=1.5, prompt="PROMPT TEXT")
    sent = argv_log(fake)[0]["argv"]
    assert result.argv[1:] == tuple(sent)

    def value(flag: str) -> str:
        return sent[sent.index(flag) + 1]

    assert sent[0] == "-p"
    assert value("--output-format") == "stream-json"
    assert "--verbose" in sent
    assert value("--permission-mode") == "acceptEdits"
    assert value("--permission-prompts") == "none"
    rules = value("--allowedTools").split(",")
    assert rules == [
        *DEFAULT_ALLOWED_TOOLS,
        "Bash(pytest -q tests/test_core.py)",
        "Bash(ruff check src)",
        "Bash(pytest -q)",
        "Bash(pytest -q *)",
    ]
    assert value("--model") == "opus"
    assert value("--max-budget-usd") == "1.5"
    assert value("--append-system-prompt") == SYSTEM_PROMPT
    schema = json.loads(value("--json-schema"))
    assert schema["properties"]["status"]["enum"] == ["done", "blocked", "failed"]
    assert value("--plugin-dir") == str(plugin)
    assert value("--agent") == "planfleet:task-executor"
    assert "--session-id" in sent
    assert "PROMPT TEXT" not in sent  # the prompt goes on stdin
    joined = " ".join(sent)
    assert "bypassPermissions" not in joined
    assert "dangerously" not in joined


def test_claude_argv_options(repo: Path, fake: Path, tmp_path: Path) -> None:
    plan = make_plan(make_task("t1"))
    runner = get_runner(
        "claude",
        {"permission_mode": "dontAsk", "agent": None, "extra_allowed_tools": ["Bash(make *)"]},
    )
    request = make_request(repo, plan, "t1")
    sent = runner.run(request, threading.Event()).argv
    assert sent[sent.index("--permission-mode") + 1] == "dontAsk"
    assert "Bash(make *)" in sent[sent.index("--allowedTools") + 1]
    assert "--agent" not in sent  # disabled
    assert "--model" not in sent
    assert "--max-budget-usd" not in sent
    # The plugin root is found from the package (this checkout holds .claude-plugin/).
    assert sent[sent.index("--plugin-dir") + 1] == str(plugin_root())
    assert plugin_root() == REPO_ROOT
    shown = runner.describe(request)[0]
    assert "<task_result.schema.json>" in shown
    assert "--permission-prompts none" in shown
    with pytest.raises(UsageError, match="permission mode"):
        get_runner("claude", {"permission_mode": "yolo"})
    with pytest.raises(UsageError, match="unknown claude runner option"):
        get_runner("claude", {"permision_mode": "plan"})


def test_claude_missing_binary(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request = make_request(repo, make_plan(make_task("t1")), "t1")
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(repo / "no-such-claude"))
    monkeypatch.setenv("PATH", str(repo))
    result = get_runner("claude").run(request, threading.Event())
    assert (result.ending, result.error_kind) == ("not_started", "start_failed")
    assert "PLANFLEET_CLAUDE" in result.message


def test_fake_claude_refuses_like_the_real_cli(tmp_path: Path) -> None:
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAKE_CLAUDE), *args],
            input="hi",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )

    no_verbose = call("-p", "--output-format", "stream-json")
    assert no_verbose.returncode == 1
    assert "requires --verbose" in no_verbose.stderr
    unknown = call("-p", "--output-format", "stream-json", "--verbose", "--yolo")
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: unknown option '--yolo'")
    zero_budget = call("-p", "--max-budget-usd", "0")
    assert zero_budget.returncode == 1
    bad_schema = call("-p", "--json-schema", "{nope")
    assert "not a valid JSON Schema" in bad_schema.stderr


def test_claude_stop_event(
    repo: Path, fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(tmp_path, t1={"behaviour": "hang"})
    plan = make_plan(make_task("t1"))
    stop = threading.Event()
    # Stop a running agent (a timer could fire before the fake has even logged its argv).
    watch_once_ready(monkeypatch, printed("still thinking"), then=stop.set)
    started: list[int] = []
    request = make_request(repo, plan, "t1", on_start=started.append)
    result = get_runner("claude").run(request, stop)
    assert result.ending == "stopped"
    assert result.duration_s < 6
    assert len(started) == 1
    assert gone(started[0])


# --- the shell runner ----------------------------------------------------------------------


def test_shell_runs_commands_and_commits_with_planfleet_identity(repo: Path) -> None:
    task = make_task(
        "gen",
        title="Generate; the \"files\" & 'more'",
        commands=("mkdir -p out", 'echo "$PLANFLEET_TASK $PLANFLEET_ATTEMPT" > out/who.txt'),
    )
    request = make_request(repo, make_plan(task), "gen", attempt=2)
    result = get_runner("shell").run(request, threading.Event())
    assert (result.ending, result.exit_code, result.error_kind) == ("exited", 0, None)
    assert (request.worktree / "out/who.txt").read_text() == "gen 2\n"
    log = git(request.worktree, "log", "-1", "--format=%an <%ae>|%cn|%s")
    assert log.strip() == (
        "planfleet <planfleet@localhost>|planfleet|planfleet: gen: Generate; the \"files\" & 'more'"
    )
    assert "committed" in result.message
    assert "$ mkdir -p out" in request.log_path.read_text()


def test_shell_failing_command_stops_there(repo: Path) -> None:
    task = make_task("t1", commands=("echo one > one.txt", "echo oops >&2; exit 3", "touch two"))
    request = make_request(repo, make_plan(task), "t1")
    result = get_runner("shell").run(request, threading.Event())
    assert (result.exit_code, result.error_kind) == (3, "crash")
    assert "command 2 failed (exit 3): echo oops >&2; exit 3" in result.message
    assert "oops" in result.output_tail
    assert not (request.worktree / "two").exists()
    assert head(request.worktree) == request.base_commit  # nothing committed


def test_shell_nothing_changed_no_commit(repo: Path) -> None:
    request = make_request(repo, make_plan(make_task("t1", commands=("true",))), "t1")
    result = get_runner("shell").run(request, threading.Event())
    assert result.error_kind is None
    assert "no commit" in result.message
    assert head(request.worktree) == request.base_commit


def test_shell_without_commands(repo: Path) -> None:
    result = get_runner("shell").run(
        make_request(repo, make_plan(make_task("t1")), "t1"), threading.Event()
    )
    assert (result.ending, result.error_kind) == ("not_started", "no_commands")
    assert "add `commands`" in result.message
    assert "claude runner" in result.message


def test_shell_timeout_kills_the_whole_process_group(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "child.pid"
    task = make_task("t1", commands=(f"sleep 60 & echo $! > {pid_file}; wait",))
    request = make_request(repo, make_plan(task), "t1", timeout_s=1.0)
    # The group must hold the grandchild before the 1 s timeout can end it.
    watch_once_ready(
        monkeypatch, lambda _log: pid_file.is_file() and pid_file.read_text().endswith("\n")
    )
    start = time.monotonic()
    result = get_runner("shell").run(request, threading.Event())
    assert result.ending == "timeout"
    assert time.monotonic() - start < 8
    child = int(pid_file.read_text())
    assert gone(child)


def test_shell_describe(repo: Path) -> None:
    task = make_task("t1", title="Make it", commands=("make gen",))
    request = make_request(repo, make_plan(task), "t1")
    assert get_runner("shell").describe(request) == [
        "make gen",
        "git add -A && git commit -m 'planfleet: t1: Make it'",
    ]


# --- the supervisor --------------------------------------------------------------------------


def watch(argv: list[str], log: Path, **limits: Any) -> Supervised:
    """Supervise ``argv`` in the log's folder; generous limits unless given."""
    limits.setdefault("timeout_s", 30)
    limits.setdefault("stall_s", 30)
    limits.setdefault("stop", threading.Event())
    return supervise(argv, cwd=log.parent, env=os.environ, log_path=log, **limits)


def test_supervise_stall_and_stop_and_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "s.log"
    with monkeypatch.context() as mp:
        watch_once_ready(mp, printed("hi\n"))  # "hi" is out before the 0.5 s can run
        stall = watch(["sh", "-c", "echo hi; sleep 60"], log, stall_s=0.5)
    assert (stall.ending, stall.output_tail) == ("stall", "hi\n")
    assert stall.duration_s < 5
    stop = threading.Event()
    stop.set()
    stopped = watch(["sleep", "60"], log, timeout_s=math.inf, stall_s=math.inf, stop=stop)
    assert stopped.ending == "stopped"
    missing = watch(["/no/such/program"], log)
    assert (missing.ending, missing.exit_code) == ("not_started", None)
    assert "program not found" in missing.message


def test_supervise_stdin_append_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("before\n")
    done = watch(["cat"], log, stdin_text="from stdin\n", append=True)
    assert (done.ending, done.exit_code) == ("exited", 0)
    assert log.read_text() == "before\nfrom stdin\n"
    log.write_text("".join(f"line {i}\n" for i in range(2000)))
    tail = tail_file(log, 100)
    assert tail.startswith("line ")  # starts at a line, not in the middle of one
    assert tail.endswith("line 1999\n")
    assert len(tail) <= 100
    assert tail_file(tmp_path / "absent.log") == ""


def test_agent_env_and_secrets_never_logged(repo: Path) -> None:
    secret = "sk-very-secret-value-42"  # noqa: S105 - a made-up value to look for
    task = make_task("t1", commands=('echo "key=$MY_API_TOKEN plan=$PLANFLEET_PLAN"',))
    request = make_request(repo, make_plan(task), "t1", env={"MY_API_TOKEN": secret})
    env = agent_env(request)
    assert env["PLANFLEET_WORKTREE"] == str(request.worktree)
    assert env["PLANFLEET_BASE_COMMIT"] == request.base_commit
    result = get_runner("shell").run(request, threading.Event())
    assert f"key={REDACTED} plan=demo" in result.output_tail
    assert secret not in request.log_path.read_text()


# --- the command runner ----------------------------------------------------------------------

RECORD_ARGV = "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"


def test_command_runner_substitutes_each_element_without_a_shell(
    repo: Path, tmp_path: Path
) -> None:
    title = 'it\'s "quoted"; rm -rf / && echo $(whoami) | cat > pwned {x}'
    plan = make_plan(make_task("t1", title=title))
    out = tmp_path / "argv.json"
    template = [
        sys.executable,
        "-c",
        RECORD_ARGV,
        str(out),
        "{title}",
        "--task={task}",
        "{prompt_file}",
        "{worktree}",
        "{log}",
        "{model}",
        '{"json": "stays"}',
    ]
    runner = get_runner("command", {"command": template})
    request = make_request(repo, plan, "t1", model="m1", prompt="THE PROMPT")
    result = runner.run(request, threading.Event())
    assert (result.ending, result.exit_code, result.error_kind) == ("exited", 0, None)
    argv = json.loads(out.read_text())
    prompt_file = request.log_path.parent / "t1.1.prompt.md"
    assert argv == [
        str(out),
        title,
        "--task=t1",
        str(prompt_file),
        str(request.worktree),
        str(request.log_path),
        "m1",
        '{"json": "stays"}',
    ]
    assert prompt_file.read_text() == "THE PROMPT"
    assert not (request.worktree / "pwned").exists()


def test_command_runner_errors(repo: Path) -> None:
    with pytest.raises(UsageError) as missing:
        get_runner("command")
    assert missing.value.hint is not None
    assert "{prompt_file}" in missing.value.hint
    with pytest.raises(UsageError, match="list of argv strings"):
        get_runner("command", {"command": "my-agent {prompt_file}"})
    with pytest.raises(UsageError, match="unknown placeholder"):
        get_runner("command", {"command": ["agent", "{promptfile}"]})
    failing = get_runner("command", {"command": ["sh", "-c", "exit 4"]})
    request = make_request(repo, make_plan(make_task("t1")), "t1")
    result = failing.run(request, threading.Event())
    assert (result.exit_code, result.error_kind) == (4, "crash")


def test_unknown_runner() -> None:
    with pytest.raises(UsageError, match="unknown runner"):
        get_runner("cursor")
