"""Scenario 4, disk and git faults: a read-only state folder (before and during a run), a
full disk, a stale ``index.lock`` (main checkout, task worktree), a task worktree (or just
its ``.git`` link) deleted by hand mid-run, the integration branch moved by someone else
mid-run (forward, and rewound).

Each must end in a clear error (exit 2/3 with a message) or a correct recovery, and the
state must load after it. Where the fault can be removed (permissions, space), a resume
afterwards must finish the plan with the same result as an uninterrupted run.
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from torturelib import common, faults, procs
from torturelib.common import ScenarioResult, Trial
from torturelib.diskgit_cases import SUBCASES
from torturelib.diskgit_support import Ctx, Setup, run_argv, tree_files

TASKS = 8
BULK_FILES = 24  # 24 x 32 KB per checkout: a small tmpfs fills after a few worktrees


def plan_text(rng: random.Random) -> str:
    """Two phases of four shell tasks; each sleeps long enough to be hit mid-run."""
    lines = ["planfleet: 1", "name: p", "phases:"]
    for k in range(2):
        lines += [f"  - id: ph{k}", "    tasks:"]
        if k:
            lines.insert(-1, "    depends_on: [ph0]")
        for j in range(TASKS // 2):
            n = k * TASKS // 2 + j
            lines += [
                f"      - id: d{n}",
                f"        title: task {n}",
                f"        files: {{create: [out/d{n}.txt]}}",
                f'        commands: ["sleep {rng.uniform(0.5, 1.0):.2f}", '
                f'"mkdir -p out && echo {n} > out/d{n}.txt"]',
            ]
    return "\n".join(lines) + "\n"


def run_scenario(
    work: Path, env: dict[str, str], *, repeats: int, seed: int, workers: int = 2
) -> ScenarioResult:
    """Run every sub-case ``repeats`` times; return the scenario result."""
    result = ScenarioResult("disk-and-git", "seconds")
    rng = random.Random(seed)
    bulk = {f"bulk/b{i:02d}.bin": rng.randbytes(32_000).hex()[:32_000] for i in range(BULK_FILES)}
    template = common.make_repo(
        work / "template", {"plans/p.plan.yaml": plan_text(rng), "README.md": "# disk\n", **bulk}
    )
    launcher = procs.Launcher(env, uuid.uuid4().hex)
    ref = common.copy_repo(template, work / "reference")
    try:
        code, out, err, _ = launcher.run(run_argv(ref), cwd=ref, timeout=120.0)
    finally:
        launcher.close()
    if code != 0:
        result.trials.append(
            Trial("reference", False, [f"uninterrupted run exit {code}: {(err or out)[-300:]}"])
        )
        return result
    setup = Setup(
        template, work, env, tree_files(ref), common.git(template, "rev-parse", "main").strip()
    )
    ro, full = faults.readonly_mechanism(), faults.diskfull_mechanism()
    result.notes.append(
        f"read-only by {ro or 'nothing (root without mount namespaces)'}; disk full by {full}"
    )
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
    return Trial(
        f"{name} #{rep + 1}", not problems, problems, round(time.monotonic() - started, 1), detail
    )
