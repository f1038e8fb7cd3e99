"""The merge queue: verified task branches into the integration branch, one at a time.

Merges never check out the user's tree: ``git merge-tree --write-tree`` computes the result,
``commit-tree`` records it and ``update-ref`` moves the integration branch only if it still
points where it did (compare-and-swap). The post-merge check runs in a dedicated worktree
before the branch moves, so a conflict, a refused deletion or a failed check leaves the
integration branch exactly as it was.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planfleet import git, paths, proc
from planfleet.errors import CommandError, RefusedError, UsageError
from planfleet.plan.declared import matches
from planfleet.repo import refs, worktrees

STRATEGIES = ("merge", "squash")
MAX_HUNKS = 10
MAX_HUNK_LINES = 60
MAX_OUTPUT_CHARS = 20_000


@dataclass(frozen=True)
class MergeItem:
    """One task to merge: its branch and the files it declared (paths, folders or globs)."""

    task: str
    declared: tuple[str, ...] = ()
    branch: str | None = None  # default: planfleet/<plan>/tasks/<task>


@dataclass
class Conflict:
    """One conflicting file and its conflict hunks (with markers), for retry feedback."""

    path: str
    hunks: list[str] = field(default_factory=list)


@dataclass
class MergeResult:
    """The outcome of merging one task; the integration branch moved only if ``merged``."""

    task: str
    branch: str
    status: str  # merged | already_merged | conflict | refused_deletion | check_failed |
    #              missing_branch | skipped | planned
    before: str | None = None  # integration commit before this merge
    after: str | None = None  # integration commit after it
    head: str | None = None  # the task branch's commit that was merged
    conflicts: list[Conflict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    output: str = ""
    commands: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("merged", "already_merged", "planned")

    def outcome(self) -> dict[str, Any]:
        """Return what the run state records of this merge (``state.ops.record_merge``)."""
        return {
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail(),
            "feedback": self.feedback(),
        }

    def detail(self) -> str:
        """Return the timeline detail of this merge: integration before -> after."""
        return f"{(self.before or '')[:10]} -> {(self.after or '')[:10]}"

    def feedback(self) -> str:
        """Return the text a retry of the task is given (empty when the merge was fine)."""
        if self.status == "conflict":
            parts = [
                f"Merging {self.branch} into the integration branch ({self.before}) "
                "conflicted. Rebase your work on it and resolve:"
            ]
            for c in self.conflicts:
                parts.append(f"--- {c.path}")
                parts.extend(c.hunks)
            parts.extend(self.messages)
            return "\n".join(parts)
        if self.status == "refused_deletion":
            return (
                "The merge would delete files the task did not declare: "
                + ", ".join(self.deleted)
                + ". Restore them or declare them."
            )
        if self.status == "check_failed":
            return f"The post-merge check failed on the merged result:\n{self.output}"
        if self.status == "missing_branch":
            return f"Branch {self.branch} does not exist."
        return ""

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "conflicts"}
        out["conflicts"] = [c.__dict__ for c in self.conflicts]
        out["feedback"] = self.feedback()
        return out


def integration_holder(repo: Path, branch: str) -> git.WorktreeEntry | None:
    """Return the worktree where ``branch`` is checked out, or None."""
    return next((e for e in git.worktree_list(repo) if e.branch == branch and e.present), None)


def merge_queue(
    repo: Path,
    plan: str,
    items: Sequence[MergeItem],
    *,
    strategy: str = "merge",
    check: str | Sequence[str] | None = None,
    check_timeout: float = 600,
    base: str | None = None,
    fail_fast: bool = False,
    dry_run: bool = False,
) -> list[MergeResult]:
    """Merge ``items`` in the given order; return one result per item.

    The caller orders the items (dependencies first, then priority). A failed item leaves
    the integration branch as it was and the next items are still tried unless ``fail_fast``.
    """
    checks = (check,) if isinstance(check, str) else tuple(check or ())
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {strategy!r}", hint="use merge or squash")
    repo = repo.resolve()
    integ = worktrees.integration_branch(plan)
    holder = integration_holder(repo, integ)
    if holder is not None:
        raise RefusedError(
            f"{integ} is checked out in {holder.path}; merging would change that checkout",
            reason="integration_checked_out",
            next_step="switch that checkout to another branch, then merge again",
        )
    if dry_run:
        integ_head = git.rev_parse(git.branch_ref(integ), cwd=repo)
        start = integ_head or worktrees.resolve_commit(repo, base or "HEAD")
        planned = [
            _merge_one(repo, plan, i, strategy, checks, check_timeout, start, True) for i in items
        ]
        if planned and integ_head is None:
            planned[0].commands.insert(0, worktrees.integration_step(repo, plan, start).render())
        return planned
    paths.ensure_planfleet_dir(repo)
    results: list[MergeResult] = []
    with worktrees.repo_lock(repo, f"merge-{plan}.lock"):
        with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
            tip = worktrees.ensure_integration(repo, plan, base)
        for item in items:
            if fail_fast and results and not results[-1].ok:
                results.append(MergeResult(item.task, _branch(plan, item), "skipped"))
                continue
            # (under the merge lock only a merge of ours moves it; update-ref checks anyway)
            res = _merge_one(repo, plan, item, strategy, checks, check_timeout, tip, False)
            tip = res.after or tip
            results.append(res)
    return results


def _branch(plan: str, item: MergeItem) -> str:
    if item.branch is None:
        return worktrees.task_branch(plan, item.task)
    if item.branch.startswith("-") or not item.branch.strip():
        raise UsageError(f"bad branch name {item.branch!r}")
    return item.branch


def _merge_one(
    repo: Path,
    plan: str,
    item: MergeItem,
    strategy: str,
    check: tuple[str, ...],
    timeout: float,
    old: str,
    dry_run: bool,
) -> MergeResult:
    """Merge one item onto ``old`` (the integration commit); move the branch only on success."""
    branch = _branch(plan, item)
    res = MergeResult(item.task, branch, "planned", before=old, after=old)
    # One git process for both: the branch's commit, and the tree a merge that brings
    # nothing in leaves (a branch already merged, or squashed before).
    names = (f"{git.branch_ref(branch)}^{{commit}}", f"{old}^{{tree}}")
    found = refs.resolve_many(names, cwd=repo)
    head, old_tree = found[names[0]], found[names[1]]
    if head is None:
        res.status = "missing_branch"
        return res
    res.head = head
    if head == old or (dry_run and git.is_ancestor(head, old, cwd=repo)):
        res.status = "already_merged"  # (a real merge finds it out from the tree below)
        return res
    integ_ref = git.branch_ref(worktrees.integration_branch(plan))
    verb = "squash" if strategy == "squash" else "merge"
    message = (
        f"planfleet: {verb} task {item.task}\n\n"
        f"Planfleet-Plan: {plan}\nPlanfleet-Task: {item.task}\nPlanfleet-Head: {head}\n"
    )
    parents = ["-p", old] if strategy == "squash" else ["-p", old, "-p", head]
    steps = [
        git.Step(("merge-tree", "--write-tree", "-z", "--name-only", old, head), repo),
        git.Step(("commit-tree", "<tree>", *parents, "-m", message), repo, identity=True),
    ]
    create, move = _gate_steps(repo, plan, "<commit>") if check else (None, [])
    gate = [create, *move] if create else move
    final = git.Step(
        ("update-ref", "-m", f"planfleet: {verb} {item.task}", integ_ref, "<commit>", old), repo
    )
    res.commands = [s.render() for s in [*steps, *gate, final]]
    if check:
        where = worktrees.merge_worktree(repo, plan)
        for cmd in check:
            res.commands.insert(-1, f"(in {where}) {shlex.join(proc.user_command(cmd))}")
    if dry_run:
        return res
    tree = write_tree(repo, steps[0], res)
    if tree is None:
        return res
    if tree == old_tree:
        res.status = "already_merged"  # its commits are on it, or squashed before
        return res
    res.deleted = _undeclared_deletions(repo, old, tree, item.declared)
    if res.deleted:
        res.status = "refused_deletion"
        return res
    commit = _run(steps[1], tree=tree).stdout.strip()
    if check and not _check(
        repo, plan, [create, *move] if create else move, commit, check, timeout, res
    ):
        return res
    _run(final, commit=commit)
    res.status, res.after = "merged", commit
    return res


def _run(step: git.Step, **values: str) -> proc.Result:
    """Run ``step`` with its ``<name>`` placeholders replaced by ``values``."""
    args = tuple(
        values.get(a[1:-1], a) if a.startswith("<") and a.endswith(">") else a for a in step.args
    )
    return git.Step(args, step.cwd, step.env, step.identity).run()


def write_tree(repo: Path, step: git.Step, res: MergeResult) -> str | None:
    """Return the merged tree id; on conflict fill ``res`` and return None."""
    result = git.answer(*step.args, cwd=repo)
    fields = result.stdout.split("\0")
    tree = fields[0]
    if result.returncode == 0:
        return tree
    i, files = 1, []
    while i < len(fields) and fields[i]:
        if fields[i] not in files:
            files.append(fields[i])
        i += 1
    i += 1
    while i < len(fields) and fields[i].isdigit():  # <n> NUL <path>*n <type> NUL <message> NUL
        n = int(fields[i])
        if i + n + 2 < len(fields):
            res.messages.append(fields[i + n + 2].strip())
        i += n + 3
    res.messages = [m for m in res.messages if m.startswith("CONFLICT")]
    res.conflicts = [Conflict(f, _hunks(repo, tree, f)) for f in files]
    res.status = "conflict"
    return None


def _hunks(repo: Path, tree: str, path: str) -> list[str]:
    """Return the conflict-marked regions of ``path`` in the merge-tree result."""
    result = git.git("cat-file", "blob", f"{tree}:{path}", cwd=repo, check=False)
    if not result.ok:
        return []
    lines = result.stdout.splitlines()
    hunks: list[str] = []
    i = 0
    while i < len(lines) and len(hunks) < MAX_HUNKS:
        if lines[i].startswith("<<<<<<< "):
            j = i
            while j < len(lines) and not lines[j].startswith(">>>>>>> "):
                j += 1
            block = lines[i : j + 1]
            if len(block) > MAX_HUNK_LINES:
                block = [*block[: MAX_HUNK_LINES - 1], "[... hunk shortened ...]", block[-1]]
            hunks.append(f"@@ line {i + 1} @@\n" + "\n".join(block))
            i = j
        i += 1
    return hunks


def _undeclared_deletions(repo: Path, old: str, tree: str, declared: Sequence[str]) -> list[str]:
    """Return the files the merge deletes that the task did not declare (renames count)."""
    raw = git.git(
        "diff-tree",
        "-r",
        "-z",
        *git.diff_options(renames=False),
        "--name-only",
        "--diff-filter=D",
        old,
        tree,
        cwd=repo,
    ).stdout
    return [p for p in raw.split("\0") if p and not matches(p, declared)]


def _gate_steps(repo: Path, plan: str, commit: str) -> tuple[git.Step | None, list[git.Step]]:
    """Return (the command creating the merge worktree if missing, the ones moving it)."""
    wt = worktrees.merge_worktree(repo, plan)
    present = any(e.path.resolve() == wt.resolve() and e.present for e in git.worktree_list(repo))
    create = git.Step(("worktree", "add", "--detach", "--no-checkout", str(wt), commit), repo)
    move = [
        git.Step(("checkout", "--detach", "--force", "-q", commit), wt),
        git.Step(("clean", "-fdq"), wt),  # leftovers of the last check (ignored files stay)
    ]
    return (None if present else create), move


def _check(
    repo: Path,
    plan: str,
    gate: list[git.Step],
    commit: str,
    check: tuple[str, ...],
    timeout: float,
    res: MergeResult,
) -> bool:
    """Put the merge worktree on ``commit`` and run the check; on failure fill ``res``."""
    for step in gate:
        if step.args[:2] == ("worktree", "add"):
            with worktrees.repo_lock(repo, worktrees.METADATA_LOCK):
                git.git("worktree", "prune", cwd=repo)  # in case it was deleted by hand
                paths.writable(repo, worktrees.merge_worktree(repo, plan))
                _run(step, commit=commit)
        else:
            _run(step, commit=commit)
    wt = worktrees.merge_worktree(repo, plan)
    for cmd in check:
        try:
            result = proc.run(proc.user_command(cmd), cwd=wt, timeout=timeout, check=False)
        except CommandError as exc:  # timed out
            res.status = "check_failed"
            res.output = _tail(f"$ {cmd}\ntimed out after {timeout:g} s\n{exc.stdout}{exc.stderr}")
            return False
        if not result.ok:
            res.status = "check_failed"
            res.output = _tail(f"$ {cmd}\nexit {result.returncode}\n{result.stdout}{result.stderr}")
            return False
    return True


def _tail(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT_CHARS else "[...]\n" + text[-MAX_OUTPUT_CHARS:]
