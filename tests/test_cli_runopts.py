"""The run's option objects: flags read once into RunFlags, kept in options.json, resumed."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import make_repo
from engine_support import cli, state_of
from planfleet.cli import app, runflags, savedflags
from planfleet.cli.runopts import RunArgs, RunFlags, effective
from planfleet.errors import InputError
from test_engine_cli import TWO_TASKS

# A .spec plan: a run updates its checkboxes and Status line in place (unless told not to).
SPEC_PLAN = """\
    # Plan: Greeter

    - **Status**: Ready

    ### Phase 1 - Words

    - [ ] Write the greeting
      - Run: `echo hello > hello.txt`
    - [ ] Write the farewell
      - Run: `echo bye > bye.txt`
"""

# What `planfleet run` wrote before the option objects: its argparse names, no version.
OLD_SHAPE: dict[str, Any] = {
    "runner": "shell",
    "max_parallel": 2,
    "max_attempts": 3,
    "model": None,
    "escalate_model": None,
    "fail_fast": False,
    "budget_usd": None,
    "task_budget_usd": None,
    "timeout": 90.0,
    "stall": 45.0,
    "no_post_merge_check": True,
    "strict_files": False,
    "no_projections": True,
    "permission_mode": "acceptEdits",
    "allowed_tools": "Bash(make:*), Read",
    "agent_command": None,
    "test_cmd": "",
    "test_timeout": None,
}


def options_file(repo: Path, plan: str) -> Path:
    return repo / ".planfleet" / "runs" / plan / "options.json"


def parsed(*argv: str) -> RunArgs:
    """Return the RunArgs of ``planfleet run PLAN ARGV`` as the command line gives them."""
    ns = app.build_parser("run").parse_args(["run", "plans/p.plan.yaml", *argv])
    return runflags.run_args(ns)


def test_the_command_line_is_read_once_into_flags_that_know_what_was_given() -> None:
    args = parsed("--timeout", "5", "--no-projections", "--allowed-tools", "Read, Bash(ls:*)")
    assert args.given == {"timeout_s", "projections", "allowed_tools"}
    assert args.flags.timeout_s == 5.0
    assert args.flags.projections is False
    assert args.flags.allowed_tools == ("Read", "Bash(ls:*)")
    saved = RunFlags(runner="shell", timeout_s=70.0, max_attempts=2, projections=True)
    # the flags given win; the saved ones stay; the rest are the defaults
    assert effective(args, saved) == RunFlags(
        runner="shell",
        timeout_s=5.0,
        max_attempts=2,
        projections=False,
        allowed_tools=("Read", "Bash(ls:*)"),
    )
    assert parsed().given == frozenset()


def test_flags_round_trip_through_options_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    flags = RunFlags(
        runner="command",
        max_parallel=4,
        max_attempts=2,
        model="opus",
        escalate_model="opus-max",
        fail_fast=True,
        budget_usd=12.5,
        task_budget_usd=1.0,
        timeout_s=30.0,
        stall_s=20.0,
        post_merge_check=False,
        strict_files=True,
        strict_model=True,
        strict_tests=True,
        serialize_undeclared=True,
        wait_on_limit=False,
        projections=False,
        permission_mode="plan",
        allowed_tools=("Bash(make:*)",),
        agent_command=("my-agent", "--prompt-file", "{prompt_file}"),
        test_command="",
        test_timeout_s=9.0,
        remote="upstream",
        environment="ccpool_abc",
        cloud_poll_s=2.5,
        cloud_parallel=2,
    )
    assert flags != RunFlags()  # every field differs from its default
    assert all(getattr(flags, n) != getattr(RunFlags(), n) for n in RunFlags.names())
    savedflags.save(repo, "p", flags)
    written = json.loads(options_file(repo, "p").read_text("utf-8"))
    assert written == {"version": 2, **savedflags.to_json(flags)}
    assert set(written) == {"version", *RunFlags.names()}
    loaded = savedflags.load(repo, "p")
    assert loaded is not None
    assert loaded.flags == flags
    assert loaded.ignored == ()
    assert savedflags.load(repo, "other") is None  # nothing saved: no flags


def test_every_field_has_a_check() -> None:
    assert set(savedflags.CHECKS) == set(RunFlags.names())


def test_the_old_shape_reads_into_the_same_flags() -> None:
    saved = savedflags.from_json(OLD_SHAPE, file="options.json")
    assert saved.ignored == ()
    assert saved.flags == RunFlags(
        runner="shell",
        max_parallel=2,
        max_attempts=3,
        timeout_s=90.0,
        stall_s=45.0,
        post_merge_check=False,
        projections=False,
        allowed_tools=("Bash(make:*)", "Read"),
        test_command="",
    )
    # an old file from before a flag existed: the flags it lacks take their defaults
    assert savedflags.from_json({"max_attempts": 2}, file="o").flags == RunFlags(max_attempts=2)


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        ({"version": 2, "max_parallel": "lots"}, "max_parallel", "not a whole number"),
        ({"version": 2, "max_parallel": True}, "max_parallel", "not a whole number"),
        ({"version": 2, "timeout_s": -1}, "timeout_s", "above 0"),
        ({"version": 2, "runner": "robot"}, "runner", "one of auto, claude"),
        ({"version": 2, "agent_command": "my-agent"}, "agent_command", "a list of texts"),
        ({"timeout": "soon"}, "timeout_s", "above 0"),  # the old shape is checked as well
        ({"no_projections": "yes"}, "projections", "true or false"),
        ({"version": 3}, None, "written by a newer planfleet"),
        ({"version": True}, None, "unknown version"),
        (["runner", "shell"], None, "not a JSON object"),
    ],
)
def test_a_bad_field_is_an_input_error_naming_it(data: Any, field: str | None, needle: str) -> None:
    with pytest.raises(InputError) as caught:
        savedflags.from_json(data, file=".planfleet/runs/p/options.json")
    assert caught.value.field == field
    assert needle in caught.value.message
    assert caught.value.file == ".planfleet/runs/p/options.json"
    assert "delete .planfleet/runs/p/options.json" in (caught.value.hint or "")


def test_an_unknown_field_is_ignored_with_a_reason() -> None:
    saved = savedflags.from_json({"version": 2, "colour": "blue", "stall_s": 5}, file="o.json")
    assert saved.flags == RunFlags(stall_s=5.0)
    assert saved.ignored == ("o.json: 'colour' is not a run flag this planfleet knows; ignored",)


def gate_command(repo: Path, task: str) -> str:
    """Return the command the tests gate of ``task``'s first attempt ran."""
    record = options_file(repo, "p").parent / "verify" / f"{task}.1.json"
    gates = json.loads(record.read_text("utf-8"))["gates"]
    return str(next(g for g in gates if g["name"] == "tests")["evidence"]["command"])


def test_resume_keeps_the_saved_flags_and_takes_the_ones_given_again(tmp_path: Path) -> None:
    files = {"plans/p.plan.yaml": textwrap.dedent(TWO_TASKS), "check.py": "print('fine')\n"}
    repo = make_repo(tmp_path / "repo", files)
    check = f"{sys.executable} check.py"
    first = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--tasks", "a",
                "--max-attempts", "2", "--timeout", "80", "--no-post-merge-check",
                "--test-cmd", check)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    saved = json.loads(options_file(repo, "p").read_text("utf-8"))
    assert saved["version"] == 2
    assert (saved["runner"], saved["max_attempts"], saved["timeout_s"]) == ("shell", 2, 80.0)
    assert (saved["post_merge_check"], saved["test_command"]) == (False, check)

    res = cli(repo, "resume", "p", "--tasks", "b", "--max-attempts", "4", "--stall", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    assert state_of(repo)["tasks"]["b"]["status"] == "verified"
    assert gate_command(repo, "b") == check  # the run's --test-cmd, not given again
    again = json.loads(options_file(repo, "p").read_text("utf-8"))
    assert {k: v for k, v in again.items() if saved[k] != v} == {"max_attempts": 4, "stall_s": 60.0}


def _checkout(repo: Path) -> dict[str, bytes]:
    """Return the files of the checkout outside .git and .planfleet, with their bytes."""
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and p.relative_to(repo).parts[0] not in (".git", ".planfleet")
    }


def test_a_run_saved_in_the_old_shape_resumes_with_its_flags(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "README.md": "# greeter\n",
            ".spec/plans/greeter/plan.md": textwrap.dedent(SPEC_PLAN),
            ".spec/plans/greeter/implementation/phase-1.md": "# Phase 1\n\n" + "Words. " * 20,
        },
    )
    before = _checkout(repo)
    plan = ".spec/plans/greeter"
    first = cli(repo, "run", plan, "--runner", "shell", "--no-projections", "--tasks", "1.1")
    assert first.returncode == 0, first.stdout + first.stderr
    # as a planfleet of before wrote it: argparse names, --no-projections among them
    options_file(repo, "greeter").write_text(json.dumps(OLD_SHAPE, indent=1) + "\n")

    res = cli(repo, "resume", "greeter")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert state_of(repo, "greeter")["status"] == "completed"
    # --no-projections came from the old file: plan.md's boxes and Status are untouched
    assert _checkout(repo) == before
    rewritten = savedflags.load(repo, "greeter")
    assert rewritten is not None
    assert rewritten.flags == savedflags.from_json(OLD_SHAPE, file="old").flags
    assert json.loads(options_file(repo, "greeter").read_text("utf-8"))["version"] == 2


def test_a_damaged_options_file_is_a_clear_error_and_status_still_shows(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"plans/p.plan.yaml": textwrap.dedent(TWO_TASKS)})
    first = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--tasks", "a")
    assert first.returncode == 0, first.stdout + first.stderr
    target = options_file(repo, "p")
    target.write_text(json.dumps({"version": 2, "runner": "shell", "max_parallel": "lots"}))

    res = cli(repo, "resume", "p", "--json")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    (error,) = json.loads(res.stdout)["errors"]
    assert (error["file"], error["field"]) == (".planfleet/runs/p/options.json", "max_parallel")
    assert "delete .planfleet/runs/p/options.json" in error["hint"]
    status = cli(repo, "status", "p", "--json")
    assert status.returncode == 0, status.stderr
    assert "max_parallel" in status.stderr  # told, and counted with the default

    target.write_text("{not json")
    res = cli(repo, "resume", "p")
    assert res.returncode == 2
    assert ".planfleet/runs/p/options.json" in res.stderr
    assert "Traceback" not in res.stderr

    # a field this planfleet does not know: ignored, with a reason, and the run goes on
    target.write_text(json.dumps({"version": 2, "runner": "shell", "colour": "blue"}))
    res = cli(repo, "resume", "p")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "'colour' is not a run flag this planfleet knows; ignored" in res.stderr
    assert state_of(repo)["tasks"]["b"]["status"] == "verified"


# The commands whose flags become option objects, and the one reader of each family.
CONVERTED = {
    "cli/commands/run.py": {"request"},
    "cli/commands/resume.py": set(),
    "cli/commands/batch.py": {"request"},
    "cli/commands/dispatch.py": {"options"},
    "cli/commands/orchestrate.py": {"request"},
    "cli/commands/phase_runner.py": {"request", "phase_flags"},
    "cli/runflags.py": {"run_args"},
    "cli/runopts.py": set(),
    "cli/savedflags.py": set(),
    "cli/dryrun.py": set(),
    "cli/running.py": set(),
}


def test_the_namespace_goes_no_further_than_the_readers() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "planfleet"
    found = {}
    for rel in CONVERTED:
        tree = ast.parse((src / rel).read_text("utf-8"))
        found[rel] = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            and any("Namespace" in ast.unparse(a.annotation or a) for a in node.args.args)
        } - {"_handler"}
    assert found == CONVERTED
    # a handler only hands the namespace to its reader
    for rel in CONVERTED:
        tree = ast.parse((src / rel).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "_handler":
                uses = [n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == "ns"]
                assert len(uses) == 1, f"{rel}: _handler reads the namespace itself"


def test_wait_on_limit_is_on_for_a_detached_engine_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planfleet.cli.runopts import run_options
    from planfleet.plan.formats import load_plan

    repo = make_repo(tmp_path / "repo", {"plans/p.plan.yaml": textwrap.dedent(TWO_TASKS)})
    plan = load_plan(repo / "plans" / "p.plan.yaml", repo=repo)
    monkeypatch.delenv("PLANFLEET_DETACHED", raising=False)
    assert run_options(RunFlags(), plan).wait_on_limit is False
    assert run_options(RunFlags(wait_on_limit=True), plan).wait_on_limit is True
    monkeypatch.setenv("PLANFLEET_DETACHED", "1")
    assert run_options(RunFlags(), plan).wait_on_limit is True
    assert run_options(RunFlags(wait_on_limit=False), plan).wait_on_limit is False
