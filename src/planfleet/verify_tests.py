"""The tests gate: running a plan's test command, reading its output, and the baseline.

Output is read as pytest (``-rA`` summary lines, ``N passed, M failed``) or unittest
(``Ran N tests``, ``FAIL: test_x (mod.Class)``); anything else is judged by its exit code.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from planfleet import model, proc
from planfleet.errors import CommandError

OUTPUT_TAIL_CHARS = 4000
PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing

# Shell syntax after which appending arguments would change a different command.
_SHELL_SYNTAX = re.compile(r"[;&|<>`$(){}\n]")
# pytest options whose next argument is a value, never a test path to replace.
_VALUE_OPTIONS = frozenset({
    "-k", "-m", "-p", "-c", "-o", "-W", "-r", "-n", "--rootdir", "--confcutdir", "--ignore",
    "--ignore-glob", "--deselect", "--basetemp", "--junitxml", "--junit-xml", "--tb", "--cov",
    "--durations", "--maxfail",
})  # fmt: skip

_PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b.*$")
_PYTEST_RESULT = re.compile(r"^(PASSED|FAILED|ERROR) (\S.*?)(?: - .*)?$")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_UNITTEST_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$")
_UNITTEST_FAIL = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\w+) \(([^)]*)\)")
_UNITTEST_NAME = re.compile(r"^(\w+) \(([\w.]+)\)")
_UNITTEST_STATUS = re.compile(
    r" \.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)"
)


@dataclass(frozen=True)
class CommandOutcome:
    """What one user command did: exit code (None: timed out) and combined output."""

    command: str
    exit_code: int | None
    output: str

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
        return CommandOutcome(command, None, text)
    return CommandOutcome(command, result.returncode, _join(result.stdout, result.stderr))


def _join(stdout: str, stderr: str) -> str:
    if stdout.strip() and stderr.strip():
        return f"{stdout.rstrip()}\n{stderr.rstrip()}\n"
    return stdout or stderr


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS, *, drop_passed: bool = False) -> str:
    """Return the last ``limit`` characters of ``text``, cut at a line start when possible."""
    text = text.rstrip()
    if drop_passed:  # pytest -rA lists every passing test: they crowd out the failures
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("PASSED "))
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < limit // 4:
        cut = cut[newline + 1 :]
    return f"[... {len(text) - len(cut)} earlier characters cut]\n{cut}"


@dataclass(frozen=True)
class TestRun:
    """One run of the test command, as read from its output."""

    __test__ = False  # not a pytest test class

    command: str  # what actually ran (after narrowing)
    exit_code: int | None
    format: str | None  # "pytest", "unittest" or None (judged by exit code only)
    passed: int | None = None
    failed: int | None = None  # failures and errors
    passing: tuple[str, ...] = ()
    failing: tuple[str, ...] = ()
    ids_known: bool = False  # every passing test was listed by id
    output_tail: str = ""

    def counts(self) -> dict[str, int | None]:
        return {"passed": self.passed, "failed": self.failed}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passing"], data["failing"] = list(self.passing), list(self.failing)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestRun:
        """Return the run stored by :meth:`to_json`; ValueError/TypeError when malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("command"), str):
            raise ValueError("a test run needs a command")
        passing, failing = data.get("passing", []), data.get("failing", [])
        if not all(isinstance(x, str) for x in [*passing, *failing]):
            raise ValueError("test ids must be strings")
        exit_code = data.get("exit_code")
        if exit_code is not None and not isinstance(exit_code, int):
            raise TypeError("exit_code must be an integer or null")
        return cls(
            command=data["command"],
            exit_code=exit_code,
            format=data.get("format"),
            passed=data.get("passed"),
            failed=data.get("failed"),
            passing=tuple(passing),
            failing=tuple(failing),
            ids_known=bool(data.get("ids_known", False)),
            output_tail=str(data.get("output_tail", "")),
        )


def parse_output(command: str, exit_code: int | None, output: str) -> TestRun:
    """Return what the test output says: counts and test ids when the format is known."""
    lines = output.splitlines()
    for parser in (_parse_pytest, _parse_unittest):
        run = parser(command, exit_code, lines)
        if run is not None:
            cut = tail(output, drop_passed=run.format == "pytest")
            return TestRun(**{**asdict(run), "output_tail": cut})
    return TestRun(command, exit_code, None, output_tail=tail(output))


def _parse_pytest(command: str, exit_code: int | None, lines: list[str]) -> TestRun | None:
    summary = next((m for ln in reversed(lines) if (m := _PYTEST_SUMMARY.match(ln))), None)
    if summary is None:
        return None
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) ([a-z]+)", summary.group(1)):
        key = word.rstrip("s") if word in ("errors", "warnings") else word
        counts[key] = counts.get(key, 0) + int(number)
    passing: list[str] = []
    failing: list[str] = []
    for line in lines:
        m = _PYTEST_RESULT.match(line)
        if m:
            (passing if m.group(1) == "PASSED" else failing).append(m.group(2))
    passed = counts.get("passed", 0)
    return TestRun(
        command,
        exit_code,
        "pytest",
        passed=passed,
        failed=counts.get("failed", 0) + counts.get("error", 0),
        passing=tuple(sorted(set(passing))),
        failing=tuple(sorted(set(failing))),
        ids_known=len(set(passing)) == passed,
    )


def _parse_unittest(command: str, exit_code: int | None, lines: list[str]) -> TestRun | None:
    ran_at = next((i for i in range(len(lines) - 1, -1, -1) if _UNITTEST_RAN.match(lines[i])), None)
    if ran_at is None:
        return None
    ran = int(_UNITTEST_RAN.match(lines[ran_at]).group(1))  # type: ignore[union-attr]
    counts: dict[str, int] = {}
    for line in lines[ran_at + 1 :]:
        m = _UNITTEST_RESULT.match(line.strip())
        if m:
            for key, _, value in (p.partition("=") for p in (m.group(2) or "").split(", ")):
                if value.isdigit():
                    counts[key] = int(value)
            break
    failed = counts.get("failures", 0) + counts.get("errors", 0)
    failed += counts.get("unexpected successes", 0)
    not_passed = failed + counts.get("skipped", 0) + counts.get("expected failures", 0)
    failing = {
        _unittest_id(m.group(2), m.group(3)) for ln in lines if (m := _UNITTEST_FAIL.match(ln))
    }
    passing = set(_unittest_passing(lines))
    passed = max(ran - not_passed, 0)
    return TestRun(
        command,
        exit_code,
        "unittest",
        passed=passed,
        failed=failed,
        passing=tuple(sorted(passing - failing)),
        failing=tuple(sorted(failing)),
        ids_known=len(passing - failing) == passed,
    )


def _unittest_id(name: str, where: str) -> str:
    """Return ``mod.Class.test``: Python 3.11+ already prints it, older ones ``mod.Class``."""
    return where if where.endswith(f".{name}") else f"{where}.{name}"


def _unittest_passing(lines: list[str]) -> list[str]:
    """Return the ids ``-v`` output reports as ``ok`` (a docstring may put it a line later)."""
    found: list[str] = []
    pending: str | None = None
    for line in lines:
        named = _UNITTEST_NAME.match(line)
        status = _UNITTEST_STATUS.search(line)
        if named:
            pending = _unittest_id(named.group(1), named.group(2))
        if pending and status:
            if status.group(1) == "ok":
                found.append(pending)
            pending = None
        elif not named:
            pending = None
    return found


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


def blast_paths(blast_radius: str | None, cwd: Path) -> list[str]:
    """Return the blast radius's paths (globs expanded) that exist in ``cwd``, sorted."""
    found: set[str] = set()
    for word in re.split(r"[\s,]+", blast_radius or ""):
        path = word.partition("::")[0]
        if not path or path.startswith("-") or Path(path).is_absolute() or ".." in Path(path).parts:
            continue
        if any(c in path for c in "*?["):
            found.update(p.relative_to(cwd).as_posix() for p in sorted(cwd.glob(path)))
        elif (cwd / path).exists():
            found.add(word)
    return sorted(found)


def prepare_command(command: str, cwd: Path, blast_radius: str | None) -> tuple[str, bool, str]:
    """Return the test command to run in ``cwd``, whether it was narrowed, and a note.

    pytest gets ``-rA`` (every test's id) and the blast radius's paths in place of its own;
    unittest gets ``-v``; anything else runs as written.
    """
    kind = runner_kind(command)
    words = _tokens(command) or []
    scope = blast_paths(blast_radius, cwd) if blast_radius else []
    if kind == "unittest":
        note = "the blast radius applies to pytest commands only" if blast_radius else ""
        return shlex.join([*words, "-v"]), False, note
    if kind != "pytest":
        note = "not a pytest command: ran as written" if blast_radius else ""
        return command, False, note
    if not blast_radius:
        return shlex.join([*words, "-rA"]), False, ""
    if not scope:
        note = f"no path of the blast radius {blast_radius!r} exists: ran every test"
        return shlex.join([*words, "-rA"]), False, note
    kept = [
        w
        for i, w in enumerate(words)
        if i == 0
        or w.startswith("-")
        or words[i - 1] in _VALUE_OPTIONS
        or not (cwd / w.partition("::")[0]).exists()
    ]
    return shlex.join([*kept, "-rA", *scope]), True, f"narrowed to {' '.join(scope)}"


def run_tests(
    command: str, *, cwd: Path, timeout_s: float, blast_radius: str | None = None
) -> tuple[TestRun, bool, str]:
    """Run the test command narrowed to ``blast_radius``; return the run, narrowed?, a note."""
    actual, narrowed, note = prepare_command(command, cwd, blast_radius)
    outcome = run_user_command(actual, cwd=cwd, timeout_s=timeout_s)
    return parse_output(actual, outcome.exit_code, outcome.output), narrowed, note


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
        return Comparison(False, "the test command timed out", fixed=fixed, added=added)
    new = tuple(t for t in after.failing if t not in old_failing)
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        return Comparison(False, f"{counts}; new failures: {shown}", new, fixed, added)
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
