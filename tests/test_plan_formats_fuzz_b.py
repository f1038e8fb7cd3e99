"""Property tests: random text and mutated valid plans never crash a reader.

Every read returns a Plan or raises InputError naming a file; nothing else may escape.
Readers covered here: xml-tasks, gsd, superpowers, planfleet (native), and load_plan with
format detection.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planfleet.errors import InputError
from planfleet.plan.formats import Reader, gsd, load_plan, native, superpowers, xml_tasks
from planfleet.plan.model import Plan

FIXTURES = Path(__file__).resolve().parent / "fixtures"

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Target:
    """One valid fixture file to mutate, and the plan path its reader is given."""

    reader: Reader
    fixture: str  # folder under tests/fixtures copied as the repository
    file: str  # the file that is mutated, relative to the repository
    plan: str  # what is read, relative to the repository

    def setup(self, root: Path) -> Path:
        repo = root / self.reader.name / self.file.replace("/", "_")
        if not repo.exists():
            shutil.copytree(FIXTURES / self.fixture, repo)
        return repo


TARGETS = [
    Target(
        xml_tasks.READER, "xml-tasks", "billing/1-foundation/L1-002-invoice-model.xml", "billing"
    ),
    Target(xml_tasks.READER, "xml-tasks", "billing/execute-state.json", "billing"),
    Target(
        xml_tasks.READER,
        "xml-tasks",
        "inventory/1-schema/S-01-stock-table.xml",
        "inventory/1-schema/S-01-stock-table.xml",
    ),
    Target(gsd.READER, "gsd/tidepool", ".planning/phases/01-foundation/01-01-PLAN.md", ".planning"),
    Target(
        gsd.READER,
        "gsd/harbor",
        ".planning/phases/01-core/01-02-PLAN.md",
        ".planning/phases/01-core/01-02-PLAN.md",
    ),
    Target(
        superpowers.READER,
        "superpowers",
        "docs/plans/2026-03-02-rate-limiter.md",
        "docs/plans/2026-03-02-rate-limiter.md",
    ),
    Target(
        superpowers.READER,
        "superpowers",
        "docs/superpowers/plans/2026-04-10-export-csv.md",
        "docs/superpowers/plans/2026-04-10-export-csv.md",
    ),
    Target(native.READER, "native", "ledger.plan.yaml", "ledger.plan.yaml"),
    Target(native.READER, "native", "docs/roadmap.plan.md", "docs/roadmap.plan.md"),
]


def check(read: Callable[[], Plan]) -> None:
    """``read()`` returns a Plan or raises InputError that names a file."""
    error: InputError | None = None
    try:
        plan = read()
    except InputError as exc:
        error = exc
    if error is not None:
        assert error.file, f"InputError without a file: {error.render()}"
        assert error.line is None or error.line >= 1
        return
    assert isinstance(plan, Plan)
    for d in plan.diagnostics:
        assert d.file, f"diagnostic without a file: {d.render()}"


_OPS = st.tuples(
    st.sampled_from(["delete", "duplicate", "insert", "truncate", "swap", "bytes"]),
    st.integers(min_value=0, max_value=10**6),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
    st.binary(max_size=6),
)


def mutate(data: bytes, ops: list[tuple[str, int, str, bytes]]) -> bytes:
    """Return ``data`` after line deletions/duplications/swaps, insertions and truncation."""
    for op, at, text, raw in ops:
        lines = data.splitlines(keepends=True) or [b""]
        k = at % len(lines)
        if op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        elif op == "swap" and len(lines) > 1:
            j = (k + 1) % len(lines)
            lines[k], lines[j] = lines[j], lines[k]
        data = b"".join(lines)
        pos = at % (len(data) + 1)
        if op == "insert":
            data = data[:pos] + text.encode("utf-8") + data[pos:]
        elif op == "truncate":
            data = data[:pos]
        elif op == "bytes":
            data = data[:pos] + raw + data[pos:]
    return data


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t.reader.name}:{Path(t.file).name}")
@FUZZ
@given(ops=st.lists(_OPS, min_size=1, max_size=4))
def test_mutated_plans(root: Path, target: Target, ops: list[tuple[str, int, str, bytes]]) -> None:
    repo = target.setup(root)
    original = (FIXTURES / target.fixture / target.file).read_bytes()
    (repo / target.file).write_bytes(mutate(original, ops))
    check(lambda: target.reader.read(repo / target.plan, repo=repo))
    check(lambda: load_plan(repo / target.plan, repo=repo))
    check(lambda: load_plan(repo / target.file, repo=repo))


# File names that make each reader (and detection) take random text seriously.
RANDOM_NAMES = [
    (xml_tasks.READER, "tasks/1-core/T-1-thing.xml", "tasks"),
    (gsd.READER, ".planning/phases/01-x/01-01-PLAN.md", ".planning"),
    (superpowers.READER, "docs/plans/random.md", "docs/plans/random.md"),
    (native.READER, "random.plan.yaml", "random.plan.yaml"),
    (native.READER, "random.plan.md", "random.plan.md"),
]

_PLANISH = st.sampled_from(
    [
        "---\n",
        "wave: 2\n",
        "depends_on: [01]\n",
        '<task type="auto">',
        "</task>",
        "<tasks>\n",
        '<task id="T-1">',
        "<title>x</title>",
        "<!DOCTYPE x>",
        "&amp;",
        "### Task 1: x\n",
        "## Chunk 1: y\n",
        "**Files:**\n",
        "- Create: `a.py`\n",
        "Run: `pytest`\n",
        "Expected: PASS\n",
        "```yaml\n",
        "```\n",
        "planfleet: 1\n",
        "name: p\n",
        "phases:\n",
        "  - id: a\n",
        "    tasks: [{id: t}]\n",
        "- [x] **Step 1: y**\n",
        "\r\n",
        "\t",
        "&",
        "*a",
        "&a ",
        "!!x ",
    ]
)
_TEXT = st.lists(st.one_of(_PLANISH, st.text(max_size=12)), max_size=30).map("".join)


@pytest.mark.parametrize(("reader", "name", "plan"), RANDOM_NAMES, ids=lambda v: str(v)[:30])
@FUZZ
@given(text=_TEXT)
def test_random_text(root: Path, reader: Reader, name: str, plan: str, text: str) -> None:
    repo = root / "random" / name.replace("/", "_")
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check(lambda: reader.read(repo / plan, repo=repo))
    check(lambda: load_plan(repo / plan, repo=repo))


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_into_every_reader(root: Path, data: bytes) -> None:
    repo = root / "bytes"
    for reader, name, plan in RANDOM_NAMES:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        check(lambda r=reader, p=plan: r.read(repo / p, repo=repo))  # type: ignore[misc]
        check(lambda p=plan: load_plan(repo / p, repo=repo))  # type: ignore[misc]
