"""Preflight of the cloud runner: a Claude Code that knows --cloud, a remote we can push to,
the plan's remote branch names free. Each refusal says why and what to do (exit 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from planfleet.engine import preflight
from planfleet.engine.preflight import Check
from planfleet.errors import CommandError, RefusedError
from planfleet.ids import check_id
from planfleet.runners import cloudgit

MIN_CLAUDE_CLOUD = "2.1.328"  # `claude --cloud` and `--environment` as seen there


def checks(
    repo: Path,
    plan: str,
    tasks: Sequence[str],
    *,
    remote: str,
    environment: str | None,
    fresh: bool,
) -> list[Check]:
    """Return the cloud runner's checks, in order; later ones are skipped after a failure.

    ``fresh``: a new run, whose remote branch names must all be free (a resumed run finds
    its earlier attempts' branches there).
    """
    check_id(remote, what="remote name")
    if environment is not None:
        check_id(environment, what="environment id")
    found = [preflight.check_claude(MIN_CLAUDE_CLOUD)]
    url = cloudgit.remote_url(repo, remote)
    if url is None:
        found.append(
            Check(
                "cloud_remote",
                False,
                f"no git remote {remote!r} in {repo}",
                reason="no_remote",
                next_step="add the remote your cloud sessions clone from (git remote add "
                "origin URL), or name it with --remote NAME",
            )
        )
        return found
    found.append(Check("cloud_remote", True, f"{remote} is {url}"))
    probe = cloudgit.names(plan, tasks[0] if tasks else "probe").base
    problem = cloudgit.pushable(repo, remote, probe)
    if problem is not None:
        found.append(
            Check(
                "cloud_push",
                False,
                f"cannot push to {remote} (git push --dry-run): {problem}",
                reason="remote_not_pushable",
                next_step=f"make {url} writable for you (credentials, permissions), or pick "
                "another remote with --remote NAME",
            )
        )
        return found
    found.append(Check("cloud_push", True, f"git push --dry-run to {remote} works"))
    if fresh:
        found.append(_names_free(repo, plan, tasks, remote))
    where = f"self-hosted environment {environment}" if environment else "Anthropic's cloud"
    found.append(Check("cloud_environment", True, f"sessions run on {where}", required=False))
    return found


def _names_free(repo: Path, plan: str, tasks: Sequence[str], remote: str) -> Check:
    try:
        there = cloudgit.remote_branches(repo, remote, f"planfleet/{plan}")
    except CommandError as exc:
        return Check(
            "cloud_branches",
            False,
            f"cannot list the branches of {remote}: {exc.message.splitlines()[0]}",
            reason="remote_unreachable",
            next_step=f"check that `git ls-remote {remote}` works",
        )
    wanted: list[str] = []
    for task in tasks:
        names = cloudgit.names(plan, task)
        wanted += [names.base, names.task]
    taken = [n for n in wanted if n in there]
    if not taken:
        return Check("cloud_branches", True, f"{len(wanted)} branch names free on {remote}")
    shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
    return Check(
        "cloud_branches",
        False,
        f"branches already on {remote}: {shown}",
        reason="remote_branches_taken",
        next_step=f"they are left from an earlier run of {plan}: delete them (git push "
        f"{remote} --delete BRANCH), or continue that run with `planfleet resume {plan}`",
    )


def refuse(found: Sequence[Check]) -> None:
    """Raise RefusedError for the first required check of ``found`` that failed."""
    for check in found:
        if check.required and not check.ok:
            raise RefusedError(
                f"the cloud runner cannot start: {check.detail}",
                reason=check.reason or "cloud_preflight",
                next_step=check.next_step,
            )
