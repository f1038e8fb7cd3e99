"""The xml-tasks reader: layer folders of <ID>-<slug>.xml task files and execute-state.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from formats_support import write
from planfleet.errors import InputError
from planfleet.plan.formats import load_plan
from planfleet.plan.formats.xml_tasks import READER
from planfleet.plan.model import Plan, Source

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "xml-tasks"
TASKS = "docs/tasks"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository holding every xml-tasks fixture under docs/tasks/."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES, repo / TASKS)
    return repo


def read(repo: Path, rel: str) -> Plan:
    return READER.read(repo / rel, repo=repo)


def diagnostics(plan: Plan) -> list[str]:
    return [d.render() for d in plan.diagnostics]


def test_billing_layers_become_chained_phases(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/billing")
    assert (plan.name, plan.title, plan.format) == ("billing", "billing", "xml-tasks")
    assert [(p.id, p.title, p.number, p.depends_on, p.task_ids) for p in plan.phases] == [
        ("1-foundation", "foundation", 1, (), ("L1-001", "L1-002")),
        ("2-api", "api", 2, ("1-foundation",), ("L2-001", "L2-002")),
        ("3-docs", "docs", 3, ("2-api",), ("L3-001",)),
    ]
    assert plan.phases[0].source == Source(f"{TASKS}/billing/1-foundation", None)
    assert diagnostics(plan) == []


def test_billing_task_fields(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/billing")
    model = plan.task("L1-002")
    assert model.title == "Invoice and line item models"
    assert model.phase == "1-foundation"
    assert model.source == Source(f"{TASKS}/billing/1-foundation/L1-002-invoice-model.xml", 2)
    assert (model.kind, model.owner) == ("implementation", "backend")
    assert model.depends_on == ("L1-001",)
    assert model.add_dependencies == ("pydantic>=2.6",)
    assert model.files_create == ("billing/models.py",)
    assert model.files_modify == ("billing/__init__.py",)
    assert model.acceptance == (
        "Invoice.total_cents sums quantity * unit_price_cents over the lines",
        "An invoice with no lines has a total of 0",
        "No float appears in billing/models.py",
    )
    assert model.verify == ("pytest tests/billing/test_models.py -q", "mypy billing")
    assert model.blast_radius == "tests/billing"
    assert (model.estimate, model.timeout_s, model.max_attempts) == (2.0, 900.0, 3)
    assert model.spec_files == (f"{TASKS}/billing/1-foundation/L1-002-invoice-model.xml",)
    assert model.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<task id="L1-002"')
    pdf = plan.task("L2-002")
    assert pdf.depends_on == ("L1-002", "L1-001")  # <depends-on> as a comma list
    assert pdf.add_dependencies == ("reportlab>=4",)  # <dependencies-to-add> as text
    assert pdf.estimate == 8.0  # 1d
    assert plan.task("L1-001").estimate == 0.5  # 30m
    docs = plan.task("L3-001")
    assert (docs.kind, docs.owner, docs.verify, docs.blast_radius) == ("design", "docs", (), None)


def test_execute_state_statuses_and_run_details(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/billing")
    statuses = {t.id: t.status for t in plan.tasks}
    assert statuses == {
        "L1-001": "done",
        "L1-002": "failed",
        "L2-001": "pending",
        "L2-002": "in_progress",
        "L3-001": "pending",
    }
    assert dict(plan.task("L1-001").meta) == {
        "worktree": ".worktrees/L1-001",
        "attempts": 1,
        "branch": "worktree-L1-001",
        "commit": "4f1c2ab",
        "completed_at": "2026-02-11T09:20:03Z",
        "state_status": "completed",
        "merge_queue": "merged",
    }
    failed = plan.task("L1-002").meta
    assert failed["attempts"] == 2
    assert failed["retry_feedback"] == "total_cents must be 0 for an invoice without lines"
    assert failed["errors"][0]["message"] == "1 test failed"
    assert dict(plan.task("L3-001").meta) == {}
    assert dict(plan.meta) == {
        "state_file": f"{TASKS}/billing/execute-state.json",
        "merge_queue": ["L1-001"],
        "abandoned": [],
    }
    assert plan.first_open_task() == plan.task("L1-002")


def test_hand_edited_files(repo: Path) -> None:
    """Reordered elements, odd spacing, CRLF, CDATA, plain-text lists, unknown elements."""
    stock = repo / TASKS / "inventory/1-schema/S-01-stock-table.xml"
    stock.write_bytes(stock.read_bytes().replace(b"\n", b"\r\n"))
    plan = read(repo, f"{TASKS}/inventory")
    assert [(p.id, p.depends_on) for p in plan.phases] == [
        ("1-schema", ()),
        ("2-sync", ("1-schema",)),
    ]
    s1 = plan.task("S-01")
    assert s1.title == "Stock table"
    assert s1.source == Source(f"{TASKS}/inventory/1-schema/S-01-stock-table.xml", 3)
    assert s1.files_create == ("migrations/0007_stock.sql",)
    assert s1.files_modify == ("inventory/schema.py",)
    assert s1.verify == ("alembic upgrade head", "pytest tests/inventory/test_schema.py -q")
    assert (s1.estimate, s1.timeout_s) == (1.5, 900.0)
    assert "<!DOCTYPE html>" in s1.text  # inside CDATA it is text, not a DTD
    s2 = plan.task("S-02")
    assert s2.depends_on == ("S-01",)
    assert s2.acceptance == (
        "A reservation never exceeds the stock quantity",
        "Expired reservations are ignored by the available() query",
    )
    assert s2.blast_radius == "tests/inventory/test_schema.py tests/inventory/test_reserve.py"
    y1 = plan.task("Y-01")
    assert (y1.kind, y1.depends_on) == ("design", ("S-01", "S-02"))
    assert y1.add_dependencies == ("httpx", "tenacity>=8,<9")
    assert diagnostics(plan) == [
        f"warning: {TASKS}/inventory/1-schema/S-01-stock-table.xml:24: reviewer: unknown "
        "element <reviewer>; ignored (it stays in the task text)",
        f"warning: {TASKS}/inventory/1-schema/S-02-reservations.xml:3: layer: <layer> '2-sync' "
        "differs from the folder '1-schema'; the folder wins",
    ]


def test_flat_directory_uses_layer_elements(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/notifier")
    assert [(p.id, p.number, p.depends_on, p.task_ids, p.source) for p in plan.phases] == [
        ("1-channels", 1, (), ("N-1", "N-2"), Source(f"{TASKS}/notifier/N-1-email-channel.xml", 4)),
        (
            "2-dispatch",
            2,
            ("1-channels",),
            ("N-3",),
            Source(f"{TASKS}/notifier/N-3-dispatch.xml", 4),
        ),
    ]
    assert plan.task("N-2").status == "done"  # status attribute, no execute-state.json
    assert plan.task("N-3").depends_on == ("N-1", "N-2")
    assert diagnostics(plan) == [
        f"warning: {TASKS}/notifier/README.xml:2: not a task file (root element <notes>, "
        "expected <task>); skipped"
    ]


def test_one_task_file_drops_completed_dependencies(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/billing/1-foundation/L1-002-invoice-model.xml")
    assert [t.id for t in plan.tasks] == ["L1-002"]
    assert plan.name == "L1-002-invoice-model"
    model = plan.task("L1-002")
    assert model.depends_on == ()  # L1-001 is completed in execute-state.json
    assert model.status == "failed"
    assert diagnostics(plan) == []


def test_one_task_file_with_unfinished_dependency_is_an_error(repo: Path) -> None:
    plan = read(repo, f"{TASKS}/billing/2-api/L2-001-invoice-routes.xml")
    assert plan.task("L2-001").depends_on == ()
    assert diagnostics(plan) == [
        f"error: {TASKS}/billing/2-api/L2-001-invoice-routes.xml:2: dependencies: task 'L2-001' "
        "depends on 'L1-002', which is not recorded as completed in execute-state.json\n"
        "  hint: run the whole tasks directory, or finish that task first"
    ]


def test_detect_and_discover(repo: Path) -> None:
    assert READER.detect(repo / TASKS / "billing")
    assert READER.detect(repo / TASKS / "billing/2-api/L2-001-invoice-routes.xml")
    assert not READER.detect(repo / TASKS)  # holds task directories, is not one
    assert not READER.detect(repo / TASKS / "billing/execute-state.json")
    write(repo, "docs/site/feed.xml", "<rss><channel/></rss>")
    assert not READER.detect(repo / "docs/site")
    assert not READER.detect(repo / "docs/site/feed.xml")
    found = sorted(p.relative_to(repo).as_posix() for p in READER.discover(repo))
    assert found == [f"{TASKS}/billing", f"{TASKS}/inventory", f"{TASKS}/notifier"]
    assert load_plan(repo / TASKS / "billing", repo=repo).format == "xml-tasks"


def test_abandoned_tasks_are_blocked(repo: Path) -> None:
    state = repo / TASKS / "billing/execute-state.json"
    data = json.loads(state.read_text())
    data["tasks"]["L2-001"] = {"status": "abandoned", "attempts": 5}
    data["abandoned"] = ["L2-001", "L3-001"]
    data["tasks"]["L9-999"] = {"status": "completed"}
    state.write_text(json.dumps(data, indent=2))
    plan = read(repo, f"{TASKS}/billing")
    assert plan.task("L2-001").status == "blocked"
    assert plan.task("L3-001").status == "blocked"
    assert plan.task("L3-001").meta == {"abandoned": True}
    assert plan.meta["abandoned"] == ["L2-001", "L3-001"]
    assert diagnostics(plan) == [
        f"warning: {TASKS}/billing/execute-state.json:35: tasks.L9-999: execute-state.json "
        "names task 'L9-999', which has no task file"
    ]


def test_unknown_state_status_is_a_warning(repo: Path) -> None:
    state = repo / TASKS / "billing/execute-state.json"
    state.write_text('{\n  "tasks": {\n    "L2-001": {"status": "parked"}\n  }\n}\n')
    plan = read(repo, f"{TASKS}/billing")
    assert plan.task("L2-001").status == "pending"
    assert diagnostics(plan) == [
        f"warning: {TASKS}/billing/execute-state.json:3: status: unknown status 'parked'; "
        "treated as pending\n  hint: use one of: pending, in_progress, done, failed, blocked, "
        "skipped"
    ]


GOOD = '<?xml version="1.0"?>\n<task id="T-1">\n  <title>ok</title>\n</task>\n'


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '<?xml version="1.0"?>\n<task id="T-1">\n  <title>ok</titel>\n</task>\n',
            3,
            "invalid XML: mismatched tag (column 14)",
        ),
        (
            '<task id="T-1">\n  <title>a & b</title>\n</task>\n',
            2,
            "invalid XML: not well-formed (invalid token) (column 13)",
        ),
        (
            '<task id="T-1">\n  <title>&nbsp;</title>\n</task>\n',
            2,
            "invalid XML: undefined entity (column 10)",
        ),
        (
            '<task id="T-1">\n  <title>unclosed</title>\n',
            3,
            "invalid XML: no element found (column 1)",
        ),
        ("", 1, "invalid XML: no element found (column 1)"),
    ],
)
def test_malformed_xml_names_file_and_line(repo: Path, text: str, line: int, message: str) -> None:
    path = write(repo, "tasks/bad/1-core/T-1-thing.xml", text)
    with pytest.raises(InputError) as info:
        READER.read(path.parent.parent, repo=repo)
    assert (info.value.message, info.value.file, info.value.line) == (
        message,
        "tasks/bad/1-core/T-1-thing.xml",
        line,
    )


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<task id="T-1"><title>&lol9;</title></task>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE task [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<task id="T-1"><title>&secret;</title></task>
"""
EXTERNAL_DTD = '<?xml version="1.0"?>\n<!DOCTYPE task SYSTEM "http://example.com/t.dtd">\n<task/>\n'


@pytest.mark.parametrize("text", [BOMB, EXTERNAL, EXTERNAL_DTD])
def test_dtds_and_entities_are_refused(repo: Path, text: str) -> None:
    path = write(repo, "tasks/evil/T-1-x.xml", text)
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    assert info.value.render() == (
        "tasks/evil/T-1-x.xml:2: DTDs and entity declarations (<!DOCTYPE>, <!ENTITY>) are not "
        "allowed in task files\n  hint: remove the DOCTYPE; entities can expand without bound "
        "or read other files"
    )


def test_deep_nesting_is_refused(repo: Path) -> None:
    path = write(repo, "tasks/deep/T-1-x.xml", "<task>" + "<a>" * 5000 + "</a>" * 5000 + "</task>")
    with pytest.raises(InputError, match="XML nested deeper than 32 levels"):
        READER.read(path, repo=repo)


def test_id_problems(repo: Path) -> None:
    write(repo, "tasks/ids/1-core/T-1-first.xml", GOOD.replace('id="T-1"', 'id="T-2"'))
    write(repo, "tasks/ids/1-core/T-3-third.xml", GOOD.replace(' id="T-1"', ""))
    write(repo, "tasks/ids/1-core/T-4-fourth.xml", GOOD.replace('id="T-1"', 'id="T-4"'))
    write(repo, "tasks/ids/1-core/T-5-fifth.xml", GOOD.replace('id="T-1"', 'id="T-4"'))
    plan = read(repo, "tasks/ids")
    assert [t.id for t in plan.tasks] == ["T-2", "T-3", "T-4"]  # T-3 from the file name
    assert diagnostics(plan) == [
        "error: tasks/ids/1-core/T-1-first.xml:2: id: task id 'T-2' does not match the file "
        "name 'T-1-first.xml'\n  hint: rename the file to T-2-<slug>.xml",
        "error: tasks/ids/1-core/T-5-fifth.xml:2: id: task id 'T-4' does not match the file "
        "name 'T-5-fifth.xml'\n  hint: rename the file to T-4-<slug>.xml",
        "error: tasks/ids/1-core/T-5-fifth.xml:2: id: duplicate task id 'T-4' (first defined "
        "at tasks/ids/1-core/T-4-fourth.xml:2)\n  hint: give every task its own id",
    ]


def test_unsafe_id_is_refused(repo: Path) -> None:
    path = write(repo, "tasks/x/notes.xml", GOOD.replace('id="T-1"', 'id="../../etc"'))
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    assert (info.value.file, info.value.line, info.value.field) == (
        "tasks/x/notes.xml",
        2,
        "task id",
    )
    assert info.value.message == (
        "task id '../../etc' contains characters that are not allowed ('/'); use letters, "
        "digits, '.', '_', '-'"
    )


def test_missing_id_is_refused(repo: Path) -> None:
    path = write(repo, "tasks/x/notes.xml", GOOD.replace(' id="T-1"', ""))
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    assert info.value.render() == (
        "tasks/x/notes.xml:2: id: task has no id\n"
        '  hint: write <task id="L1-001"> or name the file L1-001-<slug>.xml'
    )


def test_bad_values_become_diagnostics(repo: Path) -> None:
    text = GOOD.replace(
        "  <title>ok</title>\n",
        "  <title>ok</title>\n  <kind>spike</kind>\n  <estimate>soon</estimate>\n"
        "  <max-attempts>²</max-attempts>\n  <status>someday</status>\n",
    )
    plan = read(repo, write(repo, "tasks/v/T-1-x.xml", text).relative_to(repo).as_posix())
    assert plan.task("T-1").kind == "implementation"
    assert [d.message for d in plan.diagnostics] == [
        "unknown kind 'spike'",
        "<estimate> 'soon' is not a number; ignored",
        "<max-attempts> '²' is not a whole number from 1 to 50; ignored",
        "unknown status 'someday'; treated as pending",
    ]
    assert [d.line for d in plan.diagnostics] == [4, 5, 6, 7]


def test_no_task_files(repo: Path) -> None:
    (repo / "tasks/empty").mkdir(parents=True)
    (repo / "tasks/empty/execute-state.json").write_text('{"tasks": {}}')
    assert READER.detect(repo / "tasks/empty")
    with pytest.raises(InputError) as info:
        read(repo, "tasks/empty")
    assert info.value.render() == (
        "tasks/empty: no task files (<ID>-<slug>.xml with a <task> root) found\n"
        "  hint: put task files in layer folders like 1-foundation/L1-001-create-enums.xml"
    )


@pytest.mark.parametrize(
    ("state", "line", "field", "message"),
    [
        (
            '{\n  "tasks": {\n    "L1-001": {"status": "completed",}\n  }\n}',
            3,
            None,
            "not valid JSON: Expecting property name enclosed in double quotes (column 38)",
        ),
        ("[1, 2]", 1, None, 'execute-state.json must be a JSON object with a "tasks" map'),
        (
            '{\n  "tasks": ["L1-001"]\n}',
            2,
            "tasks",
            "'tasks' must be an object mapping task ids to their state",
        ),
        (
            '{\n  "tasks": {},\n  "abandoned": "L1-001"\n}',
            3,
            "abandoned",
            "'abandoned' must be a list of task ids",
        ),
        (
            '{\n  "tasks": {\n    "L1-001": "done"\n  }\n}',
            3,
            "tasks.L1-001",
            "the state of task 'L1-001' must be an object",
        ),
        ("[" * 100000, None, None, "nested deeper than 64 levels"),
        ("[" * 65 + "]" * 65, None, None, "nested deeper than 64 levels"),
        (
            '{"tasks": {}, "n": ' + "9" * 5000 + "}",
            None,
            None,
            "a number with 5000 digits (more than 20)",
        ),
    ],
)
def test_malformed_state_file(
    repo: Path, state: str, line: int | None, field: str | None, message: str
) -> None:
    (repo / TASKS / "billing/execute-state.json").write_text(state)
    with pytest.raises(InputError) as info:
        read(repo, f"{TASKS}/billing")
    error = info.value
    assert (error.message, error.file, error.line, error.field) == (
        message,
        f"{TASKS}/billing/execute-state.json",
        line,
        field,
    )


def test_xml_in_another_encoding_declaration_is_read_as_utf8(repo: Path) -> None:
    text = GOOD.replace('version="1.0"', 'version="1.0" encoding="ISO-8859-1"').replace(
        "ok", "Größe prüfen"
    )
    plan = read(repo, write(repo, "tasks/enc/T-1-x.xml", text).relative_to(repo).as_posix())
    assert plan.task("T-1").title == "Größe prüfen"


def test_the_batch_workflows_own_state_fields_are_read(repo: Path) -> None:
    # execute-batch words: "attempt", "worktree_path", "final_error", "verified"/"abandoned"
    state = {
        "tasks": {
            "L1-001": {"status": "verified", "attempt": 1, "commit_hash": "abc1234"},
            "L1-002": {
                "status": "failed",
                "attempt": 2,
                "worktree_path": "/work/shop/.worktrees/L1-002",
                "errors": [{"type": "verification_failed", "step": "pytest", "message": "x"}],
            },
            "L2-001": {
                "status": "abandoned",
                "attempt": 5,
                "final_error": "Still failing after 5 attempts",
            },
        },
        "merge_queue": [{"task_id": "L1-001", "priority": 1, "status": "ready"}],
        "abandoned": ["L2-001"],
    }
    write(repo, f"{TASKS}/billing/execute-state.json", json.dumps(state))

    plan = read(repo, f"{TASKS}/billing")

    assert [(t.id, t.status) for t in plan.tasks][:4] == [
        ("L1-001", "done"),
        ("L1-002", "failed"),
        ("L2-001", "blocked"),
        ("L2-002", "pending"),
    ]
    assert plan.task("L1-002").meta["attempts"] == 2
    assert plan.task("L1-002").meta["worktree"] == "/work/shop/.worktrees/L1-002"
    assert plan.task("L2-001").meta["final_error"] == "Still failing after 5 attempts"
    assert plan.task("L1-001").meta["merge_queue"] == "ready"
