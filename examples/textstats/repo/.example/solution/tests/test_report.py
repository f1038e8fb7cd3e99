import unittest

from textstats.report import report


class ReportTest(unittest.TestCase):
    def test_report(self) -> None:
        self.assertEqual(report("the cat and the hat", 1), "words: 5\nthe: 2")
