"""The dependency DAG of tasks and phase gates: validation, order, groups, critical path."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from planfleet.plan.model import Diagnostic, Plan, gate_id, is_gate

DEFAULT_ESTIMATE = 1.0
MAX_SUGGESTIONS = 20  # unknown ids that get a "did you mean" hint


@dataclass(frozen=True)
class Node:
    id: str
    kind: Literal["task", "gate"]
    phase: str
    weight: float  # estimated duration; gates weigh 0


@dataclass
class Graph:
    """Nodes in plan order and, per node, the nodes it waits for."""

    nodes: dict[str, Node] = field(default_factory=dict)
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node, prereqs in self.deps.items():
            for p in prereqs:
                out[p].append(node)
        return out

    @property
    def tasks(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.kind == "task"]


def build(plan: Plan) -> Graph:
    """Return the graph of ``plan``; problems are collected in ``graph.diagnostics``.

    Task dependencies may name tasks or phases (a phase means its gate). Tasks of a phase
    wait for the gates of the phases it depends on; a phase's gate waits for its tasks.
    """
    g = Graph()
    phase_list = [p.id for p in plan.phases]
    phase_ids, task_ids = set(phase_list), {t.id for t in plan.tasks}
    known = _Known([t.id for t in plan.tasks] + phase_list)
    for t in plan.tasks:
        g.nodes[t.id] = Node(t.id, "task", t.phase, _weight(t.estimate))
    for p in plan.phases:
        g.nodes[gate_id(p.id)] = Node(gate_id(p.id), "gate", p.id, 0.0)

    phase_deps: dict[str, list[str]] = {}
    for p in plan.phases:
        resolved = []
        for dep in p.depends_on:
            if dep in phase_ids and dep != p.id:
                resolved.append(gate_id(dep))
            elif dep == p.id:
                g.diagnostics.append(
                    _diag(f"phase {p.id!r} depends on itself", p.source, "depends_on")
                )
            else:
                g.diagnostics.append(_unknown("phase", p.id, dep, _Known(phase_list), p.source))
        phase_deps[p.id] = resolved
        g.deps[gate_id(p.id)] = tuple(p.task_ids)

    for t in plan.tasks:
        resolved = list(phase_deps.get(t.phase, ()))
        for dep in t.depends_on:
            if dep == t.id:
                g.diagnostics.append(
                    _diag(f"task {t.id!r} depends on itself", t.source, "depends_on")
                )
            elif dep in g.nodes and not is_gate(dep):
                resolved.append(dep)
            elif dep in phase_ids:
                if dep == t.phase:
                    g.diagnostics.append(
                        _diag(
                            f"task {t.id!r} depends on its own phase {dep!r}",
                            t.source,
                            "depends_on",
                        )
                    )
                else:
                    resolved.append(gate_id(dep))
            else:
                g.diagnostics.append(_unknown("task", t.id, dep, known, t.source))
        g.deps[t.id] = tuple(dict.fromkeys(resolved))

    cycle = find_cycle(g)
    if cycle:
        shown = " -> ".join(cycle)
        first = plan.task(cycle[0]).source if cycle[0] in task_ids else None
        g.diagnostics.append(
            Diagnostic(
                "error",
                f"dependency cycle: {shown} (each must finish before the next)",
                first.file if first else None,
                first.line if first else None,
                "depends_on",
                "remove one of these dependencies",
            )
        )
    else:
        for a, b, files in write_conflicts(plan, g):
            src = plan.task(a).source
            g.diagnostics.append(
                Diagnostic(
                    "warning",
                    f"tasks {a!r} and {b!r} may run in parallel but both write "
                    + ", ".join(sorted(files)[:5]),
                    src.file,
                    src.line,
                    "files",
                    "they will not run at the same time; add a dependency to fix their order",
                )
            )
    return g


def _weight(estimate: float | None) -> float:
    return DEFAULT_ESTIMATE if estimate is None else float(estimate)


def _diag(message: str, source: object, field: str) -> Diagnostic:
    file = getattr(source, "file", None)
    line = getattr(source, "line", None)
    return Diagnostic("error", message, file, line, field)


class _Known:
    """The ids an unknown one is compared with, and how many suggestions were made."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.asked = 0


def _unknown(what: str, owner: str, dep: str, known: _Known, source: object) -> Diagnostic:
    # A close match costs a comparison with every id: only the first few unknown ids get
    # one, so a plan with thousands of them is still read in linear time.
    known.asked += 1
    close = (
        difflib.get_close_matches(dep, known.ids, n=1, cutoff=0.6)
        if known.asked <= MAX_SUGGESTIONS
        else []
    )
    hint = f"did you mean {close[0]!r}?" if close else "check the id against the plan"
    d = _diag(f"{what} {owner!r} depends on unknown id {dep!r}", source, "depends_on")
    return Diagnostic(d.level, d.message, d.file, d.line, d.field, hint)


def find_cycle(g: Graph) -> list[str] | None:
    """Return one cycle as ``[a, b, ..., a]``, or None (iterative DFS; plan order)."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(g.nodes, white)
    for root in g.nodes:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, i = stack[-1]
            prereqs = g.deps.get(node, ())
            if i < len(prereqs):
                stack[-1] = (node, i + 1)
                nxt = prereqs[i]
                if color.get(nxt, black) == grey:
                    cyc = [*path[path.index(nxt) :], nxt]
                    return list(reversed(cyc))  # show it in "a -> needs b" reading order
                if color.get(nxt) == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def topo_order(g: Graph) -> list[str]:
    """Return a stable topological order (plan order among ready nodes). Requires no cycle."""
    index = {n: i for i, n in enumerate(g.nodes)}
    waiting = {n: len(set(g.deps.get(n, ()))) for n in g.nodes}
    dependents = g.dependents()
    ready = [(index[n], n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for d in dict.fromkeys(dependents[n]):
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (index[d], d))
    return order


def levels(g: Graph) -> list[list[str]]:
    """Return the tasks grouped by topological level (gates pass through, adding no level)."""
    depth: dict[str, int] = {}
    for n in topo_order(g):
        base = max((depth[p] for p in g.deps.get(n, ())), default=0)
        depth[n] = base + (1 if g.nodes[n].kind == "task" else 0)
    groups: dict[int, list[str]] = {}
    for n in g.nodes:
        if g.nodes[n].kind == "task" and n in depth:
            groups.setdefault(depth[n], []).append(n)
    return [groups[k] for k in sorted(groups)]


def remaining_path(g: Graph, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Return, per node, the longest weighted path from it to the end (itself included)."""
    w = {n: (weights or {}).get(n, node.weight) for n, node in g.nodes.items()}
    dependents = g.dependents()
    rest: dict[str, float] = {}
    for n in reversed(topo_order(g)):
        rest[n] = w[n] + max((rest[d] for d in dependents[n]), default=0.0)
    return rest


def critical_path(g: Graph, weights: Mapping[str, float] | None = None) -> tuple[float, list[str]]:
    """Return the length of the longest weighted path and its tasks (gates left out)."""
    rest = remaining_path(g, weights)
    if not rest:
        return 0.0, []
    dependents = g.dependents()
    starts = [n for n in g.nodes if not g.deps.get(n) and n in rest]
    node: str | None = max(starts, key=lambda n: rest[n]) if starts else None
    length = rest[node] if node else 0.0
    path = []
    while node is not None:
        if g.nodes[node].kind == "task":
            path.append(node)
        nxt = [d for d in dependents[node] if d in rest]
        node = max(nxt, key=lambda d: rest[d]) if nxt else None
    return length, path


def ancestors(g: Graph) -> dict[str, int]:
    """Return, per node, a bitset (int) of every node it transitively waits for."""
    bit = {n: 1 << i for i, n in enumerate(g.nodes)}
    anc: dict[str, int] = {}
    for n in topo_order(g):
        acc = 0
        for p in g.deps.get(n, ()):
            acc |= anc[p] | bit[p]
        anc[n] = acc
    return anc


def write_conflicts(plan: Plan, g: Graph) -> list[tuple[str, str, frozenset[str]]]:
    """Return pairs of tasks that could run at once yet declare overlapping write-sets."""
    by_file: dict[str, list[str]] = {}
    for t in plan.tasks:
        for f in t.writes:
            by_file.setdefault(f, []).append(t.id)
    shared = {f: owners for f, owners in by_file.items() if len(owners) > 1}
    if not shared:  # the common case: no file has two writers, no ancestry to work out
        return []
    anc = ancestors(g)
    bit = {n: 1 << i for i, n in enumerate(g.nodes)}
    pairs: dict[tuple[str, str], set[str]] = {}
    for f, owners in shared.items():
        for i, a in enumerate(owners):
            for b in owners[i + 1 :]:
                ordered = anc[a] & bit[b] or anc[b] & bit[a]
                if not ordered:
                    pairs.setdefault((a, b), set()).add(f)
    return [(a, b, frozenset(fs)) for (a, b), fs in pairs.items()]
