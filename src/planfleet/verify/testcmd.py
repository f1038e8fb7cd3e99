"""Which test command a run uses, and why: the flag, the plan, the repository's config, or
what the repository itself shows.

Precedence: ``--test-cmd`` > the plan's own ``test_command`` > ``planfleet.toml`` >
``pyproject.toml`` ``[tool.planfleet]`` > detection (:mod:`planfleet.verify.testdetect`). An empty
command from the flag or a config turns the tests gate off on purpose. The choice is put
into the plan's ``meta`` (``test_command``, ``test_timeout`` and where they came from), which
is where every gate reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.errors import InputError, RefusedError
from planfleet.plan import model
from planfleet.verify import testdetect, testrun, tomlread

CONFIG_FILE = "planfleet.toml"
CONFIG_KEYS = ("test_command", "test_timeout")
_SOURCE_KEY = "test_command_source"
_REASON_KEY = "test_command_reason"
_LIMIT_KEY = "test_timeout_source"


@dataclass(frozen=True)
class TestChoice:
    """The test command a run uses (None: no tests gate), where it came from, and why."""

    __test__ = False  # not a pytest test class

    command: str | None
    source: str  # "--test-cmd", "plan", "planfleet.toml", "pyproject.toml", "detected", "none"
    reason: str
    timeout_s: float | None = None  # a fixed limit per test run; None: derived
    timeout_source: str | None = None

    @property
    def off(self) -> bool:
        """Return True when someone turned the tests gate off on purpose."""
        return self.command is None and self.source != "none"

    def describe(self) -> str:
        """Return the choice in one line, e.g. ``python3 -m pytest (detected: ...)``."""
        if self.command is None:
            return f"none: {self.reason}"
        return f"{self.command}  ({self.source}: {self.reason})"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_config(repo: Path) -> tuple[dict[str, Any], str | None]:
    """Return the repository's planfleet settings and the file they came from.

    ``planfleet.toml`` (top-level keys) wins over ``pyproject.toml`` ``[tool.planfleet]``;
    InputError for a malformed file, an unknown key or a value of the wrong type.
    """
    own = repo / CONFIG_FILE
    if own.is_file():
        return _checked(tomlread.load_file(own, shown=CONFIG_FILE), CONFIG_FILE), CONFIG_FILE
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        tool = tomlread.load_file(pyproject, shown="pyproject.toml").get("tool", {})
        section = tool.get("planfleet") if isinstance(tool, dict) else None
        if isinstance(section, dict):
            return _checked(section, _config_name("pyproject.toml")), "pyproject.toml"
    return {}, None


def _config_name(config_file: str) -> str:
    return "pyproject.toml [tool.planfleet]" if config_file == "pyproject.toml" else config_file


def _checked(data: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise InputError(
            f"unknown key(s) {', '.join(unknown)}",
            file=where,
            hint=f"known keys: {', '.join(CONFIG_KEYS)}",
        )
    if "test_command" in data and not isinstance(data["test_command"], str):
        what = "must be a string ('' turns the tests off)"
        raise InputError(what, file=where, field="test_command")
    timeout = data.get("test_timeout")
    if "test_timeout" in data and not _positive(timeout):
        raise InputError("must be a number of seconds above 0", file=where, field="test_timeout")
    return data


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def choose(
    repo: Path,
    plan: model.Plan | None,
    *,
    flag: str | None = None,
    flag_timeout: float | None = None,
) -> TestChoice:
    """Return the test command (and time limit) for ``plan`` in ``repo``, with the reason."""
    plan = plan or model.Plan("-", "", "", "", (), ())
    config, config_file = read_config(repo)
    timeout, timeout_source = _timeout(plan, config, config_file, flag_timeout)
    if flag is not None:
        command, source, reason = flag, "--test-cmd", "given on the command line"
    elif isinstance(plan.meta.get(_SOURCE_KEY), str):  # chosen before (a plan we applied)
        source, reason = str(plan.meta[_SOURCE_KEY]), str(plan.meta.get(_REASON_KEY, ""))
        if flag_timeout is None:
            timeout, timeout_source = plan.meta.get("test_timeout"), plan.meta.get(_LIMIT_KEY)
        return TestChoice(plan.meta.get("test_command"), source, reason, timeout, timeout_source)
    elif isinstance(plan.meta.get("test_command"), str):
        command, source, reason = plan.meta["test_command"], "plan", f"test_command in {plan.path}"
    elif "test_command" in config and config_file is not None:
        command, source = config["test_command"], config_file
        reason = f"test_command in {_config_name(config_file)}"
    else:
        found = testdetect.detect(repo)
        if found is None:
            return TestChoice(None, "none", testdetect.NOTHING_FOUND, timeout, timeout_source)
        command, source, reason = found.command, "detected", found.reason
    command = command.strip()
    if not command:
        return TestChoice(None, source, f"tests turned off ({reason})", timeout, timeout_source)
    return TestChoice(command, source, reason, timeout, timeout_source)


def _timeout(
    plan: model.Plan, config: dict[str, Any], config_file: str | None, flag: float | None
) -> tuple[float | None, str | None]:
    if flag is not None:
        return flag, "--test-timeout"
    if _positive(plan.meta.get("test_timeout")):
        return float(plan.meta["test_timeout"]), "plan"
    if "test_timeout" in config:
        return float(config["test_timeout"]), config_file
    return None, None


def apply(plan: model.Plan, choice: TestChoice) -> model.Plan:
    """Return ``plan`` with the chosen test command and time limit in its ``meta``."""
    meta = {k: v for k, v in plan.meta.items() if k not in ("test_command", "test_timeout")}
    meta.update({_SOURCE_KEY: choice.source, _REASON_KEY: choice.reason})
    if choice.command is not None:
        meta["test_command"] = choice.command
    if choice.timeout_s is not None:
        meta.update(test_timeout=choice.timeout_s, test_timeout_source=choice.timeout_source)
    return dataclasses.replace(plan, meta=meta)


def needs_tests(plan: model.Plan) -> list[str]:
    """Return the phases and tasks that declare a blast radius (a test scope to check)."""
    found = [f"phase {p.id}" for p in plan.phases if p.blast_radius is not None]
    found += [
        f"task {t.id}"
        for t in plan.tasks
        if t.blast_radius is not None and plan.phase(t.phase).blast_radius is None
    ]
    return found


def require(plan: model.Plan, choice: TestChoice) -> None:
    """RefusedError when the plan declares test scopes and no test command was found."""
    wanted = needs_tests(plan)
    if choice.command is not None or choice.off or not wanted:
        return
    shown = ", ".join(wanted[:5]) + (f" and {len(wanted) - 5} more" if len(wanted) > 5 else "")
    raise RefusedError(
        f"the plan declares a blast radius ({shown}) but no test command was found: "
        f"{choice.reason}",
        reason="no_test_command",
        next_step="give one with --test-cmd CMD (e.g. --test-cmd 'python3 -m pytest'), or set "
        f"test_command in {CONFIG_FILE} or pyproject.toml [tool.planfleet]; "
        "--test-cmd '' runs without the tests gate",
        details={"needs_tests": wanted},
    )


def refusal(plan: model.Plan, choice: TestChoice) -> str | None:
    """Return why :func:`require` would refuse a run, with the next step; None if not."""
    try:
        require(plan, choice)
    except RefusedError as exc:
        return f"{exc.message} (next step: {exc.next_step})"
    return None


def limits(choice: TestChoice, default_s: float | None) -> str:
    """Return, in words, how long each test run may take (``default_s``: the --timeout)."""
    if choice.timeout_s is not None:
        return f"{choice.timeout_s:g} s per test run ({choice.timeout_source})"
    first = f"{default_s:g} s (--timeout)" if default_s is not None else "--timeout"
    return (
        f"the baseline {first}, later runs {testrun.TIMEOUT_FACTOR:g} x "
        f"the baseline's duration + {testrun.TIMEOUT_SLACK_S:g} s"
    )


def summary(plan: model.Plan, choice: TestChoice, default_s: float | None) -> dict[str, Any]:
    """Return what the dry run and `plan show --json` say about the tests gate."""
    return {
        **choice.to_json(),
        "limits": limits(choice, default_s) if choice.command else None,
        "needs_tests": needs_tests(plan),
        "refused": refusal(plan, choice),
    }


def summary_lines(plan: model.Plan, choice: TestChoice, default_s: float | None) -> list[str]:
    """Return :func:`summary` for a person."""
    lines = [f"tests: {choice.describe()}"]
    if choice.command:
        lines.append(f"test time limits: {limits(choice, default_s)}")
    try:
        require(plan, choice)
    except RefusedError as exc:
        wanted = ", ".join(needs_tests(plan)[:5])
        lines.append(f"a run would be refused: a blast radius ({wanted}) needs tests; {exc.hint}")
    return lines
