"""Verification gates on real repositories, with real pytest and unittest suites."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import GIT_IDENTITY, git, make_repo
from planfleet import git as pgit
from planfleet import paths
from planfleet.errors import InputError
from planfleet.plan import model
from planfleet.repo import provision
from planfleet.verify import deps, diff, gates, testrun, verdict
from planfleet.verify.baseline import Baseline
from planfleet.verify.testrun import TestRun, compare, parse_output, prepare_command

PY = shlex.quote(sys.executable)
PYTEST = f"{PY} -m pytest -q -p no:cacheprovider"
PLAN = "demo"

FILES = {
    "calc.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
    "tests/test_calc.py": (
        "from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_sub():\n    assert sub(5, 3) == 2\n"
    ),
    "tests/test_legacy.py": "def test_known_bad():\n    assert 1 == 2, 'broken before the run'\n",
    "other/test_other.py": (
        "from calc import add\n\n\ndef test_other():\n    assert add(1, 1) == 2\n"
    ),
    "pyproject.toml": '[project]\nname = "demo"\nversion = "0"\ndependencies = ["attrs>=22"]\n',
}


@dataclass
class Env:
    repo: Path
    baseline: Baseline


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One repository (and one baseline) shared by the tests that run pytest."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home")
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for key, value in GIT_IDENTITY.items():
            mp.setenv(key, value)
        repo = make_repo(tmp_path_factory.mktemp("verify") / "repo", FILES)
        head = git(repo, "rev-parse", "HEAD").strip()
        baseline = gates.take_baseline(repo, plan_of(PYTEST), head, timeout_s=120)
        yield Env(repo, baseline)


def task_of(tid: str, **kw: Any) -> model.Task:
    return model.Task(id=tid, title=tid, phase="p1", source=model.Source("plan.yaml"), **kw)


def plan_of(test_command: str | None, *tasks: model.Task) -> model.Plan:
    meta = {"test_command": test_command} if test_command else {}
    return model.Plan(PLAN, "demo", "planfleet", "plan.yaml", (), tasks, meta=meta)


def start(repo: Path, tid: str) -> provision.Worktree:
    return provision.create_worktree(repo, PLAN, tid)


def commit(wt: provision.Worktree, files: dict[str, str | None], msg: str = "work") -> None:
    """Write (None: delete) ``files`` in the worktree and commit them, as an agent would."""
    for rel, text in files.items():
        target = wt.path / rel
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    git(wt.path, "add", "-A")
    git(wt.path, "commit", "-q", "--allow-empty", "-m", msg)


def check(
    repo: Path,
    task: model.Task,
    wt: provision.Worktree,
    *,
    test_command: str | None = None,
    baseline: Baseline | None = None,
    claims: dict[str, Any] | None = None,
    timeout_s: float = 60,
    strict_tests: bool = False,
    plan_meta: dict[str, Any] | None = None,
) -> verdict.Verification:
    assert wt.base is not None
    plan = plan_of(test_command, task)
    plan.meta.update(plan_meta or {})
    return gates.verify_attempt(
        repo,
        plan,
        task,
        worktree=wt.path,
        branch=wt.branch,
        base_commit=wt.base,
        baseline=baseline,
        claims=claims,
        timeout_s=timeout_s,
        strict_tests=strict_tests,
    )


def gate(v: verdict.Verification, name: str) -> verdict.Gate:
    return next(g for g in v.gates if g.name == name)


# --- the baseline -----------------------------------------------------------------------


def test_baseline_records_counts_and_ids_and_leaves_no_worktree(env: Env) -> None:
    run = env.baseline.run
    assert run is not None
    assert run.format == "pytest"
    assert (run.passed, run.failed) == (3, 1)
    assert run.failing == ("tests/test_legacy.py::test_known_bad",)
    assert "tests/test_calc.py::test_add" in run.passing
    assert run.ids_known
    assert Baseline.from_json(json.loads(json.dumps(env.baseline.to_json()))) == env.baseline
    listed = git(env.repo, "worktree", "list", "--porcelain")
    assert "_baseline" not in listed
    assert not (paths.worktrees_root(env.repo) / PLAN / "_baseline").exists()


def test_baseline_without_test_command_and_malformed_json(git_repo: Path) -> None:
    head = git(git_repo, "rev-parse", "HEAD").strip()
    empty = gates.take_baseline(git_repo, plan_of(None), head, timeout_s=5)
    assert empty == Baseline(head, None, None)
    assert not (git_repo / ".planfleet" / "worktrees").exists()
    for bad in ({}, {"version": 1, "commit": 3, "command": None}, {"version": 2}):
        with pytest.raises((ValueError, TypeError)):
            Baseline.from_json(bad)


def test_baseline_replaces_a_leftover_worktree(env: Env, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"check.py": "print('ok')\n"})
    head = git(repo, "rev-parse", "HEAD").strip()
    stale = paths.worktrees_root(repo) / PLAN / "_baseline"
    stale.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "--detach", str(stale), head)
    (stale / "junk.txt").write_text("left by a killed run\n")
    got = gates.take_baseline(repo, plan_of(f"{PY} check.py"), head, timeout_s=30)
    assert got.run is not None
    assert got.run.exit_code == 0
    assert got.run.format is None
    assert not stale.exists()
    assert str(stale) not in git(repo, "worktree", "list")


# --- a task that passes every gate --------------------------------------------------------


def test_good_task_passes_every_gate_and_is_recorded(env: Env) -> None:
    task = task_of(
        "good",
        files_create=("mul.py", "tests/test_mul.py"),
        files_modify=("pyproject.toml",),
        add_dependencies=("Requests[socks]>=2.31",),
        verify=(f"{PY} -c 'import mul; assert mul.mul(2, 3) == 6'",),
    )
    wt = start(env.repo, "good")
    commit(
        wt,
        {
            "mul.py": "def mul(a, b):\n    return a * b\n",
            "tests/test_mul.py": (
                "from mul import mul\n\n\ndef test_mul():\n    assert mul(2, 2) == 4\n"
            ),
            "pyproject.toml": FILES["pyproject.toml"].replace(
                '"attrs>=22"', '"attrs>=22", "requests"'
            ),
        },
    )
    v = check(env.repo, task, wt, test_command=PYTEST, baseline=env.baseline)
    assert v.ok, v.feedback
    assert v.error is None
    assert v.feedback is None
    assert [g.name for g in v.gates] == [
        "uncommitted", "commit", "declared_files", "artifacts", "dependencies", "verify",
        "tests", "deleted_tests", "skip_markers", "removed_tests", "old_tests",
        "vacuous_test", "claims",
    ]  # fmt: skip
    assert v.commit == pgit.rev_parse(pgit.branch_ref(wt.branch), cwd=env.repo)
    assert v.files_created == ["mul.py", "tests/test_mul.py"]
    assert v.files_modified == ["pyproject.toml"]
    assert v.tests == {
        "before": {"passed": 3, "failed": 1},
        "after": {"passed": 4, "failed": 1},
        "new_failures": [],
        "fixed": [],
        "added": ["tests/test_mul.py::test_mul"],
    }
    assert "pyproject.toml" in gate(v, "dependencies").message
    ev = gate(v, "verify").evidence
    assert ev is not None
    assert ev["exit_code"] == 0
    # nothing tracked was changed by the gates; only caches may appear
    assert git(wt.path, "status", "--porcelain", "--untracked-files=no") == ""

    path = gates.save_record(env.repo, PLAN, "good", 1, v)
    assert path == paths.verify_dir(env.repo, PLAN) / "good.1.json"
    record = json.loads(path.read_text())
    assert record["ok"] is True
    assert record["attempt"] == 1
    assert record["task"] == "good"
    assert record["gates"][6]["evidence"]["command"].startswith(PYTEST)
    assert [p.name for p in path.parent.iterdir()] == ["good.1.json"]  # no temp file left
    v.ok = False
    gates.save_record(env.repo, PLAN, "good", 1, v)  # replaced whole
    assert json.loads(path.read_text())["ok"] is False
    with pytest.raises(InputError):
        gates.save_record(env.repo, PLAN, "../evil", 1, v)


def test_record_write_is_atomic(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wt = start(git_repo, "rec")
    first = check(git_repo, task_of("rec"), wt)
    path = gates.save_record(git_repo, PLAN, "rec", 2, first)
    before = path.read_text()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    commit(wt, {"a.txt": "a\n"})
    second = check(git_repo, task_of("rec"), wt)
    assert second.ok
    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        gates.save_record(git_repo, PLAN, "rec", 2, second)
    assert path.read_text() == before  # the old record, whole
    assert [p.name for p in path.parent.iterdir()] == ["rec.2.json"]


# --- tests against the baseline -----------------------------------------------------------


def test_new_failure_is_blamed_but_a_preexisting_one_is_not(env: Env) -> None:
    task = task_of("breaks", files_modify=("calc.py",))
    wt = start(env.repo, "breaks")
    commit(wt, {"calc.py": FILES["calc.py"].replace("return a + b", "return a - b")})
    v = check(env.repo, task, wt, test_command=PYTEST, baseline=env.baseline)
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "test_failure"
    assert v.error["step"] == "tests"
    assert v.tests is not None
    assert v.tests["new_failures"] == [
        "other/test_other.py::test_other",
        "tests/test_calc.py::test_add",
    ]
    assert v.tests["before"] == {"passed": 3, "failed": 1}
    assert v.tests["after"] == {"passed": 1, "failed": 3}
    assert "test_known_bad" not in v.error["message"]
    ev = gate(v, "tests").evidence
    assert ev is not None
    assert ev["exit_code"] == 1
    assert "test_add" in ev["output_tail"]
    fb = v.feedback or ""
    assert "tests" in fb
    assert PYTEST in fb
    assert "exit code 1" in fb
    assert "test_add" in fb
    assert "What to do:" in fb


def test_blast_radius_narrows_the_run(env: Env) -> None:
    task = task_of(
        "narrow", files_modify=("other/test_other.py",), blast_radius="tests/test_calc.py"
    )
    wt = start(env.repo, "narrow")
    commit(wt, {"other/test_other.py": "def test_other():\n    assert False\n"})
    v = check(env.repo, task, wt, test_command=PYTEST, baseline=env.baseline)
    assert v.ok, v.feedback
    ev = gate(v, "tests").evidence
    assert ev is not None
    assert ev["command"].endswith(" tests/test_calc.py")
    assert "--junitxml=" in ev["command"]
    assert "narrowed to tests/test_calc.py" in gate(v, "tests").message
    assert v.tests is not None
    assert v.tests["after"] == {"passed": 2, "failed": 0}

    wide = task_of("narrow", files_modify=("other/test_other.py",), blast_radius="")
    v = check(env.repo, wide, wt, test_command=PYTEST, baseline=env.baseline)
    assert not v.ok
    assert v.tests is not None
    assert v.tests["new_failures"] == ["other/test_other.py::test_other"]


def test_prepare_command_narrows_only_pytest(tmp_path: Path) -> None:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_a.py").write_text("")
    (tmp_path / "tests" / "test_b.py").write_text("")
    cmd, narrowed, _ = prepare_command("pytest -q tests", tmp_path, "tests/unit, tests/nope")
    assert (cmd, narrowed) == ("pytest -q --verbosity=1 -rA tests/unit", True)
    cmd, _, _ = prepare_command("python -m pytest -k tests", tmp_path, "tests/*.py")
    assert cmd == "python -m pytest -k tests --verbosity=1 -rA tests/test_b.py"
    cmd, narrowed, note = prepare_command("pytest -q", tmp_path, "does/not/exist")
    assert (cmd, narrowed) == ("pytest -q --verbosity=1 -rA", False)
    assert "ran every test" in note
    cmd, narrowed, note = prepare_command("make test", tmp_path, "tests/unit")
    assert (cmd, narrowed) == ("make test", False)
    assert "not a pytest command" in note
    cmd, narrowed, _ = prepare_command("pytest -q && echo hi", tmp_path, "tests/unit")
    assert (cmd, narrowed) == ("pytest -q && echo hi", False)
    assert prepare_command("python -m unittest discover", tmp_path, None)[0].endswith(" -v")
    cmd, _, _ = prepare_command("pytest -q", tmp_path, "../etc /abs tests/unit")
    assert cmd == "pytest -q --verbosity=1 -rA tests/unit"
    report = tmp_path / "r.xml"
    cmd, _, _ = prepare_command("pytest", tmp_path, "tests/unit", report=report)
    assert cmd == f"pytest --verbosity=1 --junitxml={report} tests/unit"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # nothing the command already says is said a second time
        ("pytest -rA -v", "pytest -rA -v"),
        ("pytest -ra --verbose tests", "pytest -ra --verbose tests"),
        ("pytest --verbosity 2 -rA", "pytest --verbosity 2 -rA"),
        ("python -m unittest -v", "python -m unittest -v"),
        ("pytest -q -rA -v --junitxml=out/j.xml", "pytest -q -rA -v --junitxml=out/j.xml"),
        # with a report to write: only the report is added
        ("pytest -v -rA REPORT", "pytest -v -rA --junitxml=r.xml"),
        # their own report is read where they asked for it; none is added
        ("pytest --junitxml=out/j.xml REPORT", "pytest --junitxml=out/j.xml --verbosity=1"),
        ("pytest -p no:junitxml REPORT", "pytest -p no:junitxml --verbosity=1 -rA"),
    ],
)
def test_prepare_command_adds_no_option_twice(tmp_path: Path, command: str, expected: str) -> None:
    report = Path("r.xml") if command.endswith(" REPORT") else None
    got, _, _ = prepare_command(command.removesuffix(" REPORT"), tmp_path, None, report=report)
    assert got == expected


@pytest.mark.parametrize("radius", ["", "``", "` `", '""', " , "])
def test_an_empty_blast_radius_means_every_test(tmp_path: Path, radius: str) -> None:
    (tmp_path / "tests").mkdir()
    cmd, narrowed, note = prepare_command("pytest tests", tmp_path, radius)
    assert (cmd, narrowed, note) == ("pytest tests --verbosity=1 -rA", False, "")
    assert testrun.all_tests(radius)
    assert not testrun.all_tests(None)
    assert not testrun.all_tests("`tests/unit`")
    assert testrun.scope_words("`tests/unit`, tests/b.py") == ["tests/unit", "tests/b.py"]


def test_unittest_suite_baseline_and_new_failure(tmp_path: Path) -> None:
    files = {
        "calc.py": FILES["calc.py"],
        "tests/test_calc.py": (
            "import unittest\n\nfrom calc import add\n\n\nclass CalcTest(unittest.TestCase):\n"
            "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n\n"
            "    def test_bad(self):\n        self.assertEqual(1, 2)\n"
        ),
    }
    repo = make_repo(tmp_path / "u", files)
    command = f"{PY} -m unittest discover -s tests"
    head = git(repo, "rev-parse", "HEAD").strip()
    base = gates.take_baseline(repo, plan_of(command), head, timeout_s=60)
    assert base.run is not None
    assert base.run.format == "unittest"
    assert (base.run.passed, base.run.failed) == (1, 1)
    assert base.run.failing == ("test_calc.CalcTest.test_bad",)
    assert base.run.ids_known

    task = task_of("u1")
    wt = start(repo, "u1")
    commit(
        wt,
        {
            "calc.py": files["calc.py"].replace("a + b", "a * b"),
            "tests/test_more.py": (
                "import unittest\n\n\nclass More(unittest.TestCase):\n"
                "    def test_new(self):\n        pass\n"
            ),
        },
    )
    v = check(repo, task, wt, test_command=command, baseline=base)
    assert v.error is not None
    assert v.error["type"] == "test_failure"
    assert v.tests is not None
    assert v.tests["new_failures"] == ["test_calc.CalcTest.test_add"]
    assert v.tests["added"] == ["test_more.More.test_new"]
    assert v.tests["after"] == {"passed": 1, "failed": 2}


def test_unknown_output_falls_back_to_the_exit_code(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "x", {"check.py": "import sys\nprint('custom')\nsys.exit(1)\n"})
    command = f"{PY} check.py"
    wt = start(repo, "x1")
    commit(wt, {"notes.txt": "change\n"})
    task = task_of("x1")
    failing_before = Baseline("c", command, TestRun(command, 1, None))
    v = check(repo, task, wt, test_command=command, baseline=failing_before)
    assert v.ok
    assert "baseline failed too" in gate(v, "tests").message
    passing_before = Baseline("c", command, TestRun(command, 0, None))
    v = check(repo, task, wt, test_command=command, baseline=passing_before)
    assert v.error is not None
    assert v.error["type"] == "test_failure"
    assert "exit code 1" in v.error["message"]
    v = check(repo, task, wt, test_command=command, baseline=None)
    assert not v.ok
    assert "no baseline" in gate(v, "tests").message


def test_parse_output_formats() -> None:
    pytest_out = (
        "F.\n=========================== short test summary info ============================\n"
        "PASSED t/test_a.py::test_ok\nFAILED t/test_a.py::test_bad[x - y] - assert 1 == 2\n"
        "ERROR t/test_c.py - ImportError: nope\n"
        "==================== 1 failed, 1 passed, 1 error in 0.12s =====================\n"
    )
    run = parse_output("pytest", 1, pytest_out)
    assert (run.format, run.passed, run.failed) == ("pytest", 1, 2)
    assert "PASSED" not in run.output_tail
    assert run.failing == ("t/test_a.py::test_bad[x - y]", "t/test_c.py")
    assert run.ids_known
    old_unittest = (
        "FAIL: test_x (pkg.mod.Case)\n----\nTraceback...\n\n"
        "Ran 5 tests in 0.010s\n\nFAILED (failures=1, errors=1, skipped=1)\n"
    )
    run = parse_output("python -m unittest", 1, old_unittest)
    assert (run.format, run.passed, run.failed) == ("unittest", 2, 2)
    assert run.failing == ("pkg.mod.Case.test_x",)
    assert not run.ids_known
    run = parse_output("make check", 2, "all good? no\n" + "x" * 9000)
    assert run.format is None
    assert run.exit_code == 2
    assert len(run.output_tail) < 4100
    assert run.output_tail.startswith("[... ")
    assert parse_output("pytest", 5, "\nno tests ran in 0.01s\n").passed == 0


def test_compare_rules() -> None:
    base = TestRun("p", 1, "pytest", 2, 1, ("a", "b"), ("c",), True)
    same = TestRun("p", 1, "pytest", 2, 1, ("a", "b"), ("c",), True)
    assert compare(base, same, narrowed=False).ok
    fixed = TestRun("p", 0, "pytest", 4, 0, ("a", "b", "c", "d"), (), True)
    got = compare(base, fixed, narrowed=False)
    assert got.ok
    assert got.fixed == ("c",)
    assert got.added == ("d",)
    timeout = TestRun("p", None, None)
    assert not compare(base, timeout, narrowed=False).ok
    none_collected = TestRun("p", 5, "pytest", 0, 0)
    assert compare(base, none_collected, narrowed=True).ok
    assert not compare(base, none_collected, narrowed=False).ok
    unnamed = TestRun("p", 1, "pytest", 1, 2, ("a",), ("c",), True)  # one failure has no id
    got = compare(base, unnamed, narrowed=False)  # the baseline failed too: still a rise
    assert not got.ok
    assert "failures rose from 1 to 2" in got.message
    clean = TestRun("p", 0, "pytest", 3, 0, ("a", "b", "c"), (), True)
    assert not compare(clean, unnamed, narrowed=False).ok
    same_unnamed = TestRun("p", 1, "pytest", 2, 1, ("a", "b"), (), False)
    assert compare(base, same_unnamed, narrowed=False).ok  # as many failures as before
    text_only = TestRun("make", 1, None)
    assert compare(TestRun("make", 2, None), text_only, narrowed=False).ok  # exit codes only


# --- commit, uncommitted work, claims -----------------------------------------------------


def test_no_commit_and_claims_only_success(git_repo: Path) -> None:
    task = task_of("idle")
    wt = start(git_repo, "idle")
    v = check(git_repo, task, wt)
    assert v.error == {
        "type": "no_commit",
        "step": "commit",
        "message": gate(v, "commit").message,
    }
    assert v.commit == wt.base
    assert "verify" not in [g.name for g in v.gates]
    v = check(git_repo, task, wt, claims={"status": "done", "summary": "all implemented"})
    assert not v.ok
    assert v.error is not None
    assert v.error["type"] == "false_claim"
    assert "reported the task done" in v.error["message"]
    assert not gate(v, "claims").ok
    assert "nothing was committed" in (v.feedback or "")


def test_uncommitted_work_fails_without_a_commit_and_warns_with_one(git_repo: Path) -> None:
    task = task_of("dirty", files_create=("new.py",))
    wt = start(git_repo, "dirty")
    (wt.path / "new.py").write_text("x = 1\n")
    (wt.path / "__pycache__").mkdir()
    (wt.path / "__pycache__" / "new.cpython-311.pyc").write_bytes(b"\0")
    v = check(git_repo, task, wt, claims={"status": "done"})
    assert v.error is not None
    assert v.error["type"] == "uncommitted"
    assert v.uncommitted == ["new.py"]
    assert "new.py" in v.error["message"]
    assert "reported the task done" in v.error["message"]
    assert "git add -A" in (v.feedback or "")

    commit(wt, {"new.py": "x = 1\n"})
    (wt.path / "scratch.txt").write_text("notes\n")
    v = check(git_repo, task, wt)
    assert v.ok, v.feedback
    assert gate(v, "uncommitted").message.startswith("warning:")
    assert v.uncommitted == ["scratch.txt"]


def test_empty_diff(git_repo: Path) -> None:
    wt = start(git_repo, "empty")
    commit(wt, {})
    v = check(git_repo, task_of("empty"), wt)
    assert v.error is not None
    assert v.error["type"] == "empty_diff"


def test_claimed_done_with_failing_gate_keeps_the_gate_type(git_repo: Path) -> None:
    task = task_of("liar", verify=("exit 3",))
    wt = start(git_repo, "liar")
    commit(wt, {"a.txt": "a\n"})
    v = check(git_repo, task, wt, claims={"success": True})
    assert v.error is not None
    assert v.error["type"] == "verify_failed"
    assert v.error["message"].startswith("the agent reported the task done, but exit code 3")
    assert not gate(v, "claims").ok
    v = check(git_repo, task_of("liar"), wt, claims={"status": "done"})
    assert v.ok
    assert gate(v, "claims").ok


# --- artifacts ----------------------------------------------------------------------------


def test_missing_and_empty_artifacts_are_read_from_git(git_repo: Path) -> None:
    task = task_of("art", files_create=("a.txt", "docs/b.md"))
    wt = start(git_repo, "art")
    commit(wt, {"a.txt": ""})
    (wt.path / "docs").mkdir()
    (wt.path / "docs" / "b.md").write_text("only on disk\n")
    v = check(git_repo, task, wt)
    assert v.error is not None
    assert v.error["type"] == "missing_artifact"
    msg = gate(v, "artifacts").message
    assert "a.txt is empty" in msg
    assert "docs/b.md does not exist in the committed tree" in msg
    commit(wt, {"docs/b.md": "content\n"})
    v = check(git_repo, task, wt)
    assert v.error is not None
    assert v.error["type"] == "empty_artifact"
    commit(wt, {"a.txt": "now full\n"})
    assert check(git_repo, task, wt).ok
    outside = task_of("art", files_create=("../escape.txt", "docs"))
    v = check(git_repo, outside, wt)
    assert "not a path inside the repository" in gate(v, "artifacts").message
    assert "docs is a tree, not a file" in gate(v, "artifacts").message


def test_design_task_needs_its_artifacts_not_a_commit(git_repo: Path) -> None:
    task = task_of("design", kind="design", files_create=("docs/layout.md",))
    wt = start(git_repo, "design")
    v = check(git_repo, task, wt, claims={"status": "done"})
    assert v.error is not None
    assert v.error["type"] == "false_claim"
    assert v.error["step"] == "artifacts"
    (wt.path / "docs").mkdir()
    (wt.path / "docs" / "layout.md").write_text("# Layout\n")
    v = check(git_repo, task, wt)
    assert v.ok, v.feedback
    assert any("will not be merged" in w for w in v.warnings)
    commit(wt, {})
    commit(wt, {"docs/layout.md": "# Layout\n"})
    v = check(git_repo, task, wt)
    assert v.ok
    assert not v.warnings
    assert v.files_created == ["docs/layout.md"]


# --- verify commands ----------------------------------------------------------------------


def test_verify_commands_failure_and_timeout(git_repo: Path) -> None:
    wt = start(git_repo, "cmds")
    commit(wt, {"a.txt": "a\n"})
    task = task_of("cmds", verify=("test -f a.txt", "echo out; echo err >&2; exit 4"))
    v = check(git_repo, task, wt)
    first, second = [g for g in v.gates if g.name == "verify"]
    assert first.ok
    assert not second.ok
    assert second.evidence == {
        "command": "echo out; echo err >&2; exit 4",
        "exit_code": 4,
        "output_tail": "out\nerr",
    }
    assert v.error is not None
    assert v.error["type"] == "verify_failed"
    assert "-> exit code 4" in (v.feedback or "")
    assert "err" in (v.feedback or "")
    slow = task_of("cmds", verify=("sleep 5",))
    v = check(git_repo, slow, wt, timeout_s=0.3)
    ev = gate(v, "verify").evidence
    assert ev is not None
    assert ev["exit_code"] is None
    assert "timed out" in ev["output_tail"]
    assert "timed out" in gate(v, "verify").message


# --- deleted tests and skip markers -------------------------------------------------------


def test_deleted_and_skipped_tests_are_flagged(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "d", {k: v for k, v in FILES.items() if k != "pyproject.toml"})
    wt = start(repo, "del")
    commit(wt, {"tests/test_legacy.py": None})
    v = check(repo, task_of("del", files_modify=("tests/test_legacy.py",)), wt)
    assert v.error is not None
    assert v.error["type"] == "tests_deleted"
    assert "tests/test_legacy.py" in v.error["message"]
    assert v.files_deleted == ["tests/test_legacy.py"]

    wt = start(repo, "skip")
    text = FILES["tests/test_calc.py"].replace(
        "def test_add", "import pytest\n\n\n@pytest.mark.skip(reason='later')\ndef test_add"
    )
    commit(wt, {"tests/test_calc.py": text})
    v = check(repo, task_of("skip"), wt)
    assert v.error is not None
    assert v.error["type"] == "tests_skipped"
    assert "tests/test_calc.py:7: pytest.mark.skip" in v.error["message"]


def test_skip_markers_across_languages(git_repo: Path) -> None:
    base = git(git_repo, "rev-parse", "HEAD").strip()
    files = {
        "src/lib.rs": "#[test]\n#[ignore]\nfn slow() {}\n",
        "pkg/x_test.go": 'func TestX(t *testing.T) {\n\tt.Skip("flaky")\n}\n',
        "web/a.test.ts": "it.skip('renders', () => {})\nxit('old', () => {})\n",
        "tests/test_u.py": "import unittest\n\n@unittest.skip('no')\nclass T: pass\n",
        "README.md": "Use pytest.mark.skip sparingly.\n",
    }
    for rel, text in files.items():
        (git_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (git_repo / rel).write_text(text)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "markers")
    head = git(git_repo, "rev-parse", "HEAD").strip()
    found = {(m.path, m.line, m.kind) for m in diff.added_skip_markers(git_repo, base, head)}
    assert found == {
        ("src/lib.rs", 2, "#[ignore]"),
        ("pkg/x_test.go", 2, "t.Skip"),
        ("web/a.test.ts", 1, "it.skip"),
        ("web/a.test.ts", 2, "xit"),
        ("tests/test_u.py", 3, "unittest.skip"),
    }
    # moving a marker that was already there is not a new one
    (git_repo / "src/lib.rs").write_text("#[test]\n    #[ignore]\nfn slow() {}\n")
    git(git_repo, "commit", "-qam", "reindent")
    again = git(git_repo, "rev-parse", "HEAD").strip()
    assert diff.added_skip_markers(git_repo, head, again) == []


def test_test_paths() -> None:
    for p in ("tests/a.py", "pkg/test_x.py", "x_test.go", "a/b.spec.ts", "FooTest.java"):
        assert diff.is_test_path(p), p
    for p in ("src/testing_utils_x.txt.bak", "contest.py", "src/latest.py"):
        assert not diff.is_test_path(p), p
    renamed = [pgit.Change("R", "src/helpers.py", "tests/test_helpers.py")]
    assert diff.deleted_tests(renamed) == ["tests/test_helpers.py (renamed to src/helpers.py)"]
    moved = [pgit.Change("R", "tests/unit/test_h.py", "tests/test_h.py")]
    assert diff.deleted_tests(moved) == []


# --- dependencies -------------------------------------------------------------------------

PYPROJECT = """\
[project]
name = "demo"
description = \"\"\"A multi-line
description = with an equals sign\"\"\"
dependencies = [
    "Requests[socks]>=2.31",  # a comment
    'python-dateutil ; python_version < "3.12"',
]

[project.optional-dependencies]
dev = ["pytest>=8"]

[dependency-groups]
lint = ["ruff", {include-group = "dev"}]

[build-system]
requires = ["hatchling>=1.26"]

[tool.poetry.dependencies]
python = "^3.10"
Django = { version = "^5", extras = ["argon2", "bcrypt"] }

[tool.poetry.group.docs.dependencies]
mkdocs = "*"
"""

CARGO = """\
[package]
name = "demo"

[dependencies]
serde = { version = "1", features = ["derive"] }
rand_core = "0.6"
json = { package = "serde_json", version = "1" }

[dev-dependencies.proptest]
version = "1"

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[workspace.dependencies]
tokio = "1"
"""

PACKAGE_JSON = json.dumps(
    {
        "name": "web",
        "dependencies": {"react": "^18", "@types/node": "^20"},
        "devDependencies": {"vitest": "1"},
        "scripts": {"lodash": "not a dependency"},
    }
)

REQUIREMENTS = """\
# pinned
Flask==3.0.0
-r base.txt
--index-url https://example.invalid/simple
numpy>=1.26 ; python_version >= "3.10"
-e git+https://example.invalid/repo.git#egg=my_lib
pkg_two @ https://example.invalid/pkg_two.whl
"""


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (
            "pyproject.toml",
            PYPROJECT,
            {
                "requests", "python-dateutil", "pytest", "ruff", "hatchling", "python",
                "django", "mkdocs",
            },
        ),
        (
            "crates/core/Cargo.toml",
            CARGO,
            {"serde", "rand-core", "json", "serde-json", "proptest", "libc", "tokio"},
        ),
        ("package.json", PACKAGE_JSON, {"react", "@types/node", "vitest"}),
        ("requirements-dev.txt", REQUIREMENTS, {"flask", "numpy", "my-lib", "pkg-two"}),
        ("requirements/base.in", "attrs\n", {"attrs"}),
        ("go.mod", "module x\n\ngo 1.22\n\nrequire github.com/pkg/errors v0.9.1\n"
         "require (\n\tgolang.org/x/sync v0.7.0 // indirect\n)\n",
         {"github-com/pkg/errors", "golang-org/x/sync"}),
        ("Gemfile", "source 'https://rubygems.org'\ngem \"rails\", \"~> 7\"\n  gem 'pg'\n",
         {"rails", "pg"}),
        ("composer.json",
         '{"require": {"monolog/monolog": "^3"}, "require-dev": {"phpunit/phpunit": "*"}}',
         {"monolog/monolog", "phpunit/phpunit"}),
        ("setup.cfg", "[options]\ninstall_requires =\n    click>=8\n    rich\n", {"click", "rich"}),
        ("Pipfile", "[packages]\nhttpx = \"*\"\n\n[dev-packages]\nblack = \"*\"\n",
         {"httpx", "black"}),
    ],
)  # fmt: skip
def test_manifest_names(path: str, text: str, expected: set[str]) -> None:
    assert deps.manifest_names(path, text) == expected


def test_dependency_names_and_unreadable_manifests() -> None:
    cases = {
        "python-dateutil>=2.9": "python-dateutil",
        "requests[socks]==2": "requests",
        "@types/node@^20": "@types/node",
        "lodash@4": "lodash",
        "github.com/pkg/errors@v0.9.1": "github.com/pkg/errors",
        "foo (>=1.0)": "foo",
        " serde ": "serde",
    }
    assert {spec: deps.dependency_name(spec) for spec in cases} == cases
    assert deps.normalize("Zope.Interface__x") == "zope-interface-x"
    assert deps.reader_for("node_modules/x/package.json") is None
    assert deps.reader_for("docs/notes.txt") is None
    with pytest.raises(ValueError, match=r"package\.json"):
        deps.manifest_names("package.json", "{not json")


def test_dependencies_gate_reads_the_committed_manifests(git_repo: Path) -> None:
    task = task_of("deps", add_dependencies=("react@18", "serde", "left-pad"))
    wt = start(git_repo, "deps")
    commit(
        wt,
        {
            "web/package.json": PACKAGE_JSON,
            "Cargo.toml": CARGO,
            "broken/package.json": "{",
            "node_modules/left-pad/package.json": '{"dependencies": {"left-pad": "1"}}',
        },
    )
    (wt.path / "requirements.txt").write_text("left-pad\n")  # on disk only: does not count
    v = check(git_repo, task, wt)
    assert v.error is not None
    assert v.error["type"] == "dependency_missing"
    msg = gate(v, "dependencies").message
    assert "left-pad" in msg
    assert "react" not in msg.split("(read")[0]
    assert "broken/package.json" in msg
    commit(wt, {"requirements.txt": "left-pad==1.3\n"})
    v = check(git_repo, task, wt)
    assert v.ok, v.feedback
    assert "react@18 in web/package.json" in gate(v, "dependencies").message


def test_a_url_requirement_with_a_fragment_hides_no_other_dependency(git_repo: Path) -> None:
    """A ``#`` inside a TOML string is not a comment (the old line reader cut there)."""
    task = task_of("urls", add_dependencies=("requests", "mylib", "attrs"))
    wt = start(git_repo, "urls")
    commit(
        wt,
        {
            "pyproject.toml": (
                '[project]\nname = "demo"\nversion = "0"\ndependencies = [\n'
                '    "mylib @ git+https://example.invalid/mylib.git#egg=mylib",\n'
                '    "requests>=2.31",\n'
                "]\n\n[project.optional-dependencies]\n"
                'dev = ["attrs # not a comment", "pytest"]  # a real comment\n'
            )
        },
    )
    v = check(git_repo, task, wt)
    assert v.ok, gate(v, "dependencies").message
    assert "requests in pyproject.toml" in gate(v, "dependencies").message
    bad = {"pyproject.toml": '[project]\ndependencies = ["x"\n'}
    commit(wt, bad)
    v = check(git_repo, task, wt)
    assert "unreadable: pyproject.toml" in gate(v, "dependencies").message
