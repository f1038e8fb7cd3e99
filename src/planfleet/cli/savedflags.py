"""``runs/<plan>/options.json``: the :class:`RunFlags` a run started with, kept for `resume`.

Written as the fields of the object with ``"version": 2``. Version 1 (no ``version`` key)
is what planfleet wrote before: the argparse names of the flags (``timeout``,
``no_projections``, ``allowed_tools`` as one comma-separated text, ...); it is still read,
so a run started then resumes with its flags. A field this planfleet does not know is
ignored, with a note for the caller to show; a value that cannot be right is an InputError
naming the file and the field, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths
from planfleet.cli.runopts import RunFlags, split
from planfleet.errors import InputError
from planfleet.runners import RUNNERS
from planfleet.runners.claude import PERMISSION_MODES

OPTIONS_FILE = "options.json"
VERSION = 2
# version 1: argparse names that differ from the field names
_RENAMED = {
    "timeout": "timeout_s",
    "stall": "stall_s",
    "test_cmd": "test_command",
    "test_timeout": "test_timeout_s",
}
_NEGATED = {"no_post_merge_check": "post_merge_check", "no_projections": "projections"}


def _count(v: Any) -> bool:
    return type(v) is int and v >= 1


def _positive(v: Any) -> bool:
    return type(v) in (int, float) and v > 0


def _flag(v: Any) -> bool:
    return type(v) is bool


def _text(v: Any) -> bool:
    return v is None or type(v) is str


def _texts(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


# Every field of RunFlags: what its value must be, and those words for the error.
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "runner": (lambda v: v in ("auto", *RUNNERS), f"one of auto, {', '.join(RUNNERS)}"),
    "max_parallel": (_count, "a whole number of at least 1"),
    "max_attempts": (_count, "a whole number of at least 1"),
    "model": (_text, "a model name or null"),
    "escalate_model": (_text, "a model name or null"),
    "fail_fast": (_flag, "true or false"),
    "budget_usd": (_or_none(_positive), "a number above 0, or null"),
    "task_budget_usd": (_or_none(_positive), "a number above 0, or null"),
    "timeout_s": (_positive, "a number of seconds above 0"),
    "stall_s": (_positive, "a number of seconds above 0"),
    "post_merge_check": (_flag, "true or false"),
    "strict_files": (_flag, "true or false"),
    "strict_model": (_flag, "true or false"),
    "strict_tests": (_flag, "true or false"),
    "serialize_undeclared": (_flag, "true or false"),
    "wait_on_limit": (_or_none(_flag), "true, false or null"),
    "projections": (_flag, "true or false"),
    "permission_mode": (lambda v: v in PERMISSION_MODES, f"one of {', '.join(PERMISSION_MODES)}"),
    "allowed_tools": (_texts, "a list of texts"),
    "agent_command": (_texts, "a list of texts"),
    "test_command": (_text, "a command line, '' or null"),
    "test_timeout_s": (_or_none(_positive), "a number of seconds above 0, or null"),
    "remote": (lambda v: type(v) is str and bool(v), "a git remote name"),
    "environment": (_text, "an environment id or null"),
    "cloud_poll_s": (_positive, "a number of seconds above 0"),
    "cloud_parallel": (lambda v: type(v) is int and v >= 0, "a whole number of at least 0"),
}
_FLOATS = frozenset(
    {"budget_usd", "task_budget_usd", "timeout_s", "stall_s", "test_timeout_s", "cloud_poll_s"}
)


@dataclass(frozen=True)
class Saved:
    """The flags read from options.json, and the fields that were ignored (in words)."""

    flags: RunFlags
    ignored: tuple[str, ...] = ()


def to_json(flags: RunFlags) -> dict[str, Any]:
    """Return the JSON object that keeps ``flags``."""
    data: dict[str, Any] = {"version": VERSION}
    for name in RunFlags.names():
        value = getattr(flags, name)
        data[name] = list(value) if isinstance(value, tuple) else value
    return data


def from_json(data: Any, *, file: str) -> Saved:
    """Return the flags of an options.json object (version 2 or 1); InputError if bad."""
    hint = _hint(file)
    if not isinstance(data, dict):
        raise InputError("not a JSON object of run flags", file=file, hint=hint)
    version = data.get("version", 1)
    if type(version) is not int or version not in (1, VERSION):
        newer = type(version) is int and version > VERSION
        why = "written by a newer planfleet" if newer else "an unknown version"
        raise InputError(f"version {str(version)[:20]!r} is {why}", file=file, hint=hint)
    fields = dict(data)
    fields.pop("version", None)
    if version == 1:
        fields = _from_version_1(fields)
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in fields.items():
        if name not in CHECKS:
            note = f"{file}: {name[:60]!r} is not a run flag this planfleet knows; ignored"
            ignored.append(note)
            continue
        check, words = CHECKS[name]
        if not check(value):
            shown = json.dumps(value)[:60]
            raise InputError(f"{shown} is not {words}", file=file, field=name, hint=hint)
        if isinstance(value, list):
            value = tuple(value)
        elif name in _FLOATS and value is not None:
            value = float(value)
        values[name] = value
    return Saved(RunFlags(**values), tuple(ignored))


def _from_version_1(old: dict[str, Any]) -> dict[str, Any]:
    """Return version-1 fields (the argparse names) under the names of RunFlags."""
    new: dict[str, Any] = {}
    for key, value in old.items():
        if key in _NEGATED:
            new[_NEGATED[key]] = (not value) if type(value) is bool else value
        elif key == "allowed_tools":
            new[key] = list(split(value)) if type(value) is str else [] if value is None else value
        elif key == "agent_command" and value is None:
            new[key] = []
        else:
            new[_RENAMED.get(key, key)] = value
    return new


def _hint(file: str) -> str:
    return f"fix it, or delete {file} to go on with the defaults and the flags you give"


def path(repo: Path, plan: str) -> Path:
    """Return where the run of ``plan`` keeps its flags."""
    return paths.runs_dir(repo, plan) / OPTIONS_FILE


def load(repo: Path, plan: str) -> Saved | None:
    """Return the flags the plan's run started with (None if none were saved).

    Raises InputError naming the file when it is not JSON or a field's value is wrong.
    """
    where = path(repo, plan)
    if not where.exists():
        return None
    shown = str(where.relative_to(repo)) if where.is_relative_to(repo) else str(where)
    return from_json(jsonread.read(where, display=shown, hint=_hint(shown)), file=shown)


def save(repo: Path, plan: str, flags: RunFlags) -> None:
    """Keep ``flags`` for a later `resume` of the plan's run."""
    folder = paths.writable(repo, paths.runs_dir(repo, plan), folder=True)
    text = json.dumps(to_json(flags), indent=2, sort_keys=True) + "\n"
    fsutil.atomic_write(folder / OPTIONS_FILE, text)
