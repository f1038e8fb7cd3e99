"""What planfleet reads from git is the same whatever the user's own git config says."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, make_repo
from planfleet import git as pgit
from planfleet.errors import RefusedError
from planfleet.repo import landing, merge, provision, refs
from planfleet.repo.merge import MergeItem
from planfleet.verify import diff, gates
from test_verify import check, start, task_of


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A global git config with every diff and status setting that changes git's output."""
    order = tmp_path / "order.txt"
    order.write_text("z.py\n")
    cfg = tmp_path / "gitconfig"
    cfg.write_text(
        "[diff]\n"
        "\tnoprefix = true\n"
        "\tmnemonicPrefix = true\n"
        "\trenames = copies\n"
        "\trelative = true\n"
        "\tinterHunkContext = 10\n"
        "\texternal = false\n"
        f"\torderFile = {order}\n"
        "[color]\n"
        "\tui = always\n"
        "\tdiff = always\n"
        "\tstatus = always\n"
        "[status]\n"
        "\tshowUntrackedFiles = no\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    return cfg


def _commit(repo: Path, files: dict[str, str | None]) -> str:
    for rel, text in files.items():
        if text is None:
            git(repo, "rm", "-q", rel)
            continue
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
        git(repo, "add", rel)
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD").strip()


TEST_FILE = "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"
SKIPPED = (
    "import pytest\n@pytest.mark.skip\ndef test_a():\n    pass\n\n\n@pytest.mark.xfail\n"
    "def test_b():\n    pass\n"
)


def test_the_skip_marker_gate_sees_an_added_marker(tmp_path: Path, user_config: Path) -> None:
    repo = make_repo(tmp_path / "r", {"tests/test_x.py": TEST_FILE})
    wt = start(repo, "t")
    assert wt.base is not None
    _commit(wt.path, {"tests/test_x.py": SKIPPED})
    found = diff.added_skip_markers(repo, wt.base, wt.branch)
    # Two hunks four lines apart: joined, the second marker's line number would be wrong.
    assert [(m.path, m.line, m.kind) for m in found] == [
        ("tests/test_x.py", 2, "pytest.mark.skip"),
        ("tests/test_x.py", 7, "pytest.mark.skip"),
    ]
    v = check(repo, task_of("t"), wt)
    assert v.error is not None
    assert v.error["type"] == "tests_skipped"
    assert "tests/test_x.py:2: pytest.mark.skip" in v.error["message"]


def test_changes_come_in_path_order_with_renames_as_asked(
    tmp_path: Path, user_config: Path
) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n" * 20, "z.py": "z\n", "sub/k.py": "k\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "mv", "a.py", "b.py")
    head = _commit(repo, {"z.py": "zz\n", "sub/k.py": "kk\n"})
    changes = pgit.diff_changes(base, head, cwd=repo / "sub")
    assert [(c.status, c.path, c.old_path) for c in changes] == [
        ("R", "b.py", "a.py"),
        ("M", "sub/k.py", None),
        ("M", "z.py", None),
    ]
    plain = pgit.diff_changes(base, head, cwd=repo, renames=False)
    assert [(c.status, c.path) for c in plain][:2] == [("D", "a.py"), ("A", "b.py")]


def test_uncommitted_untracked_files_are_seen(tmp_path: Path, user_config: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / "new file.txt").write_text("x\n")
    assert pgit.status_porcelain(repo) == ["new file.txt"]
    assert gates.uncommitted_files(repo) == ["new file.txt"]


def test_an_undeclared_deletion_is_refused_at_merge(tmp_path: Path, user_config: Path) -> None:
    repo = make_repo(tmp_path / "r", {"keep.py": "k\n", "README.md": "r\n"})
    wt = provision.create_worktree(repo, "p", "t")
    _commit(wt.path, {"keep.py": None, "new.py": "n\n"})
    (res,) = merge.merge_queue(repo, "p", [MergeItem("t", ("new.py",))])
    assert res.status == "refused_deletion"
    assert res.deleted == ["keep.py"]


def test_landing_sees_a_dirty_file_that_is_renamed_away(tmp_path: Path, user_config: Path) -> None:
    repo = make_repo(tmp_path / "r", {"old.py": "line\n" * 20})
    wt = provision.create_worktree(repo, "p", "t")
    git(wt.path, "mv", "old.py", "new.py")
    _commit(wt.path, {})
    merge.merge_queue(repo, "p", [MergeItem("t", ("old.py", "new.py"))])
    (repo / "old.py").write_text("my uncommitted edit\n")
    with pytest.raises(RefusedError, match=r"old\.py") as exc:
        landing.land(repo, "p")
    assert exc.value.reason == "dirty_checkout"
    assert (repo / "old.py").read_text() == "my uncommitted edit\n"


def test_resolve_many_reads_several_names_in_one_process(tmp_path: Path, user_config: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    head = git(repo, "rev-parse", "HEAD", "HEAD^{tree}").split()
    names = ["HEAD^{commit}", "refs/heads/main^{commit}", "HEAD^{tree}", "refs/heads/nope^{commit}"]
    found = refs.resolve_many(names, cwd=repo)
    assert found == {names[0]: head[0], names[1]: head[0], names[2]: head[1], names[3]: None}
    assert refs.resolve_many([], cwd=repo) == {}
    for bad in ("", "-p", "a\nb"):
        with pytest.raises(ValueError, match="bad revision"):
            refs.resolve_many([bad], cwd=repo)
