"""What a person sees of a run on a terminal: the live view fits it, the report is drawn by rich."""

from __future__ import annotations

import io

from rich.console import Console

from planfleet.cli import running, view
from planfleet.cli.output import Out
from planfleet.engine.options import RunResult
from planfleet.plan import model
from planfleet.state import ops
from planfleet.state.create import init_from_plan
from planfleet.state.records import State, add_event

SRC = model.Source("plan.yaml", 1)


def _state(n: int) -> State:
    tasks = tuple(model.Task(id=f"t{i:02d}", title="t", phase="p", source=SRC) for i in range(n))
    phase = model.Phase(id="p", title="p", source=SRC, task_ids=tuple(t.id for t in tasks))
    plan = model.Plan(
        name="s", title="s", format="planfleet", path="plan.yaml", phases=(phase,), tasks=tasks
    )
    return init_from_plan(plan)


def _thirty_tasks_midway() -> State:
    """12 verified (t00 first, t11 last), t12 failed, t27-t29 running, the rest pending."""
    state = _state(30)
    for i in range(13):
        tid, stamp = f"t{i:02d}", f"2026-01-01T00:{i:02d}:00.000Z"
        ops.claim(state, tid, now=stamp)
        if i < 12:
            ops.complete(state, tid, commit="c0ffee", cost_usd=0.25, now=stamp)
        else:
            ops.fail(state, tid, error_type="tests", step="test", message="x", now=stamp)
    for tid in ("t27", "t28", "t29"):
        ops.claim(state, tid)
    return state


def _terminal(height: int = 16, width: int = 100) -> Console:
    return Console(
        file=io.StringIO(),
        record=True,
        width=width,
        height=height,
        force_terminal=True,
        color_system=None,
        legacy_windows=False,
    )


def test_the_running_tasks_fit_a_small_terminal() -> None:
    console = _terminal()
    live = view.LiveReporter(io.StringIO(), "planfleet run s", console=console)
    live(_thirty_tasks_midway(), [])
    assert len(console.render_lines(live, console.options)) < 16
    with live:  # rich's own Live, as on a terminal: it would cut an overflow with "..."
        pass
    text = console.export_text()
    assert "..." not in text
    bar = next(line for line in text.splitlines() if "planfleet run s" in line)
    assert "12/30" in bar
    assert "3 running" in bar
    assert "1 failed" in bar
    assert "$3.00" in bar
    shown = {w for line in text.splitlines() for w in line.split()[:1] if w[1:].isdigit()}
    # the running ones, then the latest finished that fit (16 rows: bar, header, footer, spare)
    assert shown == {"t27", "t28", "t29", "t12", *(f"t{i:02d}" for i in range(4, 12))}
    assert "… 14 pending, 4 finished earlier" in text


def test_more_running_tasks_than_rows_says_how_many_are_left_out() -> None:
    state = _state(20)
    for i in range(20):
        ops.claim(state, f"t{i:02d}")
    console = _terminal(height=10)
    live = view.LiveReporter(io.StringIO(), "planfleet run s", console=console)
    live(state, [])
    console.print(live)
    text = console.export_text()
    assert "0/20" in text
    assert "20 running" in text
    assert "… 14 more running" in text
    assert len(text.splitlines()) < 10


def test_the_live_view_says_where_tasks_run_once_one_is_in_the_cloud() -> None:
    state = _state(3)
    for tid in ("t00", "t01"):
        ops.claim(state, tid)
    add_event(state, "dispatched", "t00", "attempt 1")
    console = _terminal()
    live = view.LiveReporter(io.StringIO(), "planfleet run s", console=console)
    live(state, [])
    console.print(live)
    assert " on " not in console.export_text()  # all local: no column
    add_event(state, "dispatched", "t01", "attempt 1 in a cloud session")
    live(state, [])
    console.print(live)
    rows = {line.split()[0]: line.split()[-1] for line in console.export_text().splitlines()[-4:]}
    assert rows["task"] == "on"
    assert rows["t00"] == "local"
    assert rows["t01"] == "cloud"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _result(state: State) -> RunResult:
    return RunResult("s", "failed", "1 task abandoned", state, 3.0, 12.0)


def test_the_final_report_is_drawn_by_rich_on_a_terminal_and_plain_when_piped() -> None:
    state = _thirty_tasks_midway()
    tty = _Tty()
    assert running.finish(Out(stream=tty), _result(state), "run") == 1
    drawn = tty.getvalue()
    assert drawn.lstrip().startswith("┏━")  # a rich table's frame
    assert "t29" in drawn
    piped = io.StringIO()
    running.finish(Out(stream=piped), _result(state), "run")
    plain = piped.getvalue()
    assert "\x1b[" not in plain
    assert "┃" not in plain
    assert plain.splitlines()[1].split() == list(view.FINAL_HEADERS)
    assert "t12: tests at test: x" in plain
