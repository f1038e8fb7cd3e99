"""Every subcommand speaks the same language: names, metavars, choices and exit codes."""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git
from engine_support import plan_repo
from planfleet.cli import app
from planfleet.errors import ExitCode
from planfleet.runners.claude import PERMISSION_MODES
from test_engine_cli import TWO_TASKS

METAVAR = re.compile(r"^[A-Z][A-Z0-9_.,]*$")


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Yield every parser of the command line with its command path ("state show")."""
    todo: list[tuple[str, argparse.ArgumentParser]] = [("", app.build_parser())]
    while todo:
        path, parser = todo.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{path} {n}".strip(), p) for n, p in action.choices.items()]


def _valued() -> Iterator[tuple[str, argparse.Action]]:
    """Yield every argument that takes a value, with its command path."""
    for path, parser in _parsers():
        for a in parser._actions:
            if a.nargs != 0 and not isinstance(
                a, (argparse._SubParsersAction, argparse._HelpAction, argparse._VersionAction)
            ):
                yield path, a


def _shown(a: argparse.Action) -> str:
    return str(a.metavar) if a.metavar is not None else "{" + ",".join(a.choices or ()) + "}"


def test_every_value_has_a_chosen_upper_case_name() -> None:
    # argparse's own default is the dest in capitals (`--timeout TIMEOUT`): always say it.
    bad = [
        (path, a.option_strings or a.dest, a.metavar)
        for path, a in _valued()
        if (a.metavar is None and not a.choices)
        or (a.metavar is not None and not METAVAR.match(str(a.metavar)))
    ]
    assert bad == []


def test_the_same_argument_is_named_the_same_in_every_command() -> None:
    seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, a in _valued():
        key = a.option_strings[0] if a.option_strings else f"<{a.dest}>"
        seen[key][_shown(a)].append(path)
    mixed = {key: dict(names) for key, names in seen.items() if len(names) > 1}
    assert mixed == {}
    assert seen["<plan>"].keys() == {"PLAN"}
    assert seen["<task>"].keys() == {"TASK"}


def test_numbers_say_their_unit() -> None:
    for path, a in _valued():
        if a.type is float or getattr(a.type, "__name__", "") == "positive_float":
            unit = "USD" if "usd" in a.dest or "cost" in a.dest else "S"
            assert a.metavar == unit, (path, a.option_strings)


def test_permission_modes_are_claude_codes_own_everywhere() -> None:
    found = {path: a.choices for path, a in _valued() if "--permission-mode" in a.option_strings}
    assert set(found) == {"run", "resume", "batch", "dispatch", "orchestrate", "phase-runner"}
    assert all(tuple(c or ()) == PERMISSION_MODES for c in found.values())
    # `claude --help` 2.1.328 lists these; it accepts `default` too (the same as manual)
    assert set(PERMISSION_MODES) == {
        "acceptEdits",
        "auto",
        "bypassPermissions",
        "manual",
        "dontAsk",
        "plan",
        "default",
    }


def test_a_command_is_named_the_same_on_success_and_on_a_usage_error(run_cli, git_repo) -> None:
    for path, parser in _parsers():
        name = parser.get_default("command_name")
        if name is not None:
            assert name == path, path
    for args, name in (
        (["run", "plans/x.yaml", "--bogus"], "run"),
        (["-C", str(git_repo), "run", "--max-parallel", "0", "x"], "run"),
        (["state", "show", "--bogus"], "state show"),
        (["agents", "--phase", "3", "logs"], "agents logs"),
        (["worktree", "create", "--base", "HEAD", "p"], "worktree create"),
        (["nope"], "planfleet"),
    ):
        res = run_cli(*args, "--json", cwd=git_repo)
        assert res.code == ExitCode.USAGE, args
        assert res.json()["command"] == name, args


def test_the_exit_codes_are_documented_in_help() -> None:
    text = app.build_parser().format_help()
    for needle in ("exit codes", "no_state", "no_branch", "does not exist is bad input"):
        assert needle in " ".join(text.split()), needle


def _refused(res, reason: str) -> None:
    assert res.code == ExitCode.REFUSED, res.err
    env = res.json()
    assert env["status"] == "aborted"
    assert env["errors"][0]["reason"] == reason
    assert env["errors"][0]["next_step"]


@pytest.mark.parametrize(
    "args",
    [
        ["state", "show", "p"],
        ["status", "p"],
        ["stop", "p"],
        ["stop", "p", "--task", "a"],
        ["logs", "p", "a"],
        ["logs", "p", "--engine"],
        ["resume", "plans/p.plan.yaml", "--runner", "shell"],
        ["checkpoint", "plans/p.plan.yaml"],
    ],
)
def test_a_plan_without_a_run_is_one_refusal_everywhere(
    run_cli, tmp_path: Path, args: list[str]
) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    _refused(run_cli(*args, "--json", cwd=repo), "no_state")


def test_what_has_not_happened_yet_is_refused_and_what_does_not_exist_is_bad_input(
    run_cli, tmp_path: Path
) -> None:
    repo = plan_repo(tmp_path, TWO_TASKS)
    assert run_cli("state", "init", "p", "--from", "plans/p.plan.yaml", cwd=repo).code == 0
    _refused(run_cli("verify", "plans/p.plan.yaml", "a", "--json", cwd=repo), "no_branch")
    _refused(run_cli("logs", "p", "a", "--json", cwd=repo), "no_log")
    _refused(run_cli("logs", "p", "--engine", "--json", cwd=repo), "no_log")
    for args in (
        ["verify", "plans/p.plan.yaml", "zz"],
        ["logs", "p", "zz"],
        ["stop", "p", "--task", "zz"],
        ["state", "reset", "p", "zz"],
    ):
        res = run_cli(*args, "--json", cwd=repo)
        assert res.code == ExitCode.USAGE, (args, res.err)
        assert "'zz'" in res.json()["errors"][0]["message"]
    assert git(repo, "branch", "--list", "planfleet/p/tasks/*") == ""
