import subprocess
import sys
import tempfile
import unittest


class CliTest(unittest.TestCase):
    def test_cli(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("b a b")
        out = subprocess.run(
            [sys.executable, "-m", "textstats", fh.name], capture_output=True, text=True,
            check=True, env={"PYTHONPATH": "src"},
        ).stdout
        self.assertEqual(out.splitlines()[:2], ["words: 3", "b: 2"])
