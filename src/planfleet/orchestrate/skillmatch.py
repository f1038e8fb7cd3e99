"""Stage 3: which skill or agent does each task — a three-step cascade.

1. the skill or agent the plan names for the task (``Skill:``/``Agent:``, a phase owner);
2. the best keyword match in the skill registry: the one shipped in
   ``planfleet/data/skill-registry.json``, extended by ``~/.config/planfleet/`` and
   ``.planfleet/skill-registry.json`` (the project's entries win a tie, then the user's);
3. the general-purpose agent, with a warning naming keywords to add.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from planfleet import fsutil, jsonread, paths, schemas
from planfleet.errors import InputError
from planfleet.plan import model

REGISTRY_NAME = "skill-registry.json"
FALLBACK_AGENT = "general-purpose"
_WORD = re.compile(r"[a-z][a-z0-9.+#-]{3,}")
# Words too common to suggest as keywords.
_STOP = frozenset(
    (
        "with",
        "from",
        "into",
        "that",
        "this",
        "than",
        "then",
        "when",
        "what",
        "each",
        "only",
        "also",
        "more",
        "most",
        "must",
        "have",
        "make",
        "adds",
        "done",
        "task",
        "phase",
        "step",
        "using",
        "onto",
        "over",
        "under",
    )
)


@dataclass(frozen=True)
class Entry:
    """One registry entry: a skill or agent and the keywords that select it."""

    name: str
    kind: str  # skill | agent
    keywords: tuple[str, ...]
    source: str  # the registry file it came from
    description: str = ""


@dataclass(frozen=True)
class Registry:
    """The merged registry: entries in precedence order and technology aliases."""

    entries: tuple[Entry, ...]
    technologies: Mapping[str, tuple[str, ...]]
    files: tuple[str, ...]

    def keywords(self) -> list[str]:
        return sorted({k for e in self.entries for k in e.keywords})


@dataclass(frozen=True)
class Assignment:
    """Who does a task, which step of the cascade decided it, and a warning if it fell through."""

    task: str
    name: str
    kind: str  # skill | agent
    source: str  # plan | registry | fallback
    matched: tuple[str, ...] = ()
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, ())}
        out["matched"] = list(self.matched)
        return out


def registry_files(repo: Path) -> list[Path]:
    """Return the user-extendable registries that exist, highest precedence first."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    found = [paths.planfleet_dir(repo) / REGISTRY_NAME, config / "planfleet" / REGISTRY_NAME]
    return [p for p in found if p.is_file()]


def load_registry(repo: Path) -> Registry:
    """Return the merged registry; InputError naming the file for a malformed one."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in registry_files(repo):
        docs.append((str(path), _parse(fsutil.read_text(path), str(path))))
    shipped = resources.files("planfleet").joinpath("data").joinpath(REGISTRY_NAME)
    docs.append(("planfleet (shipped)", _parse(shipped.read_text(encoding="utf-8"), "shipped")))
    entries: list[Entry] = []
    techs: dict[str, tuple[str, ...]] = {}
    for source, doc in docs:
        for e in doc.get("entries", []):
            keywords = tuple(k.strip().lower() for k in e["keywords"])
            entries.append(Entry(e["name"], e["kind"], keywords, source, e.get("description", "")))
        for t in doc.get("technologies", []):
            aliases = tuple(a.strip().lower() for a in t["aliases"])
            techs[t["name"]] = tuple(dict.fromkeys([*techs.get(t["name"], ()), *aliases]))
    return Registry(tuple(entries), techs, tuple(s for s, _ in docs))


def _parse(text: str, where: str) -> dict[str, Any]:
    doc = jsonread.loads(text, file=where)
    error = schemas.first_error("skill_registry", doc)
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise InputError(
            f"skill registry does not match its schema: {error.message}",
            file=where,
            field=at,
            hint='entries look like {"name": "db-expert", "kind": "agent", "keywords": ["sql"]}',
        )
    return dict(doc)


def mentions(text: str, phrase: str) -> bool:
    """Return True if ``phrase`` occurs in ``text`` (lower case) as whole words."""
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text) is not None


def match_task(task: model.Task, registry: Registry) -> Assignment:
    """Return the task's skill or agent by the three-step cascade."""
    skill = str(task.meta.get("skill") or "").strip()
    if skill:
        return Assignment(task.id, skill, "skill", "plan")
    agent = str(task.meta.get("agent") or task.owner or "").strip()
    if agent:
        return Assignment(task.id, agent, "agent", "plan")
    text = f"{task.title}\n{task.text}".lower()
    best: tuple[int, Entry, list[str]] | None = None
    for entry in registry.entries:
        hits = [k for k in entry.keywords if mentions(text, k)]
        if hits and (best is None or len(hits) > best[0]):
            best = (len(hits), entry, hits)
    if best is not None:
        return Assignment(task.id, best[1].name, best[1].kind, "registry", tuple(best[2]))
    return Assignment(task.id, FALLBACK_AGENT, "agent", "fallback", warning=_advice(task, registry))


def _advice(task: model.Task, registry: Registry) -> str:
    """Return the warning for a task nothing matched: which keywords would make it match."""
    words = [w for w in dict.fromkeys(_WORD.findall(task.title.lower())) if w not in _STOP]
    known = registry.keywords()
    near: list[str] = []
    for w in words:
        near.extend(
            k for k in difflib.get_close_matches(w, known, n=2, cutoff=0.7) if k not in near
        )
    if not near:  # nothing close: name a keyword of each of a few registry entries
        near = [e.keywords[0] for e in registry.entries[:5]]
    shown_words = ", ".join(repr(w) for w in words[:4]) or "its main words"
    return (
        f"task {task.id} ({task.title}) matched no skill or agent and runs as the "
        f"{FALLBACK_AGENT} agent; add a keyword such as {', '.join(repr(k) for k in near[:4])} "
        f"to its description, or map {shown_words} to a skill in .planfleet/{REGISTRY_NAME}"
    )


def match_plan(plan: model.Plan, registry: Registry) -> list[Assignment]:
    """Return an assignment for every task of ``plan``, in plan order."""
    return [match_task(t, registry) for t in plan.tasks]


def with_assignments(plan: model.Plan, assigned: Mapping[str, Mapping[str, Any]]) -> model.Plan:
    """Return ``plan`` with each task's skill or agent named in its text (what its agent reads)."""
    tasks = []
    for t in plan.tasks:
        a = assigned.get(t.id)
        if not a or a.get("source") == "fallback":
            tasks.append(t)
            continue
        hint = (
            f"## Specialist\n\nUse the `{a['name']}` {a['kind']} for this task if it is "
            "available to you."
        )
        meta = {**t.meta, "assigned": dict(a)}
        tasks.append(dataclasses.replace(t, text=f"{t.text}\n\n{hint}".strip(), meta=meta))
    return dataclasses.replace(plan, tasks=tuple(tasks))


def warnings_of(assignments: Sequence[Assignment]) -> list[str]:
    return [a.warning for a in assignments if a.warning]


def summary(assignments: Iterable[Assignment]) -> dict[str, int]:
    """Return how many tasks each step of the cascade decided."""
    counts = {"plan": 0, "registry": 0, "fallback": 0}
    for a in assignments:
        counts[a.source] += 1
    return counts
