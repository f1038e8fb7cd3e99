"""The `.ai/plans/YYYY-MM-DD.<name>.md` reader: owners, groups, blast radius, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats_support import brief, copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats.ai_plans import READER
from planfleet.plan.model import Source

BILLING = ".ai/plans/2025-03-02.invoice-pdf.md"
TODO = ".ai/plans/2025-07-14.todo-export.md"


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_partially_executed_plan_full_model(tmp_path: Path, crlf: bool) -> None:
    repo = copy_fixture("ai", "billing", tmp_path, crlf=crlf)
    plan = READER.read(repo / BILLING, repo=repo)
    src = lambda line: Source(BILLING, line)  # noqa: E731

    assert (plan.name, plan.title, plan.format) == (
        "invoice-pdf",
        "Plan: PDF Invoices for the Billing Service",
        "ai",
    )
    assert dict(plan.meta) == {
        "status": "Reviewed - Ready for Implementation",
        "created": "2025-03-02",
        "author": "Dana (billing team)",
        "date": "2025-03-02",
        "parallel_groups": {"A": ["1"], "B": ["2", "3"], "C": ["4"]},
    }
    failed = {
        "status": "failed",
        "failed_at": "2025-03-03T11:40:00+00:00",
        "error": "printpdf 0.7 has no built-in font for the Euro sign",
        "last_successful_step": "Created render.rs skeleton",
    }
    assert [brief(p) for p in plan.phases] == [
        {
            "id": "1",
            "title": "Invoice Document Model Design",
            "source": src(12),
            "number": 1,
            "owner": "Rust Developer",
            "kind": "design",
            "acceptance": (
                "`InvoiceDocument` and `LineItem` types documented with field meanings",
                "ADR written for money representation (integer cents, ISO 4217 code)",
            ),
            "blast_radius": "invoice::model",
            "parallel_group": "A",
            "status": "done",
            "task_ids": ("1",),
            "meta": {
                "checkpoint": {
                    "status": "complete",
                    "completed_at": "2025-03-03T09:12:00+00:00",
                    "artifacts": ["crates/invoice/src/model.rs", "docs/adr/0007-money.md"],
                }
            },
        },
        {
            "id": "2",
            "title": "PDF Renderer",
            "source": src(30),
            "number": 2,
            "depends_on": ("1",),
            "owner": "Rust Developer",
            "acceptance": (
                "Renders totals with two decimals and the currency code",
                "Multi-page output when there are more than 30 line items",
                "Golden-file test compares text extracted from the PDF",
            ),
            "blast_radius": "invoice::render",
            "parallel_group": "B",
            "status": "failed",
            "task_ids": ("2",),
            "meta": {"checkpoint": failed, "error": failed["error"]},
        },
        {
            "id": "3",
            "title": "Download Endpoint",
            "source": src(62),
            "number": 3,
            "depends_on": ("1",),
            "owner": "Rust Developer",
            "acceptance": (
                "`GET /invoices/{id}.pdf` returns `application/pdf` for the invoice owner",
                "Other customers get 404, not 403",
            ),
            "blast_radius": "api::invoices",
            "parallel_group": "B",
            "task_ids": ("3",),
        },
        {
            "id": "4",
            "title": "End-to-end Tests",
            "source": src(75),
            "number": 4,
            "depends_on": ("2", "3"),
            "owner": "Feature Tester (Rust)",
            "acceptance": (
                "A generated invoice downloads and opens as a valid PDF",
                "The full workspace test suite passes",
            ),
            "blast_radius": "",
            "parallel_group": "C",
            "task_ids": ("4",),
        },
    ]
    phases = {p.id: p for p in plan.phases}
    common = ("title", "owner", "kind", "acceptance", "blast_radius", "status")
    for t in plan.tasks:  # each phase is one task carrying the phase's facts
        assert {k: getattr(t, k) for k in common} == {
            k: getattr(phases[t.phase], k) for k in common
        }
        assert (t.id, t.source) == (t.phase, phases[t.phase].source)
    assert [
        (t.files_create, t.files_modify, t.add_dependencies, t.verify, dict(t.meta))
        for t in plan.tasks
    ] == [
        (("crates/invoice/src/model.rs", "docs/adr/0007-money.md"), (), (), (), {}),
        (
            ("crates/invoice/src/render.rs", "crates/invoice/tests/render_golden.rs"),
            ("crates/invoice/src/lib.rs", "crates/invoice/Cargo.toml"),
            ('printpdf = "0.7"', "pdf-extract"),
            ("cargo test -p invoice render",),
            {"error": failed["error"]},
        ),
        ((), ("crates/api/src/routes/invoices.rs",), (), (), {}),
        (("tests/e2e/invoice_pdf.rs",), (), (), (), {}),
    ]
    assert plan.diagnostics == ()
    text = plan.task("3").text
    assert text.startswith("## Phase 3: Download Endpoint\n\n**Principal Owner:** Rust Developer")
    assert text.endswith("### Files to Modify\n- `crates/api/src/routes/invoices.rs`")
    assert "Phase 4" not in text
    assert "\r" not in text


def test_hand_edited_plan_with_task_headings_and_checkpoint_inside_fence(
    tmp_path: Path,
) -> None:
    repo = copy_fixture("ai", "todo", tmp_path, crlf=True)
    plan = READER.read(repo / TODO, repo=repo)
    src = lambda line: Source(TODO, line)  # noqa: E731

    assert (plan.name, plan.title) == ("todo-export", "Todo CLI — export and import")
    assert dict(plan.meta) == {
        "status": "In Progress (phase 2 of 3)",
        "date": "2025-07-14",
        "parallel_groups": {"A": ["1"], "B": ["2", "3"]},
    }
    acceptance1 = ("JSON schema validates the sample export", "Doc lists every field with its type")
    assert [brief(p) for p in plan.phases] == [
        {
            "id": "1",
            "title": "Export format spec",
            "source": src(9),
            "number": 1,
            "owner": "python-dev",
            "kind": "design",
            "acceptance": acceptance1,
            "blast_radius": "",
            "parallel_group": "A",
            "status": "done",
            "task_ids": ("1",),
            "meta": {
                "checkpoint": {
                    "status": "completed",
                    "completed_at": "2025-07-15",
                    "artifacts": ["docs/export-format.md"],
                }
            },
        },
        {
            "id": "2",
            "title": "Exporter and importer",
            "source": src(20),
            "number": 2,
            "depends_on": ("1",),
            "owner": "python-dev",
            "blast_radius": "tests/test_export.py",
            "parallel_group": "B",
            "status": "in_progress",
            "task_ids": ("2.1", "2.2"),
            "meta": {
                "checkpoint": {"status": "partial", "last_successful_step": "Task 2.1 merged"}
            },
        },
        {
            "id": "3",
            "title": "Docs",
            "source": src(39),
            "number": 3,
            "depends_on": ("2",),
            "owner": "docs-writer",
            "parallel_group": "B",
            "task_ids": ("3.1", "3.2"),
        },
    ]
    assert [brief(t) for t in plan.tasks] == [
        {
            "id": "1",
            "title": "Export format spec",
            "phase": "1",
            "source": src(9),
            "kind": "design",
            "owner": "python-dev",
            "acceptance": acceptance1,
            "files_create": ("docs/export-format.md", "todo/export_schema.json"),
            "blast_radius": "",
            "status": "done",
        },
        {
            "id": "2.1",
            "title": "Exporter",
            "phase": "2",
            "source": src(25),
            "owner": "python-dev",
            "files_create": ("todo/export.py",),
            "files_modify": ("todo/cli.py",),
            "acceptance": ("`todo export out.json` writes every list",),
            "verify": ("pytest tests/test_export.py -q",),
            "blast_radius": "tests/test_export.py",
        },
        {
            "id": "2.2",
            "title": "Importer",
            "phase": "2",
            "source": src(31),
            "owner": "qa-dev",
            "depends_on": ("2.1",),
            "files_create": ("todo/importer.py",),
            "add_dependencies": ("jsonschema",),
            "blast_radius": "tests/test_export.py",
            "status": "in_progress",
        },
        {
            "id": "3.1",
            "title": "README section",
            "phase": "3",
            "source": src(42),
            "owner": "docs-writer",
            "status": "done",
        },
        {
            "id": "3.2",
            "title": "Changelog entry",
            "phase": "3",
            "source": src(43),
            "owner": "docs-writer",
            "depends_on": ("3.1",),
        },
    ]
    assert [d.render() for d in plan.diagnostics] == [
        f"warning: {TODO}:63: Execution Checkpoints: checkpoint for unknown phase '7'"
    ]
    assert plan.task("2.1").text == (
        "#### Task 2.1: Exporter\n- **Files**: `todo/export.py` (new), `todo/cli.py`\n"
        "- **Verify**: `pytest tests/test_export.py -q`\n- **Acceptance criteria**:\n"
        "  - `todo export out.json` writes every list"
    )


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / ".ai/plans/2025-01-09.sample.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_plain_yaml_checkpoints_and_phase_field_variants(tmp_path: Path) -> None:
    path = _plan(
        tmp_path,
        (
            "# Sample\n\n"
            "## Phase 1: API architecture\n"
            "- **Agent**: architect\n- **Blast radius**: all\n"
            "- **Files**:\n  - `docs/api.md` (new)\n  - `README.md`\n"
            "## Phase 2 - Build\n"
            "**Type:** refactor\n**Depends:** after the design is approved\n"
            "**Test scope:** `api::` (unit tests only)\n"
            "**Verify:** `make test`, `make lint`\n"
            "## Phase 3: Ship\n**Dependencies:** Phases 1-2\n"
            "## Execution Checkpoints\n\nRecorded by the executor.\n\n"
            "- phase: 1\n  status: done\n- phase: 2\n  status: TIMEOUT\n  error: took 600s\n"
            "- phase: 3\n  status: half\n"
        ),
    )
    plan = READER.read(path, repo=tmp_path)
    assert [
        (p.id, p.kind, p.owner, p.blast_radius, p.depends_on, p.status) for p in plan.phases
    ] == [
        ("1", "design", "architect", "", (), "done"),
        ("2", "implementation", None, "api::", (), "failed"),
        ("3", "implementation", None, None, ("1", "2"), "pending"),
    ]
    assert plan.task("1").files_create == ("docs/api.md",)
    assert plan.task("1").files_modify == ("README.md",)
    assert plan.task("2").verify == ("make test", "make lint")
    assert dict(plan.task("2").meta) == {"error": "took 600s"}
    f = ".ai/plans/2025-01-09.sample.md"
    assert [d.render() for d in plan.diagnostics] == [
        f"warning: {f}:10: type: unknown phase type 'refactor'; treated as implementation"
        "\n  hint: use Design or Implementation",
        f"warning: {f}:11: dependencies: no phase named in dependencies "
        "'after the design is approved'\n  hint: write e.g. 'Phase 1, Phase 2' or 'None'",
        f"warning: {f}:26: status: unknown status 'half'; treated as pending\n"
        "  hint: use one of: pending, in_progress, done, failed, blocked, skipped",
    ]
    assert plan.meta["parallel_groups"] == {}


AUDIO = ".ai/plans/2025-11-04.audio-capture.md"


def test_the_execute_plan_seeds_wording_files_to_create_modify_and_execution_groups(
    tmp_path: Path,
) -> None:
    # The plan is written as the execute-plan workflow words it: "**Files to create/modify:**",
    # "(new)" items, "Execution Groups" with "Phases [2, 3]".
    repo = copy_fixture("ai", "audio", tmp_path)
    plan = READER.read(repo / AUDIO, repo=repo)

    assert [(t.id, t.files_create, t.files_modify, t.add_dependencies) for t in plan.tasks] == [
        ("1", ("docs/adr/0004-capture-backend.md",), ("crates/audio/src/device.rs",), ()),
        (
            "2",
            ("crates/audio/src/ring.rs", "crates/audio/tests/ring_props.rs"),
            ("crates/audio/src/lib.rs",),
            (),
        ),
        # not in the repository yet: to create; Cargo.toml exists: to modify
        (
            "3",
            ("crates/audio/src/resample.rs",),
            ("crates/audio/Cargo.toml",),
            ('rubato = "0.15"',),
        ),
        ("4", ("crates/audio/tests/capture_e2e.rs",), ("crates/audio/src/lib.rs",), ()),
    ]
    assert [
        (p.id, p.kind, p.depends_on, p.parallel_group, p.blast_radius) for p in plan.phases
    ] == [
        ("1", "design", (), "A", "audio::device"),
        ("2", "implementation", ("1",), "B", "audio::ring"),
        ("3", "implementation", ("1",), "B", "audio::resample"),
        ("4", "implementation", ("2", "3"), "C", ""),
    ]
    assert plan.meta["parallel_groups"] == {"A": ["1"], "B": ["2", "3"], "C": ["4"]}
    assert plan.task("2").acceptance == (
        "Single producer, single consumer, no locks on the hot path",
        "Property test: what is written is read back in order",
    )
    assert plan.diagnostics == ()


def test_detect_and_discover(tmp_path: Path) -> None:
    repo = copy_fixture("ai", "billing", tmp_path)
    assert READER.detect(repo / BILLING)
    (repo / ".ai/plans/notes.md").write_text("## Phase 1: x\n", encoding="utf-8")
    (repo / ".ai/logs").mkdir()
    (repo / ".ai/logs/2025-03-03.plan-execution-log.md").write_text("# log\n", encoding="utf-8")
    assert not READER.detect(repo / ".ai/plans/notes.md")
    assert not READER.detect(repo / ".ai/logs/2025-03-03.plan-execution-log.md")
    assert not READER.detect(repo / ".ai/plans")
    assert [p.relative_to(repo).as_posix() for p in READER.discover(repo)] == [BILLING]


@pytest.mark.parametrize(
    ("checkpoints", "message", "line"),
    [
        (
            "```yaml\n- phase_1:\n    status: [done\n```\n",
            "invalid YAML: did not find expected ',' or ']'",
            7,
        ),
        (
            "```yaml\njust a sentence\n```\n",
            "Execution Checkpoints must be a YAML list or mapping of phases",
            5,
        ),
        (
            "```yaml\n- phase_1: done\n- 42\n```\n",
            "each checkpoint must be 'phase_N:' with its status under it",
            6,
        ),
        (
            "```yaml\n- phase_1: &a {status: done}\n- phase_2: *a\n```\n",
            "YAML aliases (*name) are not allowed in plans",
            6,
        ),
        (
            "```yaml\nphase_1: {status: done}\nphase_1: {status: failed}\n```\n",
            "duplicate key 'phase_1'",
            6,
        ),
    ],
    ids=["syntax", "scalar", "entry", "alias", "duplicate"],
)
def test_malformed_checkpoints(tmp_path: Path, checkpoints: str, message: str, line: int) -> None:
    path = _plan(tmp_path, "# S\n## Phase 1: A\n## Execution Checkpoints\n" + checkpoints)
    with pytest.raises(InputError) as exc:
        READER.read(path, repo=tmp_path)
    assert (exc.value.message, exc.value.line) == (message, line)
    assert exc.value.file == ".ai/plans/2025-01-09.sample.md"


def test_no_phases_is_an_error(tmp_path: Path) -> None:
    path = _plan(tmp_path, "# Sample\n\n## Overview\nJust prose.\n")
    with pytest.raises(InputError) as exc:
        READER.read(path, repo=tmp_path)
    assert str(exc.value) == (
        ".ai/plans/2025-01-09.sample.md: no phases found: expected headings like "
        "'## Phase 1: Title'\n  hint: each phase is a '## Phase N: Title' heading with its "
        "owner, dependencies and acceptance criteria under it"
    )


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        READER.read(tmp_path / ".ai/plans/2025-01-01.gone.md", repo=tmp_path)
    assert (exc.value.message, exc.value.file) == (
        "file not found",
        str(tmp_path / ".ai/plans/2025-01-01.gone.md"),
    )
