"""The cloud runner: one Claude Code cloud session per attempt, the git remote as the exchange.

An attempt pushes its base commit as ``planfleet/<plan>/base/<task>``, starts
``claude --cloud "<prompt>"`` (``--environment ID`` for a self-hosted pool) under a
pseudo-terminal, records the session it prints, then polls the remote (``git ls-remote``,
backing off from ``poll_s`` to ``poll_max_s``) for ``planfleet/<plan>/tasks/<task>``. When
that branch's last commit carries the ``Planfleet-Result:`` trailer it is fetched into the
local task branch, and the engine's gates and merge queue judge it like a local attempt.

How an attempt ends: the marker came (``exited``); nothing was pushed by the timeout
(``timeout``); work was pushed without the marker and nothing new came by the timeout or
for ``stall_s`` (a failed attempt, ``no_result``: the work stays on the remote branch); the
stop event (``stopped``). The stall clock starts at the first push: a session needs time to
start its machine and clone before it can push anything.
"""

from __future__ import annotations

import dataclasses
import shlex
import threading
import time
from collections.abc import Mapping
from typing import Any

from planfleet.errors import InputError, PlanfleetError, UsageError
from planfleet.ids import check_id
from planfleet.runners import AgentRequest, AgentResult, base, cloudgit, cloudpty, cloudwatch
from planfleet.runners.claude import claude_binary
from planfleet.runners.cloudwatch import Settings

DEFAULTS: dict[str, Any] = {"remote": "origin", "poll_s": 10.0, "poll_max_s": 60.0}
# Options of the claude runner that every run passes; a cloud session has its own settings.
_IGNORED = ("permission_mode", "extra_allowed_tools", "allowed_tools", "command")
# ``adopt`` ({"session_id", "url"}): the engine resumes an attempt whose session an earlier
# engine started; no base push, no new session, only the polling.
_OPTIONS = ("remote", "environment", "poll_s", "poll_max_s", "binary", "adopt", *_IGNORED)
MAX_PROMPT_BYTES = 120_000  # one argv entry: Linux refuses more than 128 KiB

HEADER = """\
# planfleet cloud task

You are a Claude Code cloud session doing one task of a planfleet plan. The git remote you
cloned from is how your work comes back; nothing else is read.

1. Start from the branch `{base}` (commit {commit}): fetch and check it out.
2. Create the branch `{task}` from it, and do the task described below.
3. Commit as you go and push your commits to `{task}` (`git push origin HEAD:{task}`)
   after each step. Never force-push.
4. When you are done, make one last commit (`git commit --allow-empty` is fine) whose
   message ends, after a blank line, with this trailer line (the JSON on one line):
   Planfleet-Result: {{"status": "done", "summary": "...", "files_changed": [], "tests_run": []}}
   ("status" is done, blocked or failed; list the files you changed and the test commands
   you ran with their outcome), and push it to `{task}`. The engine takes the
   branch only once its last commit carries that trailer, then runs its own checks.
5. Push no other branch. Open no pull request. Do not merge, rebase or delete branches.
   These rules replace the rule below about not pushing: push `{task}` and nothing else.

"""


def settings(options: Mapping[str, Any]) -> Settings:
    """Return the checked settings of ``options``; UsageError naming a bad one."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown cloud runner option(s): {', '.join(unknown)}",
            field="runner_options",
            hint=f"known options: {', '.join(_OPTIONS[: -len(_IGNORED)])}",
        )
    merged = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    remote = check_id(str(merged["remote"]), what="remote name")
    environment = merged.get("environment")
    if environment is not None:
        environment = check_id(str(environment), what="environment id")
    poll_s, poll_max_s = merged["poll_s"], merged["poll_max_s"]
    for key, value in (("poll_s", poll_s), ("poll_max_s", poll_max_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise UsageError(f"{key} must be a number of seconds above 0", field=key)
    binary = merged.get("binary")
    return Settings(remote, environment, float(poll_s), float(max(poll_s, poll_max_s)), binary)


def cloud_prompt(request: AgentRequest, names: cloudgit.Names) -> str:
    """Return what the session is told: the branches and the marker, then the task's prompt."""
    top = HEADER.format(base=names.base, task=names.task, commit=request.base_commit[:12])
    return top + request.prompt


def session_argv(binary: str, prompt: str, environment: str | None) -> list[str]:
    """Return the command line that starts one cloud session."""
    argv = [binary, "--cloud", prompt]
    if environment:
        argv += ["--environment", environment]
    return argv


class CloudRunner:
    """Runs each attempt as a Claude Code cloud session; see the module's text."""

    name = "cloud"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        settings(self.options)

    def describe(self, request: AgentRequest) -> list[str]:
        """Return the pushes, the session's command line and the polling, for --dry-run."""
        s = self._settings(request)
        names = cloudgit.names(request.plan.name, request.task.id, request.attempt)
        size = len(cloud_prompt(request, names))
        argv = session_argv(s.binary or "claude", f"<prompt: {size} chars>", s.environment)
        return [
            f"git push {s.remote} <base>:refs/heads/{names.base}",
            shlex.join(argv) + "  # under a pseudo-terminal",
            f"git ls-remote {s.remote} refs/heads/{names.task}  # every {s.poll_s:g}-"
            f"{s.poll_max_s:g} s until its last commit has a Planfleet-Result trailer",
        ]

    def run(self, request: AgentRequest, stop: threading.Event) -> AgentResult:
        """Carry out one attempt in a cloud session; never raises for the task's own failure."""
        start = time.monotonic()
        s = self._settings(request)
        names = cloudgit.names(request.plan.name, request.task.id, request.attempt)
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        adopt = {**self.options, **request.options}.get("adopt")
        if isinstance(adopt, Mapping) and adopt.get("session_id"):
            return self._adopt(request, s, names, adopt, stop)
        request.log_path.write_text("", encoding="utf-8")
        note = cloudwatch.Notes(request.log_path)
        binary = s.binary or claude_binary()
        if binary is None:
            return _not_started(
                start, "claude not found: install Claude Code or set PLANFLEET_CLAUDE"
            )
        prompt = cloud_prompt(request, names)
        if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
            return _not_started(
                start,
                f"the prompt is {len(prompt)} characters; a cloud session takes at most "
                f"{MAX_PROMPT_BYTES} bytes on its command line (shorten the task's spec files)",
            )
        argv = session_argv(binary, prompt, s.environment)
        shown = tuple(session_argv(binary, f"<prompt: {len(prompt)} chars>", s.environment))
        try:
            note(cloudgit.push_base(request.repo, s.remote, request.base_commit, names.base))
            taken = cloudgit.remote_tip(request.repo, s.remote, names.task)
        except PlanfleetError as exc:
            return _not_started(start, f"could not push the base: {exc.message}", shown)
        if taken is not None:
            return _not_started(
                start,
                f"branch {names.task} already exists on {s.remote} (at {taken[:12]}): delete it "
                "first (`planfleet clean --remote`), the session must create it",
                shown,
            )
        base.write_prompt(_with_prompt(request, prompt))
        note(f"$ {shlex.join(shown)}")
        try:
            launch = cloudpty.Launch(
                argv,
                cwd=request.worktree,
                env=base.agent_env(request),
                log_path=request.log_path,
                on_start=request.on_start,
            )
        except (InputError, OSError) as exc:
            return _not_started(start, f"could not start claude --cloud: {exc}", shown)
        try:
            result = cloudwatch.Watch(request, s, names, launch, note, start).run(stop)
        finally:
            launch.close()
        return _finish(request, result, start, shown)

    def _adopt(
        self,
        request: AgentRequest,
        s: Settings,
        names: cloudgit.Names,
        adopt: Mapping[str, Any],
        stop: threading.Event,
    ) -> AgentResult:
        """Go on watching the session an earlier engine started for this attempt."""
        start = time.monotonic()
        found = cloudpty.Session(str(adopt["session_id"]), adopt.get("url") or None)
        note = cloudwatch.Notes(request.log_path)  # appended: the attempt's log goes on
        note(f"resumed: adopting session {found.session_id} {found.url or ''}".rstrip())
        source = cloudwatch.Adopted(found)
        watch = cloudwatch.Watch(request, s, names, source, note, start)
        watch.session_told = True  # it is in the state already
        result = watch.run(stop)
        return _finish(request, result, start, ("<adopted>", found.session_id or ""))

    def _settings(self, request: AgentRequest) -> Settings:
        return settings({**self.options, **request.options})


def _finish(
    request: AgentRequest, result: AgentResult, start: float, argv: tuple[str, ...]
) -> AgentResult:
    """Fill in what every ending of an attempt has: its command, duration and output."""
    cloudgit.drop_ref(request.worktree, cloudgit.private_ref(request.plan.name, request.task.id))
    result.argv = argv
    result.duration_s = round(time.monotonic() - start, 3)
    secrets = base.secret_values(base.agent_env(request))
    result.output_tail = base.redact(base.tail_file(request.log_path), secrets)
    return result


def _not_started(start: float, message: str, argv: tuple[str, ...] = ()) -> AgentResult:
    return AgentResult(
        ending="not_started",
        exit_code=None,
        duration_s=round(time.monotonic() - start, 3),
        error_kind="start_failed",
        message=message,
        argv=argv,
    )


def _with_prompt(request: AgentRequest, prompt: str) -> AgentRequest:
    return dataclasses.replace(request, prompt=prompt)


def make(options: dict[str, Any]) -> CloudRunner:
    """Return a cloud runner with ``options`` (see ``_OPTIONS``)."""
    return CloudRunner(options)
