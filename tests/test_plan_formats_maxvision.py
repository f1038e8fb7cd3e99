"""The `.maxvision/phase-N/plans/*.md` reader: one task per plan file, frontmatter status."""

from __future__ import annotations

from pathlib import Path

import frontmatter
import pytest

from formats_support import brief, copy_fixture
from planfleet.errors import InputError
from planfleet.plan.formats.maxvision import READER
from planfleet.plan.formats.yamlfront import SafeYAMLHandler
from planfleet.plan.model import Source

MV = ".maxvision"


def _src(phase: str, stem: str) -> Source:
    return Source(f"{MV}/{phase}/plans/{stem}.md", 1)


def _spec(phase: str, stem: str) -> tuple[str]:
    return (f"{MV}/{phase}/plans/{stem}.md",)


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_whole_maxvision_folder_full_model(tmp_path: Path, crlf: bool) -> None:
    repo = copy_fixture("maxvision", "newsletter", tmp_path, crlf=crlf)
    plan = READER.read(repo / MV, repo=repo)

    assert (plan.name, plan.title, plan.format) == (
        "maxvision",
        "maxvision phases 1–3",
        "maxvision",
    )
    assert [brief(p) for p in plan.phases] == [
        {"id": "1", "title": "Phase 1", "source": Source(f"{MV}/phase-1"), "number": 1,
         "task_ids": ("1.plan-001-subscriber-table", "1.plan-002-config")},
        {"id": "2", "title": "Phase 2", "source": Source(f"{MV}/phase-2"), "number": 2,
         "depends_on": ("1",),
         "task_ids": ("2.plan-001-signup-endpoint", "2.plan-002-confirmation-mail",
                      "2.plan-003-unsubscribe")},
        {"id": "3", "title": "Phase 3: launch", "source": Source(f"{MV}/phase-03-launch"),
         "number": 3, "depends_on": ("2",), "task_ids": ("3.plan-001-announce",)},
    ]  # fmt: skip
    assert [brief(t) for t in plan.tasks] == [
        {"id": "1.plan-001-subscriber-table", "title": "Subscriber table and repository",
         "phase": "1", "source": _src("phase-1", "plan-001-subscriber-table"),
         "files_modify": ("migrations/0001_subscribers.sql", "newsletter/repo.py"),
         "verify": ("pytest tests/test_repo.py -q",),
         "spec_files": _spec("phase-1", "plan-001-subscriber-table"), "status": "done",
         "meta": {"wave": 1}},
        {"id": "1.plan-002-config", "title": "Settings loader", "phase": "1",
         "source": _src("phase-1", "plan-002-config"), "files_modify": ("newsletter/config.py",),
         "spec_files": _spec("phase-1", "plan-002-config"), "status": "done"},
        {"id": "2.plan-001-signup-endpoint", "title": "Signup endpoint", "phase": "2",
         "source": _src("phase-2", "plan-001-signup-endpoint"),
         "files_modify": ("newsletter/api.py", "tests/test_signup.py"),
         "acceptance": ("POST /subscribe answers 202 for a new address",
                        "a repeated address answers 202 too (no enumeration)"),
         "spec_files": _spec("phase-2", "plan-001-signup-endpoint"), "status": "done"},
        {"id": "2.plan-002-confirmation-mail", "title": "Confirmation e-mail", "phase": "2",
         "source": _src("phase-2", "plan-002-confirmation-mail"), "owner": "maxv-executor",
         "depends_on": ("2.plan-001-signup-endpoint",),
         "files_modify": ("newsletter/mail.py", "newsletter/templates/confirm.txt"),
         "acceptance": ("confirmation link expires after 48 hours",),
         "verify": ("pytest tests/test_mail.py -q", "python -m newsletter.mail --dry-run"),
         "spec_files": _spec("phase-2", "plan-002-confirmation-mail")},
        {"id": "2.plan-003-unsubscribe", "title": "One-click unsubscribe", "phase": "2",
         "source": _src("phase-2", "plan-003-unsubscribe"), "files_modify": ("newsletter/api.py",),
         "spec_files": _spec("phase-2", "plan-003-unsubscribe"), "status": "blocked",
         "meta": {"blocked_by": "legal review of the footer text"}},
        {"id": "3.plan-001-announce", "title": "Launch announcement", "phase": "3",
         "source": _src("phase-03-launch", "plan-001-announce"),
         "spec_files": _spec("phase-03-launch", "plan-001-announce")},
    ]  # fmt: skip
    assert [d.render() for d in plan.diagnostics] == [
        "warning: .maxvision/phase-4: phase: phase-4 has no plans/*.md files; phase skipped"
    ]
    assert plan.task("1.plan-001-subscriber-table").text == (
        "# Subscriber table and repository\n\nCreate the `subscribers` table (email unique, "
        "confirmed flag, created_at) and a small\nrepository module with `add`, `confirm` and "
        "`find_by_email`."
    )
    assert plan.first_open_task().id == "2.plan-002-confirmation-mail"  # type: ignore[union-attr]


def test_one_phase_folder(tmp_path: Path) -> None:
    repo = copy_fixture("maxvision", "newsletter", tmp_path)
    plan = READER.read(repo / MV / "phase-2", repo=repo)
    assert (plan.name, plan.title) == ("maxvision-phase-2", "maxvision phase 2")
    assert [(p.id, p.depends_on) for p in plan.phases] == [("2", ())]
    assert [t.id for t in plan.tasks] == [
        "2.plan-001-signup-endpoint",
        "2.plan-002-confirmation-mail",
        "2.plan-003-unsubscribe",
    ]
    assert plan.task("2.plan-002-confirmation-mail").depends_on == ("2.plan-001-signup-endpoint",)
    assert plan.diagnostics == ()


def test_one_plan_file_drops_dependencies_outside_it(tmp_path: Path) -> None:
    repo = copy_fixture("maxvision", "newsletter", tmp_path)
    path = repo / MV / "phase-2/plans/plan-002-confirmation-mail.md"
    plan = READER.read(path, repo=repo)
    assert (plan.name, plan.title) == (
        "maxvision-phase-2-plan-002-confirmation-mail",
        "Confirmation e-mail",
    )
    assert [t.id for t in plan.tasks] == ["2.plan-002-confirmation-mail"]
    assert plan.tasks[0].depends_on == ()
    assert [d.render() for d in plan.diagnostics] == [
        "warning: .maxvision/phase-2/plans/plan-002-confirmation-mail.md:3: depends_on: depends "
        "on '2.plan-001-signup-endpoint', which is outside this plan; not enforced\n"
        "  hint: run the whole .maxvision folder to order it after that plan"
    ]


def _mv(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / MV / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / MV


def test_hand_edited_frontmatter_and_dependency_spellings(tmp_path: Path) -> None:
    root = _mv(tmp_path, {
        "phase-1/plans/01 Setup DB.md": "---\nstatus:   in_progress \ntitle: 7\n---\nbody\n",
        "phase-1/plans/02-api.md": (
            "---\nstatus: half-done\ndepends_on: 01 Setup DB.md\ntype: Design\n"
            "files_created: api/app.py\nblast_radius: ''\nestimate: 3\n---\n"
            "Some prose first.\n\n## API plan\nDetails.\n"
        ),
        "phase-2/plans/x.md": (
            "---\ntype: spike\ndepends_on: [phase-1/plans/02-api.md, 1.01-Setup-DB, 2.nope]\n"
            "---\n"
        ),
    })  # fmt: skip
    plan = READER.read(root, repo=tmp_path)
    assert [brief(t, skip=("text", "source", "spec_files")) for t in plan.tasks] == [
        {"id": "1.01-Setup-DB", "title": "7", "phase": "1", "status": "in_progress"},
        {"id": "1.02-api", "title": "API plan", "phase": "1", "kind": "design",
         "depends_on": ("1.01-Setup-DB",), "files_create": ("api/app.py",), "blast_radius": "",
         "meta": {"estimate": 3}},
        {"id": "2.x", "title": "x", "phase": "2",
         "depends_on": ("1.02-api", "1.01-Setup-DB", "2.nope")},
    ]  # fmt: skip
    assert [(d.level, d.message, d.file, d.line) for d in plan.diagnostics] == [
        ("warning", "unknown status 'half-done'; treated as pending",
         ".maxvision/phase-1/plans/02-api.md", 2),
        ("warning", "unknown type 'spike'; treated as implementation",
         ".maxvision/phase-2/plans/x.md", 2),
    ]  # fmt: skip


def test_the_bg_dispatch_seeds_statuses_and_what_executors_leave_behind(tmp_path: Path) -> None:
    # status completed / blocked / pending / none, as the dispatch workflow filters them;
    # the SUMMARY.md an executor produces and the dispatch manifest are not plans.
    root = _mv(tmp_path, {
        "phase-3/plans/plan-001-auth-tables.md": "---\nstatus: completed\n---\n# Tables\n",
        "phase-3/plans/plan-002-login-form.md": "---\nstatus: blocked\n---\n# Form\n",
        "phase-3/plans/plan-003-sessions.md": "---\nstatus: pending\n---\n# Sessions\n",
        "phase-3/plans/plan-004-audit-log.md": "# Audit log\n\nNo frontmatter at all.\n",
        "phase-3/plans/plan-001-auth-tables-SUMMARY.md": "# Summary\n\nDone.\n",
        "phase-3/plans/SUMMARY.md": "# Phase summary\n",
        "phase-3/bg-dispatch.json": '{"phase": 3, "sessions": []}\n',
    })  # fmt: skip

    plan = READER.read(root, repo=tmp_path)

    assert [(t.id, t.title, t.status) for t in plan.tasks] == [
        ("3.plan-001-auth-tables", "Tables", "done"),
        ("3.plan-002-login-form", "Form", "blocked"),
        ("3.plan-003-sessions", "Sessions", "pending"),
        ("3.plan-004-audit-log", "Audit log", "pending"),
    ]
    assert not READER.detect(root / "phase-3/plans/SUMMARY.md")


def test_detect_and_discover(tmp_path: Path) -> None:
    repo = copy_fixture("maxvision", "newsletter", tmp_path)
    assert READER.detect(repo / MV)
    assert READER.detect(repo / MV / "phase-2")
    assert READER.detect(repo / MV / "phase-2/plans/plan-003-unsubscribe.md")
    assert not READER.detect(repo / MV / "phase-2/plans/notes.txt")
    assert not READER.detect(repo / MV / "phase-2/plans")
    (repo / "other/phase-1/plans").mkdir(parents=True)
    (repo / "other/phase-1/plans/a.md").write_text("# a\n", encoding="utf-8")
    assert not READER.detect(repo / "other/phase-1/plans/a.md")
    assert [p.relative_to(repo).as_posix() for p in READER.discover(repo)] == [MV]
    (repo / "empty/.maxvision/phase-1").mkdir(parents=True)
    assert not READER.detect(repo / "empty/.maxvision")


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("---\nstatus: done\n", "frontmatter opened with '---' on line 1 is never closed", 1),
        ("---\nstatus: [done\n---\n", "invalid YAML: did not find expected ',' or ']'", 3),
        ("---\n- a\n- b\n---\n", "frontmatter must be a YAML mapping (key: value lines)", 2),
        ("---\nstatus: done\nfiles_modified: {a: 1}\n---\n",
         "'files_modified' must be a string or a list of strings", 3),
        ("---\nverify: [[nested]]\n---\n", "'verify' must be a string or a list of strings", 2),
        ("---\ntitle: [a, b]\n---\n", "'title' must be a string", 2),
        ("---\nowner: &o x\nagent: *o\n---\n", "YAML aliases (*name) are not allowed in plans", 3),
        ("---\nstatus: !include x\n---\n", "YAML tag '!include' is not allowed in plans", 2),
    ],
    ids=["unclosed", "syntax", "list", "files-type", "verify-type", "title-type", "alias", "tag"],
)  # fmt: skip
def test_malformed_plan_files(tmp_path: Path, text: str, message: str, line: int) -> None:
    root = _mv(tmp_path, {"phase-1/plans/p.md": text})
    with pytest.raises(InputError) as exc:
        READER.read(root, repo=tmp_path)
    assert (exc.value.message, exc.value.file, exc.value.line) == (
        message,
        ".maxvision/phase-1/plans/p.md",
        line,
    )


LAUGHS = (
    "---\n"
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: [*b, *b, *b, *b, *b, *b, *b, *b]\n"
    "---\n# Plan\n"
)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (LAUGHS, "YAML aliases (*name) are not allowed in plans", 3),
        (
            "---\nowner: !!python/object/apply:os.system [ls]\n---\n",
            "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed in plans",
            2,
        ),
        ("---\nstatus: done\nnested: " + "[" * 80 + "]" * 80 + "\n---\n",
         "YAML nested deeper than 64 levels", 3),
    ],
    ids=["laughs", "python-tag", "deep"],
)  # fmt: skip
def test_frontmatter_split_by_python_frontmatter_stays_safe(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    # python-frontmatter's own YAML handler would expand the aliases; ours refuses them.
    assert len(frontmatter.loads(LAUGHS).metadata["c"]) == 8
    with pytest.raises(InputError) as direct:
        frontmatter.loads(text, handler=SafeYAMLHandler("p.md", 1))
    assert (direct.value.message, direct.value.line) == (message, line)

    root = _mv(tmp_path, {"phase-1/plans/p.md": text})
    with pytest.raises(InputError) as exc:
        READER.read(root, repo=tmp_path)
    assert (exc.value.message, exc.value.line) == (message, line)


def test_no_phases_or_no_plans_is_an_error(tmp_path: Path) -> None:
    (tmp_path / MV).mkdir()
    with pytest.raises(InputError) as exc:
        READER.read(tmp_path / MV, repo=tmp_path)
    assert str(exc.value) == (
        ".maxvision: no phase-N folders found\n  hint: plans live in .maxvision/phase-N/plans/*.md"
    )
    (tmp_path / MV / "phase-1/plans").mkdir(parents=True)
    with pytest.raises(InputError) as exc:
        READER.read(tmp_path / MV, repo=tmp_path)
    assert str(exc.value) == (
        ".maxvision: no plan files found in any phase-N/plans folder\n"
        "  hint: add .maxvision/phase-N/plans/<plan>.md files"
    )


def test_binary_plan_file_is_an_error(tmp_path: Path) -> None:
    root = _mv(tmp_path, {"phase-1/plans/ok.md": "# ok\n"})
    (root / "phase-1/plans/bad.md").write_bytes(b"# bad\n\x00\x01")
    with pytest.raises(InputError) as exc:
        READER.read(root, repo=tmp_path)
    assert (exc.value.message, exc.value.file) == (
        "file contains NUL bytes; is it a binary file?",
        str(root / "phase-1/plans/bad.md"),
    )
