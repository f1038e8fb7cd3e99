"""Red before green: the tests a task adds or changes must fail without the task's code.

The task's test files (and the conftest.py files and helpers beside them) are applied alone to
a scratch checkout of the base and run there. A new or edited test that already passes on the
base's code does not test the change, however green it is on the task's branch. The task
gates run this check after the other history checks: it changes ``s.checkout("base")``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from planfleet import git
from planfleet.verify import collect, diff, testrun, weakened
from planfleet.verify.collect import Finding, Span

NAME = "vacuous_test"
MAX_NAMED = 8
# (class, function) of a test in a Python file; the class is None at module level
Key = tuple[str | None, str]


@dataclass(frozen=True)
class Touched:
    """The test files a change adds or edits, and in each the tests that are new or edited."""

    files: tuple[str, ...]  # files that hold tests, as at the head
    tests: dict[str, frozenset[Key] | None]  # None: the file's tests can't be told apart
    support: tuple[str, ...]  # every test file, conftest.py or test helper the change touches
    only_tests: bool  # the change touches nothing but test files


def touched_tests(s: Span) -> Touched:
    """Return what the change does to the tests, read from the base and head trees."""
    files: list[str] = []
    tests: dict[str, frozenset[Key] | None] = {}
    support: list[str] = []
    for c in s.changes:
        old = c.old_path if c.status == "R" and c.old_path else c.path
        for path in {c.path, old}:
            if diff.is_test_support(path):
                support.append(path)
        if c.status == "D" or not weakened.is_test_file(c.path):
            continue
        found = _new_tests(s, c.path, old if c.status in "MTR" else None)
        if found is None or found:
            files.append(c.path)
            tests[c.path] = found
    only = all(diff.is_test_support(p) for c in s.changes for p in (c.path, c.old_path) if p)
    return Touched(tuple(sorted(files)), tests, tuple(sorted(set(support))), only)


def _new_tests(s: Span, path: str, old: str | None) -> frozenset[Key] | None:
    """Return the tests of ``path`` that are new or edited; None when that can't be told."""
    if not path.endswith(".py"):
        return None
    now = _tests_in(git.blob_text(s.head, path, cwd=s.repo) or "")
    if now is None:
        return None
    before = _tests_in(git.blob_text(s.base, old, cwd=s.repo) or "") if old else {}
    before = before or {}
    return frozenset(k for k, body in now.items() if before.get(k) != body)


def _tests_in(text: str) -> dict[Key, str] | None:
    """Return each test function's code (without its docstring's position) by its key."""
    tree = weakened.parse_python(text)
    if tree is None:
        return None
    found: dict[Key, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                if _is_test(child):
                    found[(node.name, child.name)] = ast.dump(child)
        elif _is_test(node):
            found[(None, node.name)] = ast.dump(node)
    return found


def _is_test(node: ast.AST) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def red_run(s: Span, touched: Touched) -> Finding:
    """Return the ``vacuous_test`` check: ``ok`` False names the tests that pass on the base."""
    if s.command is None:
        return Finding(NAME, True, "the plan has no test command")
    if not touched.files:
        return Finding(NAME, True, "no test added or changed")
    where = s.checkout("base")
    present = [p for p in touched.support if git.blob_text(s.head, p, cwd=s.repo) is not None]
    gone = sorted(set(touched.support) - set(present))
    if present:
        git.git("--literal-pathspecs", "checkout", s.head, "--", *present, cwd=where)
    for rel in gone:
        (where / rel).unlink(missing_ok=True)
    narrow = all(not re.search(r"[\s,]", f) for f in touched.files)
    scope = " ".join(touched.files) if narrow else None
    run, _, _ = testrun.run_tests(
        s.command, cwd=where, timeout_s=s.timeout_s, blast_radius=scope, keep_going=True
    )
    what = weakened.name_files(list(touched.files))
    evidence: dict[str, Any] = {
        "command": run.command,
        "exit_code": run.exit_code,
        "files": list(touched.files),
    }
    if run.exit_code is None:
        msg = f"{what} did not finish on the base's code (taken as failing there)"
        return Finding(NAME, True, msg, evidence)
    if not run.ids_known:
        return _by_exit_code(run.exit_code, what, evidence)
    vacuous = _passing_new(s, touched, run.passing)
    if not vacuous:
        count = sum(len(t) for t in touched.tests.values() if t is not None)
        tests = f"the {count} new or changed test(s) in {what}" if count else what
        return Finding(NAME, True, f"{tests} fail on the base's code: they test the change")
    evidence["tests"] = vacuous
    more = f" and {len(vacuous) - MAX_NAMED} more" if len(vacuous) > MAX_NAMED else ""
    msg = (
        f"{len(vacuous)} new or changed test(s) pass without the task's code (run on the base "
        f"with only the task's test files applied), so they do not test the change: "
        f"{', '.join(vacuous[:MAX_NAMED])}{more}"
    )
    return Finding(NAME, False, msg, evidence, NAME)


def _by_exit_code(code: int, what: str, evidence: dict[str, Any]) -> Finding:
    """Judge by the exit code alone: the test command does not name the tests it ran."""
    evidence["names"] = "unknown: the test command does not report test names"
    if code != 0:
        msg = (
            f"{what} fail on the base's code (exit code {code}); the test command does not "
            "name its tests, so not every new test was told apart"
        )
        return Finding(NAME, True, msg, evidence)
    msg = (
        f"the task's test files pass without its code (run on the base with only {what} "
        "applied, exit code 0), so they do not test the change; the test command does not "
        "name its tests, so which ones can't be told apart"
    )
    return Finding(NAME, False, msg, evidence, NAME)


def _passing_new(s: Span, touched: Touched, passing: tuple[str, ...]) -> list[str]:
    """Return the ids among ``passing`` of tests the change adds or edits."""
    files = set(git.tree_files(s.head, cwd=s.repo))
    found = []
    for ref in collect.refs(passing, files):
        if ref.file not in touched.tests:
            continue
        keys = touched.tests[ref.file]
        cls = ref.cls.rsplit(".", 1)[-1] if ref.cls else None
        if keys is None or (cls, ref.function) in keys:
            found.append(ref.id)
    return sorted(found)


def excused(writes: tuple[str, ...], touched: Touched) -> bool:
    """Return True for a task that declares only test files: its tests pin existing code."""
    return touched.only_tests and bool(writes) and all(map(_names_tests, writes))


def _names_tests(declared: str) -> bool:
    """Return True for a declared test file, or a folder or glob inside the test folders."""
    return diff.is_test_support(declared) or diff.is_test_path(declared.rstrip("/") + "/_")


def record(found: Finding) -> dict[str, Any]:
    """Return what the attempt's record keeps of a failed check: the tests, else the files."""
    evidence = found.evidence or {}
    return {"tests": list(evidence.get("tests", [])), "files": list(evidence.get("files", []))}
