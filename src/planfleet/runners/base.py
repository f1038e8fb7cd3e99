"""The one supervisor every runner starts its process under, and the agent's environment.

A supervised process runs in its own process group with stdout and stderr appended to the
attempt's log file. The supervisor polls it: a timeout (wall time), a stall (the log has
not grown for a while) or the stop event ends the whole group with INT, TERM, KILL.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from planfleet import fsutil, git, proc
from planfleet.errors import InputError
from planfleet.runners import AgentRequest, AgentResult, Ending

POLL_S = 0.1
TAIL_BYTES = 4096
REDACTED = "[redacted]"
# Variables whose values must never reach a log, a state file or a retry prompt.
_SECRET_NAME = re.compile(
    r"API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|PRIVATE_KEY", re.IGNORECASE
)
_MIN_SECRET_LEN = 6  # shorter values would blank out ordinary words
_SCRUB_LIMIT = 64 * 1024 * 1024  # logs larger than this are left as they are


@dataclass(frozen=True)
class Supervised:
    """How a supervised process ended."""

    ending: Ending
    exit_code: int | None
    duration_s: float
    output_tail: str = ""
    message: str = ""  # why it did not start, when ``ending`` is not_started


def agent_env(request: AgentRequest) -> dict[str, str]:
    """Return the environment of an agent: ours, the request's extras, and PLANFLEET_*."""
    # An inherited GIT_DIR would point the agent's git at another repository.
    env = git.without_redirects(os.environ)
    env.update(request.env)
    env.update(
        {
            "PLANFLEET_PLAN": request.plan.name,
            "PLANFLEET_TASK": request.task.id,
            "PLANFLEET_ATTEMPT": str(request.attempt),
            "PLANFLEET_WORKTREE": str(request.worktree),
            "PLANFLEET_BASE_COMMIT": request.base_commit,
            "GIT_TERMINAL_PROMPT": "0",  # an unattended agent must not wait for a password
        }
    )
    return env


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Return the values of secret-looking variables in ``env``, longest first."""
    found = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(found, key=lambda v: (-len(v), v))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret value replaced by a marker."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def tail_file(path: Path, max_bytes: int = TAIL_BYTES) -> str:
    """Return the last ``max_bytes`` of ``path`` as text, from a line start ("" if absent)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    if len(data) < size and b"\n" in data[:-1]:
        data = data[data.index(b"\n") + 1 :]  # drop the cut first line
    return data.decode("utf-8", errors="replace")


def prompt_path(log_path: Path) -> Path:
    """Return where an attempt's prompt is kept: next to its log (``<task>.<n>.prompt.md``)."""
    return log_path.with_name(f"{log_path.stem}.prompt.md")


def write_prompt(request: AgentRequest) -> Path:
    """Write the request's prompt next to its log and return the file."""
    path = prompt_path(request.log_path)
    fsutil.atomic_write(path, request.prompt, fsync_dir=False)
    return path


def supervise(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float,
    stall_s: float,
    stop: threading.Event,
    stdin_text: str | None = None,
    append: bool = False,
    on_start: Callable[[int], None] | None = None,
) -> Supervised:
    """Run ``argv`` under watch until it exits, times out, stalls or is stopped.

    ``math.inf`` disables the timeout or the stall check. Never raises for a program that
    cannot be started: that is the ending ``not_started``. ``on_start`` is told the
    process group as soon as the process runs.
    """
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if not cwd.is_dir():
        return Supervised("not_started", None, 0.0, message=f"working folder not found: {cwd}")
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(log_path.open("ab" if append else "wb"))
        stdin = stack.enter_context(_stdin(stdin_text))
        try:
            child = proc.spawn(argv, cwd=cwd, env=env, stdout=log, stderr=log, stdin=stdin)
        except InputError as exc:
            duration = time.monotonic() - start
            return Supervised("not_started", None, duration, message=exc.message)
    try:
        if on_start is not None:
            on_start(child.pid)  # its own session: the pid is the process group id
        ending = _watch(
            lambda seconds: proc.wait_for(child, seconds), log_path, start, timeout_s, stall_s, stop
        )
    finally:
        # Also reached when the process exited: its leftover children go with the group.
        code = proc.stop_group(child)
    duration = time.monotonic() - start
    secrets = secret_values(env)
    if secrets:
        _scrub(log_path, secrets)
    return Supervised(ending, code, duration, redact(tail_file(log_path), secrets))


def _stdin(text: str | None) -> IO[bytes]:
    """Return a readable file holding ``text`` (the null device when there is none)."""
    if text is None:
        return open(os.devnull, "rb")  # closed by the caller's ExitStack
    # A file, not a pipe: nothing to pump from a thread and no deadlock on a large prompt.
    feed = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller's ExitStack
    feed.write(text.encode("utf-8"))
    feed.seek(0)
    return feed


def _watch(
    wait: Callable[[float], int | None],
    log_path: Path,
    start: float,
    timeout_s: float,
    stall_s: float,
    stop: threading.Event,
) -> Ending:
    last_size = _size(log_path)
    last_growth = start
    while True:
        # Waiting on the process (not sleeping) notices its exit at once: most commands of
        # a mechanical task take milliseconds.
        if wait(POLL_S) is not None:
            return "exited"
        if stop.is_set():
            return "stopped"
        now = time.monotonic()
        if now - start > timeout_s:
            return "timeout"
        size = _size(log_path)
        if size != last_size:
            last_size, last_growth = size, now
        elif now - last_growth > stall_s and not math.isinf(stall_s):
            return "stall"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _scrub(log_path: Path, secrets: Sequence[str]) -> None:
    """Rewrite the log without secret values (an agent may have printed its environment)."""
    try:
        if log_path.stat().st_size > _SCRUB_LIMIT:
            return
        text = log_path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError:
        return
    clean = redact(text, secrets)
    if clean != text:
        data = clean.encode("utf-8", errors="surrogateescape")
        tmp = log_path.with_name(f".{log_path.name}.scrub")
        tmp.write_bytes(data)
        os.replace(tmp, log_path)


def ending_message(sup: Supervised, *, timeout_s: float, stall_s: float, what: str) -> str:
    """Return one line for a process that did not exit on its own ("" when it did)."""
    if sup.ending == "timeout":
        return f"{what} timed out after {timeout_s:g} s; its process group was stopped"
    if sup.ending == "stall":
        return f"{what} printed nothing for {stall_s:g} s (stall); its process group was stopped"
    if sup.ending == "stopped":
        return f"{what} was stopped"
    if sup.ending == "not_started":
        return f"{what} could not start: {sup.message}"
    return ""


def result_from(
    sup: Supervised, request: AgentRequest, argv: Sequence[str], *, what: str
) -> AgentResult:
    """Return the AgentResult of a supervised run, before any runner-specific reading."""
    message = ending_message(sup, timeout_s=request.timeout_s, stall_s=request.stall_s, what=what)
    return AgentResult(
        ending=sup.ending,
        exit_code=sup.exit_code,
        duration_s=round(sup.duration_s, 3),
        error_kind="start_failed" if sup.ending == "not_started" else None,
        message=message,
        output_tail=sup.output_tail,
        argv=tuple(str(a) for a in argv),
    )
