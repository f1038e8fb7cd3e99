#!/usr/bin/env python3
"""Benchmark: what the history gates (removed_tests, old_tests) add to verifying one task.

Generates a repository with ``--modules`` modules and as many test files of ``--tests``
tests each (unittest TestCases, so pytest and unittest both run them), then for each runner
verifies three tasks from the same base, timing every gate:

- ``code only``: the task changes a module, no test file (removed_tests only);
- ``test edited``: the task adds a test to an existing file (old_tests, narrowed for pytest);
- ``weakened``: the task breaks a function and drops the assertion that notices (old_tests
  also runs the base's tests at the base, to tell a regression from an old failure).

The first task of each runner collects the base (no cache); the others reuse it. Prints a
table and one JSON line. Usage: ``python scripts/bench_history.py [--modules N --tests K]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from planfleet import git
from planfleet.cli.output import table
from planfleet.plan import model
from planfleet.repo import provision
from planfleet.verify import collect, gates, weakened

PY = shlex.quote(sys.executable)
RUNNERS = {
    "pytest": f"{PY} -m pytest -q -p no:cacheprovider",
    "unittest": f"{PY} -m unittest discover -s tests -t .",
}
ENV = {**git.PLANFLEET_IDENTITY, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def generate(repo: Path, modules: int, tests: int) -> None:
    """Write the package and its tests, and commit them on main."""
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "tests" / "__init__.py").write_text("")
    for m in range(modules):
        (repo / "pkg" / f"m{m}.py").write_text(f"def f(x):\n    return x + {m}\n")
        body = "".join(
            f"    def test_{t}(self):\n        self.assertEqual(f({t}), {t + m})\n\n"
            for t in range(tests)
        )
        (repo / "tests" / f"test_m{m}.py").write_text(
            f"import unittest\n\nfrom pkg.m{m} import f\n\n\nclass T(unittest.TestCase):\n{body}"
        )
    git.git("init", "-q", "-b", "main", cwd=repo)
    git.git("add", "-A", cwd=repo)
    git.git("commit", "-qm", "start", cwd=repo, identity=True)


def task_change(repo: Path, name: str, files: dict[str, str]) -> provision.Worktree:
    wt = provision.create_worktree(repo, "bench", name)
    for rel, text in files.items():
        (wt.path / rel).write_text(text)
    git.git("add", "-A", cwd=wt.path)
    git.git("commit", "-qm", name, cwd=wt.path, identity=True)
    return wt


def timed(times: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[key] = times.get(key, 0.0) + time.perf_counter() - started

    return wrapper


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=30)
    ap.add_argument("--tests", type=int, default=10)
    args = ap.parse_args()
    os.environ.update(ENV)
    times: dict[str, float] = {}
    # count each gate's own time (the wrappers are this script's, the gates are unchanged)
    gates._tests_gate = timed(times, "tests", gates._tests_gate)  # type: ignore[method-assign]
    collect.removed_tests = timed(times, "removed_tests", collect.removed_tests)  # type: ignore[method-assign]
    weakened.old_tests_on_new_code = timed(  # type: ignore[method-assign]
        times, "old_tests", weakened.old_tests_on_new_code
    )
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        generate(repo, args.modules, args.tests)
        test0 = (repo / "tests" / "test_m0.py").read_text()
        tasks = {
            "code only": {"pkg/m1.py": "def f(x):\n    return x + 1  # same\n"},
            "test edited": {"tests/test_m0.py": test0 + "    def test_more(self):\n        f(1)\n"},
            "weakened": {
                "pkg/m0.py": "def f(x):\n    return x + (1 if x == 3 else 0)\n",
                "tests/test_m0.py": test0.replace("self.assertEqual(f(3), 3)", "f(3)"),
            },
        }
        for runner, command in RUNNERS.items():
            meta = {"test_command": command}
            plan = model.Plan("bench", "b", "planfleet", "p", (), (), meta=meta)
            for what, files in tasks.items():
                name = f"{runner}-{what.replace(' ', '-')}"
                wt = task_change(repo, name, files)
                task = model.Task(id=name, title=name, phase="p", source=model.Source("p"))
                times.clear()
                started = time.perf_counter()
                v = gates.verify_attempt(
                    repo,
                    plan,
                    task,
                    worktree=wt.path,
                    branch=wt.branch,
                    base_commit=wt.base or "",
                    baseline=None,
                    claims=None,
                    timeout_s=600,
                )
                total = time.perf_counter() - started
                failed = [g.name for g in v.gates if not g.ok]
                entry = {"runner": runner, "task": what, "total_s": round(total, 2)}
                entry |= {f"{k}_s": round(s, 2) for k, s in times.items()}
                entry["failed"] = failed
                results.append(entry)
                rows.append(
                    [
                        runner,
                        what,
                        f"{times.get('tests', 0):.2f}",
                        f"{times.get('removed_tests', 0):.2f}",
                        f"{times.get('old_tests', 0):.2f}",
                        f"{total:.2f}",
                        ",".join(failed) or "-",
                    ]
                )
    n = args.modules * args.tests
    print(f"{n} tests in {args.modules} files; seconds per task")
    print(
        table(
            rows,
            ["runner", "task", "tests", "removed_tests", "old_tests", "all gates", "failed"],
        )
    )
    print(json.dumps({"tests": n, "results": results}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
