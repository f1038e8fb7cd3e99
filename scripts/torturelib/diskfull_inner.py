"""Runs inside a private mount namespace: a small tmpfs over ``.planfleet/``, the engine
until the disk is full, checks, then more space and a resume. Prints one JSON report.

    python diskfull_inner.py SPEC.json   (repo, size_kb, run, resume, timeout)

The tmpfs exists only in this namespace, so everything that looks at it happens here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torturelib import common, diskgit_support, procs


def _run(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    # The processes carry the trial's tag already; the harness outside finds any leftover.
    launcher = procs.Launcher(dict(os.environ), os.environ.get(procs.TAG_VAR, "diskfull"))
    code, out, err, _ = launcher.run(argv, cwd=Path.cwd(), timeout=timeout)
    return code, out, err


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    repo = Path(spec["repo"])
    mount = repo / ".planfleet"
    mount.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={spec['size_kb']}k", "tmpfs", str(mount)], check=True
    )
    run = _run(spec["run"], spec["timeout"])
    after_run: list[str] = []
    _, problem = common.load_state(repo)
    if problem:
        after_run.append(problem)
    subprocess.run(["mount", "-o", "remount,size=512m", str(mount)], check=True)
    has_state = (mount / "state" / "p.json").exists()
    resume = _run(spec["resume"] if has_state else spec["run"], spec["timeout"])
    final: list[str] = []
    setup = diskgit_support.Setup(repo, repo, {}, json.loads(spec["reference"]), spec["main"])
    diskgit_support.final(final, repo, setup)
    print(json.dumps({"run": run, "after_run": after_run, "resume": resume, "final": final}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
