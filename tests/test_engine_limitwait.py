"""--wait-on-limit: a usage limit with a reset time is waited out, then the run goes on.

The fake `claude` hits a usage limit on a task's first try (the CLI's real
"Claude AI usage limit reached|<epoch>" words, the epoch a few seconds on), then does the
task. The margin after the reset and the backoff are shortened through the environment.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from engine_support import (
    FAKE_CLAUDE,
    assert_truthful_end,
    cli,
    engine_process,
    plan_repo,
    processes_under,
    state_of,
    wait_until,
)
from planfleet.engine import limitwait
from planfleet.state.records import parse_iso

UTC = _dt.timezone.utc
PLAN = """\
planfleet: 1
name: p
phases:
  - id: one
    tasks:
      - id: limited
        title: the one that hits the limit first
        files: {create: [out/limited.txt]}
      - id: later
        title: needs the limited one
        depends_on: [limited]
        files: {create: [out/later.txt]}
"""


def _setup(tmp: Path, **limited: object) -> tuple[Path, dict[str, str]]:
    repo = plan_repo(tmp, PLAN)
    spec = {"files": {"out/limited.txt": "limited\n"}, "limit_first": str(tmp / "hit"), **limited}
    tasks = {"limited": spec, "later": {"files": {"out/later.txt": "later\n"}}}
    (tmp / "scenario.json").write_text(json.dumps({"tasks": tasks}))
    env = {
        "PLANFLEET_CLAUDE": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_SCENARIO": str(tmp / "scenario.json"),
        limitwait.MARGIN_ENV: "1",
        limitwait.BACKOFF_ENV: "2",
    }
    return repo, env


def _events(st: dict, name: str, task: str | None = None) -> list[dict]:
    return [e for e in st["events"] if e["event"] == name and (task is None or e["task"] == task)]


def test_a_limit_with_a_reset_time_is_waited_out_and_the_run_completes(tmp_path: Path) -> None:
    repo, env = _setup(tmp_path, resets_in_s=3)
    args = ["run", "plans/p.plan.yaml", "--runner", "claude", "--yes", "--wait-on-limit"]
    res = cli(repo, *args, env=env, timeout=180)
    st = state_of(repo)
    assert res.returncode == 0, res.stdout + res.stderr
    assert st["status"] == "completed"
    assert st["tasks"]["limited"]["attempts"] == 1  # the limited try was not counted
    assert "limit_wait" not in st
    waits = _events(st, "limit_wait", "limited")
    assert len(waits) == 1
    assert "usage_limit" in waits[0]["detail"]
    assert _events(st, "limit_wait_end")
    # Dispatched again only once the reset (plus the margin) had come.
    resume = parse_iso(waits[0]["detail"].rsplit("resume at ", 1)[1])
    again = _events(st, "dispatched", "limited")
    assert len(again) == 2
    assert parse_iso(again[1]["ts"]) >= resume - _dt.timedelta(seconds=1)
    assert "[limit] waiting for the usage limit to reset at" in res.stdout + res.stderr
    assert_truthful_end(repo)


def test_without_a_reset_time_the_engine_backs_off_and_goes_on(tmp_path: Path) -> None:
    repo, env = _setup(tmp_path, resets="when the stars are right")
    args = ["run", "plans/p.plan.yaml", "--runner", "claude", "--yes", "--wait-on-limit"]
    res = cli(repo, *args, env=env, timeout=180)
    st = state_of(repo)
    assert st["status"] == "completed", res.stdout + res.stderr
    (wait,) = _events(st, "limit_wait", "limited")
    assert "reset unknown" in wait["detail"]
    assert st["tasks"]["limited"]["attempts"] == 1


def test_without_the_flag_a_limit_pauses_the_run(tmp_path: Path) -> None:
    repo, env = _setup(tmp_path, resets_in_s=3)
    res = cli(repo, "run", "plans/p.plan.yaml", "--runner", "claude", "--yes", env=env)
    st = state_of(repo)
    assert st["status"] == "paused", res.stdout + res.stderr
    assert not _events(st, "limit_wait")
    assert st["tasks"]["limited"]["attempts"] == 0


WAIT_RUN = ("run", "plans/p.plan.yaml", "--runner", "claude", "--yes", "--wait-on-limit")


def _waiting(repo: Path) -> bool:
    state_file = repo / ".planfleet" / "state" / "p.json"
    return state_file.exists() and "limit_wait" in state_of(repo)


def test_stop_ends_a_long_wait_at_once_and_status_shows_it(tmp_path: Path) -> None:
    repo, env = _setup(tmp_path, resets_in_s=3 * 3600)
    with engine_process(repo, env, WAIT_RUN) as engine:
        wait_until(lambda: _waiting(repo), "the engine to wait", 90)
        text = cli(repo, "status", "p").stdout
        assert "waiting for the usage limit to reset at" in text
        assert "(in 3 h" in text or "(in 2 h 59 min)" in text
        data = json.loads(cli(repo, "status", "p", "--json").stdout)["data"]
        wait = data["limit_wait"]
        assert wait["task"] == "limited"
        assert wait["kind"] == "usage_limit"
        reset = parse_iso(wait["reset_at"])
        assert 2.9 * 3600 < (reset - _dt.datetime.now(UTC)).total_seconds() < 3.1 * 3600
        stop = cli(repo, "stop", "p", "--json")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        engine.wait(timeout=30)
    st = state_of(repo)
    assert st["status"] == "paused"
    assert "limit_wait" not in st
    assert st["tasks"]["limited"]["status"] == "pending"
    assert st["tasks"]["limited"]["attempts"] == 0
    assert processes_under(repo) == []
    assert_truthful_end(repo)


def test_an_engine_killed_while_waiting_leaves_a_wait_the_next_one_goes_on_with(
    tmp_path: Path,
) -> None:
    repo, env = _setup(tmp_path, resets_in_s=3 * 3600)
    with engine_process(repo, env, WAIT_RUN) as first:
        wait_until(lambda: _waiting(repo), "a wait", 90)
        first.kill()  # SIGKILL: nothing is tidied
        first.wait(timeout=10)
    left = state_of(repo)["limit_wait"]
    # The saved flags say --wait-on-limit: resume goes on with the same wait.
    with engine_process(repo, env, ("resume", "p", "--yes")) as second:

        def went_on() -> bool:
            waits = _events(state_of(repo), "limit_wait")
            return any(e["detail"].startswith("continued:") for e in waits)

        wait_until(went_on, "the second engine to adopt the wait", 90)
        st = state_of(repo)
        assert st["limit_wait"]["resume_at"] == left["resume_at"]
        assert st["tasks"]["limited"]["attempts"] == 0
        assert len(_events(st, "dispatched", "limited")) == 1  # nothing started meanwhile
        assert cli(repo, "stop", "p").returncode == 0
        second.wait(timeout=30)
    assert state_of(repo)["status"] == "paused"


# -- the pure parts ------------------------------------------------------------------------


NOW = _dt.datetime(2026, 12, 4, 13, 30, tzinfo=UTC)


def test_reset_times_in_the_forms_the_cli_gives() -> None:
    assert limitwait.parse_reset("2026-12-04T15:00:00+00:00", NOW) == NOW.replace(hour=15, minute=0)
    assert limitwait.parse_reset("3pm (UTC)", NOW) == NOW.replace(hour=15, minute=0)
    assert limitwait.parse_reset("at 3:45pm (UTC)", NOW) == NOW.replace(hour=15, minute=45)
    # A clock time already past today is tomorrow's.
    assert limitwait.parse_reset("11am (UTC)", NOW) == _dt.datetime(2026, 12, 5, 11, tzinfo=UTC)
    berlin = limitwait.parse_reset("3pm (Europe/Berlin)", NOW)
    assert berlin == NOW.replace(hour=14, minute=0)  # CET is UTC+1 in December
    for unknown in (None, "", "soon", "3pm (Mars/Olympus)", "25pm", "2026-12-04T12:00:00+00:00"):
        assert limitwait.parse_reset(unknown, NOW) is None, unknown


def test_backoff_doubles_up_to_thirty_minutes() -> None:
    waits = [limitwait.backoff_s(n) for n in range(1, 10)]
    assert waits[:4] == [60.0, 120.0, 240.0, 480.0]
    assert max(waits) == 1800.0
    assert waits[-1] == 1800.0
    assert limitwait.backoff_s(10_000) == 1800.0


def test_the_waiting_line_says_when_and_how_long() -> None:
    reset = NOW + _dt.timedelta(hours=1, minutes=12)
    wait = {
        "kind": "usage_limit",
        "reset_at": reset.isoformat(),
        "resume_at": (reset + _dt.timedelta(minutes=1)).isoformat(),
    }
    clock = reset.astimezone().strftime("%H:%M")
    line = limitwait.waiting_line(wait, NOW)
    assert line == f"waiting for the usage limit to reset at {clock} (in 1 h 12 min)"
    unknown = {"kind": "rate_limit", "reset_at": None, "resume_at": wait["resume_at"]}
    assert "no reset time given" in limitwait.waiting_line(unknown, NOW)


def test_a_second_limit_while_waiting_keeps_the_later_resume(tmp_path: Path) -> None:
    waiter = limitwait.LimitWaiter(env={limitwait.MARGIN_ENV: "0"})
    state: dict = {"events": []}
    late = (_dt.datetime.now(UTC) + _dt.timedelta(hours=2)).isoformat()
    early = (_dt.datetime.now(UTC) + _dt.timedelta(hours=1)).isoformat()
    waiter.begin(state, "a", "usage_limit", late)
    waiter.begin(state, "b", "usage_limit", early)
    assert state["limit_wait"]["task"] == "a"
    assert waiter.holding(state)
    waiter.end(state, "stopped")
    assert "limit_wait" not in state
    assert not waiter.active


def test_limits_that_keep_coming_back_pause_the_run_in_the_end() -> None:
    waiter = limitwait.LimitWaiter(env={limitwait.BACKOFF_ENV: "0"})
    state: dict = {"events": []}
    for _ in range(limitwait.MAX_WAITS):
        assert waiter.begin(state, "a", "rate_limit", None)
        assert not waiter.holding(state)  # a backoff of 0 s is over at once
    assert not waiter.begin(state, "a", "rate_limit", None)
    assert "limit_wait" not in state
    assert "in a row" in state["events"][-1]["detail"]
    waiter.attempt_ended()  # an attempt that ended otherwise starts the count again
    assert waiter.begin(state, "a", "rate_limit", None)
