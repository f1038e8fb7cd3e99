"""Projections: files rendered from the run state, per format, idempotent, user text kept.

Golden files live in ``fixtures/projections/<case>/expected``; after a deliberate change of
a projection, regenerate them with ``PLANFLEET_UPDATE_GOLDEN=1 pytest tests/test_views_render.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult, make_repo
from planfleet.plan import formats, links, model
from planfleet.state import create, ops, records
from planfleet.state.records import State
from planfleet.views import render
from planfleet.views.render import Rendered
from projections_support import CASES, CASES_DIR, Clock, copy_case, load, scripted_run

UPDATE = bool(os.environ.get("PLANFLEET_UPDATE_GOLDEN"))


def _rendered(tmp_path: Path, case: str) -> tuple[Path, model.Plan, State]:
    """Copy ``case``, run the scripted run on it and render; return repo, plan and state."""
    repo = copy_case(case, tmp_path)
    plan = load(repo, case)
    state = scripted_run(repo, plan)
    render.render_all(repo, plan, state)
    return repo, plan, state


def _rel(repo: Path, results: list[Rendered]) -> set[str]:
    return {str(r.path.relative_to(repo)) for r in results if r.changed}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files(tmp_path: Path, case: str) -> None:
    repo = copy_case(case, tmp_path)
    plan = load(repo, case)
    state = scripted_run(repo, plan)

    results = render.render_all(repo, plan, state)

    assert [r for r in results if r.error or r.warnings] == []
    expected_dir = CASES_DIR / case / "expected"
    changed = _rel(repo, results)
    if UPDATE:
        for rel in changed:
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes((repo / rel).read_bytes())
    expected = {str(p.relative_to(expected_dir)) for p in expected_dir.rglob("*") if p.is_file()}
    assert changed == expected
    for rel in sorted(expected):
        assert (repo / rel).read_text(encoding="utf-8") == (expected_dir / rel).read_text(
            encoding="utf-8"
        ), rel
    # every input file that is not a rendered one is byte for byte what the user wrote
    for src in (CASES_DIR / case / "input").rglob("*"):
        rel = str(src.relative_to(CASES_DIR / case / "input"))
        if src.is_file() and rel not in expected:
            assert (repo / rel).read_bytes() == src.read_bytes(), rel


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_twice_changes_nothing(tmp_path: Path, case: str) -> None:
    repo, plan, state = _rendered(tmp_path, case)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    stamps = {p: p.stat().st_mtime_ns for p in before}

    again = render.render_all(repo, plan, state)

    assert not any(r.changed for r in again)
    assert {p: p.read_bytes() for p in before} == before
    assert {p: p.stat().st_mtime_ns for p in before} == stamps  # not even rewritten


def test_dry_run_writes_nothing_but_says_what_would_change(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    plan = load(repo, "spec")
    state = scripted_run(repo, plan)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}

    results = render.render_all(repo, plan, state, dry_run=True)

    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    assert _rel(repo, results) == {
        ".spec/plans/inventory-sync/plan.md",
        ".spec/plans/README.md",
        ".spec/plans/inventory-sync/execution-log.md",
    }


def test_crlf_bom_and_user_text_around_the_marks_survive(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    plan_md = repo / ".spec/plans/inventory-sync/plan.md"
    original = plan_md.read_text(encoding="utf-8").replace("\n", "\r\n")
    plan_md.write_bytes(b"\xef\xbb\xbf" + original.encode())
    plan_md.chmod(0o640)
    plan = load(repo, "spec")
    state = scripted_run(repo, plan)

    render.render_all(repo, plan, state)

    data = plan_md.read_bytes()
    assert plan_md.stat().st_mode & 0o777 == 0o640
    assert data.startswith(b"\xef\xbb\xbf")
    new_lines = data[3:].decode().split("\r\n")
    old_lines = original.split("\r\n")
    assert len(new_lines) == len(old_lines)
    changed = [(o, n) for o, n in zip(old_lines, new_lines, strict=True) if o != n]
    assert changed == [
        ("### Phase 1: CSV drop reader", "### Phase 1: CSV drop reader ✅"),
        *(
            (f"- [ ] {task}", f"- [x] {task}")
            for task in (
                "Parse a drop file into `StockChange` rows",
                "Skip rows with unknown SKUs and count them",
                "Push changes to the shop in batches of 50",
            )
        ),
    ]
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_a_plan_edited_between_runs_renders_at_its_new_lines(tmp_path: Path) -> None:
    repo, plan, state = _rendered(tmp_path, "spec")
    plan_md = repo / ".spec/plans/inventory-sync/plan.md"
    # the user adds a paragraph at the top and a phase at the end, and ticks nothing
    text = plan_md.read_text(encoding="utf-8")
    text = text.replace("## Overview\n", "## Overview\n\nA paragraph added later.\n\n", 1)
    text += "\n### Phase 3: Alerts\n\n- [ ] Page on-call when a drop is older than an hour\n"
    plan_md.write_text(text, encoding="utf-8")
    # meanwhile the run goes on (with the plan as it was loaded before the edit)
    ops.claim(state, "2.2", owner="agent", now="2025-09-02T09:00:00.000Z")
    ops.complete(state, "2.2", commit="abc1234", now="2025-09-02T09:01:00.000Z")

    results = render.render_all(repo, plan, state)

    assert all(r.error is None and not r.warnings for r in results)
    lines = plan_md.read_text(encoding="utf-8").splitlines()
    assert "A paragraph added later." in lines
    assert "- [x] Retry a batch on 503 with a capped backoff" in lines
    assert "- [ ] Expose a `--dry-run` flag that prints the batches" in lines
    assert "- [ ] Page on-call when a drop is older than an hour" in lines  # not in the state
    assert "### Phase 1: CSV drop reader ✅" in lines


def test_a_completed_phase_heading_loses_its_old_status_word(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    plan_md = repo / ".spec/plans/inventory-sync/plan.md"
    text = plan_md.read_text("utf-8")
    plan_md.write_text(text.replace("reader\n", "reader (In Progress)\n", 1), "utf-8")

    _results(repo, "spec")

    assert "### Phase 1: CSV drop reader ✅\n" in plan_md.read_text("utf-8")


def test_a_task_renamed_under_its_id_is_left_alone_with_a_warning(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    plan_md = repo / ".spec/plans/inventory-sync/plan.md"
    plan = load(repo, "spec")
    state = scripted_run(repo, plan)
    # a new first task in phase 2: every positional id of that phase now names another line
    text = plan_md.read_text(encoding="utf-8")
    plan_md.write_text(
        text.replace("- [ ] Push changes", "- [ ] Log every batch\n- [ ] Push changes"),
        encoding="utf-8",
    )

    (result, *_) = render.render_all(repo, plan, state)

    lines = plan_md.read_text(encoding="utf-8").splitlines()
    assert "- [ ] Log every batch" in lines  # 2.1 in the plan now, 2.1 verified in the state
    assert result.changed  # phase 1 was still rendered
    assert len(result.warnings) == 3
    assert "task 2.1 is now 'Log every batch' in the plan" in result.warnings[0]


def test_existing_execution_log_keeps_the_users_text(tmp_path: Path) -> None:
    repo = copy_case("native", tmp_path)
    log = repo / "plans/mailer.execution-log.md"
    log.write_text("# My notes\n\nThe SMTP relay is slow on Mondays.\n", encoding="utf-8")
    plan = load(repo, "native")
    state = scripted_run(repo, plan)

    render.render_all(repo, plan, state)
    text = log.read_text(encoding="utf-8")
    assert text.startswith(
        "# My notes\n\nThe SMTP relay is slow on Mondays.\n\n<!-- planfleet:begin"
    )
    log.write_text(text + "\nA line written after our section.\n", encoding="utf-8")
    records.set_run_status(state, "running", now="2025-09-02T10:00:00.000Z")

    render.render_all(repo, plan, state)

    text = log.read_text(encoding="utf-8")
    assert text.startswith("# My notes\n")
    assert text.endswith(
        "<!-- planfleet:end execution-log -->\n\nA line written after our section.\n"
    )
    assert "Status: RUNNING" in text
    assert text.count("planfleet:begin execution-log") == 1


def test_checkpoints_in_a_fence_keep_their_form(tmp_path: Path) -> None:
    repo = copy_case("ai", tmp_path)
    plan_md = repo / CASES["ai"]
    text = plan_md.read_text(encoding="utf-8")
    fenced = "```yaml\n## Execution Checkpoints\n\nphase_1: {status: partial}\n```\n"
    plan_md.write_text(
        text.replace("## Execution Checkpoints\n\n(nothing executed yet)\n", fenced), "utf-8"
    )
    plan = load(repo, "ai")
    state = scripted_run(repo, plan)

    render.render_all(repo, plan, state)

    text = plan_md.read_text(encoding="utf-8")
    start = text.index("```yaml\n## Execution Checkpoints\n\n# written by planfleet")
    assert "- phase_2:\n    status: failed\n" in text[start:]
    assert text[start:].split("```\n", 2)[1].startswith("\n## Notes")
    again = formats.load_plan(plan_md, repo=repo)
    assert [p.status for p in again.phases] == ["done", "failed", "pending"]


def _results(repo: Path, case: str) -> list[Rendered]:
    plan = load(repo, case)
    return render.render_all(repo, plan, scripted_run(repo, plan))


def test_odd_files_are_reported_and_left_alone(tmp_path: Path) -> None:
    repo = copy_case("maxvision", tmp_path)
    odd = repo / ".maxvision/phase-1/plans/plan-002-fetcher.md"
    odd.write_text("---\nstatus: >\n  pending\ntitle: Rate fetcher\n---\n\nBody.\n", "utf-8")
    before = odd.read_bytes()

    results = _results(repo, "maxvision")

    (bad,) = [r for r in results if r.error]
    assert bad.path == odd
    assert "cannot be updated safely" in (bad.error or "")
    assert odd.read_bytes() == before
    assert sum(r.changed for r in results) == 5  # the others were still rendered


def test_broken_markers_and_an_index_without_the_plan_are_reported(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    log = repo / ".spec/plans/inventory-sync/execution-log.md"
    log.write_text("<!-- planfleet:end execution-log -->\nuser text\n", "utf-8")
    readme = repo / ".spec/plans/README.md"
    readme.write_text("# Plans\n\n- [other](other/plan.md) - Status: Done\n", "utf-8")

    results = {r.kind: r for r in _results(repo, "spec")}

    assert "markers" in (results["execution-log"].error or "")
    assert log.read_text("utf-8") == "<!-- planfleet:end execution-log -->\nuser text\n"
    assert "no entry for plan 'inventory-sync'" in (results["plan-index"].error or "")
    assert results["checkboxes"].changed


def test_a_table_index_without_the_plan_gets_a_row(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    readme = repo / ".spec/plans/README.md"
    readme.write_text(
        "# Plans\n\n| Plan | Status | Last Updated |\n|---|---|---|\n"
        "| [x](x/plan.md) | Done | 2025 |\n\nEnd.\n",
        "utf-8",
    )

    _results(repo, "spec")

    assert readme.read_text("utf-8").endswith(
        "| [x](x/plan.md) | Done | 2025 |\n"
        "| [inventory-sync](inventory-sync/plan.md) | Paused | 2025-09-02T08:12:00Z |\n\nEnd.\n"
    )
    entry = next(e for e in formats.spec_index.read_index(repo) if e.name == "inventory-sync")
    assert (entry.status, entry.last_updated) == ("Paused", "2025-09-02T08:12:00Z")


def test_list_and_heading_indexes_are_updated_in_place(tmp_path: Path) -> None:
    repo = copy_case("spec", tmp_path)
    readme = repo / ".spec/plans/README.md"
    plan = load(repo, "spec")
    state = scripted_run(repo, plan)
    readme.write_text(
        "# Plans\n\n- [inventory-sync](inventory-sync/plan.md) — Status: Planning — mine\n",
        "utf-8",
    )
    render.render_all(repo, plan, state)
    assert readme.read_text("utf-8") == (
        "# Plans\n\n- [inventory-sync](inventory-sync/plan.md) — Status: Paused — mine"
        " — Last Updated: 2025-09-02T08:12:00Z\n"
    )
    readme.write_text(
        "# Plans\n\n## inventory-sync\n- **Status**: Planning\n- **Last Updated**: never\n",
        "utf-8",
    )
    render.render_all(repo, plan, state)
    assert readme.read_text("utf-8") == (
        "# Plans\n\n## inventory-sync\n- **Status**: Paused\n"
        "- **Last Updated**: 2025-09-02T08:12:00Z\n"
    )


def test_a_plan_outside_the_repo_and_an_unreadable_plan_are_left_alone(tmp_path: Path) -> None:
    repo = copy_case("superpowers", tmp_path)
    real = repo / "docs/plans/2026-01-05-cache-layer.md"
    outside = tmp_path / "outside.md"
    real.rename(outside)
    real.symlink_to(outside)  # the plan's text lives outside the repository
    before = outside.read_bytes()

    with links.allowing():  # read with --allow-outside-links: still never written
        results = {r.kind: r for r in _results(repo, "superpowers")}

    assert results["task-marks"].error == "outside the repository; left alone"
    assert outside.read_bytes() == before
    assert results["execution-log"].changed

    real.unlink()
    real.write_bytes(before)
    plan = load(repo, "superpowers")
    state = scripted_run(repo, plan)
    real.write_text("# no tasks here any more\n", "utf-8")
    results = {r.kind: r for r in render.render_all(repo, plan, state)}
    assert "cannot be read now" in (results["task-marks"].error or "")
    assert real.read_text("utf-8") == "# no tasks here any more\n"
    assert results["execution-log"].error is None


def test_a_reset_task_loses_its_marks(tmp_path: Path) -> None:
    repo, plan, state = _rendered(tmp_path, "gsd")
    summary = repo / ".planning/phases/02-api/02-01-SUMMARY.md"
    foreign = repo / ".planning/phases/02-api/02-02-SUMMARY.md"
    foreign.write_text("# 02-02 summary written by hand\n", "utf-8")
    assert summary.is_file()

    ops.reset(state, "02-01", now="2025-09-02T11:00:00.000Z")
    results = render.render_all(repo, plan, state)

    assert not summary.exists()
    assert foreign.read_text("utf-8") == "# 02-02 summary written by hand\n"
    (warned,) = [r for r in results if r.warnings]
    assert "the run state has it failed" in warned.warnings[0]


def test_marks_follow_the_state_back_and_forth(tmp_path: Path) -> None:
    repo, plan, state = _rendered(tmp_path, "spec")
    plan_md = repo / ".spec/plans/inventory-sync/plan.md"

    ops.reset(state, "1.2", now="2025-09-02T11:00:00.000Z")
    render.render_all(repo, plan, state)

    lines = plan_md.read_text("utf-8").splitlines()
    assert "### Phase 1: CSV drop reader" in lines
    assert "- [ ] Skip rows with unknown SKUs and count them" in lines
    assert "- [x] Parse a drop file into `StockChange` rows" in lines

    repo = copy_case("superpowers", tmp_path / "sp")
    plan = load(repo, "superpowers")
    state = scripted_run(repo, plan)
    ops.claim(state, "task-4", owner="agent", now="2025-09-02T11:00:00.000Z")
    ops.complete(state, "task-4", commit="abc1234", now="2025-09-02T11:01:00.000Z")
    render.render_all(repo, plan, state)
    plan_md = repo / CASES["superpowers"]
    assert "### Task 4: Metrics ✅\n" in plan_md.read_text("utf-8")
    assert load(repo, "superpowers").task("task-4").status == "done"

    ops.reset(state, "task-4", now="2025-09-02T11:02:00.000Z")
    ops.reset(state, "task-2", now="2025-09-02T11:03:00.000Z")
    render.render_all(repo, plan, state)
    text = plan_md.read_text("utf-8")
    assert "### Task 4: Metrics\n" in text
    assert "**Status:** pending\n" in text
    assert load(repo, "superpowers").task("task-4").status == "pending"


def test_execute_state_keeps_other_tools_keys_and_entries(tmp_path: Path) -> None:
    repo = copy_case("xml-tasks", tmp_path)
    state_file = repo / "tasks/payouts/execute-state.json"
    data = json.loads(state_file.read_text("utf-8"))
    data["tasks"]["Z-999"] = {"status": "completed"}
    data["merge_queue"] = [{"task_id": "Z-999", "status": "merged"}]
    data["abandoned"] = ["Z-998"]
    state_file.write_text(json.dumps(data), "utf-8")
    plan = load(repo, "xml-tasks")
    state = scripted_run(repo, plan)
    records.enqueue(state, "P-003", priority=2, now="2025-09-02T12:00:00.000Z")
    ops.claim(state, "P-004", owner="agent", now="2025-09-02T12:01:00.000Z")
    ops.abandon(state, "P-004", "gave up", now="2025-09-02T12:02:00.000Z")

    render.render_all(repo, plan, state)

    written = json.loads(state_file.read_text("utf-8"))
    assert written["runner"] == "execute-batch"
    assert written["tasks"]["Z-999"] == {"status": "completed"}
    assert written["tasks"]["P-001"]["notes"] == "kept by the other tool"
    assert written["merge_queue"] == [
        {"task_id": "Z-999", "status": "merged"},
        {"task_id": "P-003", "priority": 2, "status": "ready"},
    ]
    assert written["abandoned"] == ["Z-998", "P-004"]
    assert written["tasks"]["P-004"]["status"] == "abandoned"


def test_rendering_a_large_plan_is_fast(tmp_path: Path) -> None:
    lines = ["# Big plan", ""]
    for p in range(1, 21):
        lines += [f"### Phase {p}: Part {p}", ""]
        lines += [f"- [ ] Step {p}.{t} of the work" for t in range(1, 26)]
        lines.append("")
    folder = tmp_path / "repo/.spec/plans/big"
    folder.mkdir(parents=True)
    (folder / "plan.md").write_text("\n".join(lines), "utf-8")
    repo = tmp_path / "repo"
    plan = formats.load_plan(folder, repo=repo)
    state = create.init_from_plan(plan, now="2025-09-02T08:00:00.000Z")
    clock = Clock()
    for _ in range(300 + 11):  # 300 tasks and the gates of the 12 phases they fill
        node = records.ready_tasks(state)[0]
        ops.claim(state, node, owner="agent", now=clock())
        ops.complete(state, node, commit="abc1234", now=clock())
    render.render_all(repo, plan, state)

    started = time.perf_counter()
    results = render.render_all(repo, plan, state)
    elapsed = time.perf_counter() - started

    assert not any(r.changed for r in results)
    assert elapsed < 1.0, f"render_all took {elapsed:.3f}s for 500 tasks"
    assert (folder / "plan.md").read_text("utf-8").count("- [x]") == 300


def test_checkpoint_command(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "plans").mkdir()
    src = CASES_DIR / "native/input/plans/mailer.plan.yaml"
    (repo / "plans/mailer.plan.yaml").write_bytes(src.read_bytes())

    no_state = run_cli("checkpoint", "plans/mailer.plan.yaml", "--json", cwd=repo)
    assert no_state.code == 3
    assert "planfleet state init mailer" in no_state.json()["errors"][0]["next_step"]

    assert (
        run_cli("state", "init", "mailer", "--from", "plans/mailer.plan.yaml", cwd=repo).code == 0
    )
    dry = run_cli("checkpoint", "mailer", "--dry-run", "--json", cwd=repo)
    assert dry.code == 0
    assert dry.json()["data"]["changed"] == 1
    assert not (repo / "plans/mailer.execution-log.md").exists()

    first = run_cli("checkpoint", "plans/mailer.plan.yaml", cwd=repo)
    assert first.code == 0
    assert "updated      plans/mailer.execution-log.md (execution-log)" in first.out
    assert "Status: RUNNING" in (repo / "plans/mailer.execution-log.md").read_text("utf-8")

    second = run_cli("checkpoint", "mailer", "--json", cwd=repo)
    data = second.json()["data"]
    assert (data["plan"], data["changed"]) == ("mailer", 0)
    assert data["files"] == [
        {"path": "plans/mailer.execution-log.md", "kind": "execution-log", "changed": False}
    ]
