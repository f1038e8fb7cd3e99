"""`planfleet clean --remote NAME PLAN`: delete a run's cloud branches from the git remote.

Only ``planfleet/<plan>/base/...`` and ``planfleet/<plan>/tasks/...`` (what the cloud runner
and its sessions pushed) are deleted, after a question (``--yes`` skips it); a branch that
moved since it was listed is left alone (``--force-with-lease`` on exactly that commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from planfleet import git
from planfleet.cli.output import Out
from planfleet.errors import ExitCode, RefusedError
from planfleet.ids import check_id
from planfleet.runners import cloudgit


def cloud_branches(repo: Path, remote: str, plan: str, task: str | None) -> dict[str, str]:
    """Return branch -> commit of the plan's cloud branches on ``remote`` (of ``task``)."""
    found = cloudgit.remote_branches(repo, remote, f"planfleet/{plan}")
    chosen = {}
    for name, commit in found.items():
        parts = name.split("/")
        if len(parts) != 4 or parts[2] not in ("base", "tasks"):
            continue
        if task is None or parts[3] == task or parts[3].startswith(f"{task}@"):
            chosen[name] = commit
    return chosen


def clean_remote(
    out: Out, repo: Path, plan: str, *, remote: str, task: str | None, dry_run: bool, yes: bool
) -> int:
    """Delete the plan's cloud branches from ``remote``; return the exit code."""
    remote = check_id(remote, what="remote name")
    if cloudgit.remote_url(repo, remote) is None:
        raise RefusedError(
            f"no git remote {remote!r}",
            reason="no_remote",
            next_step="name the remote the run pushed to: --remote NAME",
        )
    chosen = cloud_branches(repo, remote, plan, task)
    argv = ["push", "--atomic", remote]
    argv += [f"--force-with-lease={git.branch_ref(n)}:{c}" for n, c in sorted(chosen.items())]
    argv += [f":{git.branch_ref(n)}" for n in sorted(chosen)]
    command = "git " + " ".join(argv)
    if chosen and not dry_run:
        _confirm(out, yes, remote, len(chosen))
        git.git(*argv, cwd=repo, timeout=cloudgit.NETWORK_TIMEOUT_S)
    data = {
        "plan": plan,
        "remote": remote,
        "dry_run": dry_run,
        "deleted": sorted(chosen),
        "commands": [command] if chosen else [],
    }

    def human() -> None:
        verb = "would delete" if dry_run else "deleted"
        out.line(f"{plan}: {verb} {len(chosen)} branch(es) on {remote}")
        for name in sorted(chosen):
            out.line(f"  {name}")
        if dry_run and chosen:
            out.line(f"  $ {command}")

    out.result("clean", data, human=human)
    return ExitCode.OK


def _confirm(out: Out, yes: bool, remote: str, count: int) -> None:
    if yes:
        return
    if not (sys.stdin.isatty() and out.is_tty) or out.json_mode:
        raise RefusedError(
            f"deleting {count} branch(es) from {remote} needs confirmation",
            reason="needs_confirmation",
            next_step="add --yes (--dry-run lists them)",
        )
    if input(f"Delete {count} branch(es) from {remote}? [y/N] ").strip().lower() not in (
        "y",
        "yes",
    ):
        raise RefusedError("not confirmed", reason="not_confirmed", next_step="answer y")
