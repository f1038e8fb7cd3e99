"""Hostile or damaged input gives exit 2 naming the file (or field), never an internal error:
state and engine files past the JSON limits, over-long names, unknown tasks, bad plan names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import git, make_repo
from planfleet import jsonread, paths
from planfleet.errors import InputError

PLAN = """\
planfleet: 1
name: x
phases:
  - id: one
    tasks:
      - id: t1
        title: a task
        commands: ["true"]
"""
STATE = ".planfleet/state/x.json"


@pytest.fixture
def repo(tmp_path: Path, run_cli) -> Path:
    repo = make_repo(tmp_path / "repo", {"plans/x.plan.yaml": PLAN})
    assert run_cli("state", "init", "x", "--from", "plans/x.plan.yaml", cwd=repo).code == 0
    return repo


def _named(r, file: str, message: str) -> None:
    assert r.code == 2, (r.code, r.out, r.err)
    (error,) = r.json()["errors"]
    assert error["file"].endswith(file), error
    assert message in error["message"], error
    assert "internal error" not in r.err


def _damage(repo: Path, old: str, new: str) -> None:
    path = paths.state_path(repo, "x")
    text = path.read_text()
    assert re.search(old, text)
    path.write_text(re.sub(old, new, text, count=1))


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "x"],
        ["resume", "x", "--runner", "shell", "--yes"],
        ["state", "claim", "x", "t1"],
        ["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"],
    ],
)
def test_a_state_file_nested_300000_deep_is_bad_input(repo: Path, run_cli, argv) -> None:
    _damage(repo, r'"revision": ', '"deep": ' + "[" * 300_000 + "]" * 300_000 + ', "revision": ')
    _named(run_cli(*argv, "--json", cwd=repo), STATE, "nested deeper than 64 levels")


@pytest.mark.parametrize(
    "argv",
    [["run", "plans/x.plan.yaml", "--runner", "shell", "--yes"], ["state", "claim", "x", "t1"]],
)
def test_a_5000_digit_number_in_the_state_is_bad_input(repo: Path, run_cli, argv) -> None:
    _damage(repo, r'"revision": \d+', '"revision": ' + "7" * 5000)
    _named(run_cli(*argv, "--json", cwd=repo), STATE, "a number with 5000 digits")


@pytest.mark.parametrize(
    ("pid", "message"),
    [("9" * 4001, "a number with 4001 digits"), ("9" * 19, "is not a process id")],
)
def test_an_engine_file_with_an_impossible_pid_is_bad_input(
    repo: Path, run_cli, pid: str, message: str
) -> None:
    info = paths.runs_dir(repo, "x") / "engine.json"
    info.parent.mkdir(parents=True)
    info.write_text(f'{{"plan": "x", "pid": {pid}, "host": "h", "started_at": "t"}}')
    r = run_cli("status", "x", "--json", cwd=repo)
    _named(r, ".planfleet/runs/x/engine.json", message)
    assert "delete .planfleet/runs/x/engine.json" in r.json()["errors"][0]["hint"]


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "validate", "a" * 300],
        ["run", "a" * 300, "--dry-run"],
        ["plan", "show", "plans/" + "a" * 300 + ".plan.yaml"],
    ],
)
def test_a_plan_name_too_long_for_the_os_is_not_found(repo: Path, run_cli, argv) -> None:
    r = run_cli(*argv, "--json", cwd=repo)
    assert r.code == 2, (r.out, r.err)
    assert "no plan file or plan named" in r.json()["errors"][0]["message"]


def test_land_into_a_branch_name_git_cannot_store_is_bad_input(repo: Path, run_cli) -> None:
    git(repo, "branch", "planfleet/x/integration")
    r = run_cli("land", "x", "--into", "b" * 300, "--json", cwd=repo)
    assert r.code == 2, (r.out, r.err)
    (error,) = r.json()["errors"]
    assert error["field"] == "--into"
    assert "longer than 200 bytes" in error["message"]
    # a name git accepts but cannot create (a branch "zz" holds the place of "zz/yy")
    git(repo, "branch", "zz")
    r = run_cli("land", "x", "--into", "zz/yy", "--json", cwd=repo)
    assert r.code == 3, (r.out, r.err)
    (error,) = r.json()["errors"]
    assert error["reason"] == "land_failed"
    assert "refs/heads/zz" in error["message"]
    assert git(repo, "branch", "--list", "zz/yy") == ""


def test_merge_of_an_unknown_task_is_bad_input_and_merges_nothing(repo: Path, run_cli) -> None:
    r = run_cli("merge", "x", "--tasks", "UNKNOWN", "--json", cwd=repo)
    assert r.code == 2, r.out
    (error,) = r.json()["errors"]
    assert error["field"] == "--tasks"
    assert "UNKNOWN" in error["message"]
    assert git(repo, "branch", "--list", "planfleet/x/integration") == ""


@pytest.mark.parametrize("name", ["a..b", "x.lock", "y."])
def test_a_plan_name_that_would_be_renamed_is_refused(tmp_path: Path, run_cli, name) -> None:
    repo = make_repo(tmp_path / "r", {"p.plan.yaml": PLAN.replace("name: x", f"name: {name}")})
    r = run_cli("plan", "validate", "p.plan.yaml", "--json", cwd=repo)
    assert r.code == 2, r.out
    (error,) = r.json()["errors"]
    assert (error["file"], error["line"], error["field"]) == ("p.plan.yaml", 2, "name")
    assert name in error["message"]


# -- the one JSON reader --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 65 + "]" * 65, "nested deeper than 64 levels"),
        ("[" * 100_000, "nested deeper than 64 levels"),
        ('{"a": ' + "1" * 21 + "}", "a number with 21 digits"),
        ('{"a": -' + "1" * 21 + "}", "a number with 21 digits"),
        ('{"a": NaN}', "NaN is not a JSON value"),
        ('{"a": -Infinity}', "-Infinity is not a JSON value"),
        ('{"a": 1e400}', "the number 1e400 is out of range"),
        ('{"a": 1,}', "not valid JSON"),
    ],
)
def test_json_beyond_the_limits_is_refused(text: str, message: str) -> None:
    with pytest.raises(jsonread.JSONError, match=re.escape(message)):
        jsonread.parse(text)
    with pytest.raises(InputError) as exc:
        jsonread.loads(text, file="f.json")
    assert exc.value.file == "f.json"


def test_json_within_the_limits_is_read_as_json_reads_it() -> None:
    doc = {"a": [[[[1]]]] * 3, "b": -(10**19), "c": 1.5e300, "d": "x" * 1000, "e": None}
    text = json.dumps(doc)
    assert jsonread.parse(text) == json.loads(text)
    assert jsonread.parse("[" * 64 + "]" * 64) is not None
