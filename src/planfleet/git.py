"""Thin named functions over one ``git()`` helper with a sanitized environment."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from planfleet import proc
from planfleet.errors import CommandError, RefusedError

MAX_REF_PART = 200  # a ref is a file: its name and ".lock" must fit in 255 bytes
# Our own commits (merges into the integration branch) use a fixed identity.
PLANFLEET_IDENTITY = {
    "GIT_AUTHOR_NAME": "planfleet",
    "GIT_AUTHOR_EMAIL": "planfleet@localhost",
    "GIT_COMMITTER_NAME": "planfleet",
    "GIT_COMMITTER_EMAIL": "planfleet@localhost",
}

# Inherited variables that would redirect git away from the repository we name.
_DROP = (
    "GIT_DIR",
    "GIT_INDEX_FILE",
    "GIT_WORK_TREE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_PREFIX",
)


def without_redirects(env: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``env`` without the variables that point git at another repository."""
    return {k: v for k, v in env.items() if k not in _DROP}


def git_env(extra: Mapping[str, str] | None = None, *, identity: bool = False) -> dict[str, str]:
    """Return the environment every git call runs with."""
    env = without_redirects(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"  # `git status` must not take index.lock behind an agent
    env["LC_ALL"] = "C"
    if identity:
        env.update(PLANFLEET_IDENTITY)
    if extra:
        env.update(extra)
    return env


def git(
    *args: str,
    cwd: Path,
    check: bool = True,
    timeout: float | None = 300,
    identity: bool = False,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> proc.Result:
    """Run ``git args...`` in ``cwd``; raise CommandError on failure when ``check``."""
    return proc.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(env, identity=identity),
        timeout=timeout,
        check=check,
        input_text=input_text,
    )


def answer(*args: str, cwd: Path, input_text: str | None = None) -> proc.Result:
    """Run a git command whose exit code 1 is an answer (no match, conflict), not a failure.

    Raises CommandError for any other non-zero exit code.
    """
    result = git(*args, cwd=cwd, check=False, input_text=input_text)
    if result.returncode not in (0, 1):
        raise CommandError(
            list(result.argv), result.returncode, result.stdout, result.stderr, str(cwd)
        )
    return result


def out(*args: str, cwd: Path) -> str:
    """Return the stripped stdout of a git command that must succeed."""
    return git(*args, cwd=cwd).stdout.strip()


def toplevel(start: Path) -> Path | None:
    """Return the work-tree root holding ``start``, or None outside a repository."""
    result = git("rev-parse", "--show-toplevel", cwd=start, check=False)
    if not result.ok or not result.stdout.strip():
        return None
    return Path(result.stdout.strip())


def require_repo(start: Path | None) -> Path:
    """Return the repository root for ``start`` (default: cwd); RefusedError outside one."""
    where = (start or Path.cwd()).resolve()
    if not where.exists():
        raise RefusedError(
            f"{where} does not exist", reason="no_repo", next_step="pass an existing folder to -C"
        )
    root = toplevel(where if where.is_dir() else where.parent)
    if root is None:
        raise RefusedError(
            f"{where} is not inside a git repository",
            reason="no_repo",
            next_step="run planfleet inside your project's repository, or `git init` first",
        )
    return root


def status_porcelain(cwd: Path, *, untracked: bool = True, each_file: bool = False) -> list[str]:
    """Return the paths with uncommitted changes (``git status --porcelain -z``).

    An untracked folder is one entry (``dir/``) unless ``each_file``.
    """
    # The untracked mode always given: ``status.showUntrackedFiles=no`` must not hide files.
    mode = ("all" if each_file else "normal") if untracked else "no"
    args = ["status", "--porcelain=v1", "-z", f"--untracked-files={mode}"]
    raw = git(*args, cwd=cwd).stdout
    paths: list[str] = []
    entries = raw.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        if not entry:
            i += 1
            continue
        code, path = entry[:2], entry[3:]
        paths.append(path)
        if code[0] in "RC":  # renames carry the old path in the next entry
            i += 1
        i += 1
    return paths


def current_branch(cwd: Path) -> str | None:
    """Return the checked-out branch name, or None when HEAD is detached or unborn."""
    result = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd, check=False)
    return result.stdout.strip() or None if result.ok else None


def rev_parse(rev: str, *, cwd: Path) -> str | None:
    """Return the commit id ``rev`` names, or None if it names nothing."""
    result = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=cwd, check=False)
    return result.stdout.strip() or None if result.ok else None


def has_commits(cwd: Path) -> bool:
    return rev_parse("HEAD", cwd=cwd) is not None


def git_dir(cwd: Path) -> Path:
    """Return the absolute common git directory (shared by all worktrees)."""
    return Path(out("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd))


def last_commit_time(path: Path, *, cwd: Path) -> int | None:
    """Return the Unix time of the last commit touching ``path``, or None if untracked."""
    try:
        text = out("log", "-1", "--format=%ct", "--", str(path), cwd=cwd)
    except CommandError:
        return None
    return int(text) if text.isdigit() else None


ZERO_OID = "0" * 40


def branch_ref(branch: str) -> str:
    """Return the full ref name of a local branch."""
    return f"refs/heads/{branch}"


def is_ancestor(ancestor: str, descendant: str, *, cwd: Path) -> bool:
    """Return True if commit ``ancestor`` is reachable from ``descendant``."""
    return answer("merge-base", "--is-ancestor", ancestor, descendant, cwd=cwd).ok


def branch_name_problem(name: str, *, cwd: Path) -> str | None:
    """Return why ``name`` is not a usable branch name (git's own rules), or None."""
    if not name or name.startswith("-") or any(ord(c) < 32 for c in name):
        return "is empty, starts with '-' or holds control characters"
    if any(len(part.encode()) > MAX_REF_PART for part in name.split("/")):
        # git itself accepts it, then fails to create the ref file (and its .lock)
        return f"has a part longer than {MAX_REF_PART} bytes (between slashes)"
    result = git("check-ref-format", "--branch", name, cwd=cwd, check=False)
    return None if result.ok else "is not a valid git branch name"


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of ``git worktree list --porcelain -z``."""

    path: Path
    head: str | None = None
    branch: str | None = None  # short name (without refs/heads/); None when detached
    bare: bool = False
    locked: str | None = None  # the lock reason ("" when locked without one)
    prunable: str | None = None  # why git considers the entry stale

    @property
    def present(self) -> bool:
        """Return True if the worktree's folder exists (git omits ``prunable`` when locked)."""
        return self.prunable is None and self.path.is_dir()


def worktree_list(cwd: Path) -> list[WorktreeEntry]:
    """Return every worktree git knows about, the main one first."""
    raw = git("worktree", "list", "--porcelain", "-z", cwd=cwd).stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in [*raw.split("\0"), ""]:
        if item:
            key, _, value = item.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    bare="bare" in fields,
                    locked=fields.get("locked"),
                    prunable=fields.get("prunable"),
                )
            )
        fields = {}
    return entries


def update_ref(ref: str, new: str, old: str, *, cwd: Path, message: str = "planfleet") -> None:
    """Point ``ref`` at ``new`` only if it still points at ``old`` (ZERO_OID: must not exist)."""
    git("update-ref", "-m", message, ref, new, old, cwd=cwd)


@dataclass(frozen=True)
class Step:
    """One git command of a GitPlan: what ``--dry-run`` prints is what runs."""

    args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    identity: bool = False

    def argv(self) -> list[str]:
        return ["git", "-C", str(self.cwd), *self.args]

    def render(self) -> str:
        prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        return " ".join([*prefix, shlex.join(self.argv())])

    def run(self, *, timeout: float | None = 300) -> proc.Result:
        """Run this step; raise CommandError if it fails."""
        return git(*self.args, cwd=self.cwd, env=self.env, identity=self.identity, timeout=timeout)


@dataclass
class GitPlan:
    """An ordered list of git commands that is either printed (dry run) or executed."""

    steps: list[Step] = field(default_factory=list)

    def add(
        self, *args: str, cwd: Path, env: Mapping[str, str] | None = None, identity: bool = False
    ) -> Step:
        step = Step(tuple(args), cwd, dict(env or {}), identity)
        self.steps.append(step)
        return step

    def extend(self, other: GitPlan) -> None:
        self.steps.extend(other.steps)

    def render(self) -> list[str]:
        return [s.render() for s in self.steps]

    def run(self, *, timeout: float | None = 300) -> list[proc.Result]:
        """Run every step in order; raise CommandError at the first failure."""
        return [s.run(timeout=timeout) for s in self.steps]


@dataclass(frozen=True)
class Change:
    """One file changed between two commits (``git diff --name-status``)."""

    status: str  # A, M, D, T, R (rename: ``old_path`` set), C (copy: ``old_path`` set)
    path: str
    old_path: str | None = None


def diff_options(*, renames: bool = True) -> tuple[str, ...]:
    """Return the options every diff planfleet parses runs with.

    They make its text the same whatever the user's git config says: a/ and b/ prefixes
    (``diff.noprefix``, ``diff.mnemonicPrefix``), no colour, no external or textconv
    driver, paths from the root in path order (``diff.relative``, ``diff.orderFile``),
    hunks never joined (``diff.interHunkContext``), and renames as asked (``diff.renames``).
    """
    return (
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--no-relative",
        "-O/dev/null",
        "--inter-hunk-context=0",
        "-M" if renames else "--no-renames",
    )


def diff_changes(base: str, head: str, *, cwd: Path, renames: bool = True) -> list[Change]:
    """Return the files changed from ``base`` to ``head``, in git's (path) order."""
    args = ["diff", "--name-status", "-z", *diff_options(renames=renames)]
    fields = git(*args, base, head, "--", cwd=cwd).stdout.split("\0")
    changes: list[Change] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in "RC":
            changes.append(Change(status, fields[i + 2], fields[i + 1]))
            i += 3
        else:
            changes.append(Change(status, fields[i + 1]))
            i += 2
    return changes


def object_kinds(specs: list[str], *, cwd: Path) -> list[tuple[str, int] | None]:
    """Return ``(type, size)`` for each ``rev:path`` spec, None where it names nothing."""
    if not specs:
        return []
    if any("\n" in s for s in specs):
        raise ValueError("object names must not contain newlines")
    lines = git(
        "cat-file", "--batch-check", cwd=cwd, input_text="".join(f"{s}\n" for s in specs)
    ).stdout.splitlines()
    found: list[tuple[str, int] | None] = []
    for line in lines:
        parts = line.rsplit(" ", 2)
        ok = len(parts) == 3 and parts[2].isdigit() and len(parts[0]) >= 40
        found.append((parts[1], int(parts[2])) if ok else None)
    return found


def tree_files(rev: str, *, cwd: Path) -> list[str]:
    """Return every file path in the tree of ``rev``."""
    return [
        p for p in git("ls-tree", "-r", "-z", "--name-only", rev, cwd=cwd).stdout.split("\0") if p
    ]


def blob_text(rev: str, path: str, *, cwd: Path) -> str | None:
    """Return the text of ``path`` in ``rev``, or None when it is not a file there."""
    result = git("cat-file", "blob", f"{rev}:{path}", cwd=cwd, check=False)
    return result.stdout if result.ok else None


def count_commits(base: str, head: str, *, cwd: Path) -> int:
    """Return how many commits ``head`` has that ``base`` does not."""
    return int(out("rev-list", "--count", f"{base}..{head}", cwd=cwd))


def branches_under(prefix: str, *, cwd: Path) -> dict[str, str]:
    """Return ``{branch name: commit}`` of the branches below ``prefix`` (ending in ``/``)."""
    heads = "refs/heads/"
    text = out("for-each-ref", "--format=%(refname) %(objectname)", heads + prefix, cwd=cwd)
    pairs = (line.split(" ", 1) for line in text.splitlines() if " " in line)
    return {ref.removeprefix(heads): commit for ref, commit in pairs}


def ref_commits(refs: list[str], *, cwd: Path) -> dict[str, str]:
    """Return ``{full ref name: object id}`` for those of ``refs`` that exist (one git call).

    Each ref must be a full name without glob characters: ``for-each-ref`` also matches
    refs below a pattern (``refs/heads/a`` matches ``refs/heads/a/b``), not other names.
    """
    text = out("for-each-ref", "--format=%(refname) %(objectname)", *refs, cwd=cwd)
    found = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    return {r: found[r] for r in refs if r in found}
