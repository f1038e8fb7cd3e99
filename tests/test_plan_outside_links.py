"""Symbolic links out of the repository in what a plan reads are refused (exit 2, naming the
link) instead of being skipped or read around; --allow-outside-links reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git, make_repo
from formats_support import copy_fixture
from planfleet.engine import prompts
from planfleet.plan import formats, links

SECRET = "NOT-IN-THIS-REPOSITORY"  # noqa: S105 - a marker, no password


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "notes.md").write_text(f"# Notes\n\n{SECRET}\n")
    return out


def _commit(repo: Path) -> Path:
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture", "--allow-empty")
    return repo


def _fixture(kind: str, case: str, dest: Path) -> Path:
    return _commit(copy_fixture(kind, case, dest))


def _refused(r, link: str) -> dict[str, object]:
    """Return the one error of ``r``: exit 2, naming the link and the way out."""
    assert r.code == 2, (r.code, r.out, r.err)
    errors = r.json()["errors"] or r.json()["data"]["errors"]
    found = [e for e in errors if link in e.get("file", "") + e["message"]]
    assert found, errors
    assert "--allow-outside-links" in found[0]["hint"]
    assert SECRET not in r.out + r.err
    return found[0]


def test_a_plan_file_that_links_out_is_refused(tmp_path: Path, outside: Path, run_cli) -> None:
    repo = make_repo(tmp_path / "repo")
    (outside / "foreign.plan.yaml").write_text(
        "planfleet: 1\nname: foreign\nphases:\n  - id: one\n    tasks:\n"
        "      - id: t1\n        commands: ['touch pwned']\n"
    )
    (repo / "plans").mkdir()
    (repo / "plans" / "linked.plan.yaml").symlink_to(outside / "foreign.plan.yaml")
    for argv in (["plan", "validate"], ["run", "--dry-run"]):
        r = run_cli(*argv, "plans/linked.plan.yaml", "--json", cwd=repo)
        assert _refused(r, "plans/linked.plan.yaml")["file"] == "plans/linked.plan.yaml"
    r = run_cli("plan", "validate", "plans/linked.plan.yaml", "--allow-outside-links", cwd=repo)
    assert r.code == 0, r.err
    # reading it is allowed; running commands from outside the repository still is not
    r = run_cli(
        "run", "plans/linked.plan.yaml", "--allow-outside-links", "--runner", "shell", "--yes",
        "--json", cwd=repo,
    )  # fmt: skip
    assert r.code == 3, r.out
    assert r.json()["errors"][0]["reason"] == "plan_outside_repo"
    assert not (outside / "pwned").exists()


def test_a_plan_folder_that_links_out_is_refused(tmp_path: Path, run_cli) -> None:
    repo = make_repo(tmp_path / "repo")
    foreign = copy_fixture("spec", "shortener", tmp_path / "elsewhere")
    (repo / ".spec" / "plans").mkdir(parents=True)
    (repo / ".spec" / "plans" / "linked").symlink_to(foreign / ".spec" / "plans" / "url-shortener")
    r = run_cli("plan", "validate", ".spec/plans/linked", "--json", cwd=repo)
    _refused(r, ".spec/plans/linked")
    r = run_cli("plan", "show", ".spec/plans/linked", "--allow-outside-links", "--json", cwd=repo)
    assert r.code == 0, r.err
    assert r.json()["data"]["name"] == "linked"


def test_a_spec_that_links_out_is_refused_not_left_out(
    tmp_path: Path, outside: Path, run_cli
) -> None:
    repo = copy_fixture("native", "", tmp_path / "native")  # ledger.plan.yaml
    (repo / "docs" / "importer.md").symlink_to(outside / "notes.md")
    _commit(repo)
    for argv in (["plan", "validate"], ["run", "--dry-run", "--runner", "shell"]):
        r = run_cli(*argv, "ledger.plan.yaml", "--json", cwd=repo)
        error = _refused(r, "docs/importer.md")
        assert (error["file"], error["field"]) == ("ledger.plan.yaml", "spec")
        assert isinstance(error["line"], int)
    with links.allowing():
        plan = formats.load_plan(repo / "ledger.plan.yaml", repo=repo)
        task = plan.task("account-import")
        text = prompts.build_prompt(plan, task, repo=repo, attempt=1, feedback=None, checks=[])
    assert SECRET in text  # read because the user said so, not silently left out


def test_an_execute_state_file_that_links_out_is_refused(
    tmp_path: Path, outside: Path, run_cli
) -> None:
    repo = copy_fixture("xml-tasks", "", tmp_path / "xml")
    state = repo / "billing" / "execute-state.json"
    (outside / "execute-state.json").write_bytes(state.read_bytes())
    state.unlink()
    state.symlink_to(outside / "execute-state.json")
    _commit(repo)
    r = run_cli("plan", "validate", "billing", "--json", cwd=repo)
    _refused(r, "billing/execute-state.json")
    r = run_cli("plan", "show", "billing", "--allow-outside-links", "--json", cwd=repo)
    assert r.code == 0, r.err
    statuses = {t["id"]: t["status"] for t in r.json()["data"]["tasks"]}
    assert statuses["L1-001"] == "done"  # what the linked file records was imported


def test_task_files_and_layers_that_link_out_are_refused(
    tmp_path: Path, outside: Path, run_cli
) -> None:
    repo = copy_fixture("xml-tasks", "", tmp_path / "xml")
    layer = repo / "billing" / "2-api"
    (outside / "L2-009-extra.xml").write_text(
        '<task id="L2-009"><title>From elsewhere</title></task>\n'
    )
    (layer / "L2-009-extra.xml").symlink_to(outside / "L2-009-extra.xml")
    # a link that stays inside is skipped as before: what it leads to is read on its own
    (layer / "L2-010-alias.xml").symlink_to(layer / "L2-001-invoice-routes.xml")
    _commit(repo)
    r = run_cli("plan", "validate", "billing", "--json", cwd=repo)
    _refused(r, "billing/2-api/L2-009-extra.xml")
    r = run_cli("plan", "show", "billing", "--allow-outside-links", "--json", cwd=repo)
    assert r.code == 0, r.err
    ids = [t["id"] for t in r.json()["data"]["tasks"]]
    assert "L2-009" in ids
    assert ids.count("L2-001") == 1
    (layer / "L2-009-extra.xml").unlink()
    (repo / "billing" / "4-more").symlink_to(outside)
    r = run_cli("plan", "validate", "billing", "--json", cwd=repo)
    _refused(r, "billing/4-more")


def test_a_gsd_plan_file_that_links_out_is_refused(tmp_path: Path, outside: Path, run_cli) -> None:
    repo = _fixture("gsd", "tidepool", tmp_path)
    phase = repo / ".planning" / "phases" / "01-foundation"
    (outside / "01-09-PLAN.md").write_text(
        (phase / "01-01-PLAN.md").read_text().replace("plan: 01", "plan: 09") + SECRET
    )
    (phase / "01-09-PLAN.md").symlink_to(outside / "01-09-PLAN.md")
    r = run_cli("plan", "validate", ".planning", "--json", cwd=repo)
    _refused(r, ".planning/phases/01-foundation/01-09-PLAN.md")
    r = run_cli("plan", "show", ".planning", "--allow-outside-links", "--json", cwd=repo)
    assert r.code == 0, r.err
    assert "01-09" in [t["id"] for t in r.json()["data"]["tasks"]]


@pytest.mark.parametrize(
    ("kind", "case", "plan", "link", "expect"),
    [
        (
            "spec",
            "shortener",
            ".spec/plans/url-shortener",
            ".spec/plans/url-shortener/implementation/phase-1.md",
            "implementation file implementation/phase-1.md links outside the repository",
        ),
        (
            "maxvision",
            "newsletter",
            ".maxvision",
            ".maxvision/phase-1/plans/plan-003-extra.md",
            "plan file plan-003-extra.md links outside the repository",
        ),
        (
            "plan-dir",
            "recipes",
            "docs/plans/recipe-search",
            "docs/plans/recipe-search/specs/query.md",
            "spec file specs/query.md is outside the repository",
        ),
    ],
)
def test_other_files_that_link_out_are_refused_unless_allowed(
    tmp_path: Path,
    outside: Path,
    run_cli,
    kind: str,
    case: str,
    plan: str,
    link: str,
    expect: str,
) -> None:
    repo = copy_fixture(kind, case, tmp_path)
    path = repo / link
    path.unlink(missing_ok=True)
    (outside / "notes.md").write_text("---\nstatus: pending\n---\n\n# Notes\n\nnothing secret\n")
    path.symlink_to(outside / "notes.md")
    _commit(repo)
    r = run_cli("plan", "validate", plan, "--json", cwd=repo)
    assert r.code == 2, r.out
    messages = [e["message"] for e in r.json()["data"]["errors"]]
    assert expect in messages
    r = run_cli("plan", "validate", plan, "--allow-outside-links", "--json", cwd=repo)
    data = r.json()["data"]
    assert data is not None, r.out  # the flag is known, and the plan was read
    assert expect not in json.dumps(data["errors"])
    assert data["plan"]


def test_links_inside_the_repository_are_no_concern(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"docs/real.md": "x\n"})
    (repo / "docs" / "alias.md").symlink_to(repo / "docs" / "real.md")
    assert links.target(repo / "docs" / "alias.md", repo) is None
    assert links.target(repo / "docs" / "missing.md", repo) is None
    (repo / "docs" / "away.md").symlink_to(tmp_path / "nowhere.md")  # dangling, and out
    assert links.target(repo / "docs" / "away.md", repo) == (tmp_path / "nowhere.md").resolve()
    assert links.target(tmp_path / "nowhere.md", repo) is None  # named outside: no link
    (repo / "loop.md").symlink_to(repo / "loop.md")
    assert links.target(repo / "loop.md", repo) is None  # reading it fails on its own
