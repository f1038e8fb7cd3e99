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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planfleet.errors import CommandError, InputError, PlanfleetError, UsageError
from planfleet.ids import check_id
from planfleet.runners import AgentRequest, AgentResult, base, cloudgit, cloudpty
from planfleet.runners.claude import claude_binary

DEFAULTS: dict[str, Any] = {"remote": "origin", "poll_s": 10.0, "poll_max_s": 60.0}
# Options of the claude runner that every run passes; a cloud session has its own settings.
_IGNORED = ("permission_mode", "extra_allowed_tools", "allowed_tools", "command")
_OPTIONS = ("remote", "environment", "poll_s", "poll_max_s", "binary", *_IGNORED)
MAX_PROMPT_BYTES = 120_000  # one argv entry: Linux refuses more than 128 KiB
_SLICE_S = 0.2  # how often a wait between polls looks at the stop event and the CLI

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


@dataclass(frozen=True)
class Settings:
    remote: str
    environment: str | None
    poll_s: float
    poll_max_s: float
    binary: str | None


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
        request.log_path.write_text("", encoding="utf-8")
        note = _Notes(request.log_path)
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
            result = _Watch(request, s, names, launch, note, start).run(stop)
        finally:
            launch.close()
            cloudgit.drop_ref(
                request.worktree, cloudgit.private_ref(request.plan.name, request.task.id)
            )
        result.argv = shown
        result.duration_s = round(time.monotonic() - start, 3)
        secrets = base.secret_values(base.agent_env(request))
        result.output_tail = base.redact(base.tail_file(request.log_path), secrets)
        return result

    def _settings(self, request: AgentRequest) -> Settings:
        return settings({**self.options, **request.options})


class _Notes:
    """Appends the runner's own lines to the attempt's log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"[planfleet] {line}\n")


class _Watch:
    """The polling of one attempt's task branch, from the session's start to its end."""

    def __init__(
        self,
        request: AgentRequest,
        s: Settings,
        names: cloudgit.Names,
        launch: cloudpty.Launch,
        note: _Notes,
        start: float,
    ) -> None:
        self.request, self.s, self.names, self.launch, self.note = request, s, names, launch, note
        self.start = start
        self.ref = cloudgit.private_ref(request.plan.name, request.task.id)
        self.session_told = False
        self.news_taken = False

    def run(self, stop: threading.Event) -> AgentResult:
        request, s = self.request, self.s
        interval = s.poll_s
        tip: str | None = None
        last_change = time.monotonic()
        while True:
            self._session()
            failed = self._launch_failed(tip)
            if failed is not None:
                return failed
            try:
                now_tip = cloudgit.remote_tip(request.repo, s.remote, self.names.task)
            except CommandError as exc:  # the network, for a moment: the next poll asks again
                self.note(f"could not ask {s.remote}: {exc.message.splitlines()[0]}")
                now_tip = tip
            if now_tip is not None and now_tip != tip:
                tip, last_change, interval = now_tip, time.monotonic(), s.poll_s
                done = self._pushed(tip)
                if done is not None:
                    return done
            else:
                interval = min(interval * 2, s.poll_max_s)
            now = time.monotonic()
            if now - self.start > request.timeout_s:
                return self._no_result(tip, f"by the timeout of {request.timeout_s:g} s")
            if tip is not None and now - last_change > request.stall_s:
                return self._no_result(tip, f"and nothing new for {request.stall_s:g} s (stall)")
            if self._wait(min(interval, max(0.0, request.timeout_s - (now - self.start))), stop):
                return self._result(
                    "stopped",
                    "the cloud attempt was stopped; the session may still run (see its URL)",
                )

    def _wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` (or until the CLI has news); return True when stopped."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stop.wait(_SLICE_S):
                return True
            if self.launch.news.is_set() and not self.news_taken:
                self.news_taken = True  # the session was named, or the CLI ended: look now
                return False
        return stop.is_set()

    def _session(self) -> None:
        found = self.launch.session
        if found is None or self.session_told:
            return
        self.session_told = True
        self.note(f"session {found.session_id or '?'} {found.url or ''}".rstrip())
        if self.request.on_session is not None:
            self.request.on_session(found.session_id or "", found.url)

    def _launch_failed(self, tip: str | None) -> AgentResult | None:
        """Return the failed start when the CLI exited non-zero before naming a session."""
        code = self.launch.exit_code()
        if tip is not None or self.launch.session is not None or code in (None, 0):
            return None
        if not self.launch.ended():
            return None
        lines = [ln for ln in self.launch.output().splitlines() if ln.strip()]
        said = lines[-1].strip() if lines else "no output"
        result = self._result(
            "not_started", f"claude --cloud exited {code} without a session: {said}"
        )
        result.error_kind, result.exit_code = "start_failed", code
        return result

    def _pushed(self, tip: str) -> AgentResult | None:
        """Fetch a new push; return the attempt's result when it carries the marker."""
        worktree = self.request.worktree
        try:
            cloudgit.fetch(worktree, self.s.remote, self.names.task, self.ref)
            value = cloudgit.marker(tip, cwd=worktree)
        except CommandError as exc:
            self.note(f"could not fetch {self.names.task}: {exc.message.splitlines()[0]}")
            return None
        if value is None:
            self.note(f"{self.names.task} is at {tip[:12]} (no {cloudgit.MARKER} trailer yet)")
            return None
        self.note(f"{self.names.task} is at {tip[:12]} with its {cloudgit.MARKER} trailer")
        result = self._result("exited", f"the cloud session pushed {tip[:12]} to {self.names.task}")
        result.exit_code = 0
        result.claims = cloudgit.claims_of(value)
        if result.claims is None:
            result.message += f"; its {cloudgit.MARKER} trailer is not a JSON object"
        problem = cloudgit.take(worktree, tip, self.request.base_commit)
        if problem is not None:
            result.error_kind, result.message = "bad_push", problem
        return result

    def _no_result(self, tip: str | None, when: str) -> AgentResult:
        if tip is None:
            return self._result(
                "timeout",
                f"the cloud session pushed nothing to {self.names.task} {when}",
            )
        result = self._result(
            "exited",
            f"the cloud session pushed {tip[:12]} to {self.names.task} without a "
            f"{cloudgit.MARKER} trailer {when}; not taken (the work stays on that branch)",
        )
        result.error_kind = "no_result"
        return result

    def _result(self, ending: Any, message: str) -> AgentResult:
        found = self.launch.session
        return AgentResult(
            ending=ending,
            exit_code=None,
            duration_s=0.0,
            session_id=found.session_id if found else None,
            session_url=found.url if found else None,
            message=message,
        )


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
