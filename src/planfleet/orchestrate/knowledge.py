"""Stage 4's knowledge store: one research cheat sheet per technology, reused across runs.

Sheets live in ``.planfleet/knowledge/<tech>.md`` with an ``index.json`` saying when and
for which plan each was written and from which sources. A technology whose sheet exists
is not researched again (delete the sheet to refresh it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths
from planfleet.ids import check_id, slugify
from planfleet.orchestrate.skillmatch import Registry, mentions
from planfleet.plan import model
from planfleet.state.records import now_iso

FOLDER = "knowledge"
INDEX = "index.json"
MIN_SHEET_CHARS = 80
# A line in the plan file naming its technologies, e.g. "Tech stack: FastAPI, SQLite".
_DECLARED = re.compile(
    r"^\s*[-*]?\s*\**(?:tech(?:nolog(?:y|ies))?|tech stack|stack)\**\s*:\s*(.+)$", re.I | re.M
)


@dataclass(frozen=True)
class Technology:
    """A technology the plan uses: its store name, how the plan calls it, which tasks."""

    slug: str
    name: str
    tasks: tuple[str, ...]
    source: str  # registry | plan


def store_dir(repo: Path) -> Path:
    """Return ``.planfleet/knowledge`` (not created)."""
    return paths.planfleet_dir(repo) / FOLDER


def sheet_path(repo: Path, slug: str) -> Path:
    """Return the cheat sheet path of technology ``slug`` (checked to be a safe name)."""
    return store_dir(repo) / f"{check_id(slug, what='technology')}.md"


def known(repo: Path, slug: str) -> Path | None:
    """Return the sheet of ``slug`` when the store has a usable one, else None."""
    path = sheet_path(repo, slug)
    return path if sheet_problem(path, slug) is None else None


def sheet_problem(path: Path, name: str) -> str | None:
    """Return why ``path`` is not a usable cheat sheet, or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read: {exc}"
    if len(text.strip()) < MIN_SHEET_CHARS:
        return f"{path} holds only {len(text.strip())} characters"
    if not re.search(r"^#\s+\S", text, re.M):
        return f"{path} has no Markdown heading (expected `# {name}`)"
    return None


def technologies(plan: model.Plan, plan_text: str, registry: Registry) -> list[Technology]:
    """Return the technologies ``plan`` uses: registry aliases found in it, and declared ones."""
    found: dict[str, tuple[str, list[str], str]] = {}
    whole = f"{plan.title}\n{plan_text}".lower()
    for slug, aliases in registry.technologies.items():
        hit = next((a for a in aliases if mentions(whole, a)), None)
        if hit is None:
            continue
        tasks = [
            t.id
            for t in plan.tasks
            if any(mentions(f"{t.title}\n{t.text}".lower(), a) for a in aliases)
        ]
        found[slug] = (slug, tasks, "registry")
    for m in _DECLARED.finditer(plan_text):
        for part in re.split(r"[,;/]| and ", m.group(1)):
            name = part.strip(" `*_.").strip()
            slug = slugify(name.lower(), fallback="")
            if not slug or slug in found or _alias_of(slug, registry):
                continue
            tasks = [
                t.id for t in plan.tasks if mentions(f"{t.title}\n{t.text}".lower(), name.lower())
            ]
            found[slug] = (name, tasks, "plan")
    return [Technology(slug, n, tuple(t), s) for slug, (n, t, s) in sorted(found.items())]


def _alias_of(slug: str, registry: Registry) -> bool:
    return any(slug == s or slug in a for s, a in registry.technologies.items())


def load_index(repo: Path) -> dict[str, Any]:
    """Return the store's index (empty when missing or unreadable)."""
    try:
        data = jsonread.parse((store_dir(repo) / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(repo: Path, tech: Technology, *, plan: str, report: Mapping[str, Any]) -> None:
    """Add ``tech``'s new sheet to the index (who wrote it for which plan, from what)."""
    index = load_index(repo)
    index[tech.slug] = {
        "name": tech.name,
        "plan": plan,
        "written_at": now_iso(),
        "sources": list(report.get("sources", [])),
        "summary": str(report.get("summary", "")),
    }
    fsutil.atomic_write(
        paths.writable(repo, store_dir(repo) / INDEX),
        json.dumps(index, indent=2, sort_keys=True) + "\n",
    )
