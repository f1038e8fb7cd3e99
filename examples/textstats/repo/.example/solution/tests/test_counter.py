import unittest

from textstats.counter import top


class CounterTest(unittest.TestCase):
    def test_top(self) -> None:
        self.assertEqual(top(["a", "b", "a", "c", "a", "b"], 2), [("a", 3), ("b", 2)])
