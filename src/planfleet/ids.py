"""Validation of ids and names before they become paths or git branch names."""

from __future__ import annotations

import re
import unicodedata

from planfleet.errors import InputError

MAX_ID_LENGTH = 64
_ALLOWED = "use letters, digits, '.', '_', '-'"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def id_problem(value: str) -> str | None:
    """Return why ``value`` is not a safe id (path segment and ref component), or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    if value.startswith("-"):
        return "starts with '-'"
    if not _ID_RE.match(value):
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
        if bad:
            shown = ", ".join(repr(c) for c in bad[:5])
            return f"contains characters that are not allowed ({shown}); {_ALLOWED}"
        return "must start with a letter or digit"
    if ".." in value:
        return "contains '..'"
    if value.endswith((".", ".lock")):
        return "ends with '.' or '.lock'"
    return None


def check_id(
    value: str, *, what: str = "id", file: str | None = None, line: int | None = None
) -> str:
    """Return ``value`` if it is a safe id; raise InputError naming ``what`` otherwise."""
    problem = id_problem(value)
    if problem:
        raise InputError(
            f"{what} {value!r} {problem}",
            file=file,
            line=line,
            field=what,
            hint="ids become folder and branch names: [A-Za-z0-9._-], at most 64 characters",
        )
    return value


def slugify(text: str, *, fallback: str = "plan") -> str:
    """Return a safe id made from free text (for names derived from titles or file names)."""
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", norm).strip("-._")
    slug = re.sub(r"\.{2,}", ".", slug)
    slug = slug[:MAX_ID_LENGTH].rstrip("-._")
    if slug.endswith(".lock"):
        slug = slug[: -len(".lock")]
    return slug if slug and id_problem(slug) is None else fallback
