"""What a task's diff says: artifacts in the tree, deleted test files, new skip markers."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from planfleet import git

_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs", "testing"})
_TEST_NAME = re.compile(
    r"^(test_.+\.py|.+_test\.(py|go|rb|exs?)|.+\.(test|spec)\.[cm]?[jt]sx?|.+_spec\.rb"
    r"|.+Tests?\.(java|kt|cs|swift|php))$"
)
_CODE_SUFFIXES = frozenset({
    ".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".rs", ".go",
    ".rb", ".java", ".kt", ".kts", ".cs", ".php", ".swift", ".ex", ".exs", ".scala",
})  # fmt: skip
# Each pattern is one way of switching a test off; the label names it in the message.
SKIP_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("pytest.mark.skip", re.compile(r"pytest\.mark\.(skip|skipif|xfail)\b")),
    ("pytest.skip()", re.compile(r"\bpytest\.(skip|xfail|importorskip)\s*\(")),
    ("unittest.skip", re.compile(r"\bunittest\.(skip\w*|expectedFailure)\b")),
    ("SkipTest", re.compile(r"\braise\s+(\w+\.)*SkipTest\b|__unittest_skip__")),
    ("@skip", re.compile(r"^\s*@(skip|skipIf|skipUnless|expectedFailure)\b")),
    ("skipTest()", re.compile(r"\.skipTest\s*\(")),
    ("it.skip", re.compile(r"\b(it|test|describe|context)\.skip\s*\(")),
    ("xit", re.compile(r"\bx(it|test|describe|context|specify)\s*\(")),
    ("#[ignore]", re.compile(r"#\[ignore\b")),
    ("t.Skip", re.compile(r"\b[tb]\.Skip(Now|f)?\s*\(")),
    ("@Disabled", re.compile(r"@(Disabled|Ignore)\b")),
)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def is_test_path(path: str) -> bool:
    """Return True if ``path`` looks like a test file (by its folder or its name)."""
    p = PurePosixPath(path)
    return bool(_TEST_DIRS.intersection(p.parts[:-1])) or is_test_name(p.name)


# Test configuration that lives beside the tests and changes what they check.
SUPPORT_NAMES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini"})
# What a test command's first word reads besides the files it names.
_RUNNER_FILES = {
    "make": ("Makefile", "makefile", "GNUmakefile"),
    "tox": ("tox.ini",),
    "nox": ("noxfile.py",),
}


def is_test_support(path: str, runner: frozenset[str] = frozenset()) -> bool:
    """Return True for test files, the files beside them that tests rely on, and ``runner``."""
    return is_test_path(path) or PurePosixPath(path).name in SUPPORT_NAMES or path in runner


def runner_files(command: str | None) -> frozenset[str]:
    """Return the repository files a test command runs (``run_tests.py``, a Makefile, ...)."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        return frozenset()
    found = {c for w in words if (c := clean_path(w)) and not w.startswith("-")}
    found.update(_RUNNER_FILES.get(PurePosixPath(words[0]).name, ()) if words else ())
    return frozenset(found)


# Files that change which tests a runner collects, besides the test files themselves.
_COLLECTION_CONFIG = frozenset({"pyproject.toml", "setup.cfg", "tox.ini"})


def may_remove_tests(changes: list[git.Change], runner: frozenset[str] = frozenset()) -> bool:
    """Return True if the diff can change which tests are collected (not only add some).

    Added test files only add tests; a changed, deleted or renamed test file, any change to
    test support (conftest.py, a folder's __init__.py, ...), the collection settings or the
    runner's own files may take some away.
    """
    for c in changes:
        for path in (c.path, c.old_path) if c.old_path else (c.path,):
            name = PurePosixPath(path).name
            if name in _COLLECTION_CONFIG or path in runner:
                return True
            if is_test_support(path) and (c.status != "A" or not is_test_name(name)):
                return True
    return False


def is_test_name(name: str) -> bool:
    """Return True if a file named ``name`` holds tests by convention (``test_x.py``, ...)."""
    return bool(_TEST_NAME.match(name))


def clean_path(path: str) -> str | None:
    """Return ``path`` as a plain repo-relative path, or None if it leaves the repository."""
    p = PurePosixPath(path.strip())
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p.as_posix()


@dataclass(frozen=True)
class Artifact:
    """A file a task had to create: where it was found and how big it is."""

    path: str
    problem: str | None  # None: present and non-empty
    empty: bool = False


def check_artifacts(repo: Path, rev: str | None, files: tuple[str, ...]) -> list[Artifact]:
    """Return each of ``files`` as found in ``rev``'s tree (``git cat-file``, not the disk)."""
    cleaned = [clean_path(f) for f in files]
    specs = [f"{rev}:{c}" for c in cleaned if c is not None] if rev else []
    kinds = iter(git.object_kinds(specs, cwd=repo))
    found: list[Artifact] = []
    for name, clean in zip(files, cleaned, strict=True):
        if clean is None:
            found.append(Artifact(name, "is not a path inside the repository"))
            continue
        kind = next(kinds) if rev else None
        if kind is None:
            found.append(Artifact(name, "does not exist in the committed tree"))
        elif kind[0] != "blob":
            found.append(Artifact(name, f"is a {kind[0]}, not a file"))
        elif kind[1] == 0:
            found.append(Artifact(name, "is empty", empty=True))
        else:
            found.append(Artifact(name, None))
    return found


def on_disk(worktree: Path, path: str) -> bool:
    """Return True if ``path`` is a non-empty regular file inside ``worktree``."""
    clean = clean_path(path)
    target = worktree / clean if clean else None
    try:
        return target is not None and target.is_file() and target.stat().st_size > 0
    except OSError:
        return False


def changed_paths(changes: list[git.Change]) -> list[str]:
    """Return every path a diff touches: both sides of a rename, the new side of a copy."""
    found = {c.path for c in changes}
    found |= {c.old_path for c in changes if c.status == "R" and c.old_path}
    return sorted(found)


def deleted_tests(changes: list[git.Change]) -> list[str]:
    """Return test files the diff deletes (or renames into something that is not a test)."""
    gone = []
    for c in changes:
        if c.status == "D" and is_test_path(c.path):
            gone.append(c.path)
        elif c.status == "R" and c.old_path and is_test_path(c.old_path) > is_test_path(c.path):
            gone.append(f"{c.old_path} (renamed to {c.path})")
    return sorted(gone)


@dataclass(frozen=True)
class SkipMarker:
    """A line the diff adds that switches a test off."""

    path: str
    line: int
    kind: str
    text: str

    def render(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} ({self.text[:120]})"


def added_skip_markers(repo: Path, base: str, head: str) -> list[SkipMarker]:
    """Return skip markers that lines added from ``base`` to ``head`` introduce.

    A marker line the diff also removes in the same file (moved or re-indented) is not new.
    """
    diff = git.git(
        *("-c", "core.quotepath=off", "diff", "-U0", *git.diff_options(), base, head, "--"),
        cwd=repo,
    ).stdout
    found: list[SkipMarker] = []
    path: str | None = None
    removed: Counter[str] = Counter()
    added: list[tuple[int, str]] = []
    line_no = 0

    def flush() -> None:
        if path is None or PurePosixPath(path).suffix not in _CODE_SUFFIXES:
            return
        for number, text in added:
            kind = next((k for k, rx in SKIP_MARKERS if rx.search(text)), None)
            if kind is None:
                continue
            if removed[text.strip()]:
                removed[text.strip()] -= 1
                continue
            found.append(SkipMarker(path, number, kind, text.strip()))

    in_hunk = False
    for raw in diff.splitlines():
        if raw.startswith("diff --git "):
            flush()
            path, removed, added, in_hunk = None, Counter(), [], False
        elif m := _HUNK.match(raw):
            line_no, in_hunk = int(m.group(1)), True
        elif not in_hunk:  # the file's header lines
            if raw.startswith("+++ "):
                name = raw[4:].strip().strip('"')
                path = name[2:] if name.startswith("b/") else None
        elif raw.startswith("+"):
            added.append((line_no, raw[1:]))
            line_no += 1
        elif raw.startswith("-"):
            removed[raw[1:].strip()] += 1
    flush()
    return found
