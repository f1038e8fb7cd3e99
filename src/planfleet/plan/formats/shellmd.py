"""Shell commands written in a Markdown task: what the shell runner runs for it.

Where an author would write them:

- a ``Commands:`` or ``Run:`` label (``**Commands:**``, ``- Run: `make` ``): its value, the
  list under it, or the fenced shell block right under it;
- a ``Commands`` heading inside the task: its list items and fenced shell blocks;
- with ``own_fences``, any fenced shell block (```` ```sh ````, ``bash``, ``shell``,
  ``zsh``) among the task's own lines (a list item's details, a task heading's own text).

A list item or value is one command: its code span(s), else its text. A fenced block is
one script, run as a whole with ``set -e`` so that it stops at the first failing line.
"""

from __future__ import annotations

import re

from planfleet.plan.formats.markdown import Facts, Line, code_spans, field_at, strip_code
from planfleet.plan.formats.planmd import no_value

LABELS = ("commands", "run", "shell commands", "commands to run")
SHELLS = ("sh", "bash", "shell", "zsh")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX~-]\]\s+)?(.*)$")


def shell_fence(line: Line) -> str | None:
    """Return the script of the closed shell fence opening on ``line``, else None."""
    fence = line.fence
    words = fence.info.split() if fence is not None else []
    if fence is None or not fence.closed or not words or words[0].lower() not in SHELLS:
        return None
    return f"set -e\n{fence.code}" if fence.code.strip() else None


def commands_in(text: str) -> list[str]:
    """Return the commands one item or value names: its code spans, else its text."""
    if no_value(text):
        return []
    return code_spans(text) or [strip_code(text)]


def task_commands(
    facts: Facts,
    own: list[Line] | None = None,
    *,
    own_fences: bool = False,
    labels: tuple[str, ...] = LABELS,
) -> tuple[str, ...]:
    """Return the shell runner's commands for a task (see the module docstring).

    ``own`` are the task's own lines for ``own_fences`` (default: all of ``facts.body``);
    ``labels`` the field and heading names that introduce commands.
    """
    out: list[str] = []
    taken: set[int] = set()  # fences already read as commands
    body = facts.body
    for k, ln in enumerate(body):
        found = field_at(ln.text) if ln.prose else None
        if found is None or found[0] not in labels:
            continue
        value = ln.text[found[1] :].strip()
        if value:
            out += commands_in(value)
            continue
        out += _under_label(body[k + 1 :], taken)
    section = facts.section(labels)
    if section is not None:
        for ln in section.body:
            script = shell_fence(ln)
            if script is not None and ln.number not in taken:
                out.append(script)
                taken.add(ln.number)
            elif ln.prose and (m := _BULLET.match(ln.text)):
                out += commands_in(m.group(1))
    if own_fences:
        for ln in body if own is None else own:
            script = shell_fence(ln)
            if script is not None and ln.number not in taken:
                out.append(script)
                taken.add(ln.number)
    return tuple(out)


def _under_label(rest: list[Line], taken: set[int]) -> list[str]:
    """Return the commands right under an empty label: a shell fence, or a list."""
    out: list[str] = []
    for ln in rest:
        if not ln.text.strip():
            if out:
                break
            continue
        script = shell_fence(ln)
        if script is not None and not out:
            taken.add(ln.number)
            return [script]
        m = _BULLET.match(ln.text) if ln.prose else None
        if m is None:
            break
        out += commands_in(m.group(1))
    return out
