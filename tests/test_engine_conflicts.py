"""Conflicts seen while tasks still run: real branches, merge-tree, the engine as a process.

The shell runner's commands commit, then wait for a file the test creates: the test holds
each task in flight until it has seen what the engine predicted.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import git, make_repo
from engine_support import cli, plan_repo, state_of, wait_until
from planfleet.engine import conflicts
from planfleet.repo import worktrees

COMMIT = "git -c user.name=t -c user.email=t@example.com commit -qam work"
LINES = "".join(f"{n}\n" for n in range(1, 11))


def hold(go: Path) -> str:
    return f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done"


def plan_text(a: str, b: str, max_attempts: int = 3, a_creates: str = "") -> str:
    return f"""\
        planfleet: 1
        name: p
        defaults: {{max_attempts: {max_attempts}}}
        phases:
          - id: one
            tasks:
              - id: a
                title: a
                files: {{modify: [shared.txt], create: [{a_creates}]}}
                commands: [{json.dumps(a)}]
              - id: b
                title: b
                files: {{create: [b.txt]}}
                commands: [{json.dumps(b)}]
    """


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []
    holds: list[Path] = []

    def start(repo: Path, *flags: str, release: tuple[Path, ...] = ()) -> subprocess.Popen[bytes]:
        holds.extend(release)
        argv = [sys.executable, "-m", "planfleet", "-C", str(repo), "run", "plans/p.plan.yaml"]
        proc = subprocess.Popen(
            [*argv, "--runner", "shell", "--json", "--max-parallel", "2", *flags],
            env={k: v for k, v in os.environ.items() if k != "PLANFLEET_DETACHED"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for go in holds:  # commands still waiting end, whatever the test did
        go.touch()
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def events(repo: Path, kind: str) -> list[dict[str, Any]]:
    try:
        return [e for e in state_of(repo)["events"] if e["event"] == kind]
    except (FileNotFoundError, ValueError):
        return []


def test_a_conflict_is_predicted_while_both_run_and_the_second_recovers(
    tmp_path: Path, engine: Any
) -> None:
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    a = f"printf 'A\\n' > shared.txt && {COMMIT} && {hold(go_a)}"
    b = f"printf 'B\\n' > shared.txt && echo b > b.txt && git add -A && {COMMIT} && {hold(go_b)}"
    repo = plan_repo(tmp_path, plan_text(a, b), {"shared.txt": "base\n"})
    proc = engine(repo, release=(go_a, go_b))
    wait_until(lambda: events(repo, "conflict_predicted"), "a predicted conflict")
    (first,) = events(repo, "conflict_predicted")
    assert (first["task"], first["detail"]) == ("a", "with b: shared.txt")
    status = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
    assert [(p["tasks"], p["files"]) for p in status["conflicts"]["predicted"]] == [
        (["a", "b"], ["shared.txt"])
    ]
    # b changes a file it does not declare, which a changes too
    assert [(o["tasks"], o["files"]) for o in status["conflicts"]["overlaps"]] == [
        (["a", "b"], ["shared.txt"])
    ]
    text = cli(repo, "status", "p").stdout
    assert "conflict predicted: a with b: shared.txt" in text
    assert "undeclared overlap: a and b both change shared.txt" in text
    assert state_of(repo)["tasks"]["a"]["status"] == "in_progress"  # nothing merged yet

    go_a.touch()  # a is merged first: b now conflicts with the integration branch
    wait_until(
        lambda: any(e["task"] == "b" for e in events(repo, "conflict_predicted")),
        "b's conflict with the integration branch",
    )
    later = [e for e in events(repo, "conflict_predicted") if e["task"] == "b"]
    assert later[0]["detail"] == "with the integration branch: shared.txt"
    go_b.touch()
    assert proc.wait(timeout=120) == 0
    state = state_of(repo)
    b_rec = state["tasks"]["b"]
    assert b_rec["status"] == "verified"
    assert b_rec["merged_at"]
    assert b_rec["attempts"] == 2
    failed = [e for e in state["events"] if e["event"] == "failed" and e["task"] == "b"]
    assert len(failed) == 1
    assert failed[0]["detail"].startswith("merge_conflict at conflict: the branch conflicts")
    # attempt 1 was stopped before its gates: no verification record for it
    assert not (repo / ".planfleet/runs/p/verify/b.1.json").exists()
    assert not any(e["event"] == "merge_failed" for e in state["events"])
    integ = worktrees.integration_branch("p")
    assert git(repo, "show", f"{integ}:shared.txt").strip() == "B"
    assert git(repo, "show", f"{integ}:b.txt").strip() == "b"
    # the first attempt's work is kept on a rescue branch
    assert "rescue" in git(repo, "branch", "--list", "*rescue*")


def test_the_feedback_names_the_conflicting_hunks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"f.txt": "one\ntwo\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    integ = worktrees.integration_branch("p")
    git(repo, "branch", integ)
    git(repo, "checkout", "-q", "-b", "mine")
    (repo / "f.txt").write_text("one\nmine\n")
    git(repo, "commit", "-qam", "mine")
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", integ)
    (repo / "f.txt").write_text("one\ntheirs\n")
    git(repo, "commit", "-qam", "theirs")
    found = conflicts.with_integration(repo, "p", head, base)
    assert found is not None
    message, feedback = found
    assert message.startswith("the branch conflicts with the integration branch")
    assert message.endswith(": f.txt")
    assert "--- f.txt" in feedback
    assert "<<<<<<<" in feedback
    assert "mine" in feedback
    assert "theirs" in feedback
    # a tip that is still the base, or one that merges cleanly, is no conflict
    assert (
        conflicts.with_integration(repo, "p", head, git(repo, "rev-parse", integ).strip()) is None
    )


def test_serialize_undeclared_keeps_overlapping_tasks_apart_on_later_attempts(
    tmp_path: Path, engine: Any
) -> None:
    go, tried = tmp_path / "go", tmp_path / "tried"
    tried.mkdir()

    def once(name: str, line: str) -> str:
        mark = shlex.quote(str(tried / name))
        # attempt 1 leaves out the file its task creates: the artifacts gate fails it
        return (
            f"sed -i 's/^{line}$/{name}/' shared.txt && "
            f"if [ -e {mark} ]; then echo {name} > {name}.txt; else touch {mark}; fi && "
            f"git add -A && {COMMIT} && {hold(go)}"
        )

    plan = plan_text(once("a", "1"), once("b", "10"), a_creates="a.txt")
    repo = plan_repo(tmp_path, plan, {"shared.txt": LINES})
    proc = engine(repo, "--serialize-undeclared", release=(go,))
    wait_until(lambda: events(repo, "undeclared_overlap"), "an undeclared overlap")
    assert not events(repo, "conflict_predicted")  # different lines: they merge cleanly
    go.touch()
    assert proc.wait(timeout=120) == 0
    state = state_of(repo)
    assert {t: r["attempts"] for t, r in state["tasks"].items() if r["kind"] == "task"} == {
        "a": 2,
        "b": 2,
    }
    # attempt 2 of the one must not start before attempt 2 of the other has ended
    timeline = [
        (e["event"], e["task"])
        for e in state["events"]
        if e["task"] in ("a", "b")
        and (
            (e["event"] == "dispatched" and e["detail"] == "attempt 2") or e["event"] == "verified"
        )
    ]
    first = timeline[0][1]
    second = "b" if first == "a" else "a"
    assert timeline.index(("verified", first)) < timeline.index(("dispatched", second))
    assert git(repo, "show", f"{worktrees.integration_branch('p')}:shared.txt").split()[0] == "a"
