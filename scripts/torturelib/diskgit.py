"""Scenario 4, disk and git faults: a read-only state folder (before and during a run), a
full disk, a stale ``index.lock`` (main checkout, task worktree), a task worktree deleted by
hand mid-run, the integration branch moved by someone else mid-run (forward, and rewound).

Each must end in a clear error (exit 2/3 with a message) or a correct recovery, and the
state must load after it. Where the fault can be removed (permissions, space), a resume
afterwards must finish the plan with the same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torturelib import common, faults, procs
from torturelib.common import ScenarioResult, Trial

TASKS = 8
RUN_TIMEOUT_S = 120.0
BULK_FILES = 24  # 24 x 32 KB per checkout: a small tmpfs fills after a few worktrees
INNER = Path(__file__).resolve().parent / "diskfull_inner.py"


def plan_text(rng: random.Random) -> str:
    """Two phases of four shell tasks; each sleeps long enough to be hit mid-run."""
    lines = ["planfleet: 1", "name: p", "phases:"]
    for k in range(2):
        lines += [f"  - id: ph{k}", "    tasks:"]
        if k:
            lines.insert(-1, "    depends_on: [ph0]")
        for j in range(TASKS // 2):
            n = k * TASKS // 2 + j
            lines += [f"      - id: d{n}", f"        title: task {n}",
                      f"        files: {{create: [out/d{n}.txt]}}",
                      f'        commands: ["sleep {rng.uniform(0.5, 1.0):.2f}", '
                      f'"mkdir -p out && echo {n} > out/d{n}.txt"]']
    return "\n".join(lines) + "\n"


@dataclass
class Setup:
    template: Path
    work: Path
    env: dict[str, str]
    reference: dict[str, str]  # path -> blob id of the uninterrupted run's integration tree


def run_argv(repo: Path) -> list[str]:
    return common.planfleet(repo, "run", "plans/p.plan.yaml", "--runner", "shell", "--json",
                            "--max-parallel", "2", "--max-attempts", "3")


def resume_argv(repo: Path) -> list[str]:
    return common.planfleet(repo, "resume", "p", "--runner", "shell", "--json",
                            "--max-parallel", "2", "--max-attempts", "3")


def tree_files(repo: Path) -> dict[str, str]:
    """Return path -> blob id on the integration branch (empty if there is none)."""
    out = common.git(repo, "ls-tree", "-r", "refs/heads/planfleet/p/integration", check=False)
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


def run_scenario(work: Path, env: dict[str, str], *, repeats: int, seed: int,
                 workers: int = 2) -> ScenarioResult:
    """Run every sub-case ``repeats`` times; return the scenario result."""
    result = ScenarioResult("disk-and-git", "seconds")
    rng = random.Random(seed)
    bulk = {f"bulk/b{i:02d}.bin": rng.randbytes(32_000).hex()[:32_000] for i in range(BULK_FILES)}
    template = common.make_repo(work / "template", {"plans/p.plan.yaml": plan_text(rng),
                                                    "README.md": "# disk\n", **bulk})
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    ref = common.copy_repo(template, work / "reference")
    try:
        code, out, err, _ = launcher.run(run_argv(ref), cwd=ref, timeout=RUN_TIMEOUT_S)
    finally:
        launcher.close()
    if code != 0:
        result.trials.append(Trial("reference", False, [f"uninterrupted run exit {code}: "
                                                        f"{(err or out)[-300:]}"]))
        return result
    setup = Setup(template, work, env, tree_files(ref))
    ro, full = faults.readonly_mechanism(), faults.diskfull_mechanism()
    result.notes.append(f"read-only by {ro or 'nothing (root without mount namespaces)'}; "
                        f"disk full by {full}")
    jobs = [(name, r, rng.randrange(2**32)) for r in range(repeats) for name in SUBCASES]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        result.trials = list(pool.map(lambda job: _one(setup, *job), jobs))
    return result


def _one(setup: Setup, name: str, rep: int, seed: int) -> Trial:
    folder = setup.work / f"{name}-{rep}"
    folder.mkdir()
    repo = common.copy_repo(setup.template, folder / "repo")
    launcher = procs.Launcher(setup.env, uuid.uuid4().hex)
    problems: list[str] = []
    started = time.monotonic()
    detail = ""
    try:
        detail = SUBCASES[name](Ctx(setup, repo, launcher, random.Random(seed), folder), problems)
        problems += [f"leftover process: {p.describe()}" for p in procs.under(repo)]
    except Exception as exc:  # a harness failure is reported, never hidden
        problems.append(f"harness error: {type(exc).__name__}: {exc}")
    finally:
        left = launcher.close()
    problems += [f"leftover tagged process: {p.describe()}" for p in left]
    return Trial(f"{name} #{rep + 1}", not problems, problems,
                 round(time.monotonic() - started, 1), detail)


@dataclass
class Ctx:
    setup: Setup
    repo: Path
    launcher: procs.Launcher
    rng: random.Random
    folder: Path

    def run(self, argv: list[str]) -> tuple[int | None, str, str]:
        code, out, err, _ = self.launcher.run(argv, cwd=self.repo, timeout=RUN_TIMEOUT_S)
        return code, out, err

    def start(self, argv: list[str]) -> Any:
        return self.launcher.start(argv, cwd=self.repo, log=self.folder / "engine.log")

    def wait(self, p: Any) -> tuple[int | None, str, str]:
        try:
            p.wait(timeout=RUN_TIMEOUT_S)
        except Exception:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return None, "", "timed out"
        text = (self.folder / "engine.log").read_text(errors="replace")
        return p.returncode, text, text


def ending(problems: list[str], what: str, code: int | None, out: str, err: str,
           *, allowed: tuple[int, ...] = (0, 2, 3)) -> None:
    """Note what is wrong with how a command ended (a hang, exit 4, a traceback, an error
    without a message, an exit code outside ``allowed``)."""
    if code is None:
        problems.append(f"{what} did not end within {RUN_TIMEOUT_S:g} s")
        return
    if common.has_traceback(out + err):
        problems.append(f"{what} printed a traceback: {(err or out).strip()[-300:]}")
    if code not in allowed:
        problems.append(f"{what} exit {code}: {_why(out, err)}")
    elif code in (2, 3) and not _why(out, err):
        problems.append(f"{what} exit {code} without a message")


def _why(out: str, err: str) -> str:
    env = common.envelope(out)
    if env and env.get("errors"):
        return "; ".join(str(e.get("message")) for e in env["errors"])[:300]
    if env and isinstance(env.get("data"), dict) and env["data"].get("reason"):
        return str(env["data"]["reason"])[:300]
    return err.strip()[-300:]


def final(problems: list[str], repo: Path, reference: dict[str, str], *,
          extra: dict[str, str] | None = None) -> None:
    """The end of a sub-case: the run completed with the reference's files (plus ``extra``
    paths that must exist), state valid, no lock or stale worktree."""
    state, problem = common.load_state(repo)
    if problem or state is None:
        problems.append(problem or "no state file at the end")
        return
    if state["status"] != "completed":
        problems.append(f"run status {state['status']} at the end")
    files = tree_files(repo)
    for path, blob in reference.items():
        if files.get(path) != blob:
            problems.append(f"integration branch: {path} {'differs' if path in files else 'lost'}")
    for path in extra or {}:
        if path not in files:
            problems.append(f"integration branch: {path} (someone else's commit) was lost")
    locks = common.held_locks(repo)
    if locks:
        problems.append(f"locks left: {', '.join(locks)}")
    stale = common.stale_worktrees(repo)
    if stale:
        problems.append(f"stale worktrees: {', '.join(stale)}")


def state_loads(problems: list[str], ctx: Ctx, when: str) -> dict[str, Any] | None:
    state, problem = common.load_state(ctx.repo)
    if problem:
        problems.append(f"{when}: {problem}")
    return state


def wait_for(ctx: Ctx, p: Any, test: Callable[[dict[str, Any]], bool], limit: float = 60) -> bool:
    """Poll the state file until ``test(state)`` holds; False if the engine ended first."""
    path = ctx.repo / ".planfleet" / "state" / "p.json"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and p.poll() is None:
        try:
            if test(json.loads(path.read_text())):
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return False


def merged(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: sum(1 for r in s["tasks"].values()
                         if r["kind"] == "task" and r.get("merged_at")) >= n


# -- the sub-cases: each returns a short detail and appends what went wrong -------------------

def readonly_start(ctx: Ctx, problems: list[str]) -> str:
    """The state folder is read-only before the first run."""
    state_dir = ctx.repo / ".planfleet" / "state"
    state_dir.mkdir(parents=True)
    mech = faults.readonly_mechanism()
    if mech is None:
        problems.append("cannot make a folder read-only here (root without mount namespaces)")
        return "skipped"
    code, out, err = ctx.run(faults.readonly_wrapper(state_dir, run_argv(ctx.repo)))
    faults.make_writable(state_dir)
    ending(problems, "run with a read-only state folder", code, out, err, allowed=(2, 3))
    state_loads(problems, ctx, "after the refused run")
    code, out, err = ctx.run(run_argv(ctx.repo) if not (state_dir / "p.json").exists()
                             else resume_argv(ctx.repo))
    ending(problems, "run once the folder is writable", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup.reference)
    return f"{mech}; exit {code}"


def readonly_midrun(ctx: Ctx, problems: list[str]) -> str:
    """The state folder turns read-only after some merges."""
    state_dir = ctx.repo / ".planfleet" / "state"
    mech = faults.readonly_mechanism()
    if mech is None:
        problems.append("cannot make a folder read-only here (root without mount namespaces)")
        return "skipped"
    argv = run_argv(ctx.repo)
    if mech == "bind-mount":
        argv = [*(faults.namespace_prefix() or []), *argv]
    p = ctx.start(argv)
    hit = wait_for(ctx, p, merged(ctx.rng.randint(1, 4)))
    if hit:
        faults.make_readonly(state_dir, pid=p.pid if mech == "bind-mount" else None)
    code, out, err = ctx.wait(p)
    faults.make_writable(state_dir)
    ending(problems, "run whose state folder turned read-only", code, out, err,
           allowed=(2, 3) if hit else (0,))
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume once writable", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup.reference)
    return f"{mech}; fault {'injected' if hit else 'missed (run ended first)'}"


def disk_full(ctx: Ctx, problems: list[str]) -> str:
    """A small file system under .planfleet/ (or a file size limit) fills up mid-run."""
    if faults.diskfull_mechanism() == "tmpfs":
        size_kb = ctx.rng.randint(200, 4000)
        spec = {"repo": str(ctx.repo), "size_kb": size_kb, "run": run_argv(ctx.repo),
                "resume": resume_argv(ctx.repo), "timeout": RUN_TIMEOUT_S,
                "reference": json.dumps(ctx.setup.reference)}
        (ctx.folder / "inner.json").write_text(json.dumps(spec))
        code, out, err = ctx.run([*(faults.namespace_prefix() or []), sys.executable,
                                  str(INNER), str(ctx.folder / "inner.json")])
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
    code2, out, err = ctx.run(resume_argv(ctx.repo) if (ctx.repo / ".planfleet/state/p.json")
                              .exists() else run_argv(ctx.repo))
    ending(problems, "run without the limit", code2, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup.reference)
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
    final(problems, ctx.repo, ctx.setup.reference)
    return f"exit {code}"


def index_lock_worktree(ctx: Ctx, problems: list[str]) -> str:
    """The engine dies mid-task and a stale index.lock is left in the task's worktree."""
    p = ctx.start(run_argv(ctx.repo))
    running: list[str] = []

    def busy(s: dict[str, Any]) -> bool:
        running[:] = [t for t, r in s["tasks"].items() if r["status"] == "in_progress"
                      and r.get("worktree") and Path(r["worktree"]).is_dir()]
        return bool(running)

    hit = wait_for(ctx, p, busy)
    p.send_signal(signal.SIGKILL)
    p.wait()
    planted = []
    for tid in running:
        admin = common.git(Path(ctx.repo / ".planfleet/worktrees/p" / tid), "rev-parse",
                           "--git-dir", check=False).strip()
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
    final(problems, ctx.repo, ctx.setup.reference)
    return f"lock planted in {', '.join(planted) or 'nothing'}{'' if hit else ' (missed)'}"


def worktree_deleted(ctx: Ctx, problems: list[str]) -> str:
    """A task's worktree folder is deleted by hand while its task runs."""
    p = ctx.start(run_argv(ctx.repo))
    victims: list[str] = []

    def busy(s: dict[str, Any]) -> bool:
        victims[:] = [r["worktree"] for r in s["tasks"].values() if r["status"] == "in_progress"
                      and r.get("worktree") and Path(r["worktree"]).is_dir()]
        return bool(victims)

    if wait_for(ctx, p, lambda s: merged(ctx.rng.randint(0, 3))(s) and busy(s)):
        shutil.rmtree(victims[0], ignore_errors=True)
    code, out, err = ctx.wait(p)
    ending(problems, "run after a worktree was deleted", code, out, err)
    state_loads(problems, ctx, "after the run")
    if code != 0:
        code, out, err = ctx.run(resume_argv(ctx.repo))
        ending(problems, "resume", code, out, err, allowed=(0,))
    final(problems, ctx.repo, ctx.setup.reference)
    return f"deleted {Path(victims[0]).name if victims else 'nothing (missed)'}; exit {code}"


def _move_integration(ctx: Ctx, *, rewind: bool) -> str:
    ref = "refs/heads/planfleet/p/integration"
    head = common.git(ctx.repo, "rev-parse", ref).strip()
    if rewind:
        target = common.git(ctx.repo, "rev-parse", "main").strip()
    else:  # someone adds a file on top of it: a fast-forward the engine did not make
        blob = common.git(ctx.repo, "hash-object", "-w", "--stdin", stdin="someone's work\n")
        listing = common.git(ctx.repo, "ls-tree", head)
        tree = common.git(ctx.repo, "mktree", stdin=f"{listing}100644 blob {blob.strip()}\t"
                          "someone.txt\n").strip()
        target = common.git(ctx.repo, "commit-tree", tree, "-p", head, "-m",
                            "someone else commits to the integration branch").strip()
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
    final(problems, ctx.repo, ctx.setup.reference, extra={} if rewind else {"someone.txt": ""})
    return f"{'rewound' if rewind else 'moved forward'}{'' if hit else ' (missed)'}; exit {code}"


SUBCASES: dict[str, Callable[[Ctx, list[str]], str]] = {
    "state-readonly-at-start": readonly_start,
    "state-readonly-mid-run": readonly_midrun,
    "disk-full": disk_full,
    "stale-index-lock-checkout": index_lock_main,
    "stale-index-lock-worktree": index_lock_worktree,
    "worktree-deleted-mid-run": worktree_deleted,
    "integration-moved-forward": lambda c, p: integration_moved(c, p, rewind=False),
    "integration-rewound": lambda c, p: integration_moved(c, p, rewind=True),
}
