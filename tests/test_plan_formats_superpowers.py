"""The superpowers reader: Markdown plans of ``### Task N:`` sections with files, steps, Run:."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from formats_support import copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats import load_plan
from planfleet.plan.formats.superpowers import READER
from planfleet.plan.model import Plan, Source

LIMITER = "docs/plans/2026-03-02-rate-limiter.md"
EXPORT = "docs/superpowers/plans/2026-04-10-export-csv.md"
WEBHOOKS = "docs/plans/2026-05-20-webhook-retries.md"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository holding the superpowers fixtures."""
    return copy_fixture(".", "superpowers", tmp_path)


def read(repo: Path, rel: str) -> Plan:
    return READER.read(repo / rel, repo=repo)


def diagnostics(plan: Plan) -> list[str]:
    return [d.render() for d in plan.diagnostics]


def test_rate_limiter_tasks_in_order(repo: Path) -> None:
    plan = read(repo, LIMITER)
    assert (plan.name, plan.title, plan.format) == (
        "rate-limiter",
        "Rate Limiter Implementation Plan",
        "superpowers",
    )
    assert (
        plan.meta["goal"] == "Limit each API key to a configurable number of requests per minute."
    )
    assert plan.meta["tech stack"] == "Python 3.12, Starlette, pytest"
    assert [(p.id, p.title, p.depends_on, p.task_ids) for p in plan.phases] == [
        ("tasks", "Rate Limiter Implementation Plan", (), ("task-1", "task-2", "task-3")),
    ]
    assert [(t.id, t.title, t.depends_on, t.source) for t in plan.tasks] == [
        ("task-1", "Token bucket", (), Source(LIMITER, 13)),
        ("task-2", "Key store", ("task-1",), Source(LIMITER, 55)),
        ("task-3", "Middleware", ("task-2",), Source(LIMITER, 82)),
    ]
    assert diagnostics(plan) == []


def test_rate_limiter_files_and_commands(repo: Path) -> None:
    plan = read(repo, LIMITER)
    bucket, store, middleware = plan.tasks
    assert bucket.files_create == ("src/throttle/bucket.py", "tests/throttle/test_bucket.py")
    assert bucket.files_modify == ()
    assert bucket.blast_radius == "tests/throttle/test_bucket.py"
    # the same command is the red step (Expected: FAIL) and the green step (Expected: PASS)
    assert bucket.verify == ("pytest tests/throttle/test_bucket.py -v",)
    assert bucket.meta["steps"] == [
        "Write the failing test",
        "Run test to verify it fails",
        "Write minimal implementation",
        "Run test to verify it passes",
        "Commit",
    ]
    assert bucket.meta["commit_message"] == "feat: token bucket"
    assert bucket.spec_files == (LIMITER,)
    assert bucket.text.startswith(
        "**Goal:** Limit each API key to a configurable number of requests per minute.\n"
        "**Architecture:** A token bucket per key"
    )
    assert "### Task 1: Token bucket\n\n**Files:**" in bucket.text
    assert "### Task 2" not in bucket.text
    assert store.files_modify == ("src/throttle/__init__.py",)  # ":1-8" dropped
    assert store.verify == ("pytest tests/throttle -v",)
    assert middleware.files_modify == ("src/app.py",)
    assert middleware.verify == (
        "pytest tests/test_app.py::test_rate_limited -v",
        "ruff check src/throttle",
    )
    assert middleware.blast_radius == "tests/test_app.py"
    assert {t.status for t in plan.tasks} == {"pending"}


def test_existing_test_file_is_modified_not_created(repo: Path) -> None:
    (repo / "tests").mkdir()
    (repo / "tests/test_app.py").write_text("def test_home(): ...\n")
    middleware = read(repo, LIMITER).task("task-3")
    assert middleware.files_create == ("src/throttle/middleware.py",)
    assert middleware.files_modify == ("src/app.py", "tests/test_app.py")


def test_chunks_become_phases_and_checkboxes_record_progress(repo: Path) -> None:
    plan = read(repo, EXPORT)
    assert plan.name == "export-csv"
    assert [(p.id, p.title, p.depends_on, p.task_ids, p.source) for p in plan.phases] == [
        ("chunk-1", "Encoding", (), ("task-1", "task-2"), Source(EXPORT, 9)),
        ("chunk-2", "HTTP", ("chunk-1",), ("task-3",), Source(EXPORT, 53)),
    ]
    encoder, quoting, route = plan.tasks
    assert (encoder.status, encoder.meta["steps_done"]) == ("done", 5)
    assert (quoting.status, quoting.meta["steps_done"]) == ("in_progress", 1)
    assert route.status == "pending"
    assert encoder.verify == ("go test ./internal/export/",)  # not the FAIL run
    # created by task 1, so task 2 modifies it
    assert quoting.files_create == ()
    assert quoting.files_modify == ("internal/export/csv.go", "internal/export/csv_test.go")
    assert route.depends_on == ("task-1",)  # **Depends on:** wins over the listed order
    assert route.acceptance == (
        "The response has Content-Type text/csv",
        "A ledger of 100k rows streams without loading all rows in memory",
    )
    assert route.verify == ("go test ./internal/http/ -run TestExport", "go vet ./...")
    assert route.files_create == ("internal/http/export.go", "internal/http/export_test.go")
    assert route.files_modify == ("cmd/server/main.go",)
    assert plan.first_open_task() == quoting


def test_hand_edited_plan(repo: Path) -> None:
    """CRLF, '**Files**:', '*' bullets, no backticks, other separators, a Status field."""
    path = repo / WEBHOOKS
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    plan = read(repo, WEBHOOKS)
    assert plan.title == "Webhook retries"
    assert (
        plan.meta["goal"]
        == "Retry failed webhook deliveries with backoff instead of dropping them."
    )
    assert [(t.id, t.title, t.status, t.depends_on) for t in plan.tasks] == [
        ("task-1", "Delivery record", "done", ()),
        ("task-2", "Retry queue", "in_progress", ("task-1",)),
        ("task-3", "Backoff schedule", "done", ("task-2",)),
        ("task-4", "Operator docs", "pending", ("task-1", "task-2")),
    ]
    delivery, retry, backoff, docs = plan.tasks
    assert delivery.files_create == ("src/hooks/delivery.py", "tests/hooks/test_delivery.py")
    assert delivery.files_modify == ("src/hooks/sender.py",)
    assert delivery.blast_radius == "tests/hooks/test_delivery.py"  # without ::test_name
    assert delivery.verify == ("pytest tests/hooks/test_delivery.py -q",)  # "0 failed" passes
    assert delivery.meta["steps"] == ["write the test"]
    assert retry.verify == ("pytest tests/hooks -q",)
    assert retry.files_modify == ("src/hooks/old_retry.py",)
    assert backoff.files_modify == ("src/hooks/retry.py",)
    assert backoff.verify == ("pytest tests/hooks/test_retry.py -q -k backoff",)
    assert docs.files_create == ("docs/webhooks.md",)
    assert "\r" not in docs.text
    assert diagnostics(plan) == [
        f"warning: {WEBHOOKS}:25: Files: unknown file action 'rename'; read as Modify\n"
        "  hint: use Create:, Modify: or Test:"
    ]


def test_detect_and_discover(repo: Path) -> None:
    assert READER.detect(repo / LIMITER)
    assert not READER.detect(repo / "docs/plans")
    for rel in (".spec/plans/limiter/plan.md", ".ai/plans/2026-03-02.limiter.md"):
        (repo / rel).parent.mkdir(parents=True)
        shutil.copy(repo / LIMITER, repo / rel)
        assert not READER.detect(repo / rel)
    fenced = repo / "plans/format.md"
    fenced.parent.mkdir()
    fenced.write_text("# How to write a plan\n\n```markdown\n### Task 1: Example\n```\n")
    assert not READER.detect(fenced)
    shutil.copy(repo / LIMITER, repo / "plans/limiter.md")
    shutil.copy(repo / LIMITER, repo / "README.md")  # detects, but is not where plans live
    found = sorted(p.relative_to(repo).as_posix() for p in READER.discover(repo))
    assert found == [LIMITER, WEBHOOKS, EXPORT, "plans/limiter.md"]
    assert load_plan(repo / EXPORT, repo=repo).format == "superpowers"


def write(repo: Path, text: str) -> Path:
    path = repo / "docs/plans/draft.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_task_sections(repo: Path) -> None:
    path = write(repo, "# Draft\n\n## Task ideas\n\n- something\n")
    with pytest.raises(InputError) as info:
        READER.read(path, repo=repo)
    assert info.value.render() == (
        "docs/plans/draft.md: no '### Task N: title' sections found\n"
        "  hint: a Superpowers plan has one '### Task N:' heading per task"
    )


def test_duplicate_and_unknown_status(repo: Path) -> None:
    text = (
        "# Draft\n\n### Task 1: One\n\n**Status:** parked\n\n### Task 1: Again\n\n"
        "#### Task 2: Deeper\n"
    )
    plan = READER.read(write(repo, text), repo=repo)
    assert [t.id for t in plan.tasks] == ["task-1", "task-2"]
    assert diagnostics(plan) == [
        "warning: docs/plans/draft.md:5: status: unknown status 'parked'; treated as pending\n"
        "  hint: use one of: pending, in_progress, done, failed, blocked, skipped",
        "error: docs/plans/draft.md:7: id: duplicate task id 'task-1' (first defined at "
        "docs/plans/draft.md:3)\n  hint: give every task its own id",
        "warning: docs/plans/draft.md:9: heading: task heading level 4 differs from the first "
        "task's (3); read as a task anyway",
    ]


def test_tasks_before_the_first_chunk_get_their_own_phase(repo: Path) -> None:
    text = "# Draft\n\n### Task 1: Setup\n\n## Chunk 1: Core\n\n### Task 2: Core\n"
    plan = READER.read(write(repo, text), repo=repo)
    assert [(p.id, p.depends_on, p.task_ids) for p in plan.phases] == [
        ("tasks", (), ("task-1",)),
        ("chunk-1", ("tasks",), ("task-2",)),
    ]
