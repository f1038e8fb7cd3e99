"""Old tests on new code: the base's version of every test file a task changed or deleted,
run against the task's code in a scratch checkout.

A task that changes a function and edits the one assertion that would notice passes its own
tests. The base's tests still notice: a test that passes at the base and fails here is a
weakened test, however the agent's edited copy of it behaves.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

from planfleet import git
from planfleet.verify import collect, diff, testrun
from planfleet.verify.collect import Finding, Span, TestRef

NAME = "old_tests"
MAX_NAMED = 5


def base_test_files(
    changes: list[git.Change], runner: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Return ``(test files the diff changes or deletes, loaded test files it adds)``.

    A rename counts as the old path deleted and the new one added. Of the added files only
    those a runner loads by itself count (test files, conftest.py, pytest.ini, a test
    folder's __init__.py): a helper is new code, and the plan's settings may name it.
    """
    old: set[str] = set()
    new: set[str] = set()
    for c in changes:
        if c.status in "MTD" and diff.is_test_support(c.path, runner):
            old.add(c.path)
        elif c.status == "R" and c.old_path and diff.is_test_support(c.old_path, runner):
            old.add(c.old_path)
        if c.status in "ACR" and _loaded(c.path):
            new.add(c.path)
    return sorted(old), sorted(new)


def _loaded(path: str) -> bool:
    """Return True for a test file a runner picks up without being asked to."""
    name = PurePosixPath(path).name
    return name in diff.SUPPORT_NAMES or (
        diff.is_test_path(path) and (is_test_file(path) or name == "__init__.py")
    )


def old_tests_on_new_code(s: Span) -> Finding:
    """Return the ``old_tests`` check; it changes ``s.checkout("head")``, never the base's."""
    repo, base, head, command, timeout_s = s.repo, s.base, s.head, s.command, s.timeout_s
    if command is None:
        return Finding(NAME, True, "the plan has no test command")
    old, new = base_test_files(s.changes, diff.runner_files(command))
    config = [f for f in new if PurePosixPath(f).name in diff.SUPPORT_NAMES]
    if not old and not config:
        return Finding(NAME, True, "no existing test file or test configuration changed")
    where = s.checkout("head")
    # The head's code with exactly the base's tests: changed and deleted files as they were,
    # added ones (a new conftest.py could patch the code under test) taken away.
    if old:  # (with no paths, `git checkout BASE --` would move the whole checkout)
        git.git("--literal-pathspecs", "checkout", base, "--", *old, cwd=where)
    for rel in new:
        (where / rel).unlink(missing_ok=True)
    # Only test files narrow the run: a changed conftest.py or helper reaches any test.
    narrow = old and not config
    narrow = narrow and all(is_test_file(f) and not re.search(r"[\s,]", f) for f in old)
    scope = " ".join(old) if narrow else None
    after, narrowed, _ = testrun.run_tests(
        command, cwd=where, timeout_s=timeout_s, blast_radius=scope
    )
    what = name_files(old) if old else f"the tests (without the added {name_files(config)})"
    if testrun.compare(None, after, narrowed=narrowed).ok:
        return Finding(NAME, True, f"the base's version of {what} passes on the new code")
    before, _, _ = testrun.run_tests(
        command, cwd=s.checkout("base"), timeout_s=timeout_s, blast_radius=scope
    )
    evidence = {
        "command": after.command,
        "exit_code": after.exit_code,
        "output_tail": after.output_tail,
    }
    if before.exit_code is None:
        msg = f"the base's version of {what} fails on the new code; at the base it timed out"
        return Finding(NAME, False, msg, evidence, "test_failure")
    verdict = testrun.compare(before, after, narrowed=narrowed)
    failing = [t for t in verdict.new_failures if not before.ids_known or t in set(before.passing)]
    files = set(git.tree_files(base, cwd=repo))
    blamed = [r for r in collect.refs(failing, files) if not r.allowed(s.allowed)]
    if verdict.ok or (verdict.new_failures and not blamed):
        excused = f"; {len(failing)} listed in the task's removes_tests" if failing else ""
        msg = f"the base's version of {what} fails no test that passed at the base{excused}"
        return Finding(NAME, True, msg)
    show = f"`git show {base[:12]}:<file>` shows a file as it was"
    if not blamed:  # no test named: the exit code, or a timeout, is all there is
        msg = (
            f"the base's version of {what} fails on the new code ({verdict.message}) and passes "
            f"at the base: your change breaks what those tests checked ({show})"
        )
        return Finding(NAME, False, msg, evidence, "weakened_test")
    moved = collect.renames(s.changes)
    named = [_describe(repo, base, head, r, after.output_tail, moved) for r in blamed]
    more = f"; and {len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else ""
    msg = (
        f"{len(blamed)} test(s) that pass at the base fail on the new code when run from the "
        f"base's version of {what} (the edited tests hide it): {'; '.join(named[:MAX_NAMED])}"
        f"{more}. Restore the behaviour they check ({show})"
    )
    return Finding(NAME, False, msg, evidence, "weakened_test")


def is_test_file(path: str) -> bool:
    """Return True for a file that holds tests itself (not a helper, fixture or conftest)."""
    return diff.is_test_name(PurePosixPath(path).name)


def name_files(paths: list[str]) -> str:
    shown = ", ".join(paths[:5])
    return shown + (f" and {len(paths) - 5} more file(s)" if len(paths) > 5 else "")


def _describe(
    repo: Path, base: str, head: str, ref: TestRef, output: str, moved: dict[str, str]
) -> str:
    """Return the test's id and the assertion that fails: file, line, text, changed or not."""
    if ref.file is None:
        return ref.id
    text = git.blob_text(base, ref.file, cwd=repo) or ""
    now = git.blob_text(head, moved.get(ref.file, ref.file), cwd=repo)
    lines = text.splitlines()
    span = _function_span(text, ref.function, ref.cls) if ref.file.endswith(".py") else None
    kept = {ln.strip() for ln in (now or "").splitlines()}
    body = range(span[0], min(span[1], len(lines)) + 1) if span else range(0)
    # lines of the test, as it was, that the task's version of the file no longer has
    changed = [n for n in body if lines[n - 1].strip() and lines[n - 1].strip() not in kept]
    seen = [n for n in _mentioned_lines(output, ref.file) if 0 < n <= len(lines)]
    inside = [n for n in seen if n in body]
    asserts = [n for n in changed if re.search(r"assert|expect|should", lines[n - 1])]
    found = inside[-1:] or asserts[:1] or changed[:1] or seen[-1:]
    if not found:
        return f"{ref.id} (in {ref.file})"
    line = found[0]
    code = lines[line - 1].strip()
    why = "; your change removed or edited that line" if line in changed else ""
    return f"{ref.id}: fails at {ref.file}:{line} `{code[:160]}`{why}"


def _mentioned_lines(output: str, file: str) -> list[int]:
    """Return the line numbers of ``file`` that a traceback in ``output`` points at, in order.

    pytest writes ``tests/test_x.py:12: ...``; unittest ``File ".../tests/test_x.py", line 12``.
    """
    rx = re.compile(rf'(?:^|[\s"/(]){re.escape(file)}(?::|", line )(\d+)', re.M)
    return [int(m.group(1)) for m in rx.finditer(output)]


def parse_python(text: str) -> ast.Module | None:
    """Return the syntax tree of ``text``, or None when it is not valid Python."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def enclosing_test(text: str, line: int) -> str | None:
    """Return the Python function that ``line`` decorates or lies in (the innermost)."""
    tree = parse_python(text)
    if tree is None:
        return None
    best: tuple[int, str] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            inside = first <= line <= (node.end_lineno or node.lineno)
            if inside and (best is None or first >= best[0]):
                best = (first, node.name)
    return best[1] if best else None


def _function_span(text: str, name: str, cls: str | None) -> tuple[int, int] | None:
    """Return the first and last line of test function ``name`` (in class ``cls``)."""
    tree = parse_python(text)
    if tree is None:
        return None
    found: tuple[int, int] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and cls and node.name != cls:
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and child.name == name:
                span = (child.lineno, child.end_lineno or child.lineno)
                if not cls or isinstance(node, ast.ClassDef):
                    return span
                found = found or span
    return found
