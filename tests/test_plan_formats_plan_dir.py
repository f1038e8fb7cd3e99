"""The plan-directory reader: task_plan.md / manifest.md plus the spec files they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats_support import brief, copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats.plan_dir import READER
from planfleet.plan.model import Diagnostic, Source

SEARCH = "docs/plans/recipe-search"
TP = f"{SEARCH}/task_plan.md"


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_task_plan_full_model(tmp_path: Path, crlf: bool) -> None:
    repo = copy_fixture("plan-dir", "recipes", tmp_path, crlf=crlf)
    plan = READER.read(repo / SEARCH, repo=repo)
    src = lambda line: Source(TP, line)  # noqa: E731
    index_spec = (f"{SEARCH}/specs/index.md",)

    assert (plan.name, plan.title, plan.format) == (
        "recipe-search",
        "Task Plan: Recipe search",
        "plan-dir",
    )
    assert dict(plan.meta) == {
        "goal": "full-text search over the recipe box, with filters for diet and cooking time.",
        "mode": "task-based",
        "confidence": "medium",
    }
    assert [brief(p) for p in plan.phases] == [
        {"id": "1", "title": "Index", "source": src(7), "number": 1, "task_ids": ("1.1", "1.2"),
         "meta": {"confidence": "high"}},
        {"id": "2", "title": "Query API", "source": src(28), "number": 2, "depends_on": ("1",),
         "acceptance": ("results are ranked by bm25", "an empty query returns 400"),
         "gate_commands": ("pytest tests/search -q",), "task_ids": ("2.1", "2.2", "2.3"),
         "meta": {"confidence": "low"}},
        {"id": "3", "title": "Docs", "source": src(47), "number": 3, "depends_on": ("2",),
         "task_ids": ("3",)},
    ]  # fmt: skip
    assert [brief(t) for t in plan.tasks] == [
        {"id": "1.1", "title": "Search index schema", "phase": "1", "source": src(10),
         "files_create": ("recipes/search/index.py",), "files_modify": ("recipes/models.py",),
         "acceptance": ("an FTS5 table mirrors title, ingredients and steps",),
         "verify": ("pytest tests/search/test_index.py -q",), "spec_files": index_spec,
         "meta": {"skill": "sqlite-fts"}},
        {"id": "1.2", "title": "Backfill command", "phase": "1", "source": src(17),
         "owner": "python-developer", "depends_on": ("1.1",),
         "files_create": ("recipes/commands/backfill.py",),
         "acceptance": ("running it twice leaves the same rows",
                        "prints the number of indexed recipes"),
         "spec_files": index_spec, "status": "done", "meta": {"agent": "python-developer"}},
        {"id": "2.1", "title": "Parse the query string into terms and filters", "phase": "2",
         "source": src(33), "files_create": ("recipes/search/query.py",),
         "spec_files": (f"{SEARCH}/specs/query.md",), "status": "done"},
        {"id": "2.2", "title": "GET /search returns ranked results", "phase": "2",
         "source": src(36), "depends_on": ("2.1",), "files_modify": ("recipes/api.py",),
         "meta": {"skill": "http-api"}},
        {"id": "2.3", "title": "Diet filter (vegan, vegetarian, gluten-free)", "phase": "2",
         "source": src(40)},
        {"id": "3", "title": "Docs", "phase": "3", "source": src(47)},
    ]  # fmt: skip
    assert plan.diagnostics == (
        Diagnostic("error", "spec file specs/diet-filters.md not found", TP, 41, "spec",
                   f"looked in {SEARCH}/ and the repository root"),
    )  # fmt: skip
    assert plan.task("2.1").text == (
        "- [x] 2.1 Parse the query string into terms and filters\n  - Spec: specs/query.md\n"
        "  - Files: recipes/search/query.py (new)\n\n"
        f"## Spec: {SEARCH}/specs/query.md\n\n# Query syntax\n\nWords are ANDed; "
        "`diet:vegan` and `time:<30` are filters; quotes make a phrase."
    )
    assert plan.task("3").text == (
        "## Phase 3: Docs\nThe README gets a search section; no spec needed."
    )


def test_manifest_with_linked_specs(tmp_path: Path) -> None:
    repo = copy_fixture("plan-dir", "recipes", tmp_path)
    plan = READER.read(repo / "plans/csv-export/manifest.md", repo=repo)
    m = "plans/csv-export/manifest.md"
    assert (plan.name, plan.title, dict(plan.meta)) == (
        "csv-export",
        "CSV export — manifest",
        {"mode": "spec-driven"},
    )
    assert [(p.id, p.depends_on, p.task_ids) for p in plan.phases] == [
        ("1", (), ("1.1", "1.2")),
        ("2", ("1",), ("2.1",)),
    ]
    assert [brief(t, skip=("text", "phase")) for t in plan.tasks] == [
        {"id": "1.1", "title": "Exporter core", "source": Source(m, 6),
         "spec_files": ("plans/csv-export/specs/exporter.md",)},
        {"id": "1.2", "title": "CLI flag", "source": Source(m, 7),
         "spec_files": ("plans/csv-export/specs/cli-flag.md",)},
        {"id": "2.1", "title": "Progress bar for large boxes", "source": Source(m, 10),
         "spec_files": ("plans/csv-export/specs/progress.md",)},
    ]  # fmt: skip
    assert plan.task("1.2").text == (
        "2. [CLI flag](specs/cli-flag.md)\n\n## Spec: plans/csv-export/specs/cli-flag.md\n\n"
        "# CLI flag\n\nAdd `recipes export --csv PATH`; refuse to overwrite without `--force`."
    )
    assert plan.diagnostics == ()


def test_detect_and_discover(tmp_path: Path) -> None:
    repo = copy_fixture("plan-dir", "recipes", tmp_path)
    assert READER.detect(repo / SEARCH)
    assert READER.detect(repo / TP)
    assert READER.detect(repo / "plans/csv-export")
    assert not READER.detect(repo / f"{SEARCH}/specs")
    assert not READER.detect(repo / f"{SEARCH}/specs/index.md")
    (repo / "notes").mkdir()
    (repo / "notes/manifest.md").write_text("# Shipping manifest\n- 3 boxes\n", encoding="utf-8")
    assert not READER.detect(repo / "notes")  # a manifest.md without phases or tasks
    (repo / ".spec/plans/x").mkdir(parents=True)
    (repo / ".spec/plans/x/task_plan.md").write_text("## Phase 1\n", encoding="utf-8")
    assert not READER.detect(repo / ".spec/plans/x")
    assert sorted(p.relative_to(repo).as_posix() for p in READER.discover(repo)) == [
        SEARCH,
        "plans/csv-export",
    ]


def _dir(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "plan"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def test_flat_plan_and_task_plan_preferred_over_manifest(tmp_path: Path) -> None:
    folder = _dir(tmp_path, {
        "task_plan.md": (
            "# Flat\nAgent: backend-dev\n\n### Task 1: First\nFiles: a.py\n"
            "### Task 2: Second\nDepends on: Task 1\nConfidence: shaky\nStatus: blocked\n"
        ),
        "manifest.md": "## Phase 1: ignored\n1. never read\n",
    })  # fmt: skip
    plan = READER.read(folder, repo=tmp_path)
    assert [(p.id, p.title, p.owner, p.task_ids) for p in plan.phases] == [
        ("1", "Flat", "backend-dev", ("1.1", "1.2"))
    ]
    assert [brief(t, skip=("text", "phase")) for t in plan.tasks] == [
        {"id": "1.1", "title": "First", "source": Source("plan/task_plan.md", 4),
         "owner": "backend-dev", "files_modify": ("a.py",)},
        {"id": "1.2", "title": "Second", "source": Source("plan/task_plan.md", 6),
         "owner": "backend-dev", "depends_on": ("1.1",), "status": "blocked",
         "meta": {"confidence": "shaky"}},
    ]  # fmt: skip


def test_phase_confidence_and_specs_outside_the_repo(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("# not in the repo\n", encoding="utf-8")
    repo = tmp_path / "repo"
    folder = _dir(repo, {
        "task_plan.md": (
            "# P\n## Phase 1: One\nConfidence: sure\n- [ ] Only task\n"
            "  - Spec: ../../secret.md\n  - Spec: `README.md`\n"
        ),
    })  # fmt: skip
    (repo / "README.md").write_text("# Repo readme\n", encoding="utf-8")
    plan = READER.read(folder, repo=repo)
    assert plan.task("1.1").spec_files == ("README.md",)
    assert plan.task("1.1").text.endswith("## Spec: README.md\n\n# Repo readme")
    assert [(d.level, d.message, d.line) for d in plan.diagnostics] == [
        ("warning", "unknown confidence 'sure'", 3),
        ("error", "spec file ../../secret.md is outside the repository", 5),
    ]


def test_no_phases_or_tasks_is_an_error(tmp_path: Path) -> None:
    folder = _dir(tmp_path, {"task_plan.md": "# Ideas\n\n- maybe a search box\n- dark mode\n"})
    with pytest.raises(InputError) as exc:
        READER.read(folder, repo=tmp_path)
    assert str(exc.value) == (
        "plan/task_plan.md: no phases or tasks found: expected '## Phase 1: Title' headings "
        "or '### Task 1.1: Title' tasks\n  hint: see the plan-dir format in the README"
    )


def test_folder_without_plan_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        READER.read(tmp_path, repo=tmp_path)
    assert (exc.value.message, exc.value.file) == (
        "no task_plan.md or manifest.md in this folder",
        str(tmp_path),
    )


def test_bad_task_id_is_an_error_with_line(tmp_path: Path) -> None:
    folder = _dir(
        tmp_path, {"task_plan.md": "## Phase 1: A\n### Task 1.1: ok\n### Task 1.1: again\n"}
    )
    plan = READER.read(folder, repo=tmp_path)
    assert [d.message for d in plan.errors] == [
        "duplicate task id '1.1' (first defined at plan/task_plan.md:2)"
    ]
    long = "1." + "9" * 80
    (folder / "task_plan.md").write_text(f"## Phase 1: A\n- [ ] {long} x\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        READER.read(folder, repo=tmp_path)
    assert (exc.value.message, exc.value.file, exc.value.line) == (
        f"task id {long!r} is longer than 64 characters",
        "plan/task_plan.md",
        2,
    )
