"""Finding a repository's test command from what it holds, when nothing names one.

In order: pytest configured (``pytest.ini``, ``pyproject.toml`` ``[tool.pytest...]``,
``setup.cfg`` ``[tool:pytest]``, ``tox.ini`` ``[pytest]``, a ``conftest.py``), ``Cargo.toml``
(``cargo test``), ``go.mod`` (``go test ./...``), ``package.json`` with a ``test`` script,
a ``tests/`` or ``test/`` folder of Python tests (unittest or pytest), a ``justfile`` or
``Makefile`` with a ``test`` target. Python runs as the repository's own ``.venv`` when it
has one, else as ``python3`` from PATH.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from planfleet import fsutil, jsonread
from planfleet.errors import InputError
from planfleet.verify import tomlread

NOTHING_FOUND = (
    "nothing in the repository names one (no pytest configuration, Cargo.toml, go.mod, "
    "package.json test script, tests/ folder, justfile or Makefile test target)"
)
NPM_PLACEHOLDER = "no test specified"  # `npm init` writes a test script that only fails
_MAKE_TARGET = re.compile(r"^test\s*:(?!=)", re.MULTILINE)
_JUST_RECIPE = re.compile(r"^@?test(?:\s+[^:=\n]*)?:(?!=)", re.MULTILINE)
_UNITTEST_USE = re.compile(r"^\s*(?:import unittest|from unittest\b)|unittest\.TestCase", re.M)
_PYTEST_USE = re.compile(r"^\s*(?:import pytest|from pytest\b)|@pytest\.", re.M)
MAX_SCANNED = 200  # test files read to tell unittest from pytest


@dataclass(frozen=True)
class Detected:
    """A test command found in the repository and what showed it."""

    command: str
    reason: str


def detect(repo: Path) -> Detected | None:
    """Return the test command the repository's files point to, or None."""
    for finder in (_pytest_configured, _cargo, _go, _npm, _python_tests, _just, _make):
        found = finder(repo)
        if found is not None:
            return found
    return None


def python(repo: Path) -> tuple[str, str]:
    """Return the Python to run tests with and where it came from."""
    for venv in (".venv", "venv"):
        exe = repo / venv / "bin" / "python"
        if exe.is_file():
            return str(exe), f"the repository's {venv}"
    return ("python3", "python3 on PATH") if shutil.which("python3") else ("python", "PATH")


def _pytest(repo: Path, why: str) -> Detected:
    exe, which = python(repo)
    return Detected(f"{exe} -m pytest", f"{why}; Python: {which}")


def _pytest_configured(repo: Path) -> Detected | None:
    if (repo / "pytest.ini").is_file():
        return _pytest(repo, "pytest.ini")
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        tool = tomlread.load_file(pyproject, shown="pyproject.toml").get("tool", {})
        pytest_cfg = tool.get("pytest") if isinstance(tool, dict) else None
        if isinstance(pytest_cfg, dict):
            table = "tool.pytest.ini_options" if "ini_options" in pytest_cfg else "tool.pytest"
            return _pytest(repo, f"pytest configured in pyproject.toml [{table}]")
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        if _ini_has(repo / name, section):
            return _pytest(repo, f"pytest configured in {name} [{section}]")
    for conftest in ("conftest.py", "tests/conftest.py", "test/conftest.py"):
        if (repo / conftest).is_file():
            return _pytest(repo, f"pytest's {conftest}")
    return None


def _ini_has(path: Path, section: str) -> bool:
    if not path.is_file():
        return False
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read_string(fsutil.read_text(path))
    except (configparser.Error, InputError):
        return False  # not ours to judge: the file is the project's, for other tools
    return cfg.has_section(section)


def _cargo(repo: Path) -> Detected | None:
    if (repo / "Cargo.toml").is_file():
        return Detected("cargo test", "Cargo.toml")
    return None


def _go(repo: Path) -> Detected | None:
    if (repo / "go.mod").is_file():
        return Detected("go test ./...", "go.mod")
    return None


def _npm(repo: Path) -> Detected | None:
    path = repo / "package.json"
    if not path.is_file():
        return None
    try:
        data = jsonread.parse(fsutil.read_text(path))
    except (ValueError, InputError):
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(test, str) or not test.strip() or NPM_PLACEHOLDER in test:
        return None
    tool = "pnpm" if (repo / "pnpm-lock.yaml").is_file() else "npm"
    tool = "yarn" if (repo / "yarn.lock").is_file() else tool
    return Detected(f"{tool} test", f"package.json scripts.test ({test.strip()[:60]})")


def _python_tests(repo: Path) -> Detected | None:
    for folder in ("tests", "test"):
        where = repo / folder
        files = _test_files(where) if where.is_dir() and not where.is_symlink() else []
        if not files:
            continue
        texts = [_read(f) for f in files]
        if any(_UNITTEST_USE.search(t) for t in texts) and not any(
            _PYTEST_USE.search(t) for t in texts
        ):
            exe, which = python(repo)
            top = " -t ." if (where / "__init__.py").is_file() else ""
            return Detected(
                f"{exe} -m unittest discover -s {folder}{top}",
                f"{folder}/ holds unittest tests; Python: {which}",
            )
        return _pytest(repo, f"{folder}/ holds Python tests")
    return None


def _test_files(where: Path) -> list[Path]:
    """Return up to :data:`MAX_SCANNED` Python test files under ``where`` (links not followed)."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(where):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
                found.append(Path(folder) / name)
        if len(found) >= MAX_SCANNED:
            break
    return found[:MAX_SCANNED]


def _read(path: Path) -> str:
    try:
        return fsutil.read_text(path)
    except InputError:
        return ""  # a link, a huge or binary file: it shows nothing about the tests


def _just(repo: Path) -> Detected | None:
    for name in ("justfile", "Justfile", ".justfile"):
        if (repo / name).is_file() and _JUST_RECIPE.search(_read(repo / name)):
            return Detected("just test", f"the {name} has a test recipe")
    return None


def _make(repo: Path) -> Detected | None:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        if (repo / name).is_file() and _MAKE_TARGET.search(_read(repo / name)):
            return Detected("make test", f"the {name} has a test target")
    return None
