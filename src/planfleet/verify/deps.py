"""The dependencies gate: is a package a task had to add named in a manifest of the repo?

Each manifest type has its own small reader returning the package names it declares;
names are compared after :func:`normalize` (case, and ``-``/``_``/``.`` all alike).
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from planfleet import git, jsonread
from planfleet.verify import tomlread

MAX_MANIFEST_BYTES = 2 * 1024 * 1024
_SKIP_DIRS = frozenset({"node_modules", "vendor", ".venv", "venv", "site-packages", "target"})

# A requirement's name: an npm scope, then anything up to a version, extra, marker or URL.
_NAME = re.compile(r"\s*(@[^/\s]+/)?([^\s\[<>=!~;@,:(^'\"]+)")
_GEM = re.compile(r"""^\s*gem\s+['"]([^'"]+)['"]""", re.MULTILINE)
_EGG = re.compile(r"[#&]egg=([^&\s]+)")

Path_ = tuple[str, ...]  # a path into a parsed TOML document; "*" matches any key


def dependency_name(spec: str) -> str:
    """Return the package name in a requirement (``requests[socks]>=2``, ``@types/node@20``)."""
    m = _NAME.match(spec)
    return f"{m.group(1) or ''}{m.group(2)}" if m else spec.strip()


def normalize(name: str) -> str:
    """Return ``name`` as compared: lower case, runs of ``-``, ``_`` and ``.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name.strip().lower())


def _requirements(text: str) -> set[str]:
    names = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("-e") or "://" in line:
            egg = _EGG.search(raw)
            if egg:
                names.add(egg.group(1))
            elif " @ " in line:
                names.add(dependency_name(line))
            continue
        if line and not line.startswith(("#", "-")):
            names.add(dependency_name(line))
    return names


def _package_json(text: str) -> set[str]:
    data = jsonread.parse(text)
    keys = ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies")
    return {n for k in keys if isinstance(data.get(k), dict) for n in data[k]}


def _composer_json(text: str) -> set[str]:
    data = jsonread.parse(text)
    return {n for k in ("require", "require-dev") if isinstance(data.get(k), dict) for n in data[k]}


def _go_mod(text: str) -> set[str]:
    names, block = set(), False
    for raw in text.splitlines():
        words = raw.split("//", 1)[0].split()
        if not words:
            continue
        if block:
            block = words[0] != ")"
            if block:
                names.add(words[0])
        elif words[0] == "require":
            if words[1:2] == ["("]:
                block = True
            elif len(words) > 1:
                names.add(words[1])
    return names


def _setup_cfg(text: str) -> set[str]:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(text)
    values = [cfg.get("options", "install_requires", fallback="")]
    if cfg.has_section("options.extras_require"):
        values += [v for _, v in cfg.items("options.extras_require")]
    return {dependency_name(ln) for v in values for ln in v.splitlines() if ln.strip()}


@dataclass(frozen=True)
class _TomlSpec:
    """Where a TOML manifest names packages: in arrays of requirements, or as table keys."""

    arrays: tuple[Path_, ...] = ()
    tables: tuple[Path_, ...] = ()
    renames: bool = False  # Cargo: ``alias = { package = "real-name" }``


_PYPROJECT = _TomlSpec(
    arrays=(
        ("project", "dependencies"),
        ("project", "optional-dependencies", "*"),
        ("dependency-groups", "*"),
        ("build-system", "requires"),
        ("tool", "uv", "dev-dependencies"),
        ("tool", "pdm", "dev-dependencies", "*"),
    ),
    tables=(
        ("tool", "poetry", "dependencies"),
        ("tool", "poetry", "dev-dependencies"),
        ("tool", "poetry", "group", "*", "dependencies"),
    ),
)
_CARGO = _TomlSpec(
    tables=tuple(
        (*prefix, kind)
        for prefix in ((), ("workspace",), ("target", "*"))
        for kind in ("dependencies", "dev-dependencies", "build-dependencies")
    ),
    renames=True,
)
_PIPFILE = _TomlSpec(tables=(("packages",), ("dev-packages",)))


def _matches(pattern: Path_, path: Path_) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", k) for p, k in zip(pattern, path, strict=True)
    )


def _toml_reader(spec: _TomlSpec) -> Callable[[str], set[str]]:
    def read(text: str) -> set[str]:
        names: set[str] = set()
        for path, value in toml_leaves(text):
            if isinstance(value, list) and any(_matches(p, path) for p in spec.arrays):
                names.update(dependency_name(v) for v in value if isinstance(v, str))
            for table in spec.tables:
                if len(path) > len(table) and _matches(table, path[: len(table)]):
                    names.add(path[len(table)])
                    rest = path[len(table) + 1 :]
                    if spec.renames and rest == ("package",) and isinstance(value, str):
                        names.add(value)
        return names

    return read


def toml_leaves(text: str) -> Iterator[tuple[Path_, Any]]:
    """Yield ``(key path, value)`` for every non-table value of a TOML document."""

    def walk(prefix: Path_, node: Any) -> Iterator[tuple[Path_, Any]]:
        if isinstance(node, dict):
            if not node and prefix:
                yield prefix, node
            for key, value in node.items():
                yield from walk((*prefix, key), value)
        else:
            yield prefix, node

    yield from walk((), tomlread.loads(text))


_READERS: dict[str, Callable[[str], set[str]]] = {
    "pyproject.toml": _toml_reader(_PYPROJECT),
    "Cargo.toml": _toml_reader(_CARGO),
    "Pipfile": _toml_reader(_PIPFILE),
    "package.json": _package_json,
    "composer.json": _composer_json,
    "go.mod": _go_mod,
    "Gemfile": lambda text: set(_GEM.findall(text)),
    "setup.cfg": _setup_cfg,
}


def reader_for(path: str) -> Callable[[str], set[str]] | None:
    """Return the reader for a manifest at ``path`` (repo-relative), or None if it is none."""
    p = PurePosixPath(path)
    if _SKIP_DIRS.intersection(p.parts[:-1]):
        return None
    if p.name in _READERS:
        return _READERS[p.name]
    if p.suffix in (".txt", ".in") and (
        p.name.startswith("requirements") or (len(p.parts) > 1 and p.parts[-2] == "requirements")
    ):
        return _requirements
    return None


def manifest_names(path: str, text: str) -> set[str]:
    """Return the normalized names a manifest declares; ValueError if it cannot be read."""
    reader = reader_for(path)
    if reader is None:
        raise ValueError(f"{path} is not a manifest planfleet reads")
    try:
        return {normalize(n) for n in reader(text)}
    except (ValueError, KeyError, TypeError, configparser.Error) as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass
class DependencyCheck:
    """Which declared packages were found in which manifests."""

    missing: list[str] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)  # package -> manifest path
    manifests: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: why"


def check_dependencies(repo: Path, rev: str, packages: tuple[str, ...]) -> DependencyCheck:
    """Return where each of ``packages`` is declared in the manifests of ``rev``'s tree."""
    result = DependencyCheck()
    if not packages:
        return result
    declared: dict[str, set[str]] = {}
    for path in git.tree_files(rev, cwd=repo):
        if reader_for(path) is None:
            continue
        result.manifests.append(path)
        text = git.blob_text(rev, path, cwd=repo) or ""
        if len(text) > MAX_MANIFEST_BYTES:
            result.unreadable.append(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
            continue
        try:
            declared[path] = manifest_names(path, text)
        except ValueError as exc:
            result.unreadable.append(str(exc))
    for package in packages:
        name = normalize(dependency_name(package))
        where = next((p for p, names in declared.items() if name in names), None)
        if where is None:
            result.missing.append(package)
        else:
            result.found[package] = where
    return result
