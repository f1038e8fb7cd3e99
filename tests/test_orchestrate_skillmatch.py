"""Stage 3's skill-match cascade, the user-extendable registry, and technology detection."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from conftest import make_repo
from planfleet import schemas
from planfleet.errors import InputError
from planfleet.orchestrate import knowledge, skillmatch
from planfleet.plan import model

SRC = model.Source("plan.md")


def task(tid: str, title: str, text: str = "", **kw: object) -> model.Task:
    return model.Task(tid, title, "1", SRC, text=text, **kw)  # type: ignore[arg-type]


def plan_of(*tasks: model.Task, title: str = "Demo") -> model.Plan:
    return model.Plan("demo", title, "plan-dir", "plan.md", (model.Phase("1", "One", SRC),), tasks)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_the_shipped_registry_fits_its_schema() -> None:
    text = resources.files("planfleet").joinpath("data").joinpath("skill-registry.json")
    assert schemas.first_error("skill_registry", json.loads(text.read_text())) is None


def test_the_cascade_plan_first_then_keywords_then_general_purpose(repo: Path) -> None:
    registry = skillmatch.load_registry(repo)
    named_skill = task("1", "Anything", meta={"skill": "sqlite-fts"})
    named_agent = task("2", "Anything", owner="python-developer")
    by_keyword = task("3", "Add the REST endpoint", "GET /search over http returns JSON")
    nothing = task("4", "Multiply numbers")
    found = {
        a.task: a
        for a in skillmatch.match_plan(
            plan_of(named_skill, named_agent, by_keyword, nothing), registry
        )
    }
    assert (found["1"].name, found["1"].kind, found["1"].source) == ("sqlite-fts", "skill", "plan")
    assert (found["2"].name, found["2"].kind, found["2"].source) == (
        "python-developer",
        "agent",
        "plan",
    )
    assert (found["3"].name, found["3"].source) == ("api-developer", "registry")
    assert set(found["3"].matched) >= {"rest", "endpoint", "http"}
    assert (found["4"].name, found["4"].source) == (skillmatch.FALLBACK_AGENT, "fallback")
    assert found["4"].warning is not None
    assert all(found[t].warning is None for t in "123")


def test_the_fallback_warning_names_keywords_to_add(repo: Path) -> None:
    registry = skillmatch.load_registry(repo)
    a = skillmatch.match_task(task("7", "Dockerise the service"), registry)
    assert a.source == "fallback"
    assert a.warning is not None
    assert "'docker'" in a.warning  # the registry keyword closest to the task's words
    assert "'dockerise'" in a.warning  # or map the task's own word in the registry
    assert ".planfleet/skill-registry.json" in a.warning


def test_whole_words_only(repo: Path) -> None:
    registry = skillmatch.load_registry(repo)
    # "uint" and "prapi" contain "ui" and "api" but are not those words
    a = skillmatch.match_task(task("1", "Parse uint fields of prapi"), registry)
    assert a.source == "fallback"


def test_project_and_user_registries_extend_the_shipped_one_and_win_ties(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    (config / "planfleet").mkdir(parents=True)
    (config / "planfleet" / "skill-registry.json").write_text(
        json.dumps(
            {
                "version": 1,
                "entries": [{"name": "math-whiz", "kind": "skill", "keywords": ["multiply"]}],
            }
        )
    )
    (repo / ".planfleet").mkdir()
    (repo / ".planfleet" / "skill-registry.json").write_text(
        json.dumps(
            {
                "version": 1,
                "entries": [{"name": "our-api-team", "kind": "agent", "keywords": ["endpoint"]}],
                "technologies": [{"name": "bottle", "aliases": ["bottle.py"]}],
            }
        )
    )
    registry = skillmatch.load_registry(repo)
    assert registry.files[-1] == "planfleet (shipped)"
    assert skillmatch.match_task(task("1", "Multiply numbers"), registry).name == "math-whiz"
    # one keyword each: the project's entry comes first and wins the tie
    assert skillmatch.match_task(task("2", "New endpoint"), registry).name == "our-api-team"
    assert registry.technologies["bottle"] == ("bottle.py",)
    assert "sqlite" in registry.technologies  # shipped ones stay


def test_a_malformed_user_registry_is_an_input_error_naming_file_and_field(repo: Path) -> None:
    path = repo / ".planfleet" / "skill-registry.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps({"version": 1, "entries": [{"name": "x", "kind": "robot", "keywords": ["a"]}]})
    )
    with pytest.raises(InputError) as err:
        skillmatch.load_registry(repo)
    assert err.value.file == str(path)
    assert err.value.field == "entries/0/kind"
    path.write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        skillmatch.load_registry(repo)


def test_assignments_reach_the_task_text_the_agent_reads(repo: Path) -> None:
    plan = plan_of(task("1", "REST endpoint"), task("2", "Multiply"))
    registry = skillmatch.load_registry(repo)
    assigned = {a.task: a.to_json() for a in skillmatch.match_plan(plan, registry)}
    out = skillmatch.with_assignments(plan, assigned)
    assert "Use the `api-developer` agent" in out.task("1").text
    assert out.task("2").text == ""  # the general-purpose fallback adds nothing


def test_technologies_come_from_registry_aliases_and_declared_stack_lines(repo: Path) -> None:
    registry = skillmatch.load_registry(repo)
    plan = plan_of(
        task("1", "Search index", "an FTS5 table in the recipes database"),
        task("2", "Web app", "served by Bottle"),
        title="Recipes",
    )
    text = "# Recipes\n\nTech stack: Bottle, SQLite\n\n### Task 1\nFTS5 index\n"
    found = {t.slug: t for t in knowledge.technologies(plan, text, registry)}
    assert set(found) == {"sqlite", "bottle"}
    assert (found["sqlite"].source, found["sqlite"].tasks) == ("registry", ("1",))
    assert (found["bottle"].source, found["bottle"].tasks) == ("plan", ("2",))


def test_a_cheat_sheet_must_be_a_real_document(tmp_path: Path) -> None:
    sheet = tmp_path / "x.md"
    assert "does not exist" in str(knowledge.sheet_problem(sheet, "x"))
    sheet.write_text("short\n")
    assert "characters" in str(knowledge.sheet_problem(sheet, "x"))
    sheet.write_text("no heading here " * 10)
    assert "heading" in str(knowledge.sheet_problem(sheet, "x"))
    sheet.write_text("# x\n\n" + "useful words " * 10)
    assert knowledge.sheet_problem(sheet, "x") is None
