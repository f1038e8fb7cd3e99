"""Random text and random edits of valid plans never crash the spec/ai/maxvision/plan-dir readers.

Each reader must return a Plan or raise InputError naming a file; any other exception
(a traceback for the user) fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats_support import copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats import Reader
from planfleet.plan.formats.ai_plans import READER as AI
from planfleet.plan.formats.maxvision import READER as MAXVISION
from planfleet.plan.formats.plan_dir import READER as PLAN_DIR
from planfleet.plan.formats.spec import READER as SPEC
from planfleet.plan.formats.spec import read_index
from planfleet.plan.model import Plan

# Pieces of the formats' own syntax, so edits often make near-valid plans
TOKENS = [
    "\n", "\r\n", "#", "## ", "### Phase 2: ", "#### Task 2.1: ", "- [ ] ", "- [x] ", "1. ",
    "  ", "`", "```", "```yaml\n", "---\n", ":", "**", "- **Depends on**: Phase 9", "|", "✅",
    "Phase ", "Task 1.1", "status: ", "[", "]", "(", ")", "\t", "&a ", "*a", "!!tag ", "{", "}",
    "- phase_1:\n    status: complete\n", "Spec: `specs/missing.md`", "../", "\x0b", "\u2028",
]  # fmt: skip


@dataclass(frozen=True)
class Case:
    reader: Reader
    kind: str  # fixture folder under tests/fixtures
    fixture: str
    read: str  # what to read, relative to the fixture copy
    targets: tuple[str, ...]  # files the test rewrites


CASES = {
    "spec": Case(SPEC, "spec", "shortener", ".spec/plans/url-shortener", (
        ".spec/plans/url-shortener/plan.md", ".spec/plans/README.md",
        ".spec/plans/url-shortener/implementation/phase-2.md")),
    "ai": Case(AI, "ai", "todo", ".ai/plans/2025-07-14.todo-export.md", (
        ".ai/plans/2025-07-14.todo-export.md",)),
    "ai-billing": Case(AI, "ai", "billing", ".ai/plans/2025-03-02.invoice-pdf.md", (
        ".ai/plans/2025-03-02.invoice-pdf.md",)),
    "maxvision": Case(MAXVISION, "maxvision", "newsletter", ".maxvision", (
        ".maxvision/phase-2/plans/plan-002-confirmation-mail.md",
        ".maxvision/phase-1/plans/plan-001-subscriber-table.md")),
    "plan-dir": Case(PLAN_DIR, "plan-dir", "recipes", "docs/plans/recipe-search", (
        "docs/plans/recipe-search/task_plan.md", "docs/plans/recipe-search/specs/query.md")),
}  # fmt: skip


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fuzz")
    return {name: copy_fixture(c.kind, c.fixture, base / name) for name, c in CASES.items()}


@st.composite
def edited(draw: st.DrawFn, original: str) -> str:
    """Return ``original`` after a few random line and character edits, or random text."""
    # sampled_from leans to its first value: edits are the common case, whole random text rare
    if draw(st.sampled_from(["edit"] * 9 + ["random"])) == "random":
        return draw(st.text(st.characters(codec="utf-8", exclude_characters="\x00")))
    lines = original.splitlines(keepends=True) or [""]
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "insert", "swap"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            piece = draw(st.sampled_from(TOKENS) | st.text(max_size=4))
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + piece.replace("\x00", "") + lines[i][at:]
    text = "".join(lines)
    if draw(st.sampled_from(["keep"] * 4 + ["cut"])) == "cut":  # a file cut off mid-write
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _outcome(call: Callable[[], object]) -> object:
    """Return what ``call`` returns, or the InputError it raises (anything else propagates)."""
    try:
        return call()
    except InputError as exc:
        return exc


def _check(case: Case, repo: Path) -> None:
    plan = _outcome(lambda: case.reader.read(repo / case.read, repo=repo))
    if isinstance(plan, InputError):
        assert plan.file, f"InputError without a file: {plan.message}"
        return
    assert isinstance(plan, Plan)
    assert plan.format == case.reader.name
    assert all(t.phase in {p.id for p in plan.phases} for t in plan.tasks)


def _fuzz(name: str, copies: dict[str, Path], data: st.DataObject) -> None:
    case, repo = CASES[name], copies[name]
    target = repo / data.draw(st.sampled_from(case.targets))
    original = target.read_bytes()
    try:
        target.write_text(data.draw(edited(original.decode("utf-8"))), encoding="utf-8")
        _check(case, repo)
        if name == "spec":
            index = _outcome(lambda: read_index(repo))
            assert isinstance(index, list) or (isinstance(index, InputError) and index.file)
    finally:
        target.write_bytes(original)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_spec_reader_survives_edits(copies: dict[str, Path], data: st.DataObject) -> None:
    _fuzz("spec", copies, data)


@FUZZ
@given(data=st.data())
def test_ai_reader_survives_edits(copies: dict[str, Path], data: st.DataObject) -> None:
    _fuzz(data.draw(st.sampled_from(["ai", "ai-billing"])), copies, data)


@FUZZ
@given(data=st.data())
def test_maxvision_reader_survives_edits(copies: dict[str, Path], data: st.DataObject) -> None:
    _fuzz("maxvision", copies, data)


@FUZZ
@given(data=st.data())
def test_plan_dir_reader_survives_edits(copies: dict[str, Path], data: st.DataObject) -> None:
    _fuzz("plan-dir", copies, data)


@pytest.mark.parametrize("name", list(CASES))
def test_unmodified_fixtures_read_cleanly(copies: dict[str, Path], name: str) -> None:
    case = CASES[name]
    plan = case.reader.read(copies[name] / case.read, repo=copies[name])
    assert plan.tasks  # the fuzz starts from plans that really parse
