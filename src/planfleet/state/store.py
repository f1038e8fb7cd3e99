"""The state store: one JSON file per plan run, changed only inside a locked transaction.

``with store.transaction() as state:`` takes the sidecar ``.lock`` (and records who holds
it in ``.holder``), reads and validates the file, hands the document to the caller, then
validates and writes it atomically (temp file, fsync, ``os.replace``, folder fsync) if it
changed. A crash at any instant leaves the old or the new file, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock

from planfleet import fsutil, jsonread, paths
from planfleet.errors import InputError, RefusedError
from planfleet.state.codec import Blocks, Codec
from planfleet.state.migrate import MIGRATIONS, Migration
from planfleet.state.records import State, hostname, now_iso

DEFAULT_LOCK_TIMEOUT_S = 30.0
# Waiters poll the lock; a short interval keeps throughput up with many writers.
POLL_INTERVAL_S = 0.005


class StateLockedError(RefusedError):
    """The state file stayed locked by another process for the whole timeout."""


class StateStore:
    """The state file of one plan run, with its lock and the codec that reads and writes it."""

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        command: str | None = None,
        repo: Path | None = None,
        migrations: Mapping[int, Migration] = MIGRATIONS,
    ) -> None:
        self.path = path
        self.repo = repo
        self.lock_timeout = lock_timeout
        self.command = command or " ".join(["planfleet", *sys.argv[1:4]])
        self.lock_path = path.with_name(path.name + ".lock")
        self.holder_path = path.with_name(path.name + ".holder")
        self._codec = Codec(migrations)
        self._lock = filelock.FileLock(self.lock_path, timeout=lock_timeout)
        self._depth = 0

    @classmethod
    def for_plan(cls, repo: Path, plan: str, **kwargs: Any) -> StateStore:
        """Return the store of ``.planfleet/state/<plan>.json`` in ``repo``."""
        return cls(paths.state_path(repo, plan), repo=repo, **kwargs)

    @property
    def plan(self) -> str:
        return self.path.stem

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> State:
        """Return the validated state without locking (a write replaces the file whole)."""
        state, _ = self._codec.decode(self._read(), file=str(self.path))
        return state

    def create(self, state: State, *, replace: bool = False) -> None:
        """Write a new state file; RefusedError if one exists (unless ``replace``)."""
        self._prepare(create=True)
        with self._locked():
            if self.path.exists():
                if not replace:
                    raise RefusedError(
                        f"plan {self.plan!r} already has a state file: {self.path}",
                        reason="state_exists",
                        next_step="continue the run, or pass --force to start over "
                        "(the old file is kept as .bak)",
                    )
                self._backup(self.path.with_name(self.path.name + ".bak"))
            self._write(state)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        """Yield the current state under the lock; write it back if it changed.

        An exception inside the block writes nothing. Raises StateLockedError (naming the
        holder) when the lock is not free within the timeout.
        """
        if self._depth:
            raise RuntimeError("nested state transactions would lose the outer one's update")
        if not self.path.exists():
            self._read()  # raises the error that names `planfleet state init`
        self._prepare(create=False)
        with self._locked():
            old_text = self._read()
            state, version = self._codec.decode(old_text, file=str(self.path))
            yield state
            blocks = self._codec.blocks(state, file=str(self.path))
            if blocks.changed is False or (
                blocks.changed is None and self._codec.assemble(state, blocks) == old_text
            ):
                return
            if version != state["schema_version"]:
                self._backup(self.path.with_name(f"{self.path.name}.v{version}.bak"))
            self._write(state, blocks)

    def _write(self, state: State, blocks: Blocks | None = None) -> None:
        state["revision"] += 1
        state["updated_at"] = now_iso()
        if blocks is None:
            blocks = self._codec.blocks(state, file=str(self.path))
        try:
            fsutil.atomic_write(self.path, self._codec.assemble(state, blocks))
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _prepare(self, *, create: bool) -> None:
        """Check (and with ``create`` make) the folder: no link on the way, none as the file."""
        if self.repo is not None:
            paths.writable(self.repo, self.path, create=create)
        elif create:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _read(self) -> str:
        # A linked state file would be read from elsewhere, then replaced by a regular file.
        self._prepare(create=False)
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RefusedError(
                f"plan {self.plan!r} has no state file ({self.path})",
                reason="no_state",
                next_step=f"planfleet state init {self.plan} --from PLAN_FILE",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the state file: {exc}", file=str(self.path)) from None

    def _backup(self, target: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            fsutil.atomic_write(target, self.path.read_text(encoding="utf-8"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self._lock.acquire(timeout=self.lock_timeout, poll_interval=POLL_INTERVAL_S)
        except filelock.Timeout:
            raise self._locked_error() from None
        except OSError as exc:
            raise self._unwritable(exc) from None
        self._depth += 1
        try:
            try:
                self._write_holder()
                # Under the lock no other writer can be mid-write: any temp file is a crash's.
                fsutil.remove_temp_files(self.path)
            except OSError as exc:
                raise self._unwritable(exc) from None
            yield
        finally:
            self._depth -= 1
            self._lock.release()

    def _write_holder(self) -> None:
        # Who holds the lock, for the message a waiter gets on timeout. Rewritten in place
        # on every acquire and left behind on release: a rename or unlink per transaction
        # would cost a metadata journal write, and a torn read only makes the holder unknown.
        holder = {
            "pid": os.getpid(),
            "host": hostname(),
            "command": self.command,
            "since": now_iso(),
        }
        data = (json.dumps(holder) + "\n").encode()
        fd = os.open(self.holder_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def _unwritable(self, exc: OSError) -> RefusedError:
        # A read-only folder, a full disk, a file size limit: the environment's fault, and
        # the state file is untouched (atomic write), so resume works once it is fixed.
        return RefusedError(
            f"cannot write the state of plan {self.plan!r}: {exc.strerror or exc} "
            f"({exc.filename or self.path})",
            reason="state_unwritable",
            next_step=f"make {self.path.parent} writable or free disk space, then "
            f"`planfleet resume {self.plan}` (the state file is unchanged)",
        )

    def _locked_error(self) -> StateLockedError:
        holder = read_holder(self.holder_path)
        if holder is None:
            who = "another process (it left no holder record)"
        else:
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')} "
                f"({holder.get('command')}) since {holder.get('since')}"
            )
        return StateLockedError(
            f"the state of plan {self.plan!r} is locked by {who}; waited {self.lock_timeout:g}s",
            reason="state_locked",
            next_step="wait for that command to finish, or stop it; the lock is released "
            "when its process exits",
            details={"file": str(self.path), "holder": holder},
        )


def read_holder(path: Path) -> dict[str, Any] | None:
    """Return the holder record next to a state lock, or None if absent or unreadable."""
    try:
        data = jsonread.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def no_run(plan: str, next_step: str | None = None) -> RefusedError:
    """Return the refusal (exit 3, reason ``no_state``) for a plan that has no run yet."""
    return RefusedError(
        f"plan {plan!r} has no run in this repository",
        reason="no_state",
        next_step=next_step
        or f"start one with `planfleet run {plan}`; `planfleet status` lists the runs",
    )
