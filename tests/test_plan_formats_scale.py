"""Reading and validating big plans is linear: the steps that were quadratic, counted (not
timed, so a loaded machine cannot make them flaky), and the benchmark script itself."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, make_repo
from planfleet.plan import formats, graph
from planfleet.plan.model import Phase, Plan, Source, Task


class _CountingTuple(tuple):  # type: ignore[type-arg]
    """A tuple that counts how often it is walked through."""

    walks = 0

    def __iter__(self) -> Any:
        type(self).walks += 1
        return super().__iter__()


def _plan(phases: int, per_phase: int, *, deps: int = 0) -> Plan:
    src = Source("plan.yaml", 1)
    tasks = [
        Task(f"t{p}-{i}", "t", f"p{p}", src, depends_on=tuple(f"t{p}-{d}x" for d in range(deps)))
        for p in range(phases)
        for i in range(per_phase)
    ]
    return Plan(
        name="big",
        title="big",
        format="planfleet",
        path="plan.yaml",
        phases=tuple(
            Phase(f"p{p}", "p", src, task_ids=tuple(f"t{p}-{i}" for i in range(per_phase)))
            for p in range(phases)
        ),
        tasks=_CountingTuple(tasks),
    )


def test_looking_up_tasks_and_phases_walks_the_tasks_once() -> None:
    plan = _plan(300, 5)
    _CountingTuple.walks = 0
    for phase in plan.phases:
        assert [t.phase for t in plan.tasks_of(phase.id)] == [phase.id] * 5
        assert plan.phase(phase.id) is phase
    for tid in ("t0-0", "t150-3", "t299-4"):
        assert plan.task(tid).id == tid
    assert _CountingTuple.walks == 1  # was once per phase and per lookup
    assert plan.tasks_of("no-such-phase") == ()
    with pytest.raises(KeyError):
        plan.task("no-such-task")


def test_unknown_dependencies_do_not_each_search_every_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = difflib.get_close_matches

    def counted(word: str, possibilities: Any, *args: Any, **kwargs: Any) -> list[str]:
        calls.append(word)
        return real(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    g = graph.build(_plan(50, 10, deps=2))
    unknown = [d for d in g.diagnostics if "unknown id" in d.message]
    assert len(unknown) == 1000
    assert len(calls) == graph.MAX_SUGGESTIONS  # was one search of every id per unknown
    assert unknown[0].hint == "did you mean 't0-0'?"
    assert unknown[-1].hint == "check the id against the plan"


def _xml_with_state(repo: Path, entries: int, note: int) -> Path:
    tasks = repo / "tasks" / "big"
    layer = tasks / "1-one"
    layer.mkdir(parents=True)
    (layer / "T-001-one.xml").write_text('<task id="T-001"><title>one</title></task>\n')
    state = {f"X-{i:05d}": {"status": "completed", "notes": "n" * note} for i in range(entries)}
    (tasks / "execute-state.json").write_text(json.dumps({"tasks": state}, indent=2))
    return tasks


def _cpu_to_read(path: Path, repo: Path) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        plan = formats.load_plan(path, repo=repo)
        best = min(best, time.process_time() - start)
    assert len([d for d in plan.diagnostics if "has no task file" in d.message]) > 0
    return best


def test_an_execute_state_with_thousands_of_unknown_tasks_is_read_in_one_pass(
    tmp_path: Path,
) -> None:
    # The same 3 MB either as 3,000 entries or as 300 ten times longer ones: finding each
    # entry's line by searching the whole text made the first case about 10 x slower.
    many = make_repo(tmp_path / "many")
    few = make_repo(tmp_path / "few")
    t_many = _cpu_to_read(_xml_with_state(many, 3000, 1000), many)
    t_few = _cpu_to_read(_xml_with_state(few, 300, 10_000), few)
    assert t_many < 3 * t_few + 0.05, (t_many, t_few)


def test_a_warning_for_an_unknown_task_names_its_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    path = _xml_with_state(repo, 3, 5)
    plan = formats.load_plan(path, repo=repo)
    lines = sorted(d.line for d in plan.diagnostics if "has no task file" in d.message)
    text = (path / "execute-state.json").read_text().splitlines()
    assert [text[n - 1].strip()[:9] for n in lines] == ['"X-00000"', '"X-00001"', '"X-00002"']


def test_the_benchmark_prints_every_format_and_its_growth() -> None:
    res = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_formats.py"),
            "--sizes",
            "20,40",
            "--ops",
            "validate",
            "--max-ratio",
            "1000",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout.strip().splitlines()[-1])["rows"]
    # every reader, plus the bench's own rows: native plans and one big GSD PLAN.md
    expected = set(formats.reader_names()) | {"planfleet", "gsd-one-file"}
    assert {r["format"] for r in rows} == expected
    assert all(r["ratio"] > 0 for r in rows)
    assert "20 tasks" in res.stdout
    assert "CPU seconds per 1,000 tasks" in res.stdout
