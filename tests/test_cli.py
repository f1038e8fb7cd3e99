"""The CLI in-process: plan list/show/validate, preflight, errors and exit codes."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from conftest import REPO_ROOT, CliResult, git, make_repo

EXAMPLE = REPO_ROOT / "examples" / "textstats" / "repo"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    repo = tmp_path / "example"
    shutil.copytree(EXAMPLE, repo)
    return make_repo(repo, {})


def test_plan_show_json_on_the_example(run_cli, example: Path) -> None:
    r: CliResult = run_cli("plan", "show", "plans/textstats.plan.yaml", "--json", cwd=example)
    assert r.code == 0, r.err
    env = r.json()
    assert (env["version"], env["command"], env["status"], env["errors"]) == (
        1,
        "plan show",
        "ok",
        [],
    )
    data = env["data"]
    assert data["name"] == "textstats"
    assert data["format"] == "planfleet"
    assert data["counts"] == {"phases": 3, "tasks": 5, "done": 0}
    assert data["groups"] == [["tokenizer", "counter", "usage-doc"], ["report"], ["cli"]]
    assert data["critical_path"] == {"length": 5.0, "tasks": ["tokenizer", "report", "cli"]}
    assert data["first_open_task"] == "tokenizer"
    assert data["complexity"]["level"] == "low"
    cli_task = next(t for t in data["tasks"] if t["id"] == "cli")
    assert cli_task["depends_on"] == ["report"]
    assert cli_task["source"] == "plans/textstats.plan.yaml:64"


def test_plan_show_human(run_cli, example: Path) -> None:
    r = run_cli("-C", example, "plan", "show", "textstats")
    assert r.code == 0, r.err
    assert "Plan: textstats - Text statistics package  [planfleet]" in r.out
    assert "- Starting from: tokenizer (Write the tokenizer)" in r.out
    assert "Critical path (5): tokenizer -> report -> cli" in r.out


def test_plan_list_finds_the_example(run_cli, example: Path) -> None:
    r = run_cli("plan", "list", "--json", "-C", example)
    assert r.code == 0, r.err
    (entry,) = r.json()["data"]["plans"]
    assert entry["name"] == "textstats"
    assert entry["status"] == "not started"
    assert (entry["tasks"], entry["done"]) == (5, 0)


def test_plan_validate_ok_and_strict(run_cli, example: Path) -> None:
    r = run_cli("plan", "validate", "plans/textstats.plan.yaml", cwd=example)
    assert r.code == 0
    assert "textstats: valid (0 errors, 0 warnings)" in r.out


def write_plan(repo: Path, body: str, name: str = "bad.plan.yaml") -> Path:
    path = repo / name
    path.write_text(body, encoding="utf-8")
    return path


def test_validate_reports_unknown_dependency_with_line(run_cli, git_repo: Path) -> None:
    write_plan(
        git_repo,
        "planfleet: 1\nname: p\nphases:\n  - id: one\n    tasks:\n"
        "      - id: build\n      - id: test\n        depends_on: [biuld]\n",
    )
    r = run_cli("plan", "validate", "bad.plan.yaml", "--json", cwd=git_repo)
    assert r.code == 2
    env = r.json()
    assert env["status"] == "invalid"
    (err,) = env["data"]["errors"]
    assert err == {
        "level": "error",
        "message": "task 'test' depends on unknown id 'biuld'",
        "file": "bad.plan.yaml",
        "line": 7,
        "field": "depends_on",
        "hint": "did you mean 'build'?",
    }


def test_validate_strict_fails_on_warnings(run_cli, git_repo: Path) -> None:
    write_plan(git_repo, "planfleet: 1\nname: p\nphases:\n  - id: one\n")
    assert run_cli("plan", "validate", "bad.plan.yaml", cwd=git_repo).code == 0
    r = run_cli("plan", "validate", "bad.plan.yaml", "--strict", cwd=git_repo)
    assert r.code == 2
    assert "p: invalid (0 errors, 2 warnings)" in r.out


def test_schema_error_names_file_line_field(run_cli, git_repo: Path) -> None:
    write_plan(
        git_repo,
        "planfleet: 1\nname: p\nphases:\n  - id: one\n    tasks:\n"
        "      - id: a\n        timeout: soon\n",
    )
    r = run_cli("plan", "show", "bad.plan.yaml", cwd=git_repo)
    assert r.code == 2
    assert r.out == ""
    assert r.err.splitlines()[0] == (
        "planfleet: bad.plan.yaml:7: phases.0.tasks.0.timeout: 'soon' is not of type 'number'"
    )
    assert "Traceback" not in r.err


def test_bad_id_is_refused_before_it_becomes_a_path(run_cli, git_repo: Path) -> None:
    write_plan(
        git_repo, "planfleet: 1\nname: p\nphases:\n  - id: one\n    tasks:\n      - id: ../../etc\n"
    )
    r = run_cli("plan", "show", "bad.plan.yaml", "--json", cwd=git_repo)
    assert r.code == 2
    (err,) = r.json()["errors"]
    assert err["line"] == 6
    assert err["field"] == "phases.0.tasks.0.id"
    assert err["message"].startswith("'../../etc' is not a valid id")


def test_unknown_plan_and_unknown_format(run_cli, git_repo: Path) -> None:
    r = run_cli("plan", "show", "missing", cwd=git_repo)
    assert (r.code, r.err.splitlines()[0]) == (2, "planfleet: no plan file or plan named 'missing'")
    write_plan(git_repo, "just prose\n", "notes.txt")
    r = run_cli("plan", "show", "notes.txt", cwd=git_repo)
    assert r.code == 2
    assert "not a plan in any format planfleet reads" in r.err
    r = run_cli("plan", "show", "notes.txt", "--format", "nope", cwd=git_repo)
    assert r.code == 2
    assert "unknown plan format 'nope'" in r.err


def test_outside_a_repository_is_refused(run_cli, tmp_path: Path) -> None:
    r = run_cli("plan", "list", "--json", cwd=tmp_path)
    assert r.code == 3
    (err,) = r.json()["errors"]
    assert err["reason"] == "no_repo"


def test_usage_errors_exit_2_with_envelope(run_cli, git_repo: Path) -> None:
    r = run_cli("plan", "bogus", "--json", cwd=git_repo)
    assert r.code == 2
    assert r.json()["status"] == "error"
    assert run_cli("frobnicate", cwd=git_repo).code == 2
    assert run_cli(cwd=git_repo).code == 2


def test_internal_error_writes_a_log_not_a_traceback(
    run_cli, git_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from planfleet.plan import analysis

    def boom(plan: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(analysis, "analyze", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    write_plan(git_repo, "planfleet: 1\nname: p\nphases:\n  - id: one\n")
    r = run_cli("plan", "show", "bad.plan.yaml", cwd=git_repo)
    assert r.code == 4
    assert "Traceback" not in r.err
    assert "internal error: RuntimeError('kaboom')" in r.err
    log = Path(r.err.split("the traceback is in ")[1].strip())
    assert "kaboom" in log.read_text()
    assert "planfleet 0.1.0" in log.read_text()


def test_invalid_utf8_plan(run_cli, git_repo: Path) -> None:
    (git_repo / "x.plan.yaml").write_bytes(b"planfleet: 1\nname: \xff\xfe\n")
    r = run_cli("plan", "show", "x.plan.yaml", "--format", "planfleet", cwd=git_repo)
    assert r.code == 2
    assert r.err.splitlines()[0] == "planfleet: x.plan.yaml:2: not valid UTF-8 (byte 19)"


def fake_claude(folder: Path, version: str) -> Path:
    exe = folder / "claude"
    exe.write_text(f"#!/bin/sh\necho '{version} (Claude Code)'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_preflight_ok(
    run_cli, git_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLANFLEET_CLAUDE", str(fake_claude(tmp_path, "2.1.328")))
    r = run_cli("preflight", "--json", "--background", "--test-cmd", "true", cwd=git_repo)
    assert r.code == 0, r.out
    data = r.json()["data"]
    assert data["status"] == "ok"
    assert data["reason"] is None
    names = [c["name"] for c in data["checks"]]
    assert names == ["claude", "git_repo", "clean_tree", "test_cmd", "test"]


@pytest.mark.parametrize(
    ("setup", "args", "reason"),
    [
        ("old", ["--background"], "too_old"),
        ("missing", [], "missing"),
        ("dirty", [], "dirty"),
        ("ok", ["--plan", "nope.md"], "no_plan"),
        ("ok", ["--test-cmd", "exit 3"], "test_failed"),
    ],
)
def test_preflight_refusals_are_structured(
    run_cli,
    git_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setup: str,
    args: list[str],
    reason: str,
) -> None:
    if setup == "missing":
        monkeypatch.setenv("PLANFLEET_CLAUDE", str(tmp_path / "no-such-claude"))
    else:
        version = "2.1.100" if setup == "old" else "2.1.328"
        monkeypatch.setenv("PLANFLEET_CLAUDE", str(fake_claude(tmp_path, version)))
    if setup == "dirty":
        (git_repo / "README.md").write_text("changed\n")
    r = run_cli("preflight", "--json", *args, cwd=git_repo)
    assert r.code == 3
    env = r.json()
    assert env["status"] == "aborted"
    assert env["data"]["reason"] == reason
    assert env["data"]["next_step"]


def test_preflight_dirty_names_files_and_allow_dirty(
    run_cli, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (git_repo / "new.txt").write_text("x")
    r = run_cli("preflight", "--no-claude", cwd=git_repo)
    assert r.code == 3
    assert "uncommitted changes: new.txt" in r.out
    assert run_cli("preflight", "--no-claude", "--allow-dirty", cwd=git_repo).code == 0
    git(git_repo, "add", "new.txt")
