"""What a test run reported: pytest's JUnit XML report, or pytest/unittest text output.

pytest writes exact test ids into its JUnit XML report whatever its colours, verbosity,
plugins or xdist, so that report is read first. The text parsers remain for unittest and for
a pytest run that wrote no report (stopped, or the junitxml plugin switched off): they read
``-v`` result lines (``id PASSED``), pytest's ``-rA`` summary and ``N passed, M failed``
counts, unittest's ``Ran N tests`` and ``FAIL: test_x (mod.Class)``. Colour codes are removed
before any of it is read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUTPUT_TAIL_CHARS = 4000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STATUS = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
# `-v`: "tests/t.py::test_x[a - b] FAILED   [ 50%]"; the id is as long as the line allows.
_PYTEST_LINE = re.compile(
    rf"^(?P<id>\S.*?::.*\S) (?P<status>{_STATUS})(?: \(.*\))?(?:\s+\[\s*\d+%\])?\s*$"
)
_PYTEST_STARTED = re.compile(r"^(?P<id>\S+::.*\S)\s*$")  # `-v` prints the id, then runs it
_LOCATION = re.compile(r" <- \S+$")  # `-v` names where an inherited test is defined
_PYTEST_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b.*$")
_PYTEST_SHORT = re.compile(r"^(PASSED|FAILED|ERROR) (\S.*)$")  # the -rA summary
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_UNITTEST_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$")
_UNITTEST_FAIL = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\w+) \(([^)]*)\)")
_UNITTEST_NAME = re.compile(r"^(\w+) \(([\w.]+)\)")
_UNITTEST_STATUS = re.compile(
    r" \.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)"
)


@dataclass(frozen=True)
class TestRun:
    """One run of the test command, as read from its report or output."""

    __test__ = False  # not a pytest test class

    command: str  # what actually ran (after narrowing)
    exit_code: int | None  # None: stopped at its time limit
    format: str | None  # "pytest", "unittest" or None (judged by exit code only)
    passed: int | None = None
    failed: int | None = None  # failures and errors
    passing: tuple[str, ...] = ()
    failing: tuple[str, ...] = ()
    ids_known: bool = False  # every passing test was listed by id
    output_tail: str = ""
    duration_s: float | None = None
    running: str | None = None  # the test that was running when the run was stopped

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
        duration, running = data.get("duration_s"), data.get("running")
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
            duration_s=float(duration) if isinstance(duration, (int, float)) else None,
            running=running if isinstance(running, str) else None,
        )


def plain(text: str) -> str:
    """Return ``text`` without terminal colour codes."""
    return _ANSI.sub("", text)


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS, *, drop_passed: bool = False) -> str:
    """Return the last ``limit`` characters of ``text``, cut at a line start when possible."""
    text = text.rstrip()
    if drop_passed:  # every passing test is listed: they crowd out the failures
        text = "\n".join(ln for ln in text.splitlines() if not _passed_line(plain(ln)))
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < limit // 4:
        cut = cut[newline + 1 :]
    return f"[... {len(text) - len(cut)} earlier characters cut]\n{cut}"


def _passed_line(line: str) -> bool:
    if line.startswith("PASSED "):
        return True
    m = _PYTEST_LINE.match(line)
    return m is not None and m.group("status") == "PASSED"


def parse_output(command: str, exit_code: int | None, output: str) -> TestRun:
    """Return what the test output says: counts and test ids when the format is known."""
    lines = plain(output).splitlines()
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
    passing, failing = _pytest_ids(lines)
    passed = counts.get("passed", 0)
    return TestRun(
        command,
        exit_code,
        "pytest",
        passed=passed,
        failed=counts.get("failed", 0) + counts.get("error", 0),
        passing=tuple(sorted(passing)),
        failing=tuple(sorted(failing)),
        ids_known=len(passing) == passed,
    )


def _pytest_ids(lines: list[str]) -> tuple[set[str], set[str]]:
    """Return the passing and failing ids: from ``-v`` lines, else from the -rA summary."""
    passing: set[str] = set()
    failing: set[str] = set()
    for line in lines:
        m = _PYTEST_LINE.match(line)
        if m and m.group("status") in ("PASSED", "FAILED", "ERROR", "XPASS"):
            tid = _LOCATION.sub("", m.group("id"))
            (passing if m.group("status") == "PASSED" else failing).add(tid)
    if passing or failing:  # a test that passed and then failed its teardown failed
        return passing - failing, failing
    for line in lines:
        m = _PYTEST_SHORT.match(line)
        if m:
            (passing if m.group(1) == "PASSED" else failing).add(_short_id(m.group(2)))
    return passing, failing


def _short_id(rest: str) -> str:
    """Return the id of a summary line ``id - message``: a ``" - "`` inside ``[...]`` stays."""
    head, sep, _ = rest.partition(" - ")
    if sep and "[" in head and "]" not in head.rpartition("[")[2]:
        close = rest.find("] - ", len(head))
        return rest[: close + 1] if close >= 0 else rest.rstrip()
    return head


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


def running_test(output: str) -> str | None:
    """Return the test a ``-v`` run had started and not finished (pytest or unittest)."""
    running: str | None = None
    for line in plain(output).splitlines():
        if _PYTEST_LINE.match(line) or _UNITTEST_STATUS.search(line):
            running = None
        elif m := _PYTEST_STARTED.match(line):
            running = _LOCATION.sub("", m.group("id"))
        elif u := _UNITTEST_NAME.match(line):  # its " ... " may follow a docstring line
            running = _unittest_id(u.group(1), u.group(2))
    return running


def read_junit(report: Path, root: Path) -> tuple[set[str], set[str]] | None:
    """Return the passing and failing test ids of a JUnit XML report, None if unreadable.

    ``root`` is the folder pytest ran in: its files turn pytest's dotted class names back
    into test ids (``tests/test_a.py::TestK::test_m``). Skipped tests are in neither set.
    """
    try:
        # A file pytest itself wrote: expat expands no external entities and, since 2.4.1,
        # refuses entity amplification.
        tree = ET.parse(report)  # noqa: S314
    except (OSError, ET.ParseError):
        return None
    passing: set[str] = set()
    failing: set[str] = set()
    for case in tree.getroot().iter("testcase"):
        tid = _junit_id(case.get("classname") or "", case.get("name") or "", case.get("file"), root)
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failing.add(tid)
        elif "skipped" not in tags:
            passing.add(tid)
    return passing - failing, failing


def _junit_id(classname: str, name: str, file: str | None, root: Path) -> str:
    """Return pytest's node id for a JUnit test case (``classname::name`` if no file fits)."""
    if not classname:  # a collection error: ``name`` is the module's dotted path
        dotted, last = name.split("."), []
    else:
        dotted, last = classname.split("."), [name]
    if file and classname.startswith(_dotted(file)):
        rest = classname[len(_dotted(file)) :].lstrip(".")
        return "::".join([file, *filter(None, rest.split(".")), *last])
    for cut in range(len(dotted), 0, -1):
        candidate = "/".join(dotted[:cut]) + ".py"
        if (root / candidate).is_file():
            return "::".join([candidate, *dotted[cut:], *last])
    return "::".join(filter(None, [classname, name]))


def _dotted(file: str) -> str:
    return file.removesuffix(".py").replace("/", ".")
