"""The disk-and-git sub-cases: each breaks one thing, runs the engine through it and
appends what went wrong; it returns a short detail for the report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torturelib import common, faults
from torturelib.diskgit_support import (
    RUN_TIMEOUT_S,
    Ctx,
    ending,
    final,
    merged,
    resume_argv,
    run_argv,
    state_loads,
    wait_for,
)

INNER = Path(__file__).resolve().parent / "diskfull_inner.py"


def readonly_start(ctx: Ctx, problems: list[str]) -> str:
    """The state folder is read-only before the first run."""
    state_dir = ctx.repo / ".planfleet" / "state"
    state_dir.mkdir(parents=True)
    mech = faults.readonly_mechanism()
    if mech is None:
        # root without mount namespaces (e.g. an unprivileged container): not testable here
        return "skipped: cannot make a folder read-only here"
    code, out, err = ctx.run(faults.readonly_wrapper(state_dir, run_argv(ctx.repo)))
    faults.make_writable(state_dir)
    ending(problems, "run with a read-only state folder", code, out, err, allowed=(2, 3))
    state_loads(problems, ctx, "after the refused run")
    code, out, err = ctx.run(
        run_argv(ctx.repo) if not (state_dir / "p.json").exists() else resume_argv(ctx.repo)
    )
    ending(problems, "run once the folder is writable", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"{mech}; exit {code}"


def readonly_midrun(ctx: Ctx, problems: list[str]) -> str:
    """The state folder turns read-only after some merges."""
    state_dir = ctx.repo / ".planfleet" / "state"
    mech = faults.readonly_mechanism()
    if mech is None:
        # root without mount namespaces (e.g. an unprivileged container): not testable here
        return "skipped: cannot make a folder read-only here"
    argv = run_argv(ctx.repo)
    if mech == "bind-mount":
        argv = [*(faults.namespace_prefix() or []), *argv]
    p = ctx.start(argv)
    hit = wait_for(ctx, p, merged(ctx.rng.randint(1, 4)))
    if hit:
        try:
            faults.make_readonly(state_dir, pid=p.pid if mech == "bind-mount" else None)
        except RuntimeError:
            # The engine finished (and its namespace went) in between, or the kernel kept
            # refusing the remount while a state write was open: this trial has no fault.
            hit = False
    code, out, err = ctx.wait(p)
    faults.make_writable(state_dir)
    ending(
        problems,
        "run whose state folder turned read-only",
        code,
        out,
        err,
        allowed=(2, 3) if hit else (0,),
    )
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume once writable", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"{mech}; fault {'injected' if hit else 'missed (run ended first)'}"


def disk_full(ctx: Ctx, problems: list[str]) -> str:
    """A small file system under .planfleet/ (or a file size limit) fills up mid-run."""
    if faults.diskfull_mechanism() == "tmpfs":
        size_kb = ctx.rng.randint(100, 1600)
        spec = {
            "repo": str(ctx.repo),
            "size_kb": size_kb,
            "run": run_argv(ctx.repo),
            "resume": resume_argv(ctx.repo),
            "timeout": RUN_TIMEOUT_S,
            "reference": json.dumps(ctx.setup.reference),
            "main": ctx.setup.main,
        }
        (ctx.folder / "inner.json").write_text(json.dumps(spec))
        code, out, err = ctx.run(
            [
                *(faults.namespace_prefix() or []),
                sys.executable,
                str(INNER),
                str(ctx.folder / "inner.json"),
            ]
        )
        try:
            report = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            problems.append(f"the tmpfs run gave no report (exit {code}): {err[-300:]}")
            return f"tmpfs {size_kb} KB"
        ending(problems, "run on a full disk", *report["run"], allowed=(0, 2, 3))
        problems += [f"on the full disk: {p}" for p in report["after_run"]]
        ending(problems, "resume with space again", *report["resume"], allowed=(0,))
        problems += report["final"]
        return f"tmpfs {size_kb} KB; run exit {report['run'][0]}"
    limit = ctx.rng.randint(2_000, 40_000)
    code, out, err = ctx.run(faults.fsize_wrapper(run_argv(ctx.repo), limit))
    ending(problems, "run with RLIMIT_FSIZE", code, out, err, allowed=(0, 2, 3))
    state_loads(problems, ctx, "after the limited run")
    code2, out, err = ctx.run(
        resume_argv(ctx.repo)
        if (ctx.repo / ".planfleet/state/p.json").exists()
        else run_argv(ctx.repo)
    )
    ending(problems, "run without the limit", code2, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"RLIMIT_FSIZE {limit} B; run exit {code}"


def index_lock_main(ctx: Ctx, problems: list[str]) -> str:
    """A stale .git/index.lock in the user's checkout (a git that crashed long ago)."""
    lock = ctx.repo / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    code, out, err = ctx.run(run_argv(ctx.repo))
    ending(problems, "run with a stale .git/index.lock", code, out, err)
    lock.unlink(missing_ok=True)  # the user's lock is the user's: not counted as ours
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume without the lock", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"exit {code}"


def index_lock_worktree(ctx: Ctx, problems: list[str]) -> str:
    """The engine dies mid-task and a stale index.lock is left in the task's worktree."""
    p = ctx.start(run_argv(ctx.repo))
    running: list[str] = []

    def busy(s: dict[str, Any]) -> bool:
        running[:] = [
            t
            for t, r in s["tasks"].items()
            if r["status"] == "in_progress" and r.get("worktree") and Path(r["worktree"]).is_dir()
        ]
        return bool(running)

    hit = wait_for(ctx, p, busy)
    p.send_signal(signal.SIGKILL)
    p.wait()
    planted = []
    for tid in running:
        admin = common.git(
            Path(ctx.repo / ".planfleet/worktrees/p" / tid), "rev-parse", "--git-dir", check=False
        ).strip()
        if admin:
            lock = (ctx.repo / ".planfleet/worktrees/p" / tid / admin).resolve() / "index.lock"
            lock.write_text("")
            old = time.time() - 3600
            os.utime(lock, (old, old))
            planted.append(tid)
    state_loads(problems, ctx, "after the kill")
    code, out, err = ctx.run(resume_argv(ctx.repo))
    ending(problems, "resume over a stale worktree index.lock", code, out, err)
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "second resume", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"lock planted in {', '.join(planted) or 'nothing'}{'' if hit else ' (missed)'}"


def worktree_deleted(ctx: Ctx, problems: list[str], *, only_git: bool) -> str:
    """A task's worktree is deleted by hand while its task runs: the whole folder, or only
    its ``.git`` link (what an interrupted ``rm -rf`` can leave)."""
    p = ctx.start(run_argv(ctx.repo))
    victims: list[Path] = []

    def busy(s: dict[str, Any]) -> bool:
        victims[:] = [
            Path(r["worktree"])
            for r in s["tasks"].values()
            if r["status"] == "in_progress"
            and r.get("worktree")
            and (Path(r["worktree"]) / ".git").is_file()
        ]
        return bool(victims)

    after = merged(ctx.rng.randint(0, 3))
    if wait_for(ctx, p, lambda s: after(s) and busy(s)):
        if only_git:
            (victims[0] / ".git").unlink(missing_ok=True)
        else:
            shutil.rmtree(victims[0], ignore_errors=True)
    code, out, err = ctx.wait(p)
    ending(problems, "run after a worktree was deleted", code, out, err)
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup)
    return f"deleted {victims[0].name if victims else 'nothing (missed)'}; exit {code}"


def _move_integration(ctx: Ctx, *, rewind: bool) -> str:
    ref = "refs/heads/planfleet/p/integration"
    head = common.git(ctx.repo, "rev-parse", ref).strip()
    if rewind:
        target = common.git(ctx.repo, "rev-parse", "main").strip()
    else:  # someone adds a file on top of it: a fast-forward the engine did not make
        blob = common.git(ctx.repo, "hash-object", "-w", "--stdin", stdin="someone's work\n")
        listing = common.git(ctx.repo, "ls-tree", head)
        tree = common.git(
            ctx.repo, "mktree", stdin=f"{listing}100644 blob {blob.strip()}\tsomeone.txt\n"
        ).strip()
        target = common.git(
            ctx.repo,
            "commit-tree",
            tree,
            "-p",
            head,
            "-m",
            "someone else commits to the integration branch",
        ).strip()
    common.git(ctx.repo, "update-ref", ref, target, head)
    return target


def integration_moved(ctx: Ctx, problems: list[str], *, rewind: bool) -> str:
    p = ctx.start(run_argv(ctx.repo))
    hit = wait_for(ctx, p, merged(ctx.rng.randint(1, 3)))
    if hit:
        _move_integration(ctx, rewind=rewind)
    code, out, err = ctx.wait(p)
    ending(problems, "run whose integration branch moved", code, out, err)
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup, extra={} if rewind else {"someone.txt": ""})
    return f"{'rewound' if rewind else 'moved forward'}{'' if hit else ' (missed)'}; exit {code}"


SUBCASES: dict[str, Callable[[Ctx, list[str]], str]] = {
    "state-readonly-at-start": readonly_start,
    "state-readonly-mid-run": readonly_midrun,
    "disk-full": disk_full,
    "stale-index-lock-checkout": index_lock_main,
    "stale-index-lock-worktree": index_lock_worktree,
    "worktree-deleted-mid-run": lambda c, p: worktree_deleted(c, p, only_git=False),
    "worktree-git-link-deleted-mid-run": lambda c, p: worktree_deleted(c, p, only_git=True),
    "integration-moved-forward": lambda c, p: integration_moved(c, p, rewind=False),
    "integration-rewound": lambda c, p: integration_moved(c, p, rewind=True),
}
