"""`--detach`: the engine as a background process that outlives the terminal that started it.

The child is ``python -m planfleet <the same arguments>`` in its own session (so closing
the terminal or the Claude Code session sends it no hangup), with stdin closed and its
output in ``runs/<plan>/engine.log``. We wait until it holds the plan's engine lock, so
the caller learns at once whether it really started.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from planfleet import paths, proc
from planfleet.cli.output import Out
from planfleet.engine import runinfo
from planfleet.errors import ExitCode, RefusedError

START_TIMEOUT_S = 30.0
LOG_NAME = "engine.log"


def child_argv(argv: Sequence[str]) -> list[str]:
    """Return the arguments of the detached engine: ours without --detach, with --yes."""
    args = [a for a in argv if a != "--detach"]
    if "--yes" not in args and "-y" not in args:
        args.append("--yes")
    return [sys.executable, "-m", "planfleet", *args]


def launch(out: Out, repo: Path, plan: str, argv: Sequence[str]) -> int:
    """Start the engine detached; print the run id and how to watch and stop it."""
    folder = paths.writable(repo, paths.runs_dir(repo, plan), folder=True)
    log = folder / LOG_NAME
    env = {**os.environ, "PLANFLEET_DETACHED": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as fh:
        fh.write(
            f"\n=== planfleet detached start {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode()
        )
        fh.flush()
        child = proc.spawn(
            child_argv(argv), cwd=Path.cwd(), env=env, stdout=fh, stderr=fh, detach=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = runinfo.read_info(repo, plan)
        if info is not None and info.pid == child.pid and runinfo.is_running(repo, plan):
            break
        if child.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RefusedError(
                f"the detached engine exited at once (exit {child.returncode})",
                reason="detach_failed",
                next_step=f"see {log}; its last lines:\n{tail.strip()}",
            )
        time.sleep(0.05)
    else:
        raise RefusedError(
            f"the detached engine (pid {child.pid}) did not start within {START_TIMEOUT_S:g} s",
            reason="detach_failed",
            next_step=f"see {log}",
        )
    data = {
        "plan": plan,
        "run_id": f"{plan}@{child.pid}",
        "pid": child.pid,
        "log": str(log),
        "watch": f"planfleet status {plan}",
        "stop": f"planfleet stop {plan}",
    }

    def human() -> None:
        out.line(
            f"started {plan} in the background (pid {child.pid}); it keeps running when "
            "this terminal or session closes"
        )
        out.line(f"  watch:  planfleet status {plan}")
        out.line(f"  log:    {log}")
        out.line(f"  pause:  planfleet stop {plan}   (then planfleet resume {plan} [--detach])")

    out.result("run", data, human=human)
    return ExitCode.OK
