"""Which tasks start next: dependency-driven, longest remaining path first, no write clashes.

A task may start the moment every one of its dependencies is *merged* (not merely verified:
it must see their code) and a slot is free. Among the ready tasks the one with the longest
remaining weighted path to the end of the plan goes first, so the critical path never waits
behind short side branches. Two tasks whose declared write-sets overlap never run at once
(the same declared sets the gates check a diff against: ``model.Task.writes``).

``policy="waves"`` is the barrier scheduler the reference workflows use (every task of a
topological level must finish before the next level starts); it exists so the benchmark can
measure both in one run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from planfleet.plan import graph, model
from planfleet.plan.declared import overlaps
from planfleet.state.records import CLAIMABLE, State, TaskRecord, ordered_ids

Policy = Literal["dag", "waves"]
Where = Literal["local", "cloud"]
DONE = frozenset({"verified", "skipped"})
DEAD = frozenset({"abandoned", "blocked"})  # a dependency in these never becomes merged
DEFAULT_MAX_ATTEMPTS = 5  # attempts per task when neither the plan nor --max-attempts says


def _pin(runner: str | None) -> Where | None:
    return "local" if runner == "local" else "cloud" if runner == "cloud" else None


def is_merged(record: TaskRecord) -> bool:
    """Return True if dependents of this record may start (its work is on integration).

    A verified task counts once merged; one with no commit was done before planfleet saw
    it (imported from the plan) or is a gate, and is merged by definition.
    """
    if record["status"] == "skipped":
        return True
    if record["status"] != "verified":
        return False
    return bool(record.get("merged_at")) or record.get("commit") is None or record["kind"] == "gate"


def attempt_limit(record: TaskRecord, default_max: int) -> int:
    """Return how many attempts ``record`` may use (its own limit, else the run's)."""
    return int(record.get("max_attempts") or default_max)


def attempts_left(record: TaskRecord, default_max: int) -> bool:
    return int(record["attempts"]) < attempt_limit(record, default_max)


def exhausted(state: State, default_max: int) -> list[str]:
    """Return the nodes that wait to be claimed with no attempts left: they can never start.

    (A soft `state reset` of an abandoned task, a limit lowered since, or a state written
    by a version that counted an attempt its engine's death cut short.)
    """
    tasks = state["tasks"]
    return [
        n
        for n in ordered_ids(state)
        if tasks[n]["status"] in CLAIMABLE and not attempts_left(tasks[n], default_max)
    ]


@dataclass
class Scheduler:
    """The dispatch policy for one plan (pure: it reads a state, it changes nothing)."""

    nodes: dict[str, graph.Node]
    priority: dict[str, float]  # remaining weighted path to the end, per node
    writes: dict[str, frozenset[str]]  # each task's declared set (model.Task.writes)
    max_parallel: int = 3
    max_attempts: int = 5
    policy: Policy = "dag"
    level: dict[str, int] = field(default_factory=dict)  # topological level of each task
    cloud_parallel: int = 0  # remote slots (cloud sessions), filled from the same queue
    pins: dict[str, Where] = field(default_factory=dict)  # tasks the plan pins to one kind

    @classmethod
    def for_plan(
        cls,
        plan: model.Plan,
        g: graph.Graph,
        *,
        max_parallel: int = 3,
        max_attempts: int = 5,
        policy: Policy = "dag",
        cloud_parallel: int = 0,
    ) -> Scheduler:
        levels = {t: i for i, group in enumerate(graph.levels(g)) for t in group}
        return cls(
            nodes=dict(g.nodes),
            priority=graph.remaining_path(g),
            writes={t.id: t.writes for t in plan.tasks},
            max_parallel=max_parallel,
            max_attempts=max_attempts,
            policy=policy,
            level=levels,
            cloud_parallel=cloud_parallel,
            pins={t.id: pin for t in plan.tasks if (pin := _pin(t.runner))},
        )

    def startable(self, state: State, node: str) -> bool:
        """Return True if ``node`` may start now (ignoring slots and write clashes)."""
        record = state["tasks"][node]
        if record["status"] not in CLAIMABLE or not attempts_left(record, self.max_attempts):
            return False
        tasks = state["tasks"]
        return all(d in tasks and is_merged(tasks[d]) for d in record["depends_on"])

    def ready(self, state: State, running: Collection[str]) -> list[str]:
        """Return the startable tasks (gates left out), best first."""
        found = [
            n
            for n in ordered_ids(state)
            if n not in running
            and state["tasks"][n]["kind"] == "task"
            and n in self.nodes
            and self.startable(state, n)
        ]
        if self.policy == "waves":
            found = [n for n in found if self.level.get(n, 0) <= self._open_level(state)]
        position = {n: i for i, n in enumerate(found)}
        return sorted(found, key=lambda n: (-self.priority.get(n, 0.0), position[n]))

    def pick(
        self,
        state: State,
        running: Collection[str],
        *,
        apart: dict[str, set[str]] | None = None,
    ) -> list[str]:
        """Return the tasks to start now in local slots (see :meth:`pick_where`)."""
        local = self.pick_where(state, dict.fromkeys(running, "local"), apart=apart)
        return [n for n, _ in local]

    def pick_where(
        self,
        state: State,
        running: Mapping[str, Where],
        *,
        apart: dict[str, set[str]] | None = None,
    ) -> list[tuple[str, Where]]:
        """Return (task, slot kind) to start now: ready, best first, no write clash.

        ``max_parallel`` local and ``cloud_parallel`` cloud slots fill from one queue; a
        task the plan pins goes only to its kind, any other to a free local slot first.
        ``apart``: tasks each one must not run beside (undeclared overlaps seen earlier).
        """
        free = {
            "local": self.max_parallel - sum(1 for w in running.values() if w == "local"),
            "cloud": self.cloud_parallel - sum(1 for w in running.values() if w == "cloud"),
        }
        busy = [w for r in running if (w := self.writes.get(r))]
        chosen: list[tuple[str, Where]] = []
        for n in self.ready(state, running):
            if free["local"] <= 0 and free["cloud"] <= 0:
                break
            where: Where = self.pins.get(n) or ("local" if free["local"] > 0 else "cloud")
            if free[where] <= 0:
                continue  # its kind of slot is full; another task may fit the other kind
            mine = self.writes.get(n, frozenset())
            if mine and any(overlaps(mine, w) for w in busy):
                continue  # it would edit a file a running task edits; it waits its turn
            if apart and apart.get(n, set()).intersection([*running, *(c for c, _ in chosen)]):
                continue  # they changed the same undeclared files before
            chosen.append((n, where))
            free[where] -= 1
            if mine:
                busy.append(mine)
        return chosen

    def ready_gates(self, state: State, running: Collection[str]) -> list[str]:
        """Return the phase gates whose tasks are all merged and that have not run."""
        return [
            n
            for n in ordered_ids(state)
            if n not in running and state["tasks"][n]["kind"] == "gate" and self.startable(state, n)
        ]

    def _open_level(self, state: State) -> int:
        """Return the lowest topological level that still has a task not finished."""
        tasks = state["tasks"]
        open_levels = [
            lvl
            for n, lvl in self.level.items()
            if n in tasks and tasks[n]["status"] not in DONE | DEAD and not is_merged(tasks[n])
        ]
        return min(open_levels, default=0)


def doomed(state: State) -> list[tuple[str, str]]:
    """Return (node, dead dependency) for every open node that waits on a dead one.

    Dead means abandoned or blocked; the caller blocks these nodes, and calling again
    finds their own dependents (so a chain is blocked one level per call, to a fixpoint).
    """
    tasks = state["tasks"]
    found: list[tuple[str, str]] = []
    for n in ordered_ids(state):
        record = tasks[n]
        if record["status"] not in ("pending", "failed", "timeout"):
            continue
        dead = next(
            (d for d in record["depends_on"] if tasks.get(d, {}).get("status") in DEAD), None
        )
        if dead is not None:
            found.append((n, dead))
    return found


def unfinished(state: State, nodes: Iterable[str] | None = None) -> list[str]:
    """Return the nodes (default: all) that are neither merged nor given up on."""
    tasks = state["tasks"]
    ids = ordered_ids(state) if nodes is None else list(nodes)
    return [n for n in ids if not is_merged(tasks[n]) and tasks[n]["status"] not in DEAD]
