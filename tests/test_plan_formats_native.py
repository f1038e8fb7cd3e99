"""planfleet's own format: YAML or a ```yaml block in Markdown, checked by the JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats_support import copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats import load_plan
from planfleet.plan.formats.native import READER
from planfleet.plan.model import Plan, Source


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository holding the native fixtures."""
    return copy_fixture(".", "native", tmp_path)


def read(repo: Path, rel: str) -> Plan:
    return READER.read(repo / rel, repo=repo)


def test_yaml_plan_phases(repo: Path) -> None:
    plan = read(repo, "ledger.plan.yaml")
    assert (plan.name, plan.title, plan.format) == ("ledger", "Double-entry ledger", "planfleet")
    assert dict(plan.meta) == {
        "branch": "feature/ledger",
        "description": "Accounts, postings and a trial balance report.",
        "test_command": "pytest -q",
    }
    assert [
        (p.id, p.number, p.depends_on, p.owner, p.kind, p.status, p.task_ids, p.source)
        for p in plan.phases
    ] == [
        (
            "accounts",
            1,
            (),
            "implementer",
            "implementation",
            "done",
            ("account-model", "account-import"),
            Source("ledger.plan.yaml", 13),
        ),
        (
            "postings",
            2,
            ("accounts",),
            "backend",
            "implementation",
            "pending",
            ("posting-model", "posting-api"),
            Source("ledger.plan.yaml", 37),
        ),
        (
            "design-review",
            3,
            ("postings",),
            "reviewer",
            "design",
            "pending",
            ("design-review",),
            Source("ledger.plan.yaml", 53),
        ),
    ]
    accounts = plan.phase("accounts")
    assert accounts.gate_commands == ("pytest -q tests/accounts",)
    assert accounts.blast_radius == "tests/accounts"
    assert accounts.acceptance == (
        "every account has a type (asset, liability, equity, income, expense)",
    )
    assert plan.diagnostics == ()


def test_yaml_plan_tasks(repo: Path) -> None:
    plan = read(repo, "ledger.plan.yaml")
    model = plan.task("account-model")
    assert model.source == Source("ledger.plan.yaml", 21)
    assert (model.files_create, model.files_modify) == (
        ("ledger/accounts.py",),
        ("ledger/__init__.py",),
    )
    assert model.acceptance == ("Account('cash', 'asset') round-trips through to_dict()",)
    assert model.verify == ("pytest -q tests/accounts/test_model.py",)
    assert (model.owner, model.blast_radius, model.estimate) == ("implementer", "tests/accounts", 2)
    assert (model.timeout_s, model.max_attempts, model.status) == (900, 3, "done")
    importer = plan.task("account-import")
    assert importer.depends_on == ("account-model",)
    assert importer.add_dependencies == ("python-dateutil>=2.9",)
    assert importer.spec_files == ("docs/importer.md",)
    assert importer.status == "in_progress"  # "in progress"
    posting = plan.task("posting-model")
    assert (posting.title, posting.owner, posting.timeout_s) == ("posting-model", "backend", 1200)
    api = plan.task("posting-api")
    assert api.depends_on == ("posting-model",)  # sequential phase
    assert (api.commands, api.max_attempts) == (("python -m ledger.api --check",), 5)
    review = plan.task("design-review")  # a phase without tasks is one task
    assert (review.phase, review.kind, review.owner) == ("design-review", "design", "reviewer")
    assert review.text == "Agree on the trial balance layout with finance before coding it."
    assert plan.first_open_task() == importer


def test_markdown_with_yaml_block(repo: Path) -> None:
    plan = read(repo, "docs/roadmap.plan.md")
    assert (plan.name, plan.title) == ("search", "search")
    assert [(p.id, p.depends_on, p.source) for p in plan.phases] == [
        ("index", (), Source("docs/roadmap.plan.md", 16)),
        ("ui", ("index",), Source("docs/roadmap.plan.md", 23)),
    ]
    fts = plan.task("fts-table")
    assert fts.source == Source("docs/roadmap.plan.md", 19)
    assert (fts.verify, fts.blast_radius) == (("pytest -q tests/search",), "tests/search")
    ui = plan.task("ui")
    assert ui.acceptance == ("typing shows results within 200 ms",)
    assert ui.text == "Add a search box to the header."


def test_crlf_and_detection(repo: Path) -> None:
    path = repo / "ledger.plan.yaml"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert read(repo, "ledger.plan.yaml").task("posting-api").source == Source(
        "ledger.plan.yaml", 47
    )
    assert READER.detect(path)
    assert READER.detect(repo / "docs/roadmap.plan.md")
    (repo / "config.yaml").write_text("search:\n  engine: fts5\n")
    assert not READER.detect(repo / "config.yaml")
    assert not READER.detect(repo / "docs")
    found = sorted(p.relative_to(repo).as_posix() for p in READER.discover(repo))
    assert found == ["docs/roadmap.plan.md", "ledger.plan.yaml"]
    assert load_plan(repo / "docs/roadmap.plan.md", repo=repo).format == "planfleet"


BASE = "planfleet: 1\nname: p\nphases:\n  - id: a\n    tasks:\n      - id: t1\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (BASE + "colour: red\n", 1, None, "unknown key ('colour' was unexpected)"),
        (
            BASE + "        owner: x\n        dependson: [a]\n",
            6,
            "phases.0.tasks.0",
            "unknown key ('dependson' was unexpected)",
        ),
        (
            BASE.replace("id: t1", "id: ../t1"),
            6,
            "phases.0.tasks.0.id",
            "'../t1' is not a valid id (letters, digits, '.', '_', '-'; starts with a letter or "
            "digit; at most 64)",
        ),
        (
            BASE.replace("name: p", "name: 'my plan'"),
            2,
            "name",
            "'my plan' is not a valid id (letters, digits, '.', '_', '-'; starts with a letter or "
            "digit; at most 64)",
        ),
        (
            BASE + "        timeout: ten\n",
            7,
            "phases.0.tasks.0.timeout",
            "'ten' is not of type 'number'",
        ),
        (
            BASE + "        max_attempts: 0\n",
            7,
            "phases.0.tasks.0.max_attempts",
            "0 is less than the minimum of 1",
        ),
        (
            BASE + "        verify: pytest\n",
            7,
            "phases.0.tasks.0.verify",
            "'pytest' is not of type 'array'",
        ),
        (
            BASE + "        kind: spike\n",
            7,
            "phases.0.tasks.0.kind",
            "'spike' is not one of ['design', 'implementation']",
        ),
        ("planfleet: 1\nname: p\n", 1, None, "'phases' is a required property"),
        ("planfleet: 1\nname: p\nphases: []\n", 3, "phases", "[] should be non-empty"),
        (
            "- a\n- b\n",
            1,
            None,
            "a planfleet plan is a mapping with 'planfleet: 1', 'name', 'phases'",
        ),
        ("", 1, None, "a planfleet plan is a mapping with 'planfleet: 1', 'name', 'phases'"),
        ("planfleet: 1\nname: p\nname: q\nphases: []\n", 3, "name", "duplicate key 'name'"),
        (
            "planfleet: 1\nname: p\nphases:\n  - id: a\n    title x\n    - b\n",
            6,
            None,
            "invalid YAML: could not find expected ':'",
        ),
    ],
)
def test_schema_and_syntax_errors(
    tmp_path: Path, text: str, line: int, field: str | None, message: str
) -> None:
    path = tmp_path / "p.plan.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        READER.read(path, repo=tmp_path)
    error = info.value
    assert (error.message, error.file, error.line, error.field) == (
        message,
        "p.plan.yaml",
        line,
        field,
    )


LAUGHS = """planfleet: 1
name: p
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
phases: [{id: x, text: *c}]
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (LAUGHS, 4, "YAML aliases (*name) are not allowed in plans"),
        (
            "planfleet: 1\nname: p\nbase: &b {id: a}\nphases:\n  - <<: *b\n",
            5,
            "YAML aliases (*name) are not allowed in plans",
        ),
        (
            BASE + "        text: !!python/object/apply:os.system [ls]\n",
            7,
            "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed in plans",
        ),
        (
            BASE + "        text: !!python/name:os.system ''\n",
            7,
            "invalid value: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system'",
        ),
        (BASE + "        text: !custom x\n", 7, "YAML tag '!custom' is not allowed in plans"),
        (
            BASE + "        acceptance: !!set {a, b}\n",
            7,
            "YAML tag 'tag:yaml.org,2002:set' is not allowed in plans",
        ),
        (BASE + "        text: !!binary aGVsbG8=\n", 7, "binary values are not allowed in plans"),
        (
            "planfleet: 1\nname: p\nphases: " + "[" * 100 + "]" * 100 + "\n",
            3,
            "YAML nested deeper than 64 levels",
        ),
    ],
)
def test_bombs_aliases_and_tags_are_refused(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "p.plan.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        READER.read(path, repo=tmp_path)
    assert (info.value.message, info.value.line) == (message, line)


def test_semantic_problems_are_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "p.plan.yaml"
    path.write_text(BASE + "        status: parked\n      - id: t1\n")
    plan = READER.read(path, repo=tmp_path)
    assert [d.render() for d in plan.diagnostics] == [
        "warning: p.plan.yaml:6: status: unknown status 'parked'; treated as pending\n"
        "  hint: use one of: pending, in_progress, done, failed, blocked, skipped",
        "error: p.plan.yaml:8: id: duplicate task id 't1' (first defined at p.plan.yaml:6)\n"
        "  hint: give every task its own id",
    ]


def test_markdown_without_plan_block(tmp_path: Path) -> None:
    path = tmp_path / "x.plan.md"
    path.write_text("# x\n\n```yaml\nfoo: 1\n```\n")
    assert not READER.detect(path)
    with pytest.raises(InputError) as info:
        READER.read(path, repo=tmp_path)
    assert info.value.render() == (
        "x.plan.md: no ```yaml block starting with 'planfleet:'\n"
        "  hint: put the plan in a fenced yaml block"
    )


def test_markdown_block_errors_point_into_the_file(repo: Path) -> None:
    path = repo / "docs/roadmap.plan.md"
    path.write_text(path.read_text().replace("      - id: fts-table", "      - id: fts table"))
    with pytest.raises(InputError) as info:
        read(repo, "docs/roadmap.plan.md")
    assert (info.value.file, info.value.line, info.value.field) == (
        "docs/roadmap.plan.md",
        19,
        "phases.0.tasks.0.id",
    )
