"""Reading a state file: JSON parsing, the schema, and migration of older versions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from planfleet import jsonread, schemas
from planfleet.errors import InputError, RefusedError
from planfleet.schemas.check import CompiledSchema
from planfleet.state.records import SCHEMA_VERSION

Migration = Callable[[dict[str, Any]], dict[str, Any]]

# schema_version N -> the function that turns a version-N document into version N+1.
# Version 1 is the first released layout, so there is nothing to migrate yet; the next
# layout change adds ``1: _v1_to_v2`` here and bumps SCHEMA_VERSION.
MIGRATIONS: dict[int, Migration] = {}

DAMAGED_HINT = "restore the file from a backup, or start over with `planfleet state init --force`"


@cache
def compiled_schema() -> CompiledSchema:
    """Return the state schema compiled once per process."""
    return CompiledSchema(schemas.load("state"))


def parse(text: str, *, file: str) -> dict[str, Any]:
    """Return the JSON object in ``text``; InputError with the line if it is not one."""
    doc = jsonread.loads(text, file=file, hint=DAMAGED_HINT)
    if not isinstance(doc, dict):
        raise InputError("a state file must hold a JSON object", file=file, hint=DAMAGED_HINT)
    return doc


def migrate(
    doc: dict[str, Any], *, file: str, migrations: Mapping[int, Migration] = MIGRATIONS
) -> tuple[dict[str, Any], int]:
    """Return ``doc`` brought to SCHEMA_VERSION and the version it had.

    Raises RefusedError for a file written by a newer planfleet, InputError for a missing
    version or one no migration starts from.
    """
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InputError(
            "missing or invalid schema_version",
            file=file,
            field="schema_version",
            hint=DAMAGED_HINT,
        )
    if version > SCHEMA_VERSION:
        raise RefusedError(
            f"{file} was written by a newer planfleet (state schema_version {version}; "
            f"this planfleet reads up to {SCHEMA_VERSION})",
            reason="state_too_new",
            next_step="upgrade planfleet (the same version that wrote the file, or later)",
            details={"file": file, "schema_version": version, "supported": SCHEMA_VERSION},
        )
    original = version
    while version < SCHEMA_VERSION:
        step = migrations.get(version)
        if step is None:
            raise InputError(
                f"no migration from state schema_version {version}",
                file=file,
                field="schema_version",
                hint=DAMAGED_HINT,
            )
        doc = step(doc)
        if doc.get("schema_version") != version + 1:
            raise AssertionError(f"migration from {version} did not produce {version + 1}")
        version += 1
    return doc, original
