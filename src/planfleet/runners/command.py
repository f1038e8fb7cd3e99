"""The command runner: another agent CLI, from an argv template the user configured.

Placeholders are substituted inside each argv element on its own and the result is never
given to a shell, so a task title full of quotes and semicolons stays one argument.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planfleet.errors import UsageError
from planfleet.runners import AgentRequest, AgentResult, base

PLACEHOLDERS = ("prompt_file", "worktree", "task", "title", "plan", "attempt", "log", "model")
EXAMPLE = '["my-agent", "--cwd", "{worktree}", "--prompt-file", "{prompt_file}"]'
_FIELD = re.compile(r"\{([A-Za-z_]+)\}")


def render(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Return ``template`` with ``{name}`` replaced in each element; UsageError if unknown."""
    argv: list[str] = []
    for element in template:

        def swap(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise UsageError(
                    f"unknown placeholder {{{name}}} in the command template",
                    field="command",
                    hint=f"placeholders: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                )
            return values[name]

        argv.append(_FIELD.sub(swap, element))
    return argv


class CommandRunner:
    """Runs a configured agent CLI with the prompt in a file (and on stdin if asked)."""

    name = "command"

    def __init__(self, options: Mapping[str, Any]) -> None:
        template = options.get("command")
        if not template:
            raise UsageError(
                "the command runner needs a `command` template",
                field="command",
                hint=f"set runner option command to an argv list, e.g. {EXAMPLE}",
            )
        if isinstance(template, str) or not all(isinstance(a, str) for a in template):
            raise UsageError(
                "the command template must be a list of argv strings, not one shell string",
                field="command",
                hint=f"e.g. {EXAMPLE}",
            )
        self.template = tuple(template)
        self.prompt_stdin = bool(options.get("prompt_stdin", False))
        render(self.template, dict.fromkeys(PLACEHOLDERS, ""))  # unknown placeholders fail now

    def argv(self, request: AgentRequest, prompt_file: Path) -> list[str]:
        """Return the template filled in for ``request``."""
        values = {
            "prompt_file": str(prompt_file),
            "worktree": str(request.worktree),
            "task": request.task.id,
            "title": request.task.title,
            "plan": request.plan.name,
            "attempt": str(request.attempt),
            "log": str(request.log_path),
            "model": request.model or "",
        }
        return render(self.template, values)

    def describe(self, request: AgentRequest) -> list[str]:
        """Return the filled-in command line."""
        return [shlex.join(self.argv(request, base.prompt_path(request.log_path)))]

    def run(self, request: AgentRequest, stop: threading.Event) -> AgentResult:
        """Write the prompt file, run the command in the worktree, report how it ended."""
        prompt_file = base.write_prompt(request)
        argv = self.argv(request, prompt_file)
        sup = base.supervise(
            argv,
            cwd=request.worktree,
            env=base.agent_env(request),
            log_path=request.log_path,
            timeout_s=request.timeout_s,
            stall_s=request.stall_s,
            stop=stop,
            on_start=request.on_start,
            stdin_text=request.prompt if self.prompt_stdin else None,
        )
        result = base.result_from(sup, request, argv, what=f"agent command {argv[0]}")
        if sup.ending == "exited" and sup.exit_code != 0:
            result.error_kind = "crash"
            result.message = f"agent command {argv[0]} exited with code {sup.exit_code}"
        return result


def make(options: dict[str, Any]) -> CommandRunner:
    """Return a command runner for the ``command`` template in ``options``."""
    return CommandRunner(options)
