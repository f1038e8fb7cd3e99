"""Which tests a branch no longer has: the test ids collected at the base and on the branch.

This never depends on what a runner prints about the tests it ran. pytest lists its ids with
``--collect-only``; unittest's own loader, run with the command's discovery arguments, lists
its ids; for any other runner the test functions are read from the test files in the diff.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from planfleet import fsutil, git, paths
from planfleet.verify import diff, testrun

ID_MARK = "planfleet-test-id "
# unittest's own command line (`python -m unittest ARGS`), listing the ids it loaded instead
# of running them, so discovery arguments, -k patterns and load_tests() all apply as usual.
_UNITTEST_LOADER = f"""\
import sys, unittest
def ids(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from ids(test)
        elif hasattr(test, "id"):
            yield test.id()
class Collect(unittest.TestProgram):
    def runTests(self):
        for i in ids(self.test):
            print({ID_MARK!r} + i)
Collect(module=None, argv=["python -m unittest", *sys.argv[1:]], exit=False)
"""
_PYTEST_DONE = (0, 2, 5)  # collected, collected with errors, collected nothing
_FAILED_IMPORT = "unittest.loader._FailedTest."  # a module that did not import, not a test
# Test functions in source files, for runners planfleet cannot ask: (suffixes, pattern whose
# last group is the name).
_PY, _GO, _RS, _RB = (".py",), (".go",), (".rs",), (".rb",)
_JS = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
_ANNOTATED = (".rs", ".java", ".kt", ".kts", ".cs", ".swift", ".scala")
_NAMES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (_PY + _RB, re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(test\w*)[ \t]*[(:\n]", re.M)),
    (_GO, re.compile(r"^func[ \t]+((?:Test|Benchmark|Fuzz|Example)\w*)[ \t]*\(", re.M)),
    (_RS, re.compile(r"^[ \t]*(?:pub[ \t]+)?(?:async[ \t]+)?fn[ \t]+(test\w*)[ \t]*\(", re.M)),
    (_JS + _RB, re.compile(r"""(?:^|[^\w.])(?:it|test|specify)[ \t]*\([ \t]*(['"`])(.+?)\1""")),
    (_RB, re.compile(r"""^[ \t]*(?:it|test|specify)[ \t]+(['"])(.+?)\1""", re.M)),
    (
        _ANNOTATED,  # #[test] fn x, @Test void x(), [Fact] public void X()
        re.compile(
            r"(?:#\[(?:\w+::)*test\]|@Test\b|\[(?:Test|Fact|Theory)\])[^\n]*\n"
            r"(?:[ \t]*(?:#\[|@|\[)[^\n]*\n)*"
            r"[^\n(]*?\b(?:fn|void|fun|func|def|Task)[ \t]+(\w+)[ \t]*\("
        ),
    ),
)


@dataclass(frozen=True)
class Finding:
    """The verdict of one history check, in the shape of a verification gate."""

    name: str
    ok: bool
    message: str
    evidence: dict[str, Any] | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class Span:
    """What a history check compares: ``base`` to ``head`` of ``repo``, and how to test."""

    repo: Path
    plan: str
    base: str
    head: str
    changes: list[git.Change]
    command: str | None
    allowed: tuple[str, ...]  # tests the plan lets the change remove (``removes_tests``)
    checkout: Callable[[str], Path]  # "base" or "head": a scratch checkout of that commit
    timeout_s: float


@dataclass(frozen=True)
class TestRef:
    """One test: its runner's id, and the file, class and name it was found in."""

    __test__ = False  # not a pytest test class

    id: str
    file: str | None
    name: str  # the function, with its parameters (pytest: ``test_x[1]``)
    cls: str | None = None
    rest: str = ""  # the id without its file or module part

    @property
    def function(self) -> str:
        return self.name.split("[", 1)[0]

    def allowed(self, patterns: Iterable[str]) -> bool:
        """Return True if one of ``patterns`` (ids, names, files or globs) names this test."""
        aliases = {self.id, self.name, self.function}
        if self.file:
            aliases |= {self.file, f"{self.file}::{self.rest}", f"{self.file}::{self.name}"}
            if self.cls:
                aliases.add(f"{self.file}::{self.cls}::{self.name}")
        for raw in patterns:
            pat = raw.strip()
            if not pat:
                continue
            if pat in aliases or any(fnmatchcase(a, pat) for a in aliases):
                return True
            if self.id.startswith((f"{pat}::", f"{pat}.")):  # a file, module or class
                return True
            if self.file and self.file.startswith(pat.rstrip("/") + "/"):  # a folder
                return True
        return False


@dataclass(frozen=True)
class Collected:
    """The ids a test command collects in one checkout (``ids`` None: it could not say)."""

    how: str
    exit_code: int | None
    ids: tuple[str, ...] | None
    output_tail: str = ""

    def to_json(self) -> dict[str, Any]:
        ids = list(self.ids) if self.ids is not None else None
        return {"how": self.how, "exit_code": self.exit_code, "ids": ids, "tail": self.output_tail}

    @classmethod
    def from_json(cls, data: Any) -> Collected:
        """Return what :meth:`to_json` stored; ValueError when malformed."""
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not (ids is None or isinstance(ids, list)):
            raise ValueError("not a collection record")
        code = data.get("exit_code")
        return cls(
            str(data.get("how", "")),
            code if isinstance(code, int) else None,
            tuple(str(i) for i in ids) if ids is not None else None,
            str(data.get("tail", "")),
        )


def collect_command(command: str) -> tuple[str, str] | None:
    """Return ``(command that lists the test ids, how)`` for pytest and unittest, else None."""
    kind = testrun.runner_kind(command)
    if kind is None:
        return None
    words = shlex.split(command)
    if kind == "pytest":
        # --verbosity sets the level outright: -q/-v in addopts or the command cannot change
        # the one-id-per-line listing
        return shlex.join([*words, "--collect-only", "--verbosity=-1"]), "pytest --collect-only"
    at = next(i for i, w in enumerate(words) if w == "-m" and words[i + 1 : i + 2] == ["unittest"])
    listing = [*words[:at], "-c", _UNITTEST_LOADER, *words[at + 2 :]]
    return shlex.join(listing), "unittest's loader"


def collect(command: str, *, cwd: Path, timeout_s: float) -> Collected:
    """Return the test ids ``command`` would run in ``cwd``."""
    found = collect_command(command)
    if found is None:
        return Collected("not a pytest or unittest command", None, None)
    actual, how = found
    out = testrun.run_user_command(actual, cwd=cwd, timeout_s=timeout_s)
    tail = testrun.tail(out.output)
    if how.startswith("pytest"):
        if out.exit_code not in _PYTEST_DONE:
            return Collected(how, out.exit_code, None, tail)
        ids: list[str] = []
        for line in out.output.splitlines():
            if not line.strip() or line.startswith(("=", "!", "_")):
                break  # the listing ends where the summary or the error report begins
            if "::" in line and not line[0].isspace():
                ids.append(line.rstrip())
        return Collected(how, out.exit_code, tuple(sorted(set(ids))), tail)
    if out.exit_code != 0:
        return Collected(how, out.exit_code, None, tail)
    lines = out.output.splitlines()
    listed = {ln[len(ID_MARK) :].strip() for ln in lines if ln.startswith(ID_MARK)}
    return Collected(how, 0, tuple(sorted(listed)), "")


def collected_at(
    repo: Path,
    plan: str,
    commit: str,
    command: str,
    *,
    checkout: Callable[[], Path],
    timeout_s: float,
) -> Collected:
    """Return the ids collected at ``commit``, from the plan's cache or a fresh ``checkout()``.

    Tasks that start from the same integration commit (and retries) share one collection,
    kept in ``.planfleet/runs/<plan>/collected/``.
    """
    digest = hashlib.sha256(command.encode()).hexdigest()[:16]
    cache = paths.runs_dir(repo, plan) / "collected" / f"{commit}.{digest}.json"
    try:
        return Collected.from_json(json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    found = collect(command, cwd=checkout(), timeout_s=timeout_s)
    if found.exit_code is not None:  # a timeout may not happen again: never cached
        cache.parent.mkdir(parents=True, exist_ok=True)
        fsutil.atomic_write(cache, json.dumps(found.to_json(), indent=1, sort_keys=True) + "\n")
    return found


def refs(ids: Iterable[str], files: Iterable[str]) -> list[TestRef]:
    """Return a :class:`TestRef` per id: pytest's ``file::...`` ids or unittest's dotted ones.

    ``files`` are the repository's paths; a dotted id is placed in the file whose module path
    (from any folder down, as ``-t`` may choose) is its longest prefix.
    """
    modules = module_map(files)
    found = []
    for tid in ids:
        if "::" in tid:
            path, _, rest = tid.partition("::")
            parts = rest.split("::")
            cls = parts[-2] if len(parts) > 1 else None
            found.append(TestRef(tid, path, parts[-1], cls, rest))
            continue
        parts = tid.split(".")
        for k in range(len(parts) - 1, 0, -1):
            file = modules.get(".".join(parts[:k]))
            if file is not None:
                tail = parts[k:]
                cls = tail[-2] if len(tail) > 1 else None
                found.append(TestRef(tid, file, tail[-1], cls, ".".join(tail)))
                break
        else:
            found.append(TestRef(tid, None, parts[-1], None, tid))
    return found


def module_map(files: Iterable[str]) -> dict[str, str]:
    """Return ``{dotted module path: file}`` for every suffix of every Python file's path."""
    found: dict[str, str] = {}
    ambiguous: set[str] = set()
    for f in files:
        p = PurePosixPath(f)
        if p.suffix != ".py":
            continue
        parts = p.with_suffix("").parts
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        for i in range(len(parts)):
            key = ".".join(parts[i:])
            if found.setdefault(key, f) != f:
                ambiguous.add(key)
    return {k: v for k, v in found.items() if k not in ambiguous}


def source_refs(path: str, text: str | None) -> list[TestRef]:
    """Return the test functions a test file's source defines (for runners we cannot ask)."""
    if text is None:
        return []
    suffix = PurePosixPath(path).suffix
    names = {
        m.group(m.lastindex or 0)
        for suffixes, rx in _NAMES
        if suffix in suffixes
        for m in rx.finditer(text)
    }
    return [TestRef(f"{path}::{n}", path, n, None, n) for n in sorted(names)]


def renames(changes: Iterable[git.Change]) -> dict[str, str]:
    """Return ``{old path: new path}`` of the files the diff renames."""
    return {c.old_path: c.path for c in changes if c.status == "R" and c.old_path}


def removed(before: list[TestRef], after: list[TestRef], moved: dict[str, str]) -> list[TestRef]:
    """Return the tests of ``before`` that ``after`` no longer has.

    A test in a renamed file keeps its identity; a test whose name is still present as often
    as before (moved to another file or class) is not removed.
    """
    here = {(r.file, r.rest) for r in after if r.file} | {r.id for r in after}
    left = Counter(r.name for r in after)
    left.subtract(Counter(r.name for r in before if not r.id.startswith(_FAILED_IMPORT)))
    gone = []
    for r in before:
        if r.id.startswith(_FAILED_IMPORT):
            continue  # a module that did not import at the base: not a test that went away
        file = moved.get(r.file, r.file) if r.file else None
        if (file, r.rest) in here if file else r.id in here:
            continue
        if left[r.name] < 0:
            gone.append(r)
    return gone


def removed_tests(s: Span) -> Finding:
    """Return the ``removed_tests`` check: every test collected at the base is still there."""
    how = "read from the diff"
    gone: list[TestRef] | None = None
    evidence: dict[str, Any] | None = None
    command = s.command
    if not diff.may_remove_tests(s.changes, diff.runner_files(command)):
        how = "no test file, test support or test setting changed"
    elif command is not None and collect_command(command) is not None:
        at_base = collected_at(
            s.repo,
            s.plan,
            s.base,
            command,
            checkout=lambda: s.checkout("base"),
            timeout_s=s.timeout_s,
        )
        at_head = collect(command, cwd=s.checkout("head"), timeout_s=s.timeout_s)
        if at_base.ids is not None and at_head.ids is not None:
            how = at_base.how
            files = set(git.tree_files(s.base, cwd=s.repo)) | set(
                git.tree_files(s.head, cwd=s.repo)
            )
            before, after = refs(at_base.ids, files), refs(at_head.ids, files)
            gone = removed(before, after, renames(s.changes))
            if at_head.exit_code:  # collected, but some test files did not import
                evidence = {"command": how, "exit_code": at_head.exit_code}
                evidence["output_tail"] = at_head.output_tail
                how += f", with errors on the branch (exit code {at_head.exit_code})"
    if gone is None:
        gone = _removed_in_diff(s.repo, s.base, s.head, s.changes)  # none if none can go
    blamed = [r for r in gone if not r.allowed(s.allowed)]
    excused = len(gone) - len(blamed)
    note = f" ({excused} listed in the task's removes_tests)" if excused else ""
    if not blamed:
        return Finding("removed_tests", True, f"no test removed ({how}){note}")
    shown = ", ".join(r.id for r in blamed[:10])
    more = f" and {len(blamed) - 10} more" if len(blamed) > 10 else ""
    msg = (
        f"test(s) present at the base are gone ({how}): {shown}{more}{note}. A renamed test "
        "counts as removed; a plan that removes tests on purpose lists them under removes_tests"
    )
    return Finding("removed_tests", False, msg, evidence, "tests_deleted")


def _removed_in_diff(repo: Path, base: str, head: str, changes: list[git.Change]) -> list[TestRef]:
    """Return test functions the diff removes from test files (by their source)."""
    before: list[TestRef] = []
    after: list[TestRef] = []
    for c in changes:
        old = c.old_path if c.status in "RC" and c.old_path else c.path
        if c.status in "MTDR" and diff.is_test_path(old):
            before += source_refs(old, git.blob_text(base, old, cwd=repo))
        if c.status != "D" and diff.is_test_path(c.path):
            after += source_refs(c.path, git.blob_text(head, c.path, cwd=repo))
    return removed(before, after, renames(changes))
