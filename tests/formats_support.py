"""Helpers for the plan-reader tests: copy a fixture, and show a model compactly."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def copy_fixture(kind: str, case: str, dest: Path, *, crlf: bool = False) -> Path:
    """Copy ``fixtures/<kind>/<case>`` to ``dest`` (CRLF line endings if asked); return it."""
    target = dest / case
    shutil.copytree(FIXTURES / kind / case, target)
    if crlf:
        for path in target.rglob("*.md"):
            data = path.read_bytes()
            path.write_bytes(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return target


def brief(obj: Any, *, skip: tuple[str, ...] = ("text",)) -> dict[str, Any]:
    """Return the fields of a Task/Phase that differ from their defaults (meta included)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = dict(value) if f.name == "meta" else value
    return out


def write(root: Path, rel: str, text: str) -> Path:
    """Write ``text`` to ``root/rel`` (folders made as needed); return the file."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
