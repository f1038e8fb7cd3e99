"""Red before green on real repositories: a task's new tests must fail without its code.

Each agent below does real work in the shop package (a VAT module) and adds tests; some of
those tests test the work, some would pass on the base's code as well and so test nothing
the task changed.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from conftest import make_repo
from history_support import FILES, OTHER, PYTEST, TEST_TEXT, UNITTEST, WORK
from planfleet.verify import verdict
from test_verify import check, commit, gate, start, task_of

_IDS = itertools.count(1)
# A test of code that is already there: green on the base, so it proves nothing new.
OLD_BEHAVIOUR = TEST_TEXT.replace(
    "    def test_slugify_empty(self):",
    "    def test_slugify_digits(self):\n"
    '        self.assertEqual(slugify("Route 66"), "route-66")\n\n'
    "    def test_slugify_empty(self):",
)
TAX_ALWAYS_TRUE = (
    "import unittest\n\n\nclass VatSmokeTest(unittest.TestCase):\n"
    "    def test_vat_module_exists(self):\n        self.assertTrue(True)\n"
)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop", FILES)


def attempt(
    repo: Path,
    files: dict[str, str | None],
    command: str | None,
    *,
    strict: bool = False,
    plan_strict: bool = False,
    work: dict[str, str | None] | None = None,
    **task_fields: Any,
) -> verdict.Verification:
    """Commit ``work`` (default: the real work) plus ``files``; return the verification."""
    tid = f"v{next(_IDS)}"
    wt = start(repo, tid)
    commit(wt, {**(WORK if work is None else work), **files})
    meta = {"strict_tests": True} if plan_strict else {}
    task = task_of(tid, **task_fields)
    return check(
        repo, task, wt, test_command=command, timeout_s=120, strict_tests=strict, plan_meta=meta
    )


@pytest.mark.parametrize("command", [PYTEST, UNITTEST], ids=["pytest", "unittest"])
def test_a_test_of_the_new_code_is_red_on_the_base_and_passes(shop: Path, command: str) -> None:
    v = attempt(shop, {}, command, strict=True)
    found = gate(v, "vacuous_test")
    assert found.ok, found.message
    assert "the 1 new or changed test(s) in tests/test_tax.py fail on the base's code" in (
        found.message
    )
    assert v.ok
    assert not v.warnings


def test_a_new_test_of_old_behaviour_is_a_warning_that_names_it(shop: Path) -> None:
    v = attempt(shop, {"tests/test_text.py": OLD_BEHAVIOUR}, PYTEST)
    found = gate(v, "vacuous_test")
    assert found.ok  # by default: reported, not failed
    assert found.message.startswith("warning: 1 new or changed test(s) pass without")
    assert "tests/test_text.py::SlugifyTest::test_slugify_digits" in found.message
    # the tests the task did not touch, and the real new test, are not named
    assert "test_slugify_words" not in found.message
    assert "test_vat" not in found.message
    assert found.evidence is not None
    assert found.evidence["tests"] == ["tests/test_text.py::SlugifyTest::test_slugify_digits"]
    assert any("test_slugify_digits" in w for w in v.warnings)
    assert v.ok


@pytest.mark.parametrize("how", ["flag", "plan"])
def test_strict_tests_fails_the_attempt_and_tells_the_next_one_which_tests(
    shop: Path, how: str
) -> None:
    v = attempt(
        shop,
        {"tests/test_text.py": OLD_BEHAVIOUR},
        UNITTEST,
        strict=how == "flag",
        plan_strict=how == "plan",
    )
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "vacuous_test"
    assert v.error["step"] == "vacuous_test"
    assert v.feedback is not None
    assert "tests.test_text.SlugifyTest.test_slugify_digits" in v.feedback
    assert "fail without your change and pass with it" in v.feedback
    # the scratch checkouts are gone
    assert not list((shop / ".planfleet" / "worktrees" / "demo").glob("_*"))


def test_an_edited_test_that_still_passes_on_the_base_is_named(shop: Path) -> None:
    edited = TEST_TEXT.replace('slugify("Hello, World"), "hello-world"', 'slugify("A b"), "a-b"')
    v = attempt(shop, {"tests/test_text.py": edited}, PYTEST, strict=True)
    assert not v.ok
    assert v.error is not None
    assert "tests/test_text.py::SlugifyTest::test_slugify_words" in v.error["message"]
    assert "test_slugify_empty" not in v.error["message"]


def test_a_test_that_asserts_nothing_about_the_change_is_caught(shop: Path) -> None:
    work = {"shop/tax.py": WORK["shop/tax.py"], "tests/test_tax.py": TAX_ALWAYS_TRUE}
    v = attempt(shop, {}, PYTEST, strict=True, work=work)
    assert gate(v, "tests").ok  # green on the branch
    assert not v.ok
    assert v.error is not None
    assert "tests/test_tax.py::VatSmokeTest::test_vat_module_exists" in v.error["message"]


def test_parametrized_and_module_level_pytest_tests_are_named_with_their_ids(
    shop: Path,
) -> None:
    text = (
        "import pytest\n\nfrom shop.text import slugify\n\n\n"
        '@pytest.mark.parametrize("word", ["a", "b"])\ndef test_words(word):\n'
        "    assert slugify(word) == word\n\n\ndef test_upper():\n"
        '    assert slugify("AB") == "ab"\n'
    )
    v = attempt(shop, {"tests/test_more.py": text}, PYTEST, strict=True)
    assert not v.ok
    assert v.error is not None
    message = v.error["message"]
    assert message.startswith("3 new or changed test(s) pass without the task's code")
    for tid in ("test_words[a]", "test_words[b]", "test_upper"):
        assert f"tests/test_more.py::{tid}" in message
    assert "test_tax.py" not in message  # it imports the new module: red on the base


def test_a_runner_that_names_no_tests_is_judged_by_its_exit_code_and_says_so(
    shop: Path,
) -> None:
    red = attempt(shop, {}, OTHER, strict=True)
    found = gate(red, "vacuous_test")
    assert found.ok
    assert "does not name its tests" in found.message
    green = attempt(shop, {"tests/test_tax.py": TAX_ALWAYS_TRUE}, OTHER, strict=True)
    assert not green.ok
    assert green.error is not None
    assert "which ones can't be told apart" in green.error["message"]


def test_a_task_that_declares_only_tests_may_pin_existing_behaviour(shop: Path) -> None:
    only_tests = {"tests/test_text.py": OLD_BEHAVIOUR}
    v = attempt(shop, {}, PYTEST, strict=True, work=only_tests, files_modify=("tests/",))
    assert v.ok, v.error
    assert "declares only test files" in gate(v, "vacuous_test").message
    # the same change from a task that declares code is not excused
    v = attempt(shop, {}, PYTEST, strict=True, work=only_tests, files_modify=("shop/text.py",))
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "vacuous_test"


def test_a_test_that_needs_a_new_fixture_gets_it_on_the_base(shop: Path) -> None:
    conftest = "import pytest\n\n\n@pytest.fixture\ndef word():\n    return 'plain'\n"
    test = "from shop.text import slugify\n\n\ndef test_plain(word):\n    assert slugify(word)\n"
    v = attempt(shop, {"tests/conftest.py": conftest, "tests/test_plain.py": test}, PYTEST)
    found = gate(v, "vacuous_test")
    # without the new conftest.py the test would error on the base and look red
    assert "tests/test_plain.py::test_plain" in found.message


def test_no_test_command_and_no_test_change_are_said_plainly(shop: Path) -> None:
    v = attempt(shop, {}, None, strict=True)
    assert v.ok
    assert "vacuous_test" not in [g.name for g in v.gates]  # nothing to run the tests with
    no_tests = {"shop/tax.py": WORK["shop/tax.py"]}
    v = attempt(shop, {}, PYTEST, strict=True, work=no_tests)
    assert gate(v, "vacuous_test").message == "no test added or changed"


@pytest.mark.parametrize("command", [f"{PYTEST} -x", f"{UNITTEST} --failfast"], ids=["-x", "-f"])
def test_stop_at_first_failure_does_not_hide_a_vacuous_test_behind_a_red_one(
    shop: Path, command: str
) -> None:
    # test_tax.py fails on the base (it imports the new module) and is collected first
    v = attempt(shop, {"tests/test_text.py": OLD_BEHAVIOUR}, command, strict=True)
    assert not v.ok
    assert v.error is not None
    assert "test_slugify_digits" in v.error["message"]
