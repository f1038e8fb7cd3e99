"""Parallel groups of `.ai/plans` files: `Parallel Group` lines and `Parallelization` sections."""

from __future__ import annotations

import re

from planfleet.plan.formats.builder import PlanBuilder
from planfleet.plan.formats.markdown import Section, normalize_key, prose, strip_code, subtree
from planfleet.plan.formats.planmd import phase_refs

_GROUP = re.compile(r"\bgroup\s+([A-Za-z0-9][A-Za-z0-9_-]*)", re.I)
_GROUP_CUT = re.compile(r"\b(after|once|when|depends|requires|waits?|following|then)\b", re.I)


def group_name(value: str) -> str | None:
    """Return the group a value names (``Group A``, else its first word), or None."""
    value = strip_code(value)
    m = _GROUP.search(value)
    name = m.group(1) if m else value.split()[0] if value.split() else ""
    return name or None


def parallel_groups(b: PlanBuilder, secs: list[Section]) -> dict[str, tuple[str, int]]:
    """Return ``phase id -> (group, line)`` from a ``Parallelization`` section."""
    out: dict[str, tuple[str, int]] = {}
    for i, sec in enumerate(secs):
        key = normalize_key(sec.title)
        if not re.search(r"parallel|execution (?:group|order)", key):
            continue
        for ln in prose([ln for s in (sec, *subtree(secs, i)) for ln in s.body]):
            m = _GROUP.search(ln.text)
            if not m:
                continue
            head = _GROUP_CUT.split(ln.text[m.end() :], maxsplit=1)[0]
            for n in phase_refs(head):
                pid = str(n)
                if pid in out and out[pid][0] != m.group(1):
                    b.diag(
                        "warning",
                        f"phase {pid} is in groups {out[pid][0]!r} and "
                        f"{m.group(1)!r}; the first is used",
                        line=ln.number,
                        field="parallelization",
                    )
                    continue
                out.setdefault(pid, (m.group(1), ln.number))
        break
    return out


def by_group(groups: dict[str, tuple[str, int]]) -> dict[str, list[str]]:
    """Return ``group -> phase ids`` in the order the phases were found."""
    out: dict[str, list[str]] = {}
    for pid, (group, _) in groups.items():
        out.setdefault(group, []).append(pid)
    return out
