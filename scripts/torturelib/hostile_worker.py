"""Validate generated cases ``START..STOP`` in this process; one JSON line per case.

    python hostile_worker.py ROOT SEED START STOP

ROOT holds ``repos/`` (one fixture repository per format) and ``bait.json`` (canary, secret,
outside folder). Before each case the worker prints ``{"start": i}``, so that the parent can
name the case if this process dies (a crash of the interpreter, the memory limit).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torturelib import common, hostile_gen, hostile_run

CHECK_EVERY = 250  # cases between checks that the repositories hold only what we put back


def main(argv: list[str]) -> int:
    root, seed, start, stop = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    bait = json.loads((root / "bait.json").read_text())
    repos = hostile_run.make_repos(root / "repos")
    ctx = hostile_run.make_context(
        repos, outside=Path(bait["outside"]), canary=bait["canary"], marker=bait["secret"]
    )
    for i in range(start, stop):
        case = hostile_gen.generate(ctx, seed, i)
        if case.category == hostile_gen.SPECIAL:
            continue
        _emit({"start": i})
        repo = repos[case.fmt]
        began = time.monotonic()
        applied = hostile_run.apply(repo, case)
        try:
            code, out, err, escaped = hostile_run.validate_in_process(repo, case.plan)
            problems = hostile_run.judge(case, ctx, code, out, err, escaped)
            if code == 0:
                problems += hostile_run.accepted_problems(repo, case, ctx)
        finally:
            applied.restore()
        _emit(
            {
                "case": i,
                "category": case.category,
                "fmt": case.fmt,
                "what": case.describe(),
                "code": code,
                "seconds": round(time.monotonic() - began, 3),
                "problems": problems,
            }
        )
        if (i - start) % CHECK_EVERY == CHECK_EVERY - 1 or i == stop - 1:
            _emit({"check": i, "problems": dirty(repos)})
    return 0


def dirty(repos: dict[str, Path]) -> list[str]:
    """Return files that differ from the committed fixtures (the validator wrote them, or an
    edit was not undone)."""
    found = []
    for repo in sorted(set(repos.values())):
        status = common.git(repo, "status", "--porcelain", "--ignored", "-uall")
        found += [
            f"{repo.name}: {line}" for line in status.splitlines() if ".planfleet/" not in line
        ]
    return found


def _emit(data: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
