"""The package layout: imports go only downward, no circles, argparse only in ``cli``.

The order of the layers is written once, in ``LAYERS``: a module may import from its own
package and from any package on a lower layer, never from a higher one. Imports made only
for type checking count too: a type that points upward is a dependency that points upward.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "planfleet"

# Top to bottom. Each entry is one layer: the packages (or top-level modules) on it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"__main__"}),
    frozenset({"cli"}),
    frozenset({"orchestrate", "background"}),
    frozenset({"engine"}),
    frozenset({"verify", "runners", "views"}),
    frozenset({"repo"}),
    frozenset({"state"}),
    frozenset({"plan"}),
    frozenset({"schemas"}),
    frozenset({"paths"}),
    frozenset({"git", "ids", "jsonread"}),
    frozenset({"fsutil", "proc"}),
    frozenset({"proctree"}),
    frozenset({"errors", "__init__"}),
)
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 400


def layer_of(unit: str) -> int:
    """Return the index of the layer ``unit`` (a top-level package or module) sits on."""
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"planfleet.{unit} is on no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    """Return the dotted name of a source file, e.g. planfleet.state.store."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """Return the top-level package or module of ``planfleet.x.y``: ``x``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """Yield (line, imported planfleet module) for every import in ``path``, nested ones too."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("planfleet."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            if not (base == "planfleet" or base.startswith("planfleet.")):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if full in known else base


def graph() -> dict[str, set[str]]:
    """Module -> the planfleet modules it imports."""
    known = modules()
    out: dict[str, set[str]] = {}
    for name, path in known.items():
        out[name] = {m for _, m in imports(path, known) if m != name and m != "planfleet"}
    return out


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_only_go_down() -> None:
    known = modules()
    upward = []
    for name, path in known.items():
        mine = layer_of(unit_of(name))
        for line, target in imports(path, known):
            if target == "planfleet":
                continue
            theirs = layer_of(unit_of(target))
            if theirs < mine:
                upward.append(f"{path.relative_to(SRC)}:{line}: {name} imports {target}")
    assert not upward, "imports that go up the layers:\n" + "\n".join(upward)


def test_argparse_only_in_cli() -> None:
    offenders = []
    for name, path in modules().items():
        if unit_of(name) in {"cli", "__main__"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "argparse" or n.startswith("argparse.") for n in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, "argparse imported below cli/: " + ", ".join(offenders)


def test_few_top_level_modules_and_small_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    big = {
        str(p.relative_to(SRC)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_every_package_says_what_it_is_for() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(SRC)} has no docstring"
        assert len(doc) > 20, f"{init.relative_to(SRC)}: say what the package is for"


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"a"}}, ["a", "a"]),
    ],
)
def test_find_cycle_sees_cycles(edges: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(edges) == expected
