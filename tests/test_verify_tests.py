"""The tests gate reads pytest's JUnit report (exact ids whatever the output looks like),
never ignores a rise in failures, and stops a hanging suite soon, naming the test."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import git, make_repo
from planfleet.verify import gates, testresults, testrun
from planfleet.verify.baseline import Baseline
from planfleet.verify.testresults import TestRun, running_test
from test_verify import PY, PYTEST, check, commit, gate, plan_of, start, task_of

CASES = {
    "cases.py": 'BROKEN = {"a - b"}\n\n\ndef works(case):\n    return case not in BROKEN\n',
    "tests/test_cases.py": (
        "import pytest\n\nfrom cases import works\n\n\n"
        '@pytest.mark.parametrize("case", ["a - b", "a - c", "plain"])\n'
        "def test_case(case):\n    assert works(case)\n"
    ),
    "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
}


@pytest.mark.parametrize(
    ("options", "colour"),
    [
        ("", False),
        (" --color=yes", True),  # CI colours: PY_COLORS=1 and --color=yes
        (" -rA -v", False),  # options the engine would add are not added again
        (" -p no:junitxml --color=yes", True),  # no report: the -v lines, colours removed
        (" -n 2", False),  # xdist: workers report out of order, the JUnit report is exact
    ],
)
def test_ids_with_dashes_are_exact_and_a_new_failure_is_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: str, colour: bool
) -> None:
    if colour:
        monkeypatch.setenv("PY_COLORS", "1")
    repo = make_repo(tmp_path / "r", CASES)
    command = PYTEST + options
    base = gates.take_baseline(
        repo, plan_of(command), git(repo, "rev-parse", "HEAD").strip(), timeout_s=120
    )
    assert base.run is not None
    assert base.run.exit_code == 1  # the baseline fails already
    assert base.run.failing == ("tests/test_cases.py::test_case[a - b]",)
    assert base.run.passing == (
        "tests/test_cases.py::test_case[a - c]",
        "tests/test_cases.py::test_case[plain]",
    )
    words = base.run.command.split()
    assert words.count("-rA") <= 1
    assert len([w for w in words if w == "-v" or w.startswith("--verbosity")]) == 1

    wt = start(repo, "breaks")
    commit(wt, {"cases.py": CASES["cases.py"].replace('{"a - b"}', '{"a - b", "a - c"}')})
    v = check(repo, task_of("breaks"), wt, test_command=command, baseline=base)
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "test_failure"
    assert v.tests is not None
    assert v.tests["new_failures"] == ["tests/test_cases.py::test_case[a - c]"]
    assert (v.tests["before"], v.tests["after"]) == (
        {"passed": 2, "failed": 1},
        {"passed": 1, "failed": 2},
    )
    assert "test_case[a - c]" in (v.feedback or "")

    wt = start(repo, "harmless")
    commit(wt, {"notes.txt": "nothing that matters\n"})
    v = check(repo, task_of("harmless"), wt, test_command=command, baseline=base)
    assert v.ok, v.feedback
    assert "1 failing before the run, not blamed" in gate(v, "tests").message


def test_the_junit_report_names_classes_skips_setup_errors_and_collection_errors(
    tmp_path: Path,
) -> None:
    files = {
        "tests/test_kinds.py": (
            "import pytest\n\n\nclass TestK:\n    def test_m(self):\n        pass\n\n"
            "    @pytest.mark.skip\n    def test_s(self):\n        pass\n\n\n"
            "@pytest.mark.xfail\ndef test_xf():\n    assert 0\n\n\n"
            "@pytest.fixture\ndef boom():\n    raise RuntimeError('x')\n\n\n"
            "def test_setup_error(boom):\n    pass\n"
        ),
        "tests/sub/__init__.py": "",
        "tests/sub/test_deep.py": "def test_deep():\n    pass\n",
    }
    repo = make_repo(tmp_path / "k", files)
    run, _, _ = testrun.run_tests(PYTEST, cwd=repo, timeout_s=120)
    assert run.format == "pytest"
    assert run.passing == (
        "tests/sub/test_deep.py::test_deep",
        "tests/test_kinds.py::TestK::test_m",
    )
    assert run.failing == ("tests/test_kinds.py::test_setup_error",)
    assert (run.passed, run.failed, run.ids_known) == (2, 1, True)
    assert run.duration_s is not None
    assert run.duration_s > 0
    (repo / "tests" / "test_broken.py").write_text("import not_a_module_anywhere\n")
    run, _, _ = testrun.run_tests(PYTEST, cwd=repo, timeout_s=120)
    assert run.failing == ("tests/test_broken.py",)
    assert run.exit_code not in (0, None)


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_inherited_tests_get_the_id_of_the_class_that_runs_them(
    tmp_path: Path, family: str
) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/base.py": "class Checks:\n    def test_shared(self):\n        assert True\n",
        "tests/test_child.py": "from tests.base import Checks\n\n\nclass TestChild(Checks):\n"
        "    def test_own(self):\n        pass\n",
    }
    repo = make_repo(tmp_path / "c", files)
    run, _, _ = testrun.run_tests(f"{PYTEST} -o junit_family={family}", cwd=repo, timeout_s=120)
    assert run.passing == (
        "tests/test_child.py::TestChild::test_own",
        "tests/test_child.py::TestChild::test_shared",
    )


def test_a_stale_or_broken_report_is_not_read(tmp_path: Path) -> None:
    report = tmp_path / "j.xml"
    report.write_text("<testsuites><testcase name='x'")
    assert testresults.read_junit(report, tmp_path) is None
    assert testresults.read_junit(tmp_path / "absent.xml", tmp_path) is None
    # the user's own --junitxml, left from an earlier run, does not stand for this one
    repo = make_repo(tmp_path / "s", {"tests/test_a.py": "def test_a():\n    pass\n"})
    old = repo / "old.xml"
    old.write_text(
        '<testsuites><testsuite><testcase classname="t" name="ok"/></testsuite></testsuites>'
    )
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    command = f"{PYTEST} --junitxml=old.xml --no-such-option"  # pytest stops: usage error
    run, _, _ = testrun.run_tests(command, cwd=repo, timeout_s=60)
    assert (run.format, run.exit_code, run.passing) == (None, 4, ())


HANG = {
    "slow.py": "import time\n\n\ndef wait():\n    return 1\n",
    "tests/test_slow.py": (
        "from slow import wait\n\n\ndef test_first():\n    pass\n\n\n"
        "def test_waits():\n    assert wait() == 1\n\n\ndef test_last():\n    pass\n"
    ),
    "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
}


def test_a_hanging_suite_is_stopped_after_3x_the_baseline_and_the_test_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testrun, "TIMEOUT_SLACK_S", 2.0)  # keep the test short
    repo = make_repo(tmp_path / "h", HANG)
    head = git(repo, "rev-parse", "HEAD").strip()
    base = gates.take_baseline(repo, plan_of(PYTEST), head, timeout_s=120)
    assert base.run is not None
    assert base.run.duration_s is not None
    assert base.run.exit_code == 0
    back = Baseline.from_json(base.to_json())
    assert back == base
    wt = start(repo, "hangs")
    commit(wt, {"slow.py": HANG["slow.py"].replace("return 1", "time.sleep(600)")})
    began = time.monotonic()
    v = check(repo, task_of("hangs"), wt, test_command=PYTEST, baseline=base, timeout_s=600)
    took = time.monotonic() - began
    limit = 3 * base.run.duration_s + 2.0
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "test_timeout"
    assert "while running tests/test_slow.py::test_waits" in v.error["message"]
    ev = gate(v, "tests").evidence
    assert ev is not None
    assert ev["time_limit_s"] == pytest.approx(limit, abs=0.1)
    assert ev["running"] == "tests/test_slow.py::test_waits"
    assert took < limit + 60  # far from the attempt's 600 s
    assert "test_waits" in (v.feedback or "")


def test_a_hanging_unittest_is_named_and_the_plan_sets_the_time_limit(tmp_path: Path) -> None:
    files = {
        "slow.py": "import time\n\n\ndef wait():\n    time.sleep(600)\n",
        "tests/__init__.py": "",
        "tests/test_slow.py": (
            "import unittest\n\nfrom slow import wait\n\n\nclass Slow(unittest.TestCase):\n"
            "    def test_a_first(self):\n        pass\n\n"
            "    def test_b_waits(self):\n        '''Waits for ever.'''\n        wait()\n"
        ),
    }
    repo = make_repo(tmp_path / "u", files)
    command = f"{PY} -m unittest discover -s tests -t ."
    plan = plan_of(command)
    plan = type(plan)(**{**plan.__dict__, "meta": {**plan.meta, "test_timeout": 3}})
    began = time.monotonic()
    base = gates.take_baseline(repo, plan, git(repo, "rev-parse", "HEAD").strip(), timeout_s=600)
    assert time.monotonic() - began < 60
    assert base.run is not None
    assert base.run.exit_code is None
    assert base.run.running == "tests.test_slow.Slow.test_b_waits"
    assert "while running tests.test_slow.Slow.test_b_waits" in testrun.timed_out(base.run)


def test_running_test_reads_verbose_output() -> None:
    pytest_out = (
        "tests/a.py::test_one PASSED                       [ 33%]\n"
        "tests/a.py::test_two[x - y] \x1b[31mFAILED\x1b[0m            [ 66%]\n"
        "tests/a.py::TestK::test_three \n\n!!!!!!!!!!!! KeyboardInterrupt !!!!!!!!!!!!\n"
        "/tmp/tests/a.py:9: KeyboardInterrupt\n"
        "============ 1 failed, 1 passed in 3.01s ============\n"
    )
    assert running_test(pytest_out) == "tests/a.py::TestK::test_three"
    assert running_test("tests/a.py::test_one PASSED [100%]\n") is None
    unittest_out = (
        "test_a (m.T.test_a) ... ok\ntest_b (m.T.test_b)\nDoc line. ... Traceback (most "
        'recent call last):\n  File "m.py", line 3\nKeyboardInterrupt\n'
    )
    assert running_test(unittest_out) == "m.T.test_b"
    assert running_test("test_a (m.T) ... ok\n") is None


def test_time_limit_is_configured_else_derived_from_the_baseline() -> None:
    done = TestRun("p", 0, "pytest", duration_s=10.0)
    assert testrun.time_limit(done, None, 600) == 60.0
    assert testrun.time_limit(done, 5.0, 600) == 5.0
    assert testrun.time_limit(TestRun("p", None, None, duration_s=600.0), None, 600) == 600
    assert testrun.time_limit(None, None, 42) == 42
    old = TestRun.from_json({"command": "p", "exit_code": 0, "format": None})  # before 0.x
    assert (old.duration_s, old.running) == (None, None)
