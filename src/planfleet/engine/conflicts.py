"""Conflicts seen while tasks still run, not first at the merge.

Whenever a running task's branch gains a commit or the integration branch moves, each
running branch is merged, without a checkout (``git merge-tree --write-tree``), with the
integration tip and with every other running branch. What would conflict is recorded in the
state (``conflicts.predicted``, a ``conflict_predicted`` event naming both tasks and the
files). Files two running tasks both change that one of them does not declare are recorded
as ``conflicts.overlaps``; with ``--serialize-undeclared`` such tasks do not run together
again. An attempt whose branch conflicts with the integration tip when its agent ends fails
before its gates run, told the conflicting hunks (:func:`with_integration`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet import git
from planfleet.plan import model
from planfleet.plan.declared import matches
from planfleet.repo import merge, worktrees
from planfleet.state.records import State, add_event, now_iso

INTEGRATION = "integration"  # the other side of a conflict with the integration tip
MAX_FILES = 20


@dataclass(frozen=True)
class Clash:
    """What merging ``ours`` with ``theirs`` would do: the files that conflict (and hunks)."""

    conflicts: tuple[merge.Conflict, ...]

    @property
    def files(self) -> list[str]:
        return [c.path for c in self.conflicts]


def clash(repo: Path, ours: str, theirs: str) -> Clash:
    """Return the conflicts of merging commits ``ours`` and ``theirs`` (none: it merges)."""
    res = merge.MergeResult(task="", branch="", status="planned")
    step = git.Step(("merge-tree", "--write-tree", "-z", "--name-only", theirs, ours), repo)
    merge.write_tree(repo, step, res)
    return Clash(tuple(res.conflicts))


def with_integration(
    repo: Path, plan: str, head: str, base: str, *, tip: str | None = None
) -> tuple[str, str] | None:
    """Return ``(message, feedback)`` when ``head`` no longer merges into the integration tip.

    Nothing when the tip is still the attempt's base: only another task's merge can conflict.
    ``tip``: the integration branch's commit when the caller has just read it.
    """
    if tip is None:
        tip = git.rev_parse(git.branch_ref(worktrees.integration_branch(plan)), cwd=repo)
    if tip is None or tip == base or git.is_ancestor(tip, head, cwd=repo):
        return None
    found = clash(repo, head, tip)
    if not found.conflicts:
        return None
    files = ", ".join(found.files[:MAX_FILES])
    message = (
        f"the branch conflicts with the integration branch ({tip[:12]}), which moved on "
        f"since the attempt started: {files}"
    )
    parts = [
        f"Another task was merged while you worked, and your branch no longer merges into "
        f"the integration branch ({tip}). The next attempt starts from it; redo your change "
        "there, keeping what the other task did. The conflicting parts:"
    ]
    for c in found.conflicts:
        parts.append(f"--- {c.path}")
        parts.extend(c.hunks)
    return message, "\n".join(parts)


class Watch:
    """Merges the running branches in memory whenever one of them or the integration moves."""

    def __init__(self, repo: Path, plan: model.Plan) -> None:
        self.repo, self.plan = repo, plan
        self._seen: tuple[Any, ...] | None = None
        self._clashes: dict[tuple[str, str], Clash] = {}
        self._changed: dict[tuple[str, str], frozenset[str]] = {}

    def scan(self, state: State, running: Collection[str]) -> None:
        """Update ``state["conflicts"]`` (inside the caller's transaction); add events."""
        if not running:  # nothing in flight: nothing to predict, and no git to run
            if (state.get("conflicts") or {}).get("predicted"):
                state["conflicts"]["predicted"] = []
            self._seen = None
            return
        refs = self._ref_heads()
        heads = self._heads(running, state, refs)
        integ = refs.get(git.branch_ref(worktrees.integration_branch(self.plan.name)))
        key = (tuple(sorted(heads.items())), integ)
        if key == self._seen:
            return
        self._seen = key
        found: list[dict[str, Any]] = []
        tids = sorted(heads)
        for i, tid in enumerate(tids):
            head, base = heads[tid]
            if integ and integ != base and not git.is_ancestor(integ, head, cwd=self.repo):
                found += self._pair(tid, head, INTEGRATION, integ)
            for other in tids[i + 1 :]:
                found += self._pair(tid, head, other, heads[other][0])
        self._record(state, found)
        self._overlaps(state, heads)

    def _ref_heads(self) -> dict[str, str]:
        prefix = f"refs/heads/planfleet/{self.plan.name}/"
        out = git.out("for-each-ref", "--format=%(refname) %(objectname)", prefix, cwd=self.repo)
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)

    def _heads(
        self, running: Iterable[str], state: State, refs: dict[str, str]
    ) -> dict[str, tuple[str, str]]:
        """Return ``{task: (head, base)}`` of the running tasks that have committed."""
        found = {}
        for tid in running:
            # the base of the attempt now running (the state has it only once it ended)
            wt = worktrees.task_worktree(self.repo, self.plan.name, tid)
            base = worktrees.recorded_base(wt) if wt.exists() else None
            head = refs.get(git.branch_ref(worktrees.task_branch(self.plan.name, tid)))
            if base and head and head != base:
                found[tid] = (head, base)
        return found

    def _pair(self, tid: str, head: str, other: str, theirs: str) -> list[dict[str, Any]]:
        cached = self._clashes.get((head, theirs))
        if cached is None:
            cached = self._clashes[(head, theirs)] = clash(self.repo, head, theirs)
        if not cached.conflicts:
            return []
        return [{"tasks": [tid, other], "files": cached.files[:MAX_FILES]}]

    def _record(self, state: State, found: list[dict[str, Any]]) -> None:
        box = state.setdefault("conflicts", {"predicted": [], "overlaps": []})
        before = {(tuple(p["tasks"]), tuple(p["files"])): p for p in box["predicted"]}
        now = []
        for p in found:
            old = before.get((tuple(p["tasks"]), tuple(p["files"])))
            if old is None:
                p["since"] = now_iso()
                other = p["tasks"][1]
                with_what = "the integration branch" if other == INTEGRATION else other
                detail = f"with {with_what}: {', '.join(p['files'])}"
                add_event(state, "conflict_predicted", p["tasks"][0], detail)
            now.append(old or p)
        box["predicted"] = now

    def _overlaps(self, state: State, heads: dict[str, tuple[str, str]]) -> None:
        """Record files two running tasks both change that one of them does not declare."""
        changed = {tid: self._files(*heads[tid]) for tid in heads}
        box = state["conflicts"]
        known = {(tuple(o["tasks"]), tuple(o["files"])) for o in box["overlaps"]}
        tids = sorted(changed)
        for i, a in enumerate(tids):
            for b in tids[i + 1 :]:
                both = sorted(changed[a] & changed[b])
                loose = [f for f in both if not (self._declares(a, f) and self._declares(b, f))]
                if loose and ((a, b), tuple(loose)) not in known:
                    box["overlaps"].append({"tasks": [a, b], "files": loose, "since": now_iso()})
                    detail = f"with {b}: both change {', '.join(loose[:MAX_FILES])}, undeclared"
                    add_event(state, "undeclared_overlap", a, detail)

    def _files(self, head: str, base: str) -> frozenset[str]:
        key = (base, head)
        if key not in self._changed:
            out = git.out("diff", "--name-only", "-z", base, head, cwd=self.repo)
            self._changed[key] = frozenset(p for p in out.split("\0") if p)
        return self._changed[key]

    def _declares(self, tid: str, path: str) -> bool:
        writes = self.plan.task(tid).writes
        return bool(writes) and matches(path, [*writes, *self.plan.shared_files])


def apart(state: State) -> dict[str, set[str]]:
    """Return, per task, the tasks it must not run beside (``--serialize-undeclared``)."""
    found: dict[str, set[str]] = {}
    for o in (state.get("conflicts") or {}).get("overlaps", []):
        a, b = o["tasks"]
        found.setdefault(a, set()).add(b)
        found.setdefault(b, set()).add(a)
    return found


def predicted(state: State) -> list[dict[str, Any]]:
    """Return the conflicts predicted now (for ``status``)."""
    return list((state.get("conflicts") or {}).get("predicted", []))
