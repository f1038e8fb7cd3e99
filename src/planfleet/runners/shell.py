"""The shell runner: a task's own commands, run one by one in its worktree, then one commit.

For mechanical tasks, the bundled example and tests without an API key. The commands come
from the user's own plan and run through ``/bin/sh -c`` as a single argument each.
"""

from __future__ import annotations

import shlex
import threading
import time
from typing import Any

from planfleet import git, proc
from planfleet.errors import CommandError
from planfleet.runners import AgentRequest, AgentResult, base

NO_COMMANDS = (
    "task {task} has no `commands`: the shell runner has nothing to run; "
    "add `commands` to the task or use the claude runner (--runner claude)"
)


def commit_message(request: AgentRequest) -> str:
    """Return the message of the commit the shell runner makes for a task."""
    return f"planfleet: {request.task.id}: {request.task.title}"


class ShellRunner:
    """Runs ``task.commands``; commits what they changed with planfleet's identity."""

    name = "shell"

    def describe(self, request: AgentRequest) -> list[str]:
        """Return the task's commands and the commit that follows them."""
        message = commit_message(request)
        return [*request.task.commands, f"git add -A && git commit -m {shlex.quote(message)}"]

    def run(self, request: AgentRequest, stop: threading.Event) -> AgentResult:
        """Run the commands under the attempt's timeout; stop at the first that fails."""
        task = request.task
        if not task.commands:
            return AgentResult(
                ending="not_started",
                exit_code=None,
                duration_s=0.0,
                error_kind="no_commands",
                message=NO_COMMANDS.format(task=task.id),
            )
        env = base.agent_env(request)
        start = time.monotonic()
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text("", encoding="utf-8")
        result = AgentResult(ending="exited", exit_code=0, duration_s=0.0)
        for number, command in enumerate(task.commands, 1):
            with request.log_path.open("a", encoding="utf-8") as log:
                log.write(f"$ {command}\n")  # the plan's own text, never the environment
            argv = proc.user_command(command)
            remaining = request.timeout_s - (time.monotonic() - start)
            sup = base.supervise(
                argv,
                cwd=request.worktree,
                env=env,
                log_path=request.log_path,
                timeout_s=remaining,
                stall_s=request.stall_s,
                stop=stop,
                on_start=request.on_start,
                append=True,
            )
            result = base.result_from(sup, request, argv, what=f"command {number} ({command})")
            # The whole run shares one timeout: report it, not the last command's share.
            result.duration_s = round(time.monotonic() - start, 3)
            if sup.ending != "exited":
                return result
            if sup.exit_code != 0:
                result.error_kind = "crash"
                result.message = f"command {number} failed (exit {sup.exit_code}): {command}"
                return result
        return self._commit(request, result)

    def _commit(self, request: AgentRequest, result: AgentResult) -> AgentResult:
        """Commit every change in the worktree on the task branch (none: no commit)."""
        count = len(request.task.commands)
        try:
            if not git.status_porcelain(request.worktree):
                result.message = f"ran {count} command(s); nothing changed, no commit"
                return result
            git.git("add", "-A", cwd=request.worktree, identity=True)
            message = commit_message(request)
            git.git("commit", "-q", "-m", message, cwd=request.worktree, identity=True)
        except CommandError as exc:
            result.error_kind = "commit_failed"
            result.message = f"ran {count} command(s) but could not commit the changes"
            result.output_tail = base.redact(
                f"{result.output_tail}\n{exc.message}", base.secret_values(base.agent_env(request))
            )
            return result
        head = git.rev_parse("HEAD", cwd=request.worktree) or "?"
        result.message = f"ran {count} command(s); committed {head[:12]}"
        return result


def make(options: dict[str, Any]) -> ShellRunner:
    """Return the shell runner (it takes no options)."""
    return ShellRunner()
