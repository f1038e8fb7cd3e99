"""Scenario 3, hostile input: generated plan files through `plan validate` (in-process, in
worker processes with a memory cap) and a sample through `planfleet run --dry-run`."""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torturelib import common, hostile_gen, hostile_run, procs
from torturelib.common import ScenarioResult, Trial
from torturelib.hostile_gen import SPECIAL, Context

# Watched on purpose: an injected `touch /tmp/...` or a write that ignores TMPDIR lands here.
SYSTEM_TMP = Path("/tmp")  # noqa: S108
WORKERS = 2
WORKER_MEMORY_MB = 2048  # a reader that tries to hold a bomb in memory dies, named
CASE_TIMEOUT_S = 60.0  # no answer from a worker for this long: the case hangs
SPECIAL_TIMEOUT_S = 10.0
SLOW_CASE_S = 60.0  # one plan taking longer than this to validate is a failure (a DoS)
WORKER = Path(__file__).resolve().parent / "hostile_worker.py"
# Written on purpose outside .planfleet/: the exclude entry that keeps .planfleet/ out of git.
ALLOWED_WRITES = (".git/info/exclude",)


@dataclass
class Bait:
    canaries: list[Path]  # exist only if an injected command ran
    secret: str  # planted outside the repositories; must never come back
    outside: Path
    sentinel: Path  # in the isolated HOME: `rm -rf ~` would take it


def run_scenario(
    work: Path, env: dict[str, str], *, files: int, dry_runs: int, seed: int
) -> ScenarioResult:
    """Validate ``files`` generated cases and dry-run ``dry_runs`` of them."""
    result = ScenarioResult("hostile-input", "slowest case seconds")
    tag = uuid.uuid4().hex[:12]
    tmp = work / "tmp"
    tmp.mkdir()
    bait = Bait(
        [SYSTEM_TMP / f"planfleet-torture-pwn-{tag}", work / "pwn"],
        f"PLANFLEET-SECRET-{tag}",
        work / "outside",
        Path(env["HOME"]) / ".sentinel",
    )
    bait.sentinel.parent.mkdir(parents=True, exist_ok=True)
    bait.sentinel.write_text("rm -rf ~ did not run\n")
    canary = str(bait.canaries[0])
    hostile_run.make_outside(bait.outside, canary=canary, marker=bait.secret)
    ctx_root = work / "ctx"
    ctx = hostile_run.make_context(
        hostile_run.make_repos(ctx_root), outside=bait.outside, canary=canary, marker=bait.secret
    )
    env = {**env, "TMPDIR": str(tmp)}
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    counts: dict[str, int] = {}
    try:
        chunks = [(k * files // WORKERS, (k + 1) * files // WORKERS) for k in range(WORKERS)]
        roots = []
        for k in range(WORKERS):
            root = work / f"worker-{k}"
            root.mkdir()
            (root / "bait.json").write_text(
                json.dumps({"canary": canary, "secret": bait.secret, "outside": str(bait.outside)})
            )
            roots.append(root)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            parts = list(pool.map(lambda r, c: _drive(launcher, r, c, seed), roots, chunks))
        for part in parts:
            result.trials += part
        result.trials += _specials(launcher, work, ctx, seed, files)
        result.trials += _dry_runs(launcher, work, ctx, seed, files, dry_runs, bait)
        result.trials.append(_foreign_run(launcher, work, bait))
    finally:
        left = launcher.close()
    for t in result.trials:
        key = t.detail.split(" ", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    result.trials.append(_aftermath(bait, left))
    result.notes.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return result


def _drive(launcher: procs.Launcher, root: Path, chunk: tuple[int, int], seed: int) -> list[Trial]:
    """Run one worker over ``chunk``; restart it after the case it died or hung on."""
    trials: list[Trial] = []
    start, stop = chunk
    while start < stop:
        p = launcher.spawn(
            [sys.executable, str(WORKER), str(root), str(seed), str(start), str(stop)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            memory_mb=WORKER_MEMORY_MB,
        )
        current, killed = None, False
        for msg in _messages(p, CASE_TIMEOUT_S):
            if msg is None:  # silent for too long: the case hangs
                p.kill()
                killed = True
                break
            if "start" in msg:
                current = int(msg["start"])
            elif "case" in msg:
                trials.append(_case_trial(msg))
                current, start = None, int(msg["case"]) + 1
            elif "check" in msg and msg["problems"]:
                trials.append(
                    Trial(
                        f"repositories after case {msg['check']}",
                        False,
                        [f"left in the repository: {p}" for p in msg["problems"][:20]],
                    )
                )
        code = p.wait()
        if p.stdout is not None:
            p.stdout.close()
        if current is None:
            if code != 0:
                trials.append(Trial(f"worker at case {start}", False, [f"worker exited {code}"]))
            break
        why = f"no answer for {CASE_TIMEOUT_S:g} s" if killed else f"exit {code}"
        trials.append(
            Trial(
                f"case {current}",
                False,
                [
                    f"the validator process died or hung on it ({why}; memory "
                    f"limit {WORKER_MEMORY_MB} MB)"
                ],
                CASE_TIMEOUT_S,
                "died",
            )
        )
        _reset(root / "repos")
        start = current + 1
    return trials


def _messages(p: subprocess.Popen[bytes], timeout: float) -> Iterator[dict[str, Any] | None]:
    """Yield the worker's JSON lines; None when it said nothing for ``timeout`` seconds."""
    assert p.stdout is not None
    fd = p.stdout.fileno()
    buf = b""
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            yield None
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _case_trial(msg: dict[str, Any]) -> Trial:
    problems = list(msg["problems"])
    seconds = float(msg["seconds"])
    if seconds > SLOW_CASE_S:
        problems.append(f"took {seconds:.1f} s (limit {SLOW_CASE_S:g} s)")
    outcome = _outcome(msg["code"])
    return Trial(str(msg["what"]), not problems, problems, seconds, f"{outcome} {msg['category']}")


def _outcome(code: int | None) -> str:
    """Return how a case ended, in one word (the first word of a trial's detail)."""
    return {0: "accepted", 2: "rejected", None: "hung"}.get(code, f"exit-{code}")


def _reset(repos: Path) -> None:
    """Put every fixture repository back to its commit (after a worker died mid-case)."""
    for repo in repos.iterdir():
        common.git(repo, "reset", "-q", "--hard")
        common.git(repo, "clean", "-q", "-fdx", "-e", ".planfleet")


def _categories(ctx: Context, seed: int, files: int) -> list[str]:
    """Return the category of every case (cases are rebuilt when needed: some are huge)."""
    return [hostile_gen.generate(ctx, seed, i).category for i in range(files)]


def _specials(
    launcher: procs.Launcher, work: Path, ctx: Context, seed: int, files: int
) -> list[Trial]:
    """FIFOs, links to /dev/zero and loops: validated by a separate, capped process."""
    cases = [
        hostile_gen.generate(ctx, seed, i)
        for i, c in enumerate(_categories(ctx, seed, files))
        if c == SPECIAL
    ]
    lanes = 4
    roots = [hostile_run.make_repos(work / f"special-{k}") for k in range(lanes)]

    def lane(k: int) -> list[Trial]:
        out = []
        for case in cases[k::lanes]:
            repo = roots[k][case.fmt]
            applied = hostile_run.apply(repo, case)
            try:
                code, so, se, seconds = launcher.run(
                    common.planfleet(repo, "plan", "validate", str(repo / case.plan), "--json"),
                    cwd=repo,
                    timeout=SPECIAL_TIMEOUT_S,
                    memory_mb=1024,
                )
            finally:
                applied.restore()
            problems = hostile_run.judge(case, ctx, code, so, se)
            if code is None:
                problems = [f"hung: no answer within {SPECIAL_TIMEOUT_S:g} s"]
            outcome = _outcome(code)
            out.append(
                Trial(
                    case.describe(),
                    not problems,
                    problems,
                    round(seconds, 2),
                    f"{outcome} {case.category}",
                )
            )
        return out

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        return [t for part in pool.map(lane, range(lanes)) for t in part]


def _dry_runs(
    launcher: procs.Launcher,
    work: Path,
    ctx: Context,
    seed: int,
    files: int,
    count: int,
    bait: Bait,
) -> list[Trial]:
    """`planfleet run --dry-run` on a sample: nothing runs, nothing is written outside
    .planfleet/ (the repositories, the work folder and /tmp are compared before and after)."""
    rng = random.Random(seed ^ 0x5EED)
    kinds = _categories(ctx, seed, files)
    # The categories that carry commands, ids and links come first: they are the point.
    pointed = [i for i, c in enumerate(kinds) if c in ("hostile-native", "hostile-id", "symlink")]
    rest = [i for i, c in enumerate(kinds) if c != SPECIAL and i not in set(pointed)]
    sample = rng.sample(pointed, min(len(pointed), count // 2))
    sample += rng.sample(rest, min(len(rest), count - len(sample)))
    repos = hostile_run.make_repos(work / "dry")
    trials = []
    for index in sample:
        case = hostile_gen.generate(ctx, seed, index)
        repo = repos[case.fmt]
        applied = hostile_run.apply(repo, case)
        try:
            before = _snapshot(work)
            tmp_before = set(os.listdir(SYSTEM_TMP))
            code, out, err, seconds = launcher.run(
                common.planfleet(
                    repo, "run", str(repo / case.plan), "--dry-run", "--json", "--runner", "shell"
                ),
                cwd=repo,
                timeout=CASE_TIMEOUT_S,
            )
            after = _snapshot(work)
        finally:
            applied.restore()
        problems = hostile_run.judge(case, ctx, code, out, err)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        problems += [f"written outside .planfleet/: {k}" for k in changed[:10]]
        new_tmp = sorted(set(os.listdir(SYSTEM_TMP)) - tmp_before)
        problems += [f"new in /tmp: {n}" for n in new_tmp if "planfleet" in n]
        problems += [f"an injected command ran: {c} exists" for c in bait.canaries if c.exists()]
        outcome = _outcome(code)
        trials.append(
            Trial(
                f"dry run of {case.describe()}",
                not problems,
                problems,
                round(seconds, 2),
                f"dry-{outcome} {case.category}",
            )
        )
    return trials


def _foreign_run(launcher: procs.Launcher, work: Path, bait: Bait) -> Trial:
    """A real run (not a dry one) of a plan that links out of the repository: its commands
    must not run (they touch the canary)."""
    repo = common.make_repo(work / "foreign", {"README.md": "# foreign\n"})
    (repo / "plans").mkdir()
    (repo / "plans" / "linked.plan.yaml").symlink_to(bait.outside / "foreign.plan.yaml")
    code, out, err, seconds = launcher.run(
        common.planfleet(
            repo,
            "run",
            "plans/linked.plan.yaml",
            "--runner",
            "shell",
            "--json",
            "--max-attempts",
            "1",
        ),
        cwd=repo,
        timeout=CASE_TIMEOUT_S,
    )
    problems = [f"an injected command ran: {c} exists" for c in bait.canaries if c.exists()]
    if code not in (2, 3) or not (err.strip() or common.envelope(out)):
        problems.append(f"a plan from outside the repository was run (exit {code})")
    for c in bait.canaries:
        c.unlink(missing_ok=True)  # so that the final check blames only what comes after
    return Trial(
        "run of a plan linked from outside the repository",
        not problems,
        problems,
        round(seconds, 2),
        f"exit-{code} foreign-run",
    )


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Return path -> (size, mtime) of every file under ``root``, except .planfleet/ folders,
    git's index (git status rewrites it) and the designed exclude entry."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".planfleet"]
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if rel.endswith((os.sep + ".git" + os.sep + "index", *ALLOWED_WRITES)):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found[rel] = (st.st_size, st.st_mtime_ns)
    return found


def _aftermath(bait: Bait, left: list[procs.ProcInfo]) -> Trial:
    problems = [f"an injected command ran: {c} exists" for c in bait.canaries if c.exists()]
    if not bait.sentinel.exists():
        problems.append("`rm -rf ~` ran: the sentinel in the isolated HOME is gone")
    problems += [f"leftover process: {p.describe()}" for p in left]
    return Trial("no injected command ran, nothing left running", not problems, problems)
