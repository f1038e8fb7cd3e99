"""Whether the model that ran an attempt is the one the run asked for.

The claude runner reads the models that ran from the result's ``modelUsage``. A requested
alias (``sonnet``, ``opus``, ``haiku``...) matches any model id that contains it; a full id
matches that id exactly or as a prefix (``claude-sonnet-4-5`` matches
``claude-sonnet-4-5-20250929``). When the runner could not tell which models ran, nothing
is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALIASES = ("sonnet", "opus", "haiku")


def matches(requested: str, ran: str) -> bool:
    """Return True if the model id ``ran`` is the model ``requested`` names."""
    want, got = requested.strip().lower(), ran.strip().lower()
    if not want:
        return True
    base = want.removesuffix("[1m]")  # e.g. "sonnet[1m]": the model with a 1M context
    if base in ALIASES:
        return base in got
    return got == want or got.startswith(base)


def mismatch(requested: str | None, models: Mapping[str, float] | None) -> dict[str, Any] | None:
    """Return ``{requested, ran}`` when ``requested`` is not among ``models``; else None."""
    if not requested or not models:
        return None
    if any(matches(requested, m) for m in models):
        return None
    return {"requested": requested, "ran": sorted(models)}


def message(found: Mapping[str, Any]) -> str:
    """Return the one line that says which model was asked for and which ran.

    ``found`` is what ``mismatch`` returned, or that record read back from a state file.
    """
    ran = ", ".join(map(str, found.get("ran") or [])) or "?"
    return f"model {found.get('requested')!r} was requested but {ran} ran"
