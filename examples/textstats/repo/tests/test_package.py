import unittest

import textstats


class PackageTest(unittest.TestCase):
    def test_imports(self) -> None:
        self.assertIn("text statistics", textstats.__doc__)
