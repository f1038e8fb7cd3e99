"""The tests gate: the test command, narrowed to a blast radius, run and judged.

pytest gets a JUnit XML report in a temporary folder (its exact test ids, read by
:mod:`planfleet.verify.testresults`) and ``-v``, so that a run stopped at its time limit names the
test it was in; unittest gets ``-v``; anything else runs as written and is judged by its
exit code. :func:`compare` judges a run against the baseline: a test that passed there and
fails now is a regression, and so is any rise in the number of failures.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from planfleet import proc
from planfleet.errors import CommandError
from planfleet.plan import model
from planfleet.verify.testresults import (
    OUTPUT_TAIL_CHARS,
    TestRun,
    parse_output,
    read_junit,
    running_test,
    tail,
)

__all__ = [
    "OUTPUT_TAIL_CHARS",
    "CommandOutcome",
    "Comparison",
    "TestRun",
    "compare",
    "parse_output",
    "prepare_command",
    "run_tests",
    "run_user_command",
    "tail",
    "test_command",
    "time_limit",
]

PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing
# A test run after the baseline may take this many times the baseline's duration, plus this.
TIMEOUT_FACTOR = 3.0
TIMEOUT_SLACK_S = 30.0

# Shell syntax after which appending arguments would change a different command.
_SHELL_SYNTAX = re.compile(r"[;&|<>`$(){}\n]")
# pytest options whose next argument is a value, never a test path to replace.
_VALUE_OPTIONS = frozenset({
    "-k", "-m", "-p", "-c", "-o", "-W", "-r", "-n", "--rootdir", "--confcutdir", "--ignore",
    "--ignore-glob", "--deselect", "--basetemp", "--junitxml", "--junit-xml", "--tb", "--cov",
    "--durations", "--maxfail", "--verbosity",
})  # fmt: skip
_VERBOSE = frozenset({"-v", "-vv", "-vvv", "--verbose"})
_JUNIT = ("--junitxml", "--junit-xml")


@dataclass(frozen=True)
class CommandOutcome:
    """What one user command did: exit code (None: timed out), combined output, seconds."""

    command: str
    exit_code: int | None
    output: str
    duration_s: float = 0.0

    def evidence(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "output_tail": tail(self.output),
        }


def run_user_command(command: str, *, cwd: Path, timeout_s: float) -> CommandOutcome:
    """Run a command from the user's plan in ``cwd`` (``sh -c``, never shell=True)."""
    try:
        result = proc.run(proc.user_command(command), cwd=cwd, timeout=timeout_s, check=False)
    except CommandError as exc:  # with check=False this is only a timeout
        text = _join(exc.stdout, exc.stderr) + f"\n[timed out after {timeout_s:g} s]"
        return CommandOutcome(command, None, text, timeout_s)
    output = _join(result.stdout, result.stderr)
    return CommandOutcome(command, result.returncode, output, result.duration_s)


def _join(stdout: str, stderr: str) -> str:
    if stdout.strip() and stderr.strip():
        return f"{stdout.rstrip()}\n{stderr.rstrip()}\n"
    return stdout or stderr


def _tokens(command: str) -> list[str] | None:
    """Return the command's words when it is one simple command, else None."""
    if _SHELL_SYNTAX.search(command):
        return None
    try:
        return shlex.split(command)
    except ValueError:
        return None


def runner_kind(command: str) -> str | None:
    """Return "pytest" or "unittest" when ``command`` is one simple run of either, else None."""
    words = _tokens(command)
    if not words:
        return None
    for i, word in enumerate(words):
        if Path(word).name in ("pytest", "py.test"):
            return "pytest"
        if word == "-m" and i + 1 < len(words) and words[i + 1] in ("pytest", "unittest"):
            return words[i + 1]
    return None


def scope_words(blast_radius: str | None) -> list[str]:
    """Return the blast radius's patterns, quotes and backticks around them removed."""
    words = (w.strip("`'\"") for w in re.split(r"[\s,]+", blast_radius or ""))
    return [w for w in words if w]


def all_tests(blast_radius: str | None) -> bool:
    """Return True when a blast radius was given and names every test (``""``, ````` `` `````)."""
    return blast_radius is not None and not scope_words(blast_radius)


def blast_paths(blast_radius: str | None, cwd: Path) -> list[str]:
    """Return the blast radius's paths (globs expanded) that exist in ``cwd``, sorted."""
    found: set[str] = set()
    for word in scope_words(blast_radius):
        path = word.partition("::")[0]
        if not path or path.startswith("-") or Path(path).is_absolute() or ".." in Path(path).parts:
            continue
        if any(c in path for c in "*?["):
            found.update(p.relative_to(cwd).as_posix() for p in sorted(cwd.glob(path)))
        elif (cwd / path).exists():
            found.add(word)
    return sorted(found)


_KEEP_GOING = "--continue-on-collection-errors"


@dataclass(frozen=True)
class _Prepared:
    """The command to run, whether it was narrowed, a note, and where pytest reports."""

    command: str
    narrowed: bool
    note: str
    report: Path | None = None


def prepare_command(
    command: str, cwd: Path, blast_radius: str | None, *, report: Path | None = None
) -> tuple[str, bool, str]:
    """Return the test command to run in ``cwd``, whether it was narrowed, and a note.

    pytest gets ``-v``, ``--junitxml=REPORT`` (``-rA`` without a report) and the blast
    radius's paths in place of its own; unittest gets ``-v``; anything else runs as written.
    An option the command already has is not added again.
    """
    prep = _prepare(command, cwd, blast_radius, report)
    return prep.command, prep.narrowed, prep.note


def _prepare(
    command: str,
    cwd: Path,
    blast_radius: str | None,
    report: Path | None,
    keep_going: bool = False,
) -> _Prepared:
    kind = runner_kind(command)
    words = _tokens(command) or []
    patterns = scope_words(blast_radius)
    if kind == "unittest":
        if keep_going:  # no stop at the first failure
            words = [w for w in words if w not in ("-f", "--failfast")]
        note = "the blast radius applies to pytest commands only" if patterns else ""
        verbose = [] if _VERBOSE.intersection(words) else ["-v"]
        return _Prepared(shlex.join([*words, *verbose]), False, note)
    if kind != "pytest":
        note = "not a pytest command: ran as written" if patterns else ""
        return _Prepared(command, False, note)
    extra, report = _pytest_options(words, cwd, report)
    if keep_going:  # a test file that fails to import, or -x, stops nothing
        extra += [*([] if _KEEP_GOING in words else [_KEEP_GOING]), "--maxfail=1000000000"]
    scope = blast_paths(blast_radius, cwd)
    if not patterns:
        return _Prepared(shlex.join([*words, *extra]), False, "", report)
    if not scope:
        note = f"no path of the blast radius {blast_radius!r} exists: ran every test"
        return _Prepared(shlex.join([*words, *extra]), False, note, report)
    kept = [
        w
        for i, w in enumerate(words)
        if i == 0
        or w.startswith("-")
        or words[i - 1] in _VALUE_OPTIONS
        or not (cwd / w.partition("::")[0]).exists()
    ]
    note = f"narrowed to {' '.join(scope)}"
    return _Prepared(shlex.join([*kept, *extra, *scope]), True, note, report)


def _pytest_options(
    words: list[str], cwd: Path, report: Path | None
) -> tuple[list[str], Path | None]:
    """Return the options pytest needs added, and the JUnit report it will write (if any)."""
    extra = []
    if not (_VERBOSE.intersection(words) or any(w.startswith("--verbosity") for w in words)):
        extra.append("--verbosity=1")  # names each test as it starts
    theirs = _option_value(words, _JUNIT)
    if theirs is not None:
        return extra, cwd / theirs
    if report is not None and not any(w.endswith("no:junitxml") for w in words):
        return [*extra, f"--junitxml={report}"], report
    if not any(w.startswith("-r") for w in words):
        extra.append("-rA")  # without a report, the summary names every test
    return extra, None


def _option_value(words: list[str], names: tuple[str, ...]) -> str | None:
    """Return the value of the last of the options ``names`` in ``words``, or None."""
    value = None
    for i, word in enumerate(words):
        name, eq, inline = word.partition("=")
        if name in names:
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else None)
    return value


def run_tests(
    command: str,
    *,
    cwd: Path,
    timeout_s: float,
    blast_radius: str | None = None,
    keep_going: bool = False,
) -> tuple[TestRun, bool, str]:
    """Run the test command narrowed to ``blast_radius``; return the run, narrowed?, a note.

    ``keep_going``: neither a test file that fails to import nor the first failure stops
    the run (``-x`` / ``--failfast`` in the command are overridden).
    """
    with tempfile.TemporaryDirectory(prefix="planfleet-tests-") as tmp:
        prep = _prepare(command, cwd, blast_radius, Path(tmp) / "junit.xml", keep_going)
        started = time.time()
        outcome = run_user_command(prep.command, cwd=cwd, timeout_s=timeout_s)
        run = _read(prep, outcome, cwd, started)
    return run, prep.narrowed, prep.note


def _read(prep: _Prepared, outcome: CommandOutcome, cwd: Path, started: float) -> TestRun:
    """Return the run as its JUnit report says, else as its output says."""
    run = parse_output(prep.command, outcome.exit_code, outcome.output)
    if outcome.exit_code is None:  # stopped: any report is partial
        return replace(run, duration_s=outcome.duration_s, running=running_test(outcome.output))
    found = None
    if prep.report is not None and _written_since(prep.report, started):
        found = read_junit(prep.report, cwd)
    if found is None:
        return replace(run, duration_s=outcome.duration_s)
    passing, failing = found
    return TestRun(
        prep.command,
        outcome.exit_code,
        "pytest",
        passed=len(passing),
        failed=len(failing),
        passing=tuple(sorted(passing)),
        failing=tuple(sorted(failing)),
        ids_known=True,
        output_tail=tail(outcome.output, drop_passed=True),
        duration_s=outcome.duration_s,
    )


def _written_since(path: Path, started: float) -> bool:
    try:
        return path.stat().st_mtime >= started - 1  # coarse file system clocks
    except OSError:
        return False


def time_limit(baseline: TestRun | None, configured: float | None, default: float) -> float:
    """Return the seconds a test run may take: ``configured``, else derived from the baseline.

    A baseline that finished sets :data:`TIMEOUT_FACTOR` x its duration +
    :data:`TIMEOUT_SLACK_S`, so a change that makes the suite hang is stopped soon after the
    suite should have finished; without one, ``default`` (the attempt's time limit).
    """
    if configured is not None:
        return configured
    if baseline is not None and baseline.exit_code is not None and baseline.duration_s:
        return round(TIMEOUT_FACTOR * baseline.duration_s + TIMEOUT_SLACK_S, 1)
    return default


def timed_out(run: TestRun) -> str:
    """Return what a run stopped at its time limit tells: how long, and the test it was in."""
    after = f" after {run.duration_s:g} s" if run.duration_s else ""
    where = (
        f" while running {run.running}"
        if run.running
        else " (its output names no test that was running)"
    )
    return f"the test command timed out{after}{where}"


@dataclass(frozen=True)
class Comparison:
    """A test run judged against the baseline."""

    ok: bool
    message: str
    new_failures: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()


def compare(before: TestRun | None, after: TestRun, *, narrowed: bool) -> Comparison:
    """Return whether ``after`` fails where ``before`` (the baseline) did not, and how."""
    old_failing = set(before.failing) if before else set()
    fixed, added = _fixed(before, after, narrowed=narrowed), _added(before, after)
    counts = f"{after.passed} passed, {after.failed} failed" if after.format else ""
    if after.exit_code is None:
        return Comparison(False, timed_out(after), fixed=fixed, added=added)
    new = tuple(t for t in after.failing if t not in old_failing)
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        return Comparison(False, f"{counts}; new failures: {shown}", new, fixed, added)
    if (
        before is not None
        and after.format is not None
        and before.format == after.format
        and after.failed is not None
        and after.failed > (before.failed or 0)
    ):
        # More failures than the whole suite had at the base: some test that passed there
        # fails now, whatever the exit codes say, even when the output does not name it.
        rise = f"failures rose from {before.failed or 0} to {after.failed}"
        return Comparison(False, f"{counts}; {rise}", fixed=fixed, added=added)
    unnamed = (after.failed or 0) > len(after.failing)
    if after.exit_code == 0 or (after.failing and not unnamed):
        pre = len(after.failing)
        note = f"; {pre} failing before the run, not blamed" if pre else ""
        return Comparison(True, f"{counts or 'tests passed'}{note}", (), fixed, added)
    if after.format == "pytest" and after.exit_code == PYTEST_NO_TESTS:
        if narrowed or (before is not None and before.exit_code == PYTEST_NO_TESTS):
            return Comparison(True, "no tests collected", (), fixed, added)
        return Comparison(False, "no tests were collected", fixed=fixed, added=added)
    if before is not None and before.exit_code not in (0, None):
        return Comparison(
            True,
            f"exit code {after.exit_code}, but the baseline failed too (exit "
            f"{before.exit_code}): not blamed",
            (),
            fixed,
            added,
        )
    what = counts or "the output names no failing test"
    return Comparison(False, f"exit code {after.exit_code} ({what})", fixed=fixed, added=added)


def _fixed(before: TestRun | None, after: TestRun, *, narrowed: bool) -> tuple[str, ...]:
    if before is None or not before.failing:
        return ()
    if after.ids_known:
        return tuple(sorted(set(before.failing) & set(after.passing)))
    if not narrowed and after.format == before.format and after.exit_code is not None:
        return tuple(sorted(set(before.failing) - set(after.failing)))
    return ()


def _added(before: TestRun | None, after: TestRun) -> tuple[str, ...]:
    if before is None or not (before.ids_known and after.ids_known):
        return ()
    known = set(before.passing) | set(before.failing)
    return tuple(sorted((set(after.passing) | set(after.failing)) - known))


def test_command(plan: model.Plan) -> str | None:
    """Return the plan's test command, or None when it has none (no tests gate)."""
    command = plan.meta.get("test_command")
    return command.strip() or None if isinstance(command, str) else None


def test_timeout(plan: model.Plan) -> float | None:
    """Return the time limit the plan (or ``--test-timeout``) sets for each test run."""
    value = plan.meta.get("test_timeout")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)
