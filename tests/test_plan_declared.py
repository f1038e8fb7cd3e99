"""A task's declared files: one normalized set, matched the same way by every user of it."""

from __future__ import annotations

import pytest

from planfleet.engine.scheduler import Scheduler
from planfleet.plan import graph, model
from planfleet.plan.declared import declared_set, matches, normalize, overlaps, undeclared
from planfleet.state.create import init_from_plan

SRC = model.Source("plan.yaml", 1)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("src/a.py", "src/a.py"),
        ("./src/a.py", "src/a.py"),
        ("./.github/ci.yml", ".github/ci.yml"),  # a leading dot of a name stays
        ("src//pkg/", "src/pkg/"),
        ("src\\win.py", "src/win.py"),
        ("src/a.py:12-40", "src/a.py"),
        ("  docs/x.md ", "docs/x.md"),
        ("/etc/passwd", None),
        ("../outside.py", None),
        ("", None),
    ],
)
def test_entries_are_normalized(entry: str, expected: str | None) -> None:
    assert normalize(entry) == expected


def test_paths_folders_and_globs_match() -> None:
    entries = ("src/a.py", "docs/", "**/__init__.py", "tests/test_*.py")
    for path in ("src/a.py", "docs/guide/x.md", "__init__.py", "pkg/sub/__init__.py"):
        assert matches(path, entries), path
    assert matches("tests/test_a.py", entries)
    for path in ("src/ab.py", "docsx/y.md", "src/b.py", "other/test_a.py"):
        assert not matches(path, entries), path


def test_undeclared_leaves_out_declared_and_shared_files() -> None:
    changed = ["a.py", "b.py", "CHANGELOG.md", "pkg/__init__.py", "z/q.txt"]
    got = undeclared(changed, {"a.py", "z/"}, ("CHANGELOG.md", "**/__init__.py"))
    assert got == ["b.py"]


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        ({"x.py"}, {"x.py"}, True),
        ({"src/"}, {"src/pkg/a.py"}, True),
        ({"src/pkg/"}, {"src/"}, True),
        ({"src/*.py"}, {"src/a.py"}, True),
        ({"src/**/*.py"}, {"src/pkg/"}, True),
        ({"src/**/*.py"}, {"lib/"}, False),
        ({"src/a.py"}, {"src/b.py"}, False),
        ({"docs/"}, {"docsx/a.md"}, False),
    ],
)
def test_overlap_of_two_declared_sets(a: set[str], b: set[str], clash: bool) -> None:
    assert overlaps(frozenset(a), frozenset(b)) is clash
    assert overlaps(frozenset(b), frozenset(a)) is clash


def test_the_scheduler_keeps_a_folder_and_a_file_in_it_apart() -> None:
    def task(tid: str, *files: str) -> model.Task:
        return model.Task(id=tid, title=tid, phase="p", source=SRC, files_modify=files)

    tasks = (task("whole", "./src/pkg/"), task("part", "src/pkg/a.py"), task("else", "lib/b.py"))
    phase = model.Phase(id="p", title="p", source=SRC, task_ids=tuple(t.id for t in tasks))
    plan = model.Plan("s", "s", "planfleet", "plan.yaml", (phase,), tasks)
    assert tasks[0].writes == declared_set(["src/pkg/"])  # the one declared set
    state = init_from_plan(plan)
    sched = Scheduler.for_plan(plan, graph.build(plan), max_parallel=3)
    assert sched.pick(state, ()) == ["whole", "else"]
    assert sched.pick(state, ("whole",)) == ["else"]
    assert sched.pick(state, ("else",)) == ["whole"]
