"""History gates on real repositories: old tests on new code, and tests that went away.

Each case is an agent that does its real work (a new module and its test) and also does
something to the existing tests; the gates must refuse what hides a regression and accept
what is a legitimate change.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import make_repo
from history_support import (
    FILES,
    MONEY,
    MONEY_ROUNDS_UP,
    OTHER,
    PY,
    PYTEST,
    TEST_MONEY,
    TEST_TEXT,
    UNITTEST,
    WEAKENED_LINE,
    WITHOUT_EMPTY,
    run,
)
from planfleet.verify import collect, feedback, history
from planfleet.verify.collect import TestRef
from test_verify import gate


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop", FILES)


# --- item 2: old tests on new code -------------------------------------------------------


def test_a_removed_assertion_that_would_notice_the_bug_is_refused(shop: Path) -> None:
    weakened = TEST_MONEY.replace(
        '        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))\n', ""
    )
    v = run(shop, {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": weakened}, PYTEST)
    assert gate(v, "tests").ok  # the agent's edited tests pass
    old = gate(v, "old_tests")
    assert not old.ok
    assert v.error is not None
    assert v.error["type"] == "weakened_test"
    assert v.error["step"] == "old_tests"
    assert "tests/test_money.py::RoundCentsTest::test_halves_round_up" in old.message
    assert f"tests/test_money.py:{WEAKENED_LINE}" in old.message
    assert 'Decimal("0.124")' in old.message
    assert "your change removed or edited that line" in old.message
    assert v.feedback is not None
    assert f"tests/test_money.py:{WEAKENED_LINE}" in v.feedback
    assert "What to do: Make the code pass the tests as they were" in v.feedback
    # the scratch checkouts are gone; the agent's worktree still has its own version
    assert not list((shop / ".planfleet" / "worktrees" / "demo").glob("_*"))
    (mine,) = (shop / ".planfleet/worktrees/demo").glob("t*/tests/test_money.py")
    assert "0.124" not in mine.read_text()


def test_an_expected_value_edited_to_match_the_bug_is_refused_under_unittest(
    shop: Path,
) -> None:
    edited = TEST_MONEY.replace(
        'Decimal("0.124")), Decimal("0.12")', 'Decimal("0.124")), Decimal("0.13")'
    )
    v = run(shop, {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": edited}, UNITTEST)
    assert gate(v, "tests").ok
    old = gate(v, "old_tests")
    assert not old.ok, old.message
    assert "tests.test_money.RoundCentsTest.test_halves_round_up" in old.message
    assert f"tests/test_money.py:{WEAKENED_LINE}" in old.message
    assert v.error is not None
    assert v.error["type"] == "weakened_test"
    # a plan that changes the rounding on purpose names the test it rewrites
    files = {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": edited}
    on_purpose = ("tests.test_money.RoundCentsTest.test_halves_round_up",)
    v = run(shop, files, UNITTEST, removes_tests=on_purpose)
    assert v.ok, [g.to_json() for g in v.gates if not g.ok]
    assert "1 listed in the task's removes_tests" in gate(v, "old_tests").message


@pytest.mark.parametrize("command", [PYTEST, UNITTEST, OTHER])
def test_a_legitimate_test_change_that_the_base_tests_accept_passes(
    shop: Path, command: str
) -> None:
    money = MONEY + '\n\ndef format_price(value: Decimal) -> str:\n    return f"{value:.2f}"\n'
    tests = TEST_MONEY.replace(
        "from shop.money import round_cents", "from shop.money import format_price, round_cents"
    ) + (
        "\n    def test_format_price(self):\n"
        '        self.assertEqual(format_price(Decimal("1.5")), "1.50")\n'
    )
    v = run(shop, {"shop/money.py": money, "tests/test_money.py": tests}, command)
    assert v.ok, [g.to_json() for g in v.gates if not g.ok]
    assert "passes on the new code" in gate(v, "old_tests").message
    assert gate(v, "removed_tests").ok


def test_a_new_pytest_plugin_named_by_the_settings_stays_for_the_old_tests(shop: Path) -> None:
    plugin = "import pytest\n\n\n@pytest.fixture\ndef cents():\n    return 100\n"
    settings = '[tool.pytest.ini_options]\naddopts = "-p tests.plugin"\n'
    tests = TEST_MONEY + "\n\ndef test_cents(cents):\n    assert cents == 100\n"
    files = {"tests/plugin.py": plugin, "pyproject.toml": settings, "tests/test_money.py": tests}
    v = run(shop, files, PYTEST)
    assert v.ok, [g.to_json() for g in v.gates if not g.ok]
    assert "passes on the new code" in gate(v, "old_tests").message


def test_a_deleted_test_file_whose_base_version_fails_on_the_new_code(shop: Path) -> None:
    files = {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": None}
    v = run(shop, files, PYTEST)
    assert gate(v, "tests").ok
    assert not gate(v, "deleted_tests").ok
    old = gate(v, "old_tests")
    assert not old.ok
    assert "tests/test_money.py::RoundCentsTest::test_halves_round_up" in old.message
    # a plan that removes that file on purpose says so, and then both checks accept it
    v = run(shop, files, PYTEST, removes_tests=("tests/test_money.py",))
    assert v.ok, [g.to_json() for g in v.gates if not g.ok]
    assert "listed in the task's removes_tests" in gate(v, "old_tests").message


# --- what an agent might try instead ---------------------------------------------------------


def test_moving_the_assertion_into_a_weakened_helper_is_refused(shop: Path) -> None:
    helper = (
        "from decimal import Decimal\n\n\ndef check_rounding(case, round_cents):\n"
        '    case.assertEqual(round_cents(Decimal("0.125")), Decimal("0.13"))\n'
    )
    tests = TEST_MONEY.replace(
        '        self.assertEqual(round_cents(Decimal("0.125")), Decimal("0.13"))\n'
        '        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))\n',
        "        check_rounding(self, round_cents)\n",
    ).replace("import unittest\n", "import unittest\n\nfrom tests.helpers import check_rounding\n")
    files = {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": tests}
    v = run(shop, {**files, "tests/helpers.py": helper}, PYTEST)
    assert gate(v, "tests").ok
    assert not gate(v, "old_tests").ok
    assert "test_halves_round_up" in gate(v, "old_tests").message


def test_marking_the_test_as_an_expected_failure_is_refused_twice(shop: Path) -> None:
    tests = TEST_MONEY.replace(
        "    def test_halves_round_up",
        "    @unittest.expectedFailure\n    def test_halves_round_up",
    )
    v = run(shop, {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": tests}, UNITTEST)
    assert gate(v, "tests").ok
    assert not gate(v, "skip_markers").ok
    assert not gate(v, "old_tests").ok
    # the plan may allow it for that one test
    v = run(
        shop,
        {"shop/money.py": MONEY, "tests/test_money.py": tests},
        UNITTEST,
        removes_tests=("test_halves_round_up",),
    )
    assert gate(v, "skip_markers").ok, gate(v, "skip_markers").message


CONFTEST = """\
import pytest
from decimal import Decimal


@pytest.fixture
def cases():
    return [(Decimal("0.125"), Decimal("0.13")), (Decimal("0.124"), Decimal("0.12"))]
"""
FIXTURE_TEST = """\
from shop.money import round_cents


def test_cases(cases):
    for value, expected in cases:
        assert round_cents(value) == expected
"""


def test_a_fixture_edited_to_match_the_bug_is_refused(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "fx",
        {
            **{k: v for k, v in FILES.items() if k != "tests/test_money.py"},
            "tests/conftest.py": CONFTEST,
            "tests/test_cases.py": FIXTURE_TEST,
        },
    )
    bent = CONFTEST.replace(
        '(Decimal("0.124"), Decimal("0.12"))', '(Decimal("0.124"), Decimal("0.13"))'
    )
    v = run(repo, {"shop/money.py": MONEY_ROUNDS_UP, "tests/conftest.py": bent}, PYTEST)
    assert gate(v, "tests").ok
    old = gate(v, "old_tests")
    assert not old.ok
    assert "tests/test_cases.py::test_cases" in old.message
    assert "tests/test_cases.py:6 `assert round_cents(value) == expected`" in old.message


def test_a_new_conftest_that_patches_the_code_under_test_is_refused(shop: Path) -> None:
    patch = (
        "from decimal import ROUND_HALF_UP\n\nimport shop.money\n\n"
        "shop.money.round_cents = lambda v: v.quantize(shop.money.CENT, rounding=ROUND_HALF_UP)\n"
    )
    v = run(shop, {"shop/money.py": MONEY_ROUNDS_UP, "tests/conftest.py": patch}, PYTEST)
    assert gate(v, "tests").ok  # the patch hides the bug from the agent's own run
    old = gate(v, "old_tests")
    assert not old.ok
    assert "without the added tests/conftest.py" in old.message


def test_a_renamed_and_weakened_test_file_is_refused(shop: Path) -> None:
    weakened = TEST_MONEY.replace(
        '        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))\n', ""
    )
    files = {"shop/money.py": MONEY_ROUNDS_UP, "tests/test_money.py": None}
    v = run(shop, {**files, "tests/test_rounding.py": weakened}, PYTEST)
    assert gate(v, "removed_tests").ok  # the rename keeps every test id
    assert not gate(v, "old_tests").ok
    assert f"tests/test_money.py:{WEAKENED_LINE}" in gate(v, "old_tests").message


def test_a_runner_script_changed_to_leave_tests_out_is_refused(shop: Path) -> None:
    runner = FILES["run_tests.py"].replace("discover('tests',", "discover('tests', 'test_t*.py',")
    v = run(shop, {"shop/money.py": MONEY_ROUNDS_UP, "run_tests.py": runner}, OTHER)
    assert gate(v, "tests").ok
    old = gate(v, "old_tests")
    assert not old.ok
    assert "run_tests.py fails on the new code" in old.message
    assert v.error is not None
    assert v.error["type"] == "weakened_test"


def test_a_test_class_switched_off_for_pytest_is_refused(shop: Path) -> None:
    hidden = TEST_TEXT.replace(
        "class SlugifyTest(unittest.TestCase):\n",
        "class SlugifyTest(unittest.TestCase):\n    __test__ = False\n\n",
    )
    v = run(shop, {"tests/test_text.py": hidden}, PYTEST)
    assert gate(v, "tests").ok
    assert not gate(v, "removed_tests").ok
    assert "tests/test_text.py::SlugifyTest::test_slugify_empty" in gate(v, "removed_tests").message


# --- item 3: tests that went away ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (UNITTEST, "tests.test_text.SlugifyTest.test_slugify_empty"),
        (PYTEST, "tests/test_text.py::SlugifyTest::test_slugify_empty"),
        (OTHER, "tests/test_text.py::test_slugify_empty"),
    ],
)
def test_a_deleted_test_method_is_refused_whatever_the_runner_prints(
    shop: Path, command: str, named: str
) -> None:
    v = run(shop, {"tests/test_text.py": WITHOUT_EMPTY}, command)
    assert gate(v, "tests").ok
    assert gate(v, "deleted_tests").ok  # the file is still there
    gone = gate(v, "removed_tests")
    assert not gone.ok
    assert named in gone.message
    assert v.error is not None
    assert v.error["type"] == "tests_deleted"
    # the task's plan may say that it removes it: by id, name or glob
    for allowed in (named, "test_slugify_empty", "tests/test_text.py::*empty"):
        v = run(shop, {"tests/test_text.py": WITHOUT_EMPTY}, command, removes_tests=(allowed,))
        assert v.ok, (allowed, [g.to_json() for g in v.gates if not g.ok])


def test_a_deleted_test_method_is_refused_without_a_test_command(shop: Path) -> None:
    v = run(shop, {"tests/test_text.py": WITHOUT_EMPTY}, None)
    assert not gate(v, "removed_tests").ok
    assert "tests/test_text.py::test_slugify_empty" in gate(v, "removed_tests").message


@pytest.mark.parametrize("command", [UNITTEST, PYTEST, OTHER])
def test_a_test_file_deleted_or_emptied_is_refused(shop: Path, command: str) -> None:
    deleted = run(shop, {"tests/test_text.py": None}, command)
    assert not gate(deleted, "deleted_tests").ok
    assert not gate(deleted, "removed_tests").ok
    emptied = run(shop, {"tests/test_text.py": ""}, command)  # deleted, then added empty
    assert gate(emptied, "deleted_tests").ok  # git sees a change, not a deletion
    assert not gate(emptied, "removed_tests").ok
    assert "test_slugify_empty" in gate(emptied, "removed_tests").message


def test_a_renamed_test_counts_as_removed_a_moved_one_does_not(shop: Path) -> None:
    renamed = TEST_TEXT.replace("def test_slugify_empty", "def test_slugify_blank")
    v = run(shop, {"tests/test_text.py": renamed}, PYTEST)
    assert not gate(v, "removed_tests").ok
    assert "renamed test counts as removed" in gate(v, "removed_tests").message
    moved = TEST_TEXT.replace("class SlugifyTest", "class SlugifyEdgeTest").replace(
        '\n    def test_slugify_words(self):\n        self.assertEqual(slugify("Hello, World"), '
        '"hello-world")\n',
        "",
    )
    files = {"tests/test_text.py": WITHOUT_EMPTY, "tests/test_text_edges.py": moved}
    v = run(shop, files, UNITTEST)
    assert v.ok, [g.to_json() for g in v.gates if not g.ok]
    # a test file renamed with its tests keeps them
    v = run(shop, {"tests/test_text.py": None, "tests/test_slug.py": TEST_TEXT}, PYTEST)
    assert gate(v, "removed_tests").ok, gate(v, "removed_tests").message
    assert gate(v, "old_tests").ok


def test_a_test_deselected_by_configuration_is_refused(shop: Path) -> None:
    ini = "[pytest]\naddopts = -q --deselect tests/test_text.py::SlugifyTest::test_slugify_empty\n"
    v = run(shop, {"pytest.ini": ini}, PYTEST)
    assert gate(v, "tests").ok
    assert not gate(v, "removed_tests").ok
    assert "test_slugify_empty" in gate(v, "removed_tests").message


# --- units ------------------------------------------------------------------------------------


def test_refs_place_unittest_ids_in_their_files_and_match_patterns() -> None:
    files = ["tests/test_text.py", "tests/__init__.py", "other/test_text.py"]
    (u, p, bare) = collect.refs(
        [
            "tests.test_text.SlugifyTest.test_empty",
            "tests/test_text.py::SlugifyTest::test_empty[1]",
            "test_text.SlugifyTest.test_empty",  # ambiguous without a folder: two files
        ],
        files,
    )
    assert (u.file, u.cls, u.name, u.rest) == (
        "tests/test_text.py",
        "SlugifyTest",
        "test_empty",
        "SlugifyTest.test_empty",
    )
    assert (p.file, p.cls, p.name, p.function) == (
        "tests/test_text.py",
        "SlugifyTest",
        "test_empty[1]",
        "test_empty",
    )
    assert bare.file is None
    for pattern in ("tests/test_text.py", "tests/", "tests.test_text", "*SlugifyTest*"):
        assert u.allowed([pattern]), pattern
        assert p.allowed([pattern]) or pattern == "tests.test_text", pattern
    assert p.allowed(["tests/test_text.py::SlugifyTest::test_empty[1]"])
    assert not p.allowed(["test_other", "tests/test_text.py::test_full", "", "  "])
    assert history.file_allowed("tests/legacy/test_a.py", ["tests/legacy"])
    assert not history.file_allowed("tests/test_a.py", ["tests/test_a.py::test_x"])


def test_source_refs_across_languages() -> None:
    go = "package x\n\nfunc TestParse(t *testing.T) {}\nfunc helper() {}\n"
    js = "describe('x', () => {\n  it('adds numbers', () => {})\n  test(\"empty\", f)\n})\n"
    rs = "#[test]\nfn parses() {}\n\n#[tokio::test]\nasync fn loads() {}\nfn other() {}\n"
    java = "class T {\n  @Test\n  public void addsUp() {}\n  void helper() {}\n}\n"
    py = "class T:\n    def test_a(self):\n        pass\n\n    async def test_b(self): ..."
    assert [r.name for r in collect.source_refs("x_test.go", go)] == ["TestParse"]
    assert [r.name for r in collect.source_refs("a.test.js", js)] == [
        "adds numbers",
        "empty",
    ]
    assert [r.name for r in collect.source_refs("t.rs", rs)] == ["loads", "parses"]
    assert [r.name for r in collect.source_refs("T.java", java)] == ["addsUp"]
    assert [r.name for r in collect.source_refs("test_a.py", py)] == ["test_a", "test_b"]
    assert collect.source_refs("notes.md", "def test_x(): pass") == []


def test_removed_keeps_renamed_files_and_moved_names() -> None:
    def ref(file: str, name: str) -> TestRef:
        return TestRef(f"{file}::{name}", file, name, None, name)

    before = [ref("a.py", "test_x"), ref("a.py", "test_y"), ref("b.py", "test_z")]
    after = [ref("c.py", "test_x"), ref("d.py", "test_y")]
    # a.py -> c.py keeps test_x; test_y moved to d.py; test_z is gone
    assert [r.id for r in collect.removed(before, after, {"a.py": "c.py"})] == ["b.py::test_z"]
    failed = TestRef("unittest.loader._FailedTest.t", None, "t", None, "t")
    assert collect.removed([failed], [], {}) == []


def test_collect_lists_ids_with_quiet_addopts_and_reports_errors(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {**FILES, "pytest.ini": "[pytest]\naddopts = -qq\n"})
    found = collect.collect(PYTEST, cwd=repo, timeout_s=60)
    assert found.ids is not None
    assert "tests/test_text.py::SlugifyTest::test_slugify_empty" in found.ids
    assert len(found.ids) == 4
    loader = collect.collect(UNITTEST, cwd=repo, timeout_s=60)
    assert loader.ids is not None
    assert "tests.test_text.SlugifyTest.test_slugify_empty" in loader.ids
    assert collect.collect("make test", cwd=repo, timeout_s=60).ids is None
    broken = collect.collect(f"{PY} -m unittest discover -s nowhere", cwd=repo, timeout_s=60)
    assert broken.ids is None
    assert broken.exit_code not in (0, None)


def test_advice_exists_for_every_new_error_type() -> None:
    assert "weakened_test" in feedback.ADVICE
    assert "tests_deleted" in feedback.ADVICE


def test_plan_field_removes_tests_is_read_from_the_native_format(tmp_path: Path) -> None:
    from planfleet.plan.formats import native

    text = textwrap.dedent(
        """\
        planfleet: 1
        name: p
        phases:
          - id: one
            removes_tests: ["tests/legacy/*"]
            tasks:
              - id: a
                removes_tests: [tests/test_text.py::SlugifyTest::test_slugify_empty]
              - id: b
          - id: two
            removes_tests: [tests/test_old.py]
        """
    )
    path = tmp_path / "p.plan.yaml"
    path.write_text(text)
    plan = native.READER.read(path, repo=tmp_path)
    by_id = {t.id: t.removes_tests for t in plan.tasks}
    assert by_id == {
        "a": ("tests/test_text.py::SlugifyTest::test_slugify_empty",),
        "b": ("tests/legacy/*",),
        "two": ("tests/test_old.py",),
    }
    path.write_text(text.replace('["tests/legacy/*"]', "tests/legacy"))
    with pytest.raises(Exception, match="removes_tests"):
        native.READER.read(path, repo=tmp_path)


# --- when the checks themselves cannot run ----------------------------------------------------


def test_history_checks_that_cannot_run_fail_the_gate_not_pass_it(shop: Path) -> None:
    worktrees = shop / ".planfleet" / "worktrees" / "demo"
    worktrees.mkdir(parents=True)
    for role in ("base", "head"):  # a file where the scratch checkouts go
        (worktrees / f"_{role}-t-blocked").write_text("in the way\n")
    v = run(shop, {"tests/test_text.py": WITHOUT_EMPTY}, PYTEST, tid="blocked")
    failed = gate(v, "history")
    assert not failed.ok
    assert "the history checks could not run" in failed.message
    assert v.error is not None
    assert v.error["type"] == "verify_failed"


def test_a_base_run_that_timed_out_is_not_taken_for_a_pass(tmp_path: Path) -> None:
    slow = "import time\n\n\ndef answer():\n    time.sleep(30)\n    return 1\n"
    test = (
        "import unittest\n\nfrom shop.slow import answer\n\n\n"
        "class AnswerTest(unittest.TestCase):\n    def test_answer(self):\n"
        "        self.assertEqual(answer(), 1)\n"
    )
    repo = make_repo(
        tmp_path / "slow",
        {"shop/__init__.py": "", "shop/slow.py": slow, "tests/__init__.py": "",
         "tests/test_slow.py": test},
    )  # fmt: skip
    fast = "def answer():\n    return 2\n"
    v = run(
        repo,
        {"shop/slow.py": fast, "tests/test_slow.py": test.replace("answer(), 1", "answer(), 2")},
        UNITTEST,
        timeout_s=8,
    )
    old = gate(v, "old_tests")
    assert not old.ok
    assert "at the base it timed out" in old.message
