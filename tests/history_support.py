"""Builders for the history-gate tests: a small shop package whose tests an agent edits."""

from __future__ import annotations

import itertools
import shlex
import sys
from pathlib import Path
from typing import Any

from planfleet.verify import verdict
from test_verify import check, commit, start, task_of

PY = shlex.quote(sys.executable)
PYTEST = f"{PY} -m pytest -q -p no:cacheprovider"
UNITTEST = f"{PY} -m unittest discover -s tests -t ."
# A runner planfleet cannot ask for its test ids: it prints nothing but a verdict.
OTHER = f"{PY} run_tests.py"

MONEY = """\
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_cents(value: Decimal) -> Decimal:
    \"\"\"Round to whole cents, halves away from zero.\"\"\"
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
"""
MONEY_ROUNDS_UP = MONEY.replace("ROUND_HALF_UP", "ROUND_UP")
TEST_MONEY = """\
import unittest
from decimal import Decimal

from shop.money import round_cents


class RoundCentsTest(unittest.TestCase):
    def test_halves_round_up(self):
        self.assertEqual(round_cents(Decimal("0.125")), Decimal("0.13"))
        self.assertEqual(round_cents(Decimal("0.124")), Decimal("0.12"))

    def test_whole_amounts_stay(self):
        self.assertEqual(round_cents(Decimal("3")), Decimal("3.00"))
"""
WEAKENED_LINE = 10  # the 0.124 assertion: the one that notices rounding up
TEST_TEXT = """\
import unittest

from shop.text import slugify


class SlugifyTest(unittest.TestCase):
    def test_slugify_words(self):
        self.assertEqual(slugify("Hello, World"), "hello-world")

    def test_slugify_empty(self):
        self.assertEqual(slugify(""), "")
"""
FILES = {
    "shop/__init__.py": "",
    "shop/money.py": MONEY,
    "shop/text.py": (
        'import re\n\n\ndef slugify(text: str) -> str:\n    """Lowercase words joined by '
        'dashes."""\n    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))\n'
    ),
    "tests/__init__.py": "",
    "tests/test_money.py": TEST_MONEY,
    "tests/test_text.py": TEST_TEXT,
    "run_tests.py": (
        "import sys\nimport unittest\n\nsuite = unittest.defaultTestLoader.discover('tests', "
        "top_level_dir='.')\nresult = unittest.TextTestRunner(stream=open('/dev/null', 'w'))"
        ".run(suite)\nsys.exit(0 if result.wasSuccessful() else 1)\n"
    ),
}
# The task's real work, which every agent below also does.
WORK = {
    "shop/tax.py": "from decimal import Decimal\n\n\ndef with_vat(net: Decimal) -> Decimal:\n"
    '    return net * Decimal("1.2")\n',
    "tests/test_tax.py": "import unittest\nfrom decimal import Decimal\n\n"
    "from shop.tax import with_vat\n\n\nclass VatTest(unittest.TestCase):\n"
    "    def test_vat(self):\n"
    '        self.assertEqual(with_vat(Decimal("10")), Decimal("12.0"))\n',
}
WITHOUT_EMPTY = TEST_TEXT.replace(
    '\n    def test_slugify_empty(self):\n        self.assertEqual(slugify(""), "")\n', ""
)


_TASKS = itertools.count(1)


def run(
    repo: Path,
    files: dict[str, str | None],
    command: str | None,
    *,
    tid: str | None = None,
    timeout_s: float = 120,
    **task: Any,
) -> verdict.Verification:
    """Commit the real work plus ``files`` on a new task branch; return the verification."""
    tid = tid or f"t{next(_TASKS)}"
    wt = start(repo, tid)
    commit(wt, {**WORK, **files})
    return check(repo, task_of(tid, **task), wt, test_command=command, timeout_s=timeout_s)
