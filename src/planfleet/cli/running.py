"""Running the engine from the command line: find the plan, show progress, report the end."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from planfleet.cli import view as report
from planfleet.cli.output import Out
from planfleet.engine.loop import Engine
from planfleet.engine.options import Listener, RunOptions, RunResult
from planfleet.errors import InputError
from planfleet.ids import check_id
from planfleet.plan import formats, model
from planfleet.state.store import StateStore


def load_plan(repo: Path, arg: str, fmt: str | None = None) -> model.Plan:
    """Return the plan named by ``arg``: a path, a plan name, or the name of a state."""
    store_path = None
    with contextlib.suppress(InputError):
        store_path = StateStore.for_plan(repo, arg).path if _safe(arg) else None
    try:
        path = formats.resolve(arg, repo=repo, format=fmt)
    except InputError:
        if store_path is None or not store_path.exists():
            raise
        state = StateStore.for_plan(repo, arg).load()
        path = Path(state["plan"]["path"])
        if not path.is_absolute():
            path = repo / path
        fmt = fmt or state["plan"]["format"] or None
    plan = formats.load_plan(path, repo=repo, format=fmt)
    if plan.errors:
        d = plan.errors[0]
        raise InputError(d.message, file=d.file, line=d.line, field=d.field, hint=d.hint)
    return plan


def _safe(arg: str) -> bool:
    try:
        check_id(arg, what="plan name")
    except InputError:
        return False
    return True


@contextlib.contextmanager
def view(out: Out, plan: model.Plan, *, quiet: bool = False) -> Iterator[Listener | None]:
    """Yield the listener that shows progress: rich on a terminal, lines when piped."""
    if out.json_mode or quiet:
        yield None
        return
    if out.is_tty and sys.stderr.isatty():
        live = report.LiveReporter(out.stream, f"planfleet run {plan.name}")
        with live:
            yield live
        return
    yield report.LineReporter(out.stream)


def execute(out: Out, repo: Path, plan: model.Plan, opts: RunOptions, command: str) -> int:
    """Run the engine and print the final report; return the exit code."""
    with view(out, plan) as listener:
        result = Engine(repo, plan, opts, listener).run()
    return finish(out, result, command, {t.id: t.owner for t in plan.tasks})


def finish(
    out: Out, result: RunResult, command: str, owners: dict[str, str | None] | None = None
) -> int:
    """Print how the run ended (the final table, what to do next); return its exit code."""
    rows = report.final_rows(result.state, owners)
    data = {
        "plan": result.plan,
        "status": result.status,
        "reason": result.reason,
        "cost_usd": result.cost_usd,
        "elapsed_s": round(result.elapsed_s, 3),
        "tasks": rows,
    }

    def human() -> None:
        out.line("")
        if out.is_tty:
            from rich.console import Console

            Console(file=out.stream).print(report.rich_final(rows))
        else:
            out.line(report.render_final(rows))
        out.line(
            f"\n{result.plan}: {result.status} ({result.reason}) in "
            f"{report.fmt_s(result.elapsed_s)}, cost ${result.cost_usd:.2f}"
        )
        if result.status == "completed":
            out.line(
                f"the work is on planfleet/{result.plan}/integration; bring it home with "
                f"`planfleet land {result.plan}`"
            )
        elif result.status == "paused":
            out.line(f"continue with `planfleet resume {result.plan}`")
        else:
            out.line(
                f"see `planfleet status {result.plan}`; fix or reset the abandoned tasks "
                f"(`planfleet state reset {result.plan} TASK`), then `planfleet resume "
                f"{result.plan}`"
            )
        if result.status != "paused":
            out.line(f"how it went: `planfleet report {result.plan}` (--svg FILE: a timeline)")

    out.result(command, data, status="ok" if result.exit_code == 0 else "failed", human=human)
    return result.exit_code
