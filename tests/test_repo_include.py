"""``.worktreeinclude`` is gitignore syntax matched by git, and only gitignored paths are copied."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, make_repo
from planfleet.repo import include as worktree_include
from planfleet.repo import provision


def _repo(tmp_path: Path, gitignore: str, include: str, untracked: list[str]) -> Path:
    repo = make_repo(tmp_path / "r", {".gitignore": gitignore, ".worktreeinclude": include})
    for rel in untracked:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(f"contents of {rel}\n", encoding="utf-8")
    return repo


def test_a_negated_secret_stays_out_of_the_worktree(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        ".env*\n",
        "# local settings, but never the production password\n.env*\n!.env.production\n",
        [".env", ".env.local", ".env.production"],
    )
    assert worktree_include.sources(repo) == [".env", ".env.local"]
    wt = provision.create_worktree(repo, "p", "a")
    assert sorted(wt.copied) == [".env", ".env.local"]
    assert not (wt.path / ".env.production").exists()
    assert (wt.path / ".env.local").read_text() == "contents of .env.local\n"


def test_anchored_and_double_star_patterns(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "*.local\n*.json\n",
        "/top.local\nconfig/*.local\n**/keys/*.json\n",
        [
            "top.local",
            "sub/top.local",  # /top.local is anchored at the root
            "config/app.local",
            "deep/config/app.local",  # a pattern with a slash is anchored too
            "keys/a.json",
            "x/y/keys/b.json",
            "x/keys/nested/c.json",  # * does not cross a slash
        ],
    )
    assert worktree_include.sources(repo) == [
        "config/app.local",
        "keys/a.json",
        "top.local",
        "x/y/keys/b.json",
    ]


def test_directories_whole_or_file_by_file(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "cache/\n*.local\n",
        "cache/\nconf/\n",
        ["cache/a/1.bin", "cache/2.bin", "conf/app.local", "conf/notes.txt"],
    )
    # cache/ is ignored as a whole (one entry, copied as a tree); in conf/ only what
    # .gitignore ignores is copied, not the untracked notes.
    assert worktree_include.sources(repo) == ["cache", "conf/app.local"]
    wt = provision.create_worktree(repo, "p", "a")
    assert (wt.path / "cache" / "a" / "1.bin").read_text() == "contents of cache/a/1.bin\n"
    assert (wt.path / "conf" / "app.local").exists()
    assert not (wt.path / "conf" / "notes.txt").exists()


def test_a_file_gitignore_does_not_ignore_is_not_copied(tmp_path: Path) -> None:
    repo = _repo(tmp_path, ".env\n", ".env\nnotes.txt\ntracked.txt\n", [".env", "notes.txt"])
    (repo / "tracked.txt").write_text("committed\n")
    git(repo, "add", "tracked.txt")
    git(repo, "commit", "-qm", "tracked")
    (repo / "tracked.txt").write_text("edited in the main checkout\n")
    assert worktree_include.sources(repo) == [".env"]
    wt = provision.create_worktree(repo, "p", "a")
    assert not (wt.path / "notes.txt").exists()
    assert (wt.path / "tracked.txt").read_text() == "committed\n"


@pytest.mark.parametrize("name", ["my settings.local", "two\nlines.local", 'quo"te\\.local'])
def test_names_git_would_quote(tmp_path: Path, name: str) -> None:
    repo = _repo(tmp_path, "*.local\n", "*.local\n", [name, "plain.local"])
    assert worktree_include.sources(repo) == sorted([name, "plain.local"])
    wt = provision.create_worktree(repo, "p", "a")
    assert (wt.path / name).read_text() == f"contents of {name}\n"


def test_info_exclude_counts_as_ignored(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "", ".env\n", [".env"])
    assert worktree_include.sources(repo) == []  # not ignored: not copied
    (repo / ".git" / "info" / "exclude").write_text(".env\n")
    assert worktree_include.sources(repo) == [".env"]


def test_no_include_file_copies_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {".gitignore": ".env\n"})
    (repo / ".env").write_text("x\n")
    assert worktree_include.sources(repo) == []
