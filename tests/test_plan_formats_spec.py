"""The `.spec/plans/<name>/plan.md` reader and the `.spec/plans/README.md` index."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats_support import brief, copy_fixture
from planfleet.errors import InputError
from planfleet.plan.analysis import analyze
from planfleet.plan.formats.spec import READER, IndexEntry, read_index
from planfleet.plan.model import Diagnostic, Source

PLAN = ".spec/plans/url-shortener/plan.md"
IMPL = ".spec/plans/url-shortener/implementation/phase-{}.md"


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_partially_executed_plan_full_model(tmp_path: Path, crlf: bool) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path, crlf=crlf)
    plan = READER.read(repo / ".spec/plans/url-shortener", repo=repo)

    assert (plan.name, plan.title, plan.format) == (
        "url-shortener",
        "URL Shortener Service",
        "spec",
    )
    assert dict(plan.meta) == {
        "branch": "feature/url-shortener",
        "worktree": "../shortener-wt",
        "objective": "Short links with redirect analytics for the marketing site",
        # the README index row wins over the plan's own "Status: planned" line
        "status": "Executing",
        "last_updated": "2025-05-02T10:15:00Z",
    }
    assert [brief(p) for p in plan.phases] == [
        {
            "id": "1",
            "title": "Storage and code generation",
            "source": Source(PLAN, 15),
            "number": 1,
            "status": "done",
            "task_ids": ("1.1", "1.2", "1.3"),
        },
        {
            "id": "2",
            "title": "HTTP API",
            "source": Source(PLAN, 21),
            "number": 2,
            "depends_on": ("1",),
            "gate_commands": ("pytest tests/api -q",),
            "task_ids": ("2.1", "2.2", "2.3"),
        },
        {
            "id": "3",
            "title": "Click analytics",
            "source": Source(PLAN, 31),
            "number": 3,
            "depends_on": ("2",),
            "task_ids": ("3.1", "3.2", "3.3"),
        },
    ]
    spec1, spec2, spec3 = ((IMPL.format(n),) for n in (1, 2, 3))
    assert [brief(t) for t in plan.tasks] == [
        {
            "id": "1.1",
            "title": "Create the `links` table migration",
            "phase": "1",
            "source": Source(PLAN, 17),
            "spec_files": spec1,
            "status": "done",
        },
        {
            "id": "1.2",
            "title": "Implement base62 code generator with collision retry",
            "phase": "1",
            "source": Source(PLAN, 18),
            "depends_on": ("1.1",),
            "spec_files": spec1,
            "status": "done",
        },
        {
            "id": "1.3",
            "title": "Add repository functions `save_link` and `find_link`",
            "phase": "1",
            "source": Source(PLAN, 19),
            "depends_on": ("1.2",),
            "spec_files": spec1,
            "status": "done",
        },
        {
            "id": "2.1",
            "title": "POST /links returns a code for a valid URL",
            "phase": "2",
            "source": Source(PLAN, 23),
            "spec_files": spec2,
            "status": "done",
        },
        {
            "id": "2.2",
            "title": "GET /:code redirects with 302",
            "phase": "2",
            "source": Source(PLAN, 24),
            "depends_on": ("2.1",),
            "spec_files": spec2,
        },
        {
            "id": "2.3",
            "title": "Validate URLs (scheme http/https only, max 2048 chars)",
            "phase": "2",
            "source": Source(PLAN, 27),
            "depends_on": ("2.2",),
            "spec_files": spec2,
        },
        {
            "id": "3.1",
            "title": "Count clicks per code in a `clicks` table",
            "phase": "3",
            "source": Source(PLAN, 33),
            "spec_files": spec3,
        },
        {
            "id": "3.2",
            "title": "GET /links/:code/stats returns total and daily counts",
            "phase": "3",
            "source": Source(PLAN, 34),
            "depends_on": ("3.1",),
            "spec_files": spec3,
        },
        {
            "id": "3.3",
            "title": "Document the API in docs/api.md",
            "phase": "3",
            "source": Source(PLAN, 35),
            "depends_on": ("3.2",),
            "spec_files": spec3,
        },
    ]
    assert plan.diagnostics == ()
    assert plan.first_open_task() is not None
    assert plan.first_open_task().id == "2.2"  # type: ignore[union-attr]


def test_task_text_is_its_details_then_the_implementation_file(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path, crlf=True)
    plan = READER.read(repo / PLAN, repo=repo)
    impl = (repo / IMPL.format(2)).read_text(encoding="utf-8").replace("\r\n", "\n").strip()
    assert plan.task("2.2").text == (
        "- reject codes that are not base62\n- return 404 for unknown codes\n\n" + impl
    )
    assert plan.task("2.1").text == impl
    assert "\r" not in plan.task("3.1").text


def test_plan_without_implementation_files_and_no_worktree(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path)
    plan = READER.read(repo / ".spec/plans/rate-limits/plan.md", repo=repo)
    assert dict(plan.meta) == {
        "branch": "feature/rate-limits",
        "worktree": None,
        "status": "Planning",
        "last_updated": "2025-04-28T08:00:00Z",
    }
    assert [t.id for t in plan.tasks] == ["1.1", "1.2", "1.3"]
    assert all(t.spec_files == () and t.text == "" for t in plan.tasks)
    assert plan.diagnostics == (
        Diagnostic(
            "warning",
            "implementation file implementation/phase-1.md is missing",
            ".spec/plans/rate-limits/plan.md",
            6,
            "implementation",
            "write the phase's implementation spec in "
            ".spec/plans/rate-limits/implementation/phase-1.md",
        ),
    )


def test_hand_edited_plan_with_crlf_odd_spacing_and_bad_implementation_files(
    tmp_path: Path,
) -> None:
    repo = copy_fixture("spec", "hand-edited", tmp_path, crlf=True)
    plan = READER.read(repo / ".spec/plans/todo-sync", repo=repo)
    f = ".spec/plans/todo-sync/plan.md"
    assert (plan.name, plan.title) == ("todo-sync", "Todo CLI: sync with a remote server")
    # the index (a list, not a table) overrides the plan's own Last Updated line
    assert dict(plan.meta) == {
        "branch": "feature/sync",
        "worktree": None,
        "status": "Paused",
        "last_updated": "2025-06-11T17:42:05Z",
    }
    assert [brief(p) for p in plan.phases] == [
        {
            "id": "1",
            "title": "Sync protocol",
            "source": Source(f, 9),
            "number": 1,
            "status": "done",
            "task_ids": ("1.1", "1.2"),
        },
        {
            "id": "2",
            "title": "Client",
            "source": Source(f, 13),
            "number": 2,
            "depends_on": ("1",),
            "task_ids": ("2.1", "2.2", "2.3"),
        },
        # "Depends on: none" makes phase 3 independent; no checkboxes make it one task
        {
            "id": "3",
            "title": "Server stub",
            "source": Source(f, 27),
            "number": 3,
            "task_ids": ("3",),
        },
        {
            "id": "4",
            "title": "Docs and release",
            "source": Source(f, 32),
            "number": 4,
            "depends_on": ("2", "3"),
            "task_ids": ("4.2", "4.1"),
        },
    ]
    spec1 = (".spec/plans/todo-sync/implementation/phase-1.md",)
    spec2 = (".spec/plans/todo-sync/implementation/phase-2.md",)
    assert [brief(t) for t in plan.tasks] == [
        {
            "id": "1.1",
            "title": "Write down the sync protocol in docs/sync.md",
            "phase": "1",
            "source": Source(f, 10),
            "spec_files": spec1,
            "status": "done",
        },
        {
            "id": "1.2",
            "title": "Decide on conflict rule: last writer wins, per field",
            "phase": "1",
            "source": Source(f, 11),
            "depends_on": ("1.1",),
            "spec_files": spec1,
            "status": "done",
        },
        {
            "id": "2.1",
            "title": "`todo push` uploads local changes",
            "phase": "2",
            "source": Source(f, 18),
            "spec_files": spec2,
            "status": "done",
        },
        {
            "id": "2.2",
            "title": "`todo pull` downloads and merges remote changes",
            "phase": "2",
            "source": Source(f, 19),
            "depends_on": ("2.1",),
            "spec_files": spec2,
            "status": "in_progress",
        },
        {
            "id": "2.3",
            "title": "Retry with backoff on 5xx",
            "phase": "2",
            "source": Source(f, 20),
            "depends_on": ("2.2",),
            "spec_files": spec2,
        },
        {"id": "3", "title": "Server stub", "phase": "3", "source": Source(f, 27)},
        # explicit "4.2"/"4.1" numbers are kept; listed order still decides the chain
        {
            "id": "4.2",
            "title": "Update README with sync instructions",
            "phase": "4",
            "source": Source(f, 34),
        },
        {
            "id": "4.1",
            "title": "Announce on the mailing list",
            "phase": "4",
            "source": Source(f, 35),
            "depends_on": ("4.2",),
            "status": "skipped",
        },
    ]
    assert [d.render() for d in plan.diagnostics] == [
        f"warning: {f}:13: implementation: implementation file implementation/phase-2.md "
        "has only 17 bytes (at least 100 expected)\n  hint: write the phase's implementation "
        "spec in .spec/plans/todo-sync/implementation/phase-2.md",
        f"warning: {f}:27: implementation: implementation file implementation/phase-3.md "
        "is missing\n  hint: write the phase's implementation spec in "
        ".spec/plans/todo-sync/implementation/phase-3.md",
        "error: .spec/plans/todo-sync/implementation/phase-4.md:2: implementation: "
        "implementation file implementation/phase-4.md: not valid UTF-8 (byte 11)"
        "\n  hint: save the file as UTF-8",
    ]


def test_read_index_table(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path)
    assert read_index(repo) == [
        IndexEntry("url-shortener", "Executing", "2025-05-02T10:15:00Z", 7),
        IndexEntry("rate-limits", "Planning", "2025-04-28T08:00:00Z", 8),
    ]


def test_read_index_list(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "hand-edited", tmp_path)
    assert read_index(repo) == [
        IndexEntry("todo-sync", "Paused", "2025-06-11T17:42:05Z", 3),
        IndexEntry("old-importer", "Done", "2025-01-03", 4),
    ]


def test_read_index_headings_and_tolerance(tmp_path: Path) -> None:
    plans = tmp_path / ".spec/plans"
    plans.mkdir(parents=True)
    assert read_index(tmp_path) == []  # no README at all
    (plans / "README.md").write_text(
        "# Plans\n\nSome prose | with a pipe.\n\n## auth-rework\n- **Status**: Blocked\n"
        "- **Last Updated**: 2025-02-01\n\n## notes\nnothing here\n\n"
        "## billing\n- **Status**: Complete\n",
        encoding="utf-8",
    )
    assert read_index(tmp_path) == [
        IndexEntry("auth-rework", "Blocked", "2025-02-01", 5),
        IndexEntry("billing", "Complete", None, 12),
    ]
    (plans / "README.md").write_text(
        "| Name | Last updated | State |\n|---|---|---|\n| `a` | 2025-01-02 | Draft |\n"
        "| | 2025-01-03 | Draft |\n| `a` | 2025-09-09 | Later duplicate |\n| b |\n",
        encoding="utf-8",
    )
    assert read_index(tmp_path) == [
        IndexEntry("a", "Draft", "2025-01-02", 3),
        IndexEntry("b", None, None, 6),
    ]


def test_unreadable_index_is_a_warning(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path)
    (repo / ".spec/plans/README.md").write_bytes(b"| Plan | Status |\n\xff\n")
    plan = READER.read(repo / PLAN, repo=repo)
    assert plan.meta["status"] == "planned"  # the plan's own Status line
    assert [d.render() for d in plan.diagnostics] == [
        "warning: .spec/plans/README.md:2: plan index not read: not valid UTF-8 (byte 18)"
    ]
    with pytest.raises(InputError) as exc:
        read_index(repo)
    assert (exc.value.message, exc.value.line) == ("not valid UTF-8 (byte 18)", 2)


def test_detect_and_discover(tmp_path: Path) -> None:
    repo = copy_fixture("spec", "shortener", tmp_path)
    assert READER.detect(repo / PLAN)
    assert READER.detect(repo / ".spec/plans/url-shortener")
    assert not READER.detect(repo / ".spec/plans/README.md")
    assert not READER.detect(repo / IMPL.format(1))
    assert not READER.detect(repo / ".spec/plans")
    (repo / "docs").mkdir()
    (repo / "docs/plan.md").write_text("### Phase 1: x\n- [ ] y\n", encoding="utf-8")
    assert not READER.detect(repo / "docs/plan.md")
    assert sorted(p.relative_to(repo).as_posix() for p in READER.discover(repo)) == [
        ".spec/plans/rate-limits/plan.md",
        PLAN,
    ]


def test_forced_format_reads_a_plan_md_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "plan.md").write_text("# Elsewhere\n\n## Phase 1\n- [ ] one\n", encoding="utf-8")
    plan = READER.read(tmp_path / "plan.md", repo=tmp_path)
    assert (plan.name, [t.id for t in plan.tasks]) == (tmp_path.name, ["1.1"])


def _write_plan(tmp_path: Path, text: str | bytes) -> Path:
    folder = tmp_path / ".spec/plans/broken"
    folder.mkdir(parents=True)
    path = folder / "plan.md"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_no_phases_is_an_error(tmp_path: Path) -> None:
    path = _write_plan(tmp_path, "# Broken\n\n## Tasks\n- [ ] something\n")
    with pytest.raises(InputError) as exc:
        READER.read(path, repo=tmp_path)
    assert str(exc.value) == (
        ".spec/plans/broken/plan.md: no phases found: expected headings like "
        "'### Phase 1: Title'\n  hint: each phase is a '### Phase N: Title' heading "
        "followed by '- [ ] task' lines"
    )


def test_not_utf8_plan_is_an_error(tmp_path: Path) -> None:
    path = _write_plan(tmp_path, b"# Plan\n### Phase 1\n- [ ] caf\xe9\n")
    with pytest.raises(InputError) as exc:
        READER.read(path, repo=tmp_path)
    assert (exc.value.message, exc.value.line) == ("not valid UTF-8 (byte 28)", 3)
    assert exc.value.file == str(path)


def test_duplicate_ids_and_unknown_status_are_diagnostics(tmp_path: Path) -> None:
    path = _write_plan(
        tmp_path,
        "# Dupes\n### Phase 1: A\n- [ ] 1.1 first\n- [ ] 1.1 again\n"
        "### Phase 1: B (Stalled)\n- [ ] other\n",
    )
    plan = READER.read(path, repo=tmp_path)
    assert [(d.level, d.message, d.line) for d in plan.diagnostics] == [
        ("warning", "implementation file implementation/phase-1.md is missing", 2),
        ("error", "duplicate task id '1.1' (first defined at .spec/plans/broken/plan.md:3)", 4),
        ("warning", "implementation file implementation/phase-1.md is missing", 5),
        ("error", "duplicate phase id '1'", 5),
        # the second "Phase 1" adds its task to phase 1, where "1.1" is taken
        ("error", "duplicate task id '1.1' (first defined at .spec/plans/broken/plan.md:3)", 6),
    ]
    assert plan.phase("1").title == "A"


def test_task_id_that_is_not_safe_is_an_error(tmp_path: Path) -> None:
    path = _write_plan(tmp_path, "# X\n### Phase 999999\n- [ ] 1.1 ok\n")
    assert READER.read(path, repo=tmp_path).phases[0].id == "999999"
    long_id = "1." + "2" * 70
    path.write_text(f"# X\n### Phase 1\n- [ ] {long_id} too long\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        READER.read(path, repo=tmp_path)
    assert (exc.value.message, exc.value.file, exc.value.line) == (
        f"task id {long_id!r} is longer than 64 characters",
        ".spec/plans/broken/plan.md",
        3,
    )


AUTH = ".spec/plans/auth-system"


def test_the_bg_seeds_wording_and_verify_lines_count_as_checks(tmp_path: Path) -> None:
    # "### Phase N - Name" headings, "- **Verify**:" with a code span, in words, or a list.
    repo = copy_fixture("spec", "auth", tmp_path)
    plan = READER.read(repo / AUTH, repo=repo)

    assert [(p.id, p.title, p.depends_on, p.gate_commands, p.acceptance) for p in plan.phases] == [
        ("1", "Session store", (), ("pytest tests/test_sessions.py -q",), ()),
        ("2", "Login endpoint", ("1",), (), ("pytest tests/test_login.py -q passes",)),
        (
            "3",
            "Lockout",
            ("2",),
            ("pytest tests/test_lockout.py -q",),
            ("a locked account can log in again after 15 minutes",),
        ),
    ]
    assert [t.id for t in plan.tasks] == ["1.1", "1.2", "2.1", "2.2", "3.1"]
    assert dict(plan.meta) == {
        "branch": "feature/auth",
        "worktree": None,
        "status": "Ready",
        "last_updated": "2025-06-10T09:00:00Z",
    }
    warnings = [d.message for d in analyze(plan).diagnostics]
    assert not [w for w in warnings if "no acceptance criteria" in w], warnings
