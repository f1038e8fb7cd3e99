import unittest

from textstats.tokenize import words


class TokenizeTest(unittest.TestCase):
    def test_words(self) -> None:
        self.assertEqual(words("Hello, world! It's 'fine'."), ["hello", "world", "it's", "fine"])

    def test_empty(self) -> None:
        self.assertEqual(words("  ...  "), [])
