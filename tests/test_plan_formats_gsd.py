"""The gsd reader: .planning/phases/<NN-slug>/<NN>-<MM>-PLAN.md, frontmatter, <task> blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats_support import copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats import load_plan
from planfleet.plan.formats.gsd import READER
from planfleet.plan.model import Plan, Source

PHASES = ".planning/phases"


@pytest.fixture
def tidepool(tmp_path: Path) -> Path:
    return copy_fixture("gsd", "tidepool", tmp_path)


@pytest.fixture
def harbor(tmp_path: Path) -> Path:
    return copy_fixture("gsd", "harbor", tmp_path, crlf=True)  # saved on Windows, by hand


def read(repo: Path, rel: str = ".planning") -> Plan:
    return READER.read(repo / rel, repo=repo)


def diagnostics(plan: Plan) -> list[str]:
    return [d.render() for d in plan.diagnostics]


def test_planning_root_phases_in_order(tidepool: Path) -> None:
    plan = read(tidepool)
    assert (plan.name, plan.title, plan.format) == ("tidepool", "Tidepool", "gsd")
    assert [(p.id, p.title, p.number, p.depends_on, p.task_ids) for p in plan.phases] == [
        ("01-foundation", "foundation", 1, (), ("01-01", "01-02")),
        ("02-auth", "auth", 2, ("01-foundation",), ("02-01", "02-02", "02-03")),
        ("03-dashboard", "dashboard", 3, ("02-auth",), ("03-01",)),
    ]
    assert plan.phases[1].source == Source(f"{PHASES}/02-auth", None)
    assert diagnostics(plan) == []


def test_plan_fields(tidepool: Path) -> None:
    plan = read(tidepool)
    first = plan.task("01-01")
    assert first.title == "Create the database schema and a shared Prisma client."
    assert first.phase == "01-foundation"
    assert first.source == Source(f"{PHASES}/01-foundation/01-01-PLAN.md", 1)
    assert first.files_create == ("prisma/schema.prisma", "src/lib/db.ts")  # must_haves.artifacts
    assert first.files_modify == ()
    assert first.acceptance == (
        "A sighting is stored with species, location and time",
        "Schema validates and has both models",
        "Importing db twice yields the same client",
        "Schema reviewed against the data requirements",
        "Sightings can be stored and read back",
    )
    assert first.verify == (
        "npx prisma validate",
        "npx tsc --noEmit",
        "npx prisma migrate diff --from-empty --to-schema-datamodel prisma/schema.prisma",
    )
    assert first.spec_files == (f"{PHASES}/01-foundation/01-01-PLAN.md",)
    assert first.text.startswith("<objective>\nCreate the database schema")
    assert "phase: 01-foundation" not in first.text
    assert first.meta["requirements"] == ["DATA-01"]
    assert first.meta["steps"] == [
        "Task 1: Sighting and Diver models",
        "Task 2: Prisma client singleton",
    ]
    config = plan.task("01-02")
    assert config.files_create == ("src/config.ts",)
    assert config.files_modify == (".env.example",)
    assert config.acceptance == (
        "The app refuses to start without DATABASE_URL",
        'Missing DATABASE_URL throws "DATABASE_URL is required"',
        ".env.example lists every variable",
        "Config is imported by nothing else yet",
    )
    assert config.verify == ("npx vitest run src/config.test.ts", "npx tsc --noEmit")
    assert plan.task("02-02").files_modify == ("src/lib/password.ts", "src/lib/password.test.ts")


def test_waves_and_depends_on(tidepool: Path) -> None:
    plan = read(tidepool)
    deps = {t.id: t.depends_on for t in plan.tasks}
    assert deps == {
        "01-01": (),
        "01-02": (),
        "02-01": (),
        "02-02": (),
        "02-03": ("02-01", "02-02"),  # wave 2, no depends_on: every lower wave
        "03-01": ("02-01", "01-01"),  # depends_on is authoritative
    }


def test_summary_means_done_and_checkpoints_need_a_person(tidepool: Path) -> None:
    plan = read(tidepool)
    assert {t.id: t.status for t in plan.tasks} == {
        "01-01": "done",
        "01-02": "pending",
        "02-01": "pending",
        "02-02": "pending",
        "02-03": "pending",
        "03-01": "pending",
    }
    login_page = plan.task("02-03")
    assert login_page.meta["autonomous"] is False
    assert login_page.meta["checkpoints"] == ["checkpoint:human-verify"]
    assert login_page.verify == ()
    assert login_page.acceptance == ("The page renders", "npm run build succeeds")
    assert plan.task("02-01").meta["autonomous"] is True
    assert plan.first_open_task() == plan.task("01-02")


def test_phase_folder_drops_executed_outside_plans(tidepool: Path) -> None:
    plan = read(tidepool, f"{PHASES}/03-dashboard")
    assert plan.name == "03-dashboard"
    assert [p.id for p in plan.phases] == ["03-dashboard"]
    assert plan.phases[0].depends_on == ()
    assert plan.task("03-01").depends_on == ()
    assert diagnostics(plan) == [
        f"error: {PHASES}/03-dashboard/03-01-PLAN.md:1: depends_on: plan '03-01' depends on "
        "plan '02-01', which is not part of this plan and has no SUMMARY (not executed yet)\n"
        "  hint: read the whole .planning folder, or execute that plan first"
    ]
    (tidepool / PHASES / "02-auth/02-01-SUMMARY.md").write_text("# done\n")
    assert diagnostics(read(tidepool, f"{PHASES}/03-dashboard")) == []


def test_one_plan_file(tidepool: Path) -> None:
    plan = read(tidepool, f"{PHASES}/02-auth/02-03-PLAN.md")
    assert plan.name == "02-03"
    assert [t.id for t in plan.tasks] == ["02-03"]
    assert plan.task("02-03").depends_on == ()  # the wave-1 plans are outside: each an error
    assert [d.message for d in plan.errors] == [
        "plan '02-03' depends on plan '02-01', which is not part of this plan and has no "
        "SUMMARY (not executed yet)",
        "plan '02-03' depends on plan '02-02', which is not part of this plan and has no "
        "SUMMARY (not executed yet)",
    ]


def test_hand_edited_plans(harbor: Path) -> None:
    """CRLF, prose outside blocks, reordered elements, string lists, decimal phases."""
    plan = read(harbor)
    assert [(p.id, p.number, p.depends_on) for p in plan.phases] == [
        ("01-core", 1, ()),
        ("02.1-hotfix", None, ("01-core",)),
    ]
    core = plan.task("01-01")
    assert core.title == "Berth allocation core."
    assert core.status == "done"
    assert core.files_modify == (
        "src/harbor/berths.py",
        "src/harbor/__init__.py",
        "tests/test_berths.py",
    )
    assert core.verify == ("pytest tests/test_berths.py -q",)
    assert core.acceptance == (
        "Allocating a taken berth raises BerthTaken",
        "Allocation is logged exactly once",
    )
    assert "if ship.length <= berth.length and berth.free:" in core.text
    assert "\r" not in core.text
    tides = plan.task("01-02")
    assert tides.depends_on == ("01-01",)  # wave 2
    assert tides.meta["autonomous"] is False  # a checkpoint task, no autonomous key
    assert tides.verify == ("pytest tests/test_tides.py -q",)
    assert plan.task("01-03").depends_on == ("01-01", "01-02")  # [01, 2] in the frontmatter
    assert plan.task("02.1-01").depends_on == ("01-02",)
    assert diagnostics(plan) == [
        f"warning: {PHASES}/01-core/01-03-PLAN.md:3: plan: frontmatter says plan 4 but the file "
        "name says '03'; the file name wins"
    ]


def test_detect_and_discover(tidepool: Path) -> None:
    assert READER.detect(tidepool / ".planning")
    assert READER.detect(tidepool / PHASES)
    assert READER.detect(tidepool / PHASES / "02-auth")
    assert READER.detect(tidepool / PHASES / "02-auth/02-01-PLAN.md")
    assert not READER.detect(tidepool / PHASES / "01-foundation/01-01-SUMMARY.md")
    assert not READER.detect(tidepool / ".planning/PROJECT.md")
    assert not READER.detect(tidepool)
    (tidepool / "notes").mkdir()
    (tidepool / "notes/01-01-PLAN.md").write_text("# a plan without frontmatter\n")
    assert not READER.detect(tidepool / "notes")
    found = sorted(p.relative_to(tidepool).as_posix() for p in READER.discover(tidepool))
    assert found == [f"{PHASES}/01-foundation", f"{PHASES}/02-auth", f"{PHASES}/03-dashboard"]
    assert load_plan(tidepool / ".planning", repo=tidepool).format == "gsd"


def plan_file(tmp_path: Path, text: str) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    path = repo / PHASES / "04-search/04-01-PLAN.md"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return repo, path


BODY = "\n<objective>\nSearch.\n</objective>\n"


@pytest.mark.parametrize(
    ("front", "line", "field", "message"),
    [
        ("wave: two\n", 2, "wave", "wave must be a whole number (1, 2, ...)"),
        ("wave: true\n", 2, "wave", "wave must be a whole number (1, 2, ...)"),
        ('autonomous: "no"\n', 2, "autonomous", "autonomous must be true or false"),
        ("depends_on: {plan: 01}\n", 2, "depends_on", "depends_on must be a list of plan ids"),
        ("files_modified: 3\n", 2, "files_modified", "files_modified must be a list of paths"),
        (
            "wave: 1\nmust_haves: [a, b]\n",
            3,
            "must_haves",
            "must_haves must be a mapping (truths, artifacts, key_links)",
        ),
        ("wave: 1\nobjective search\n- x\n", 4, None, "invalid YAML: could not find expected ':'"),
        ("a: &x [1]\nb: *x\n", 3, None, "YAML aliases (*name) are not allowed in plans"),
        ("- 1\n- 2\n", 2, None, "frontmatter must be a YAML mapping (key: value lines)"),
    ],
)
def test_malformed_frontmatter(
    tmp_path: Path, front: str, line: int, field: str | None, message: str
) -> None:
    repo, path = plan_file(tmp_path, f"---\n{front}---\n{BODY}")
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    error = info.value
    assert (error.message, error.file, error.line, error.field) == (
        message,
        f"{PHASES}/04-search/04-01-PLAN.md",
        line,
        field,
    )


def test_unclosed_frontmatter(tmp_path: Path) -> None:
    repo, path = plan_file(tmp_path, f"---\nwave: 1\n{BODY}")
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    assert info.value.render() == (
        f"{PHASES}/04-search/04-01-PLAN.md:1: frontmatter opened with '---' on line 1 is never "
        "closed\n  hint: end the frontmatter with a line containing only '---'"
    )


def test_unclosed_task_block_is_a_warning(tmp_path: Path) -> None:
    text = (
        '---\nwave: 1\n---\n<tasks>\n<task type="auto">\n  <name>One</name>\n</task>\n'
        '<task type="auto">\n  <name>Two</name>\n</tasks>\n'
    )
    repo, path = plan_file(tmp_path, text)
    plan = READER.read(path, repo=repo)
    assert plan.task("04-01").meta["steps"] == ["One"]
    assert plan.task("04-01").title == "Plan 04-01"
    assert diagnostics(plan) == [
        f"warning: {PHASES}/04-search/04-01-PLAN.md:8: tasks: a <task> block is never closed "
        "with </task>; it was ignored"
    ]


def test_checkpoint_in_autonomous_plan_is_a_warning(tmp_path: Path) -> None:
    text = (
        "---\nwave: 1\nautonomous: true\n---\n<tasks>\n"
        '<task type="checkpoint:human-action">\n  <action>Create the API key</action>\n</task>\n'
        "</tasks>\n"
    )
    repo, path = plan_file(tmp_path, text)
    plan = READER.read(path, repo=repo)
    assert plan.task("04-01").meta["autonomous"] is False
    assert diagnostics(plan) == [
        f"warning: {PHASES}/04-search/04-01-PLAN.md:3: autonomous: plan has checkpoint tasks "
        "but says autonomous: true; treated as not autonomous"
    ]


def test_not_a_plan_file_name(tmp_path: Path) -> None:
    path = tmp_path / "PLAN.md"
    path.write_text("---\nwave: 1\n---\n")
    with pytest.raises(InputError) as info:
        READER.read(path, repo=tmp_path)
    assert info.value.render() == (
        "PLAN.md: not a GSD plan file name\n"
        "  hint: GSD plans are named <phase>-<plan>-PLAN.md, e.g. 02-01-PLAN.md"
    )


def test_folder_without_plans(tmp_path: Path) -> None:
    (tmp_path / ".planning").mkdir()
    with pytest.raises(InputError) as info:
        READER.read(tmp_path / ".planning", repo=tmp_path)
    assert info.value.message == "no <phase>-<plan>-PLAN.md files with frontmatter found"


def test_tasks_in_fenced_examples_and_comments_are_not_read(tmp_path: Path) -> None:
    body = (
        "\n<objective>\nFull-text search\n</objective>\n\n<tasks>\n\n"
        '<!-- postponed:\n<task type="checkpoint:human-verify">\n  <name>Dropped</name>\n'
        "  <files>ui/review.py</files>\n</task>\n-->\n\n"
        '<task type="auto">\n  <name>Index the notes</name>\n  <files>search/index.py</files>\n'
        "  <verify><automated>pytest tests/test_index.py</automated></verify>\n</task>\n\n"
        "A later task could look like this:\n\n"
        '```xml\n<task type="auto">\n  <name>An example</name>\n'
        "  <files>example.py</files>\n</task>\n```\n\n"
        "</tasks>\n"
    )
    repo, path = plan_file(tmp_path, f"---\nwave: 1\n---\n{body}")

    (task,) = READER.read(path, repo=repo).tasks

    assert task.meta["steps"] == ["Index the notes"]
    assert task.files_modify == ("search/index.py",)
    assert task.verify == ("pytest tests/test_index.py",)
    assert task.meta["autonomous"] is True  # the commented-out checkpoint does not count
