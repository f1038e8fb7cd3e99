"""`claude --cloud` under a pseudo-terminal: started, its output logged, its session read.

The CLI refuses ``--cloud`` unless its stdin and stdout are a terminal, so it gets the
slave side of a pty (``os.openpty``; no fork in this threaded process: :func:`proc.spawn`
starts it). A reader thread drains the master side into the attempt's log (a terminal
whose output nobody reads blocks its writer) and looks for the session's URL or id.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from planfleet import proc

ROWS, COLUMNS = 50, 200
_READ_S = 0.2
_KEEP_CHARS = 64 * 1024  # of the output, for finding the session and the error tail
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# claude.ai/code/<session> (or any host's /code/ path: a staging host, a proxy)
_URL = re.compile(r"https://[^\s'\"<>()]+/code/[A-Za-z0-9_-]+")
_ID = re.compile(r"\b(session_[A-Za-z0-9_-]{6,})\b")
_CURSOR_QUERY = b"\x1b[6n"  # a TUI asking where the cursor is; it may wait for the answer


@dataclass(frozen=True)
class Session:
    """What the CLI said about the session it started (either may be unknown)."""

    session_id: str | None
    url: str | None


def plain(text: str) -> str:
    """Return terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


def find_session(text: str) -> Session | None:
    """Return the session named in ``text`` (plain output), or None when there is none."""
    url_match = _URL.search(text)
    id_match = _ID.search(text)
    if url_match is None and id_match is None:
        return None
    url = url_match.group(0) if url_match else None
    sid = id_match.group(1) if id_match else (url.rsplit("/", 1)[1] if url else None)
    return Session(sid, url)


class Launch:
    """One `claude --cloud` process on a pty; :meth:`close` stops it and its group."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.session: Session | None = None
        self.news = threading.Event()  # set when the session is found or the output ends
        self._text = ""
        self._lock = threading.Lock()
        master, slave = os.openpty()
        with contextlib.suppress(OSError):
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        child_env = {"TERM": "xterm-256color", **env}
        try:
            self.child = proc.spawn(
                self.argv, cwd=cwd, env=child_env, stdin=slave, stdout=slave, stderr=slave
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._master = master
        self._log = log_path.open("ab")
        if on_start is not None:
            on_start(self.child.pid)  # its own session: the pid is the process group id
        self._reader = threading.Thread(target=self._read, name="cloud-pty", daemon=True)
        self._reader.start()

    def output(self) -> str:
        """Return the plain output so far (its last 64 KB)."""
        with self._lock:
            return plain(self._text)

    def exit_code(self) -> int | None:
        """Return the process's exit code, None while it runs."""
        return self.child.poll()

    def ended(self) -> bool:
        """Return True once the process has exited and its output is read."""
        return self.child.poll() is not None and not self._reader.is_alive()

    def close(self) -> int | None:
        """Stop the process (and its group) if it still runs; return its exit code."""
        code = proc.stop_group(self.child)
        self._reader.join(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self._master)
        self._log.close()
        return code

    def _read(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._master], [], [], _READ_S)
                if not ready:
                    # Exited, and no last output waits in the pty: the end.
                    if self.child.poll() is not None and not self._pending():
                        return
                    continue
                try:
                    data = os.read(self._master, 65536)
                except OSError:  # EIO: every holder of the slave side has closed it
                    return
                if not data:
                    return
                self._take(data)
        finally:
            if self.session is None:  # the last line may have had no line end
                self.session = find_session(self.output())
            self.news.set()

    def _pending(self) -> bool:
        return bool(select.select([self._master], [], [], 0)[0])

    def _take(self, data: bytes) -> None:
        self._log.write(data)
        self._log.flush()
        if _CURSOR_QUERY in data:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x1b[1;1R")
        with self._lock:
            self._text = (self._text + data.decode("utf-8", errors="replace"))[-_KEEP_CHARS:]
            text = self._text
        if self.session is None:
            # Only whole lines: a URL cut between two reads must not be taken half.
            found = find_session(plain(text[: text.rfind("\n") + 1]))
            if found is not None:
                self.session = found
                self.news.set()
