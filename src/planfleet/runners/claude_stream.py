"""Reading a `claude -p --output-format stream-json` log after the process ended.

The log holds one JSON event per line (system/init first, result last) and, mixed in,
whatever the CLI printed on stderr. From it come the session id, cost, turns, the agent's
structured result, and whether a usage or rate limit, the budget or the turn cap was hit.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from planfleet import jsonread
from planfleet.runners import AgentResult, base

TAIL_CHARS = 4000
_KEEP = 20  # assistant texts and stderr lines kept for the output tail

_USAGE = re.compile(
    r"usage limit|hit your (?:usage |session |weekly )?limit|(?:5-hour|weekly|session) limit"
    r"|out of (?:extra )?usage",
    re.IGNORECASE,
)
_RATE = re.compile(r"rate[ _-]?limit|too many requests|\b429\b", re.IGNORECASE)
_RESET_EPOCH = re.compile(r"limit reached\|(\d{9,11})")
_RESET_TEXT = re.compile(r"\breset(?:s|ting)?\s+(?:at\s+|in\s+)?([^\n\"|]+)", re.IGNORECASE)


@dataclass
class Stream:
    """What a stream-json log said."""

    session_id: str | None = None
    init_seen: bool = False
    plugin_errors: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    texts: deque[str] = field(default_factory=lambda: deque(maxlen=_KEEP))
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=_KEEP))
    api_errors: list[str] = field(default_factory=list)  # assistant `error` fields
    last_retry: dict[str, Any] | None = None  # the last system/api_retry, if it came last


def read(path: Path) -> Stream:
    """Return what the log at ``path`` says (an empty Stream if there is no log)."""
    stream = Stream()
    try:
        fh = path.open("r", encoding="utf-8", errors="replace")
    except OSError:
        return stream
    with fh:
        for raw in fh:
            line = raw.strip()
            if line:
                _take(stream, line)
    return stream


def _take(stream: Stream, line: str) -> None:
    try:
        event = jsonread.parse(line) if line.startswith("{") else None
    except ValueError:
        event = None
    if not isinstance(event, dict):
        stream.stderr.append(line)
        return
    kind, subtype = event.get("type"), event.get("subtype")
    if kind == "system" and subtype == "init":
        stream.init_seen = True
        stream.session_id = _str(event.get("session_id")) or stream.session_id
        stream.plugin_errors.extend(_plugin_error(e) for e in event.get("plugin_errors") or [])
    elif kind == "assistant":
        if event.get("parent_tool_use_id") is None:
            stream.texts.extend(_texts(event.get("message")))
        if isinstance(event.get("error"), str):
            stream.api_errors.append(event["error"])
    elif kind == "result":
        stream.result = event
        stream.session_id = _str(event.get("session_id")) or stream.session_id
    stream.last_retry = event if kind == "system" and subtype == "api_retry" else None


def _texts(message: Any) -> Iterable[str]:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return []
    return [
        b["text"]
        for b in message["content"]
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]


def _plugin_error(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    return f"{entry.get('plugin', '?')}: {entry.get('message') or entry.get('type') or entry}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def fill(result: AgentResult, stream: Stream, *, prior_cost_usd: float, secrets: list[str]) -> None:
    """Complete ``result`` from ``stream``: session, cost, claims, limits and error kind."""
    final = stream.result or {}
    result.session_id = stream.session_id
    cost = final.get("total_cost_usd")
    if isinstance(cost, (int, float)):
        # On --resume the CLI's total includes what the earlier attempts spent.
        result.cost_usd = round(max(0.0, float(cost) - prior_cost_usd), 6)
    turns = final.get("num_turns")
    result.turns = turns if isinstance(turns, int) else None
    result.models = models_ran(final.get("modelUsage"))
    claims = final.get("structured_output")
    result.claims = claims if isinstance(claims, dict) else None
    tail = _tail(stream)
    if tail:  # else keep the raw end of the log the supervisor read
        result.output_tail = base.redact(tail, secrets)
    notes = _classify(result, stream)
    denials = _denials(final.get("permission_denials"))
    if denials:
        notes.append(f"denied tool calls (not in --allowedTools): {denials}")
    if notes:
        result.message = "; ".join(n for n in (result.message, *notes) if n)
    result.message = base.redact(result.message, secrets)


def models_ran(usage: Any) -> dict[str, float] | None:
    """Return model id -> cost USD from a result's ``modelUsage`` (None when it has none).

    Malformed entries (no id, not an object) are left out; a missing or bad cost counts 0.
    """
    if not isinstance(usage, dict):
        return None
    models: dict[str, float] = {}
    for model_id, entry in usage.items():
        if not isinstance(model_id, str) or not model_id.strip() or not isinstance(entry, dict):
            continue
        cost = entry.get("costUSD")
        ok = isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0
        models[model_id] = round(float(cost), 6) if ok and cost is not None else 0.0
    return models or None


def _classify(result: AgentResult, stream: Stream) -> list[str]:
    """Set error_kind/limit on ``result``; return the sentences that explain it."""
    final = stream.result
    if stream.plugin_errors:
        result.error_kind = "plugin_failed"
        return [f"the planfleet plugin failed to load: {'; '.join(stream.plugin_errors)}"]
    if result.ending == "not_started":
        return []
    failed = final is None or bool(final.get("is_error")) or result.exit_code not in (0, None)
    limit = _limit(stream) if failed else None
    if limit is not None:
        result.error_kind = "limit"
        result.limit, result.limit_detail = limit
        detail = f" (resets {result.limit_detail})" if result.limit_detail else ""
        return [f"claude hit a {result.limit.replace('_', ' ')}{detail}"]
    if result.ending != "exited":
        return []
    if final is None:
        result.error_kind = "crash"
        return [f"claude exited with code {result.exit_code} without a result event"]
    subtype = final.get("subtype")
    if subtype == "error_max_budget_usd":
        result.error_kind = "budget"
        return ["claude stopped at its --max-budget-usd cap"]
    if subtype == "error_max_turns":
        result.error_kind = "max_turns"
        return ["claude stopped at its turn limit"]
    if failed:
        result.error_kind = "crash"
        errors = "; ".join(_error_texts(final))
        return [
            f"claude failed ({final.get('terminal_reason') or subtype}, exit {result.exit_code})"
            + (f": {errors}" if errors else "")
        ]
    return []


def _limit(stream: Stream) -> tuple[str, str | None] | None:
    """Return (kind, reset text) when the stream shows a usage or rate limit."""
    final = stream.result or {}
    texts = [*_error_texts(final), *stream.stderr, *stream.api_errors]
    retry = stream.last_retry
    if retry is not None:
        texts.append(str(retry.get("error") or ""))
    status = final.get("api_error_status")
    retry_429 = retry is not None and retry.get("error_status") == 429
    kind: str | None = None
    if any(_USAGE.search(t) for t in texts):
        kind = "usage_limit"
    elif status == 429 or retry_429 or any(_RATE.search(t) for t in texts):
        kind = "rate_limit"
    if kind is None:
        return None
    return kind, next((r for r in map(_reset, texts) if r), None)


def _reset(text: str) -> str | None:
    """Return when a limit resets, as the CLI said it (an epoch becomes ISO 8601 UTC)."""
    epoch = _RESET_EPOCH.search(text)
    if epoch:
        when = datetime.fromtimestamp(int(epoch.group(1)), tz=timezone.utc)
        return when.isoformat(timespec="seconds")
    found = _RESET_TEXT.search(text)
    return found.group(1).strip().rstrip(".,;") if found else None


def _error_texts(final: dict[str, Any]) -> list[str]:
    out = [e if isinstance(e, str) else json.dumps(e) for e in final.get("errors") or []]
    if final.get("is_error") and isinstance(final.get("result"), str):
        out.append(final["result"])
    return [t for t in out if t]


def _denials(value: Any) -> str:
    if not isinstance(value, list) or not value:
        return ""
    shown: list[str] = []
    for entry in value[:5]:
        if not isinstance(entry, dict):
            continue
        args = entry.get("tool_input")
        args = args if isinstance(args, dict) else {}
        what = args.get("command") or args.get("file_path") or ""
        shown.append(
            f"{entry.get('tool_name', '?')}({what})" if what else str(entry.get("tool_name"))
        )
    more = f" and {len(value) - 5} more" if len(value) > 5 else ""
    return ", ".join(shown) + more


def _tail(stream: Stream) -> str:
    """Return the readable end of the run: stderr, the last words, and the result."""
    parts = [*stream.stderr, *stream.texts]
    final = stream.result or {}
    if isinstance(final.get("result"), str) and final["result"] not in stream.texts:
        parts.append(final["result"])
    parts.extend(e for e in _error_texts(final) if e not in parts)
    text = "\n".join(parts)
    return text[-TAIL_CHARS:]
