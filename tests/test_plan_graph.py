"""Graph: cycles, unknown ids, duplicates, write conflicts, groups and critical path."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfleet.plan import graph
from planfleet.plan.formats.builder import PlanBuilder
from planfleet.plan.model import Plan


def make_plan(
    spec: dict[str, dict[str, object]],
    phases: dict[str, list[str]] | None = None,
    phase_deps: dict[str, list[str]] | None = None,
) -> Plan:
    """Build a plan from ``{task: {"deps": [...], "est": n, "writes": [...]}}`` literals."""
    b = PlanBuilder(format="test", path=Path("/r/plan.yaml"), repo=Path("/r"), name="p", title="p")
    phases = phases or {"ph": list(spec)}
    for line, (pid, _tasks) in enumerate(phases.items(), 1):
        b.add_phase(pid, pid, line=line, depends_on=tuple((phase_deps or {}).get(pid, ())))
    for line, (tid, fields) in enumerate(spec.items(), 10):
        phase = next(p for p, ts in phases.items() if tid in ts)
        b.add_task(
            tid,
            tid,
            phase=phase,
            line=line,
            depends_on=tuple(fields.get("deps", ())),  # type: ignore[arg-type]
            estimate=fields.get("est"),
            files_modify=tuple(fields.get("writes", ())),
        )  # type: ignore[arg-type]
    return b.build()


def messages(g: graph.Graph) -> list[str]:
    return [d.message for d in g.diagnostics]


def test_cycle_is_named_in_order() -> None:
    plan = make_plan({"a": {"deps": ["c"]}, "b": {"deps": ["a"]}, "c": {"deps": ["b"]}})
    g = graph.build(plan)
    assert messages(g) == ["dependency cycle: a -> b -> c -> a (each must finish before the next)"]
    assert g.diagnostics[0].line == 10


def test_self_dependency() -> None:
    g = graph.build(make_plan({"a": {"deps": ["a"]}}))
    assert messages(g) == ["task 'a' depends on itself"]


def test_unknown_dependency_suggests_close_id() -> None:
    g = graph.build(make_plan({"parser": {}, "lexer": {"deps": ["parsr"]}}))
    (d,) = g.diagnostics
    assert d.message == "task 'lexer' depends on unknown id 'parsr'"
    assert d.hint == "did you mean 'parser'?"
    assert d.line == 11


def test_unknown_phase_dependency() -> None:
    plan = make_plan({"a": {}}, phases={"one": ["a"]}, phase_deps={"one": ["zero"]})
    assert messages(graph.build(plan)) == ["phase 'one' depends on unknown id 'zero'"]


def test_duplicate_task_id_is_an_error_diagnostic() -> None:
    b = PlanBuilder(format="t", path=Path("/r/p.md"), repo=Path("/r"), name="p", title="p")
    b.add_phase("1", "one", line=1)
    b.add_task("a", "first", phase="1", line=2)
    b.add_task("a", "second", phase="1", line=5)
    plan = b.build()
    (d,) = plan.diagnostics
    assert (d.level, d.line, d.message) == (
        "error",
        5,
        "duplicate task id 'a' (first defined at p.md:2)",
    )
    assert [t.title for t in plan.tasks] == ["first"]


def test_phase_dependencies_go_through_gates() -> None:
    plan = make_plan(
        {"a": {}, "b": {}, "c": {}},
        phases={"one": ["a", "b"], "two": ["c"]},
        phase_deps={"two": ["one"]},
    )
    g = graph.build(plan)
    assert g.deps["c"] == ("one:gate",)
    assert g.deps["one:gate"] == ("a", "b")
    assert graph.levels(g) == [["a", "b"], ["c"]]


def test_task_may_depend_on_a_phase() -> None:
    plan = make_plan({"a": {}, "c": {"deps": ["one"]}}, phases={"one": ["a"], "two": ["c"]})
    assert graph.build(plan).deps["c"] == ("one:gate",)


def test_critical_path_uses_estimates() -> None:
    plan = make_plan(
        {
            "a": {"est": 1},
            "b": {"est": 5, "deps": ["a"]},
            "c": {"est": 2, "deps": ["a"]},
            "d": {"est": 1, "deps": ["b", "c"]},
            "e": {"est": 3},
        }
    )
    length, path = graph.critical_path(graph.build(plan))
    assert (length, path) == (7.0, ["a", "b", "d"])


def test_critical_path_default_weight_is_one() -> None:
    plan = make_plan({"a": {}, "b": {"deps": ["a"]}, "c": {}})
    assert graph.critical_path(graph.build(plan)) == (2.0, ["a", "b"])


def test_remaining_path_ranks_long_chains_first() -> None:
    plan = make_plan({"x": {"est": 1}, "y": {"est": 4, "deps": ["x"]}, "z": {"est": 2}})
    rest = graph.remaining_path(graph.build(plan))
    assert rest["x"] == 5.0
    assert rest["z"] == 2.0


def test_topo_order_is_stable_plan_order() -> None:
    plan = make_plan({"c": {}, "a": {"deps": ["c"]}, "b": {}})
    order = [n for n in graph.topo_order(graph.build(plan)) if ":" not in n]
    assert order == ["c", "a", "b"]


def test_overlapping_writes_warn_only_when_parallel() -> None:
    plan = make_plan(
        {
            "a": {"writes": ["x.py"]},
            "b": {"writes": ["x.py", "y.py"]},
            "c": {"writes": ["y.py"], "deps": ["b"]},
        }
    )
    g = graph.build(plan)
    (d,) = g.diagnostics
    assert d.level == "warning"
    assert d.message == "tasks 'a' and 'b' may run in parallel but both write x.py"


@pytest.mark.parametrize("n", [200])
def test_long_chain_has_no_recursion_limit(n: int) -> None:
    spec = {f"t{i}": {"deps": [f"t{i - 1}"]} if i else {} for i in range(n)}
    g = graph.build(make_plan(spec))  # type: ignore[arg-type]
    assert graph.critical_path(g)[0] == n
    assert len(graph.levels(g)) == n
