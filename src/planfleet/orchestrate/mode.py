"""Classic or team mode per phase, by rule, and whether team mode is available at all.

The rule (first match wins): ``--team``/``--no-team`` force it; 1-2 tasks: classic;
low or medium confidence with 3+ tasks: team; 4+ tasks that share files or depend on each
other: team; otherwise (3+ independent tasks, or 3 coupled tasks of high confidence): classic.

Team mode would use Claude Code's agent teams. The Claude Code reference planfleet is built
against (2.1.328) documents no interface to start or steer an agent team from ``claude -p``
(only a ``TeammateIdle`` hook event), so planfleet treats teams as unavailable: a phase that
the rule puts in team mode runs in classic mode, with a warning that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from planfleet.plan import model

TEAM_UNAVAILABLE = (
    "agent teams are unavailable: the Claude Code 2.1.328 reference documents no way to "
    "start or steer an agent team from `claude -p`"
)


@dataclass(frozen=True)
class ModeChoice:
    """The mode the rule picked, the mode that runs, and why."""

    wanted: str  # classic | team
    mode: str  # what actually runs
    reason: str
    warning: str | None = None


def rule(tasks: int, coupled: bool, confidence: str | None, force: bool | None) -> tuple[str, str]:
    """Return ``(mode, reason)`` for a phase; ``force`` is True (--team), False (--no-team)."""
    if force is True:
        return "team", "--team"
    if force is False:
        return "classic", "--no-team"
    if tasks <= 2:
        return "classic", f"{tasks} task(s)"
    if confidence in ("low", "medium"):
        return "team", f"{confidence} confidence with {tasks} tasks"
    if tasks >= 4 and coupled:
        return "team", f"{tasks} tasks sharing files or depending on each other"
    if coupled:
        return "classic", f"{tasks} coupled tasks, {confidence or 'unstated'} confidence"
    return "classic", f"{tasks} independent tasks"


def coupled(plan: model.Plan, phase: model.Phase) -> bool:
    """Return True if tasks of ``phase`` share files to write or depend on each other."""
    tasks = plan.tasks_of(phase.id)
    ids = {t.id for t in tasks}
    if any(d in ids for t in tasks for d in t.depends_on):
        return True
    seen: set[str] = set()
    for t in tasks:
        if seen & t.writes:
            return True
        seen |= t.writes
    return False


def confidence(plan: model.Plan, phase: model.Phase) -> str | None:
    """Return the phase's confidence, else the plan's (high/medium/low), else None."""
    for value in (phase.meta.get("confidence"), plan.meta.get("confidence")):
        if isinstance(value, str) and value.lower() in ("high", "medium", "low"):
            return value.lower()
    return None


def teams_available() -> tuple[bool, str]:
    """Return whether agent teams can be used, and why not."""
    return False, TEAM_UNAVAILABLE


def select(plan: model.Plan, phase: model.Phase, force: bool | None) -> ModeChoice:
    """Return the mode of ``phase``: the rule's choice, then team availability."""
    count = len(plan.tasks_of(phase.id))
    wanted, reason = rule(count, coupled(plan, phase), confidence(plan, phase), force)
    if wanted == "team":
        ok, why = teams_available()
        if not ok:
            return ModeChoice(
                "team",
                "classic",
                reason,
                f"phase {phase.id} would run in team mode ({reason}), but {why}; it runs "
                "in classic mode (independent task agents)",
            )
    return ModeChoice(wanted, wanted, reason)
