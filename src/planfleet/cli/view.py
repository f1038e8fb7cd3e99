"""What a person sees of a run: a live table on a terminal, one line per change when piped,
and the final report (per task: status, duration, attempts, cost, files, tests)."""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from planfleet import jsonread
from planfleet.cli.output import table
from planfleet.engine import limitwait, modelcheck
from planfleet.state.records import SATISFIED, State, ordered_ids, parse_iso

if TYPE_CHECKING:  # rich is imported only when a terminal view is shown
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

MARKS = {
    "verified": "✓",
    "failed": "✗",
    "timeout": "⏱",
    "abandoned": "✗✗",
    "blocked": "⊘",
    "in_progress": "▶",
    "skipped": "–",
    "pending": "·",
    "held": "⏸",
}
CHANGES = frozenset(
    {
        "dispatched",
        "verified",
        "failed",
        "timeout",
        "abandoned",
        "blocked",
        "merged",
        "released",
        "held",
        "unheld",
    }
)
NOTICES = {"conflict_predicted": "conflict predicted", "undeclared_overlap": "undeclared overlap"}


def duration_s(record: dict[str, Any]) -> float | None:
    """Return how long the task's last attempt took (or has taken so far), in seconds."""
    if not record.get("started_at"):
        return None
    end = record.get("finished_at")
    start = parse_iso(record["started_at"])
    if end:
        return max(0.0, (parse_iso(end) - start).total_seconds())
    return max(0.0, (_dt.datetime.now(_dt.timezone.utc) - start).total_seconds())


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def status_word(record: dict[str, Any]) -> str:
    if (
        record["status"] == "verified"
        and record["kind"] == "task"
        and not record.get("merged_at")
        and record.get("commit")
    ):
        return "verified (merging)"
    return str(record["status"])


class LineReporter:
    """One status line per change, for logs and pipes (the ``[BATCH ...]`` form)."""

    def __init__(self, stream: TextIO, label: str | None = None) -> None:
        self.stream = stream
        self.label = label  # fixed "<layer> #<n>" (planfleet batch); default per phase
        self.last = ""

    def __call__(self, state: State, events: Sequence[dict[str, Any]]) -> None:
        tasks = state["tasks"]
        phases = [tasks[n]["phase"] for n in ordered_ids(state)]
        number = {p: i + 1 for i, p in enumerate(dict.fromkeys(phases))}
        for ev in events:
            tid = ev.get("task")
            if ev["event"] in ("limit_wait", "limit_wait_end"):
                wait = state.get("limit_wait")
                words = limitwait.waiting_line(wait) if wait else ev.get("detail") or ""
                self.stream.write(f"[limit] {words}\n")
                continue
            if ev["event"] in NOTICES and tid in tasks:
                self.stream.write(f"[{NOTICES[ev['event']]}] {tid} {ev.get('detail') or ''}\n")
                continue
            if ev["event"] not in CHANGES or tid not in tasks:
                continue
            phase = tasks[tid]["phase"]
            members = [n for n in ordered_ids(state) if tasks[n]["phase"] == phase]
            shown = [_mark(n, tasks[n]) for n in members if tasks[n]["kind"] == "task"]
            done = sum(1 for n in members if tasks[n]["status"] in ("verified", "skipped"))
            label = self.label or f"{phase} #{number[phase]}"
            if self.label:
                members = [n for n in ordered_ids(state) if n in self.scope(state)]
                shown = [_mark(n, tasks[n]) for n in members]
                done = sum(1 for n in members if tasks[n]["status"] in ("verified", "skipped"))
            line = f"[BATCH {label}] {', '.join(shown)} ({done}/{len(members)})"
            if ev["event"] in ("failed", "timeout", "abandoned", "blocked") and ev.get("detail"):
                line += f" — {tid}: {str(ev['detail']).splitlines()[0][:160]}"
            if line != self.last:
                self.stream.write(line + "\n")
                self.last = line
        self.stream.flush()

    def scope(self, state: State) -> set[str]:
        """Return the tasks this reporter is about (all tasks; batch reporters narrow it)."""
        return {n for n, r in state["tasks"].items() if r["kind"] == "task"}


def runs_on(state: State) -> dict[str, str]:
    """Return per task where its last attempt ran: local, or cloud (from the events)."""
    found: dict[str, str] = {}
    for event in state["events"]:
        if event["event"] == "dispatched" and event["task"]:
            found[event["task"]] = "cloud" if "cloud" in (event["detail"] or "") else "local"
    return found


def _mark(tid: str, record: dict[str, Any]) -> str:
    mark = f"{tid} {MARKS.get(record['status'], '?')}"
    if record["status"] in ("failed", "timeout", "in_progress") and record["attempts"] > 1:
        mark += f" (attempt {record['attempts']})"
    return mark


FINISHED = frozenset(MARKS) - {"pending", "in_progress"}
FAILED = frozenset({"failed", "timeout", "abandoned"})


class LiveReporter:
    """On a terminal: a progress bar, then the running and the latest finished tasks that fit."""

    def __init__(self, stream: TextIO, title: str, *, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.state: State | None = None
        self.console = console or Console(file=stream)
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.bar = self.progress.add_task(title, total=None, counts="")
        self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, state: State, events: Sequence[dict[str, Any]]) -> None:
        self.state = state
        tasks = [r for r in state["tasks"].values() if r["kind"] == "task"]
        statuses = Counter(str(r["status"]) for r in tasks)
        failed = sum(statuses[s] for s in FAILED)
        counts = [f"{statuses['in_progress']} running", f"{failed} failed"]
        if statuses["blocked"]:
            counts.append(f"{statuses['blocked']} blocked")
        predicted = len((state.get("conflicts") or {}).get("predicted", []))
        if predicted:
            counts.append(f"{predicted} conflict(s) predicted")
        if state.get("limit_wait"):
            counts.append(limitwait.waiting_line(state["limit_wait"]))
        counts.append(f"${state['totals']['cost_usd']:.2f}")
        self.progress.update(
            self.bar,
            completed=sum(statuses[s] for s in SATISFIED),
            total=len(tasks),
            counts=" · ".join(counts),
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table
        from rich.text import Text

        yield self.progress
        if self.state is None:
            return
        # What fits below the bar: a header, the rows, a line for what is left out, and one
        # line spare, so that the live region never scrolls (rich would cut it with "...").
        room = options.size.height - 4
        if room < 1:
            return
        tasks = self.state["tasks"]
        ids = ordered_ids(self.state)
        running = [n for n in ids if tasks[n]["status"] == "in_progress"]
        finished = sorted(
            (n for n in ids if tasks[n]["status"] in FINISHED),
            key=lambda n: str(tasks[n]["updated_at"]),
            reverse=True,
        )
        shown = running[:room] + finished[: max(0, room - len(running))]
        where = runs_on(self.state)
        mixed = "cloud" in where.values()  # a column for where tasks run, once one is remote
        t = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("task", "phase", "state", "attempt", "elapsed", "cost", *("on",) * mixed):
            t.add_column(col)
        for tid in shown:
            r = tasks[tid]
            cells = [
                tid,
                r["phase"],
                f"{MARKS.get(r['status'], '')} {status_word(r)}",
                str(r["attempts"]),
                fmt_s(duration_s(r)),
                f"${r['cost_usd']:.2f}",
            ]
            if mixed:
                cells.append(where.get(tid, ""))
            t.add_row(*(Text(str(c)) for c in cells))
        yield t
        on_screen = min(len(running), room)
        hidden = {
            "more running": len(running) - on_screen,
            "pending": sum(
                1 for r in tasks.values() if r["kind"] == "task" and r["status"] == "pending"
            ),
            "finished earlier": len(finished) - (len(shown) - on_screen),
        }
        text = ", ".join(f"{n} {what}" for what, n in hidden.items() if n)
        if text:
            yield Text(f"… {text}", style="dim")


def final_rows(state: State, owners: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Return one dict per task for the final report (with files and tests when recorded).

    ``owners`` are the plan's owners (roles) per task; without them the claim's owner shows.
    """
    rows = []
    for tid in ordered_ids(state):
        r = state["tasks"][tid]
        rec = _verification(r.get("verification"))
        tests = rec.get("tests") or {}
        rows.append(
            {
                "task": tid,
                "phase": r["phase"],
                "kind": r["kind"],
                "owner": (owners or {}).get(tid) or r.get("owner"),
                "status": r["status"],
                "merged": bool(r.get("merged_at")),
                "duration_s": duration_s(r) if r.get("finished_at") else None,
                "attempts": r["attempts"],
                "cost_usd": r["cost_usd"],
                "files_created": rec.get("files_created", []),
                "files_modified": rec.get("files_modified", []),
                "undeclared": rec.get("undeclared", []),
                "models": rec.get("models"),
                "model_mismatch": rec.get("model_mismatch"),
                "vacuous": rec.get("vacuous"),
                "tests_before": tests.get("before"),
                "tests_after": tests.get("after"),
                "regressions": tests.get("new_failures", []),
                "error": r.get("error"),
            }
        )
    return rows


def _verification(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = jsonread.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def undeclared_line(paths: Sequence[str], shown: int = 10) -> str:
    """Return the report's words for changed files a task did not declare."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return "changed files it does not declare: " + ", ".join(paths[:shown]) + more


def vacuous_line(found: dict[str, Any], shown: int = 5) -> str:
    """Return the words for new tests that pass without the task's code (``vacuous``)."""
    tests, files = list(found.get("tests") or []), list(found.get("files") or [])
    if not tests:
        return f"its test files pass without its code (test names unknown): {', '.join(files)}"
    more = f" and {len(tests) - shown} more" if len(tests) > shown else ""
    return f"{len(tests)} test(s) pass without its code: {', '.join(tests[:shown])}{more}"


def conflict_lines(box: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Return the lines for conflicts predicted now and undeclared overlaps seen (status)."""
    lines = []
    for p in box.get("predicted", []):
        a, b = p["tasks"]
        other = "the integration branch" if b == "integration" else b
        lines.append(f"conflict predicted: {a} with {other}: {', '.join(p['files'])}")
    for o in box.get("overlaps", []):
        a, b = o["tasks"]
        lines.append(f"undeclared overlap: {a} and {b} both change {', '.join(o['files'])}")
    return lines


FINAL_HEADERS = ("task", "phase", "owner", "status", "duration", "attempts", "cost", "tests")


def final_cells(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Return the final report's table, one list of cells per task (FINAL_HEADERS)."""

    def tests(v: Any) -> str:
        if not isinstance(v, dict) or (v.get("passed") is None and v.get("failed") is None):
            return "-"  # no test command, or one judged by its exit code only
        return f"{v.get('passed', '?')}✓/{v.get('failed', '?')}✗"

    return [
        [
            r["task"],
            r["phase"],
            r["owner"] or "-",
            r["status"] + ("" if r["merged"] or r["kind"] == "gate" else " (not merged)"),
            fmt_s(r["duration_s"]),
            str(r["attempts"]),
            f"${r['cost_usd']:.2f}",
            tests(r["tests_before"]) + " → " + tests(r["tests_after"]),
        ]
        for r in rows
    ]


def final_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Return the lines under the final table: files, regressions and errors per task."""
    extra = []
    for r in rows:
        created, modified = r["files_created"], r["files_modified"]
        if created or modified:
            extra.append(
                f"  {r['task']}: created {', '.join(created) or '-'}; "
                f"modified {', '.join(modified) or '-'}"
            )
        if r["undeclared"]:
            extra.append(f"  {r['task']}: {undeclared_line(r['undeclared'])}")
        if r["model_mismatch"]:
            extra.append(f"  {r['task']}: {modelcheck.message(r['model_mismatch'])}")
        if r["vacuous"]:
            extra.append(f"  {r['task']}: {vacuous_line(r['vacuous'])}")
        if r["regressions"]:
            extra.append(f"  {r['task']}: REGRESSIONS {', '.join(map(str, r['regressions']))}")
        if r["error"] and r["status"] != "verified":
            e = r["error"]
            extra.append(f"  {r['task']}: {e['type']} at {e['step']}: {e['message'][:200]}")
    return extra


def render_final(rows: Sequence[dict[str, Any]]) -> str:
    """Return the final report as a plain table plus files and test lines."""
    body = table(final_cells(rows), FINAL_HEADERS)
    extra = final_notes(rows)
    return body + ("\n" + "\n".join(extra) if extra else "")


def rich_final(rows: Sequence[dict[str, Any]]) -> RenderableType:
    """Return the final report for a terminal: the same table and lines, drawn by rich."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(header_style="bold")
    for col in FINAL_HEADERS:
        t.add_column(col)
    for row, cells in zip(rows, final_cells(rows), strict=True):
        style = (
            "green" if row["status"] in SATISFIED else "red" if row["status"] in FAILED else None
        )
        t.add_row(*(Text(c) for c in cells), style=style)
    return Group(t, *(Text(line) for line in final_notes(rows)))
