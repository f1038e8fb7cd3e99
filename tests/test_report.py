"""`planfleet report` on real runs: the shell runner, real git, the engine as a process.

The numbers are checked against a run whose event times the test then sets itself (the
report reads nothing else), the SVG is parsed as XML.
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine_support import cli, plan_repo, state_of
from planfleet.cli import savedflags
from planfleet.state.store import StateStore


def plan(marks: Path) -> str:
    mark = shlex.quote(str(marks / "a-tried"))
    # a's first attempt leaves out the file it must create: the artifacts gate fails it
    first = f"if [ -e {mark} ]; then echo a > a.txt; else touch {mark}; echo x > x.txt; fi"
    return f"""\
        planfleet: 1
        name: p
        phases:
          - id: one
            tasks:
              - id: a
                title: a
                files: {{create: [a.txt]}}
                commands: [{json.dumps(first)}]
              - id: b
                title: b
                depends_on: [a]
                files: {{create: [b.txt]}}
                commands: ["echo b > b.txt"]
              - id: c
                title: c
                files: {{create: [c.txt]}}
                commands: ["echo c > c.txt"]
    """


# When each event happened, in seconds after the start: (event, task, nth time) -> second
TIMES = {
    ("run_start", None, 1): 0,
    ("dispatched", "a", 1): 0,
    ("failed", "a", 1): 10,
    ("dispatched", "a", 2): 10,
    ("verified", "a", 1): 30,
    ("merged", "a", 1): 32,
    ("dispatched", "c", 1): 0,
    ("verified", "c", 1): 40,
    ("merged", "c", 1): 41,
    ("dispatched", "b", 1): 32,
    ("verified", "b", 1): 52,
    ("merged", "b", 1): 53,
    ("claimed", "one:gate", 1): 53,
    ("verified", "one:gate", 1): 55,
    ("run_end", None, 1): 60,
}
START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(tmp_path, plan(marks))
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--max-parallel", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    return repo


def set_times(repo: Path) -> None:
    """Give the run's events the times in TIMES (every other event: the moment before)."""
    with StateStore.for_plan(repo, "p").transaction() as state:
        seen: dict[tuple[str, str | None], int] = {}
        last = 0.0
        for e in state["events"]:
            key = (e["event"], e["task"])
            seen[key] = seen.get(key, 0) + 1
            last = TIMES.get((*key, seen[key]), last)
            stamp = START + timedelta(seconds=last)
            e["ts"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert seen[("dispatched", "a")] == 2


def test_the_numbers_match_a_run_whose_times_are_known(ran: Path) -> None:
    set_times(ran)
    data = json.loads(cli(ran, "report", "p", "--json").stdout)["data"]
    rows = {r["task"]: r for r in data["tasks"]}
    assert [a["outcome"] for a in rows["a"]["attempts"]] == ["failed", "verified"]
    assert "missing_artifact" in rows["a"]["attempts"][0]["reason"]
    assert [rows[t]["time_s"] for t in ("a", "b", "c", "one:gate")] == [30, 20, 40, 2]
    assert rows["a"]["merge_s"] == 2
    assert rows["c"]["merge_s"] == 1
    assert data["makespan_s"] == 60
    assert data["critical_path_s"] == 52  # a (30) -> b (20) -> the phase gate (2)
    assert data["work_s"] == 92
    assert data["parallelism"] == 2  # from the run's own --max-parallel
    assert data["lower_bound_s"] == 52  # max(52, 92 / 2)
    assert data["ratio"] == round(60 / 52, 3)
    assert data["retry_loss_s"] == 10
    assert data["verified_tasks"] == 3
    assert data["cost_per_verified_usd"] == 0
    # a's failed attempt failed only its artifacts gate
    assert data["gates"]["artifacts"] == {"ran": 4, "passed": 3, "rate": 0.75}
    assert data["gates"]["commit"] == {"ran": 4, "passed": 4, "rate": 1.0}
    # what the agent and the gates took is measured per attempt
    assert all(r["agent_s"] is not None and r["gates_s"] is not None for r in data["tasks"][:3])
    text = cli(ran, "report", "p").stdout
    assert "ratio 1.15x" in text
    assert "a attempt 1: missing_artifact" in text
    # cloud slots (--cloud-parallel) worked beside the local ones: the bound counts them
    saved = savedflags.path(ran, "p")
    options = json.loads(saved.read_text())
    options["cloud_parallel"] = 2
    saved.write_text(json.dumps(options))
    data = json.loads(cli(ran, "report", "p", "--json").stdout)["data"]
    assert data["parallelism"] == 4
    assert data["lower_bound_s"] == 52  # max(52, 92 / 4)


def test_the_svg_has_one_row_per_task_and_a_bar_per_attempt(ran: Path, tmp_path: Path) -> None:
    target = tmp_path / "run.svg"
    res = cli(ran, "report", "p", "--svg", str(target))
    assert res.returncode == 0, res.stderr
    root = ET.parse(target).getroot()  # noqa: S314 (a file this test made)
    ns = {"s": "http://www.w3.org/2000/svg"}
    rows = root.findall("s:g[@class='task']", ns)
    assert [g.get("data-task") for g in rows] == list(state_of(ran)["order"])
    bars = {g.get("data-task"): g.findall("s:rect[@class='attempt']", ns) for g in rows}
    assert [len(bars[t]) for t in ("a", "b", "c")] == [2, 1, 1]
    assert bars["a"][0].get("fill") == "#d64541"  # failed
    assert bars["a"][1].get("fill") == "#2e9d4f"  # verified
    assert len(rows[-1].findall("s:polygon[@class='gate']", ns)) == 1


def test_bad_input(ran: Path, tmp_path: Path) -> None:
    res = cli(ran, "report", "nope", "--json")
    assert res.returncode == 3
    assert json.loads(res.stdout)["errors"][0]["reason"] == "no_state"
    res = cli(ran, "report", "../x")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    res = cli(ran, "report", "p", "--svg", str(tmp_path / "no" / "such" / "x.svg"))
    assert res.returncode == 2
    assert "--svg" in res.stderr
