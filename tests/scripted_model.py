"""A scripted model: an Anthropic Messages API server on 127.0.0.1 for the real Claude Code CLI.

The CLI is pointed at it with ANTHROPIC_BASE_URL. Every request is recorded, so a test can
assert what the plugin showed the model; every answer comes from the test's script, so the
real CLI runs real tools (Bash, Edit, ...) deterministically and offline.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Block = dict[str, Any]
# A script maps one request body to the content blocks of the answer.
Script = Callable[[dict[str, Any]], list[Block]]

MODEL = "claude-sonnet-4-5"
_ids = itertools.count(1)


def text(value: str) -> Block:
    """Return a text block."""
    return {"type": "text", "text": value}


def bash(command: str, description: str = "run a command", **extra: Any) -> Block:
    """Return a tool_use block that calls the Bash tool with ``command``."""
    return tool_use("Bash", {"command": command, "description": description, **extra})


def tool_use(name: str, tool_input: dict[str, Any]) -> Block:
    """Return a tool_use block for tool ``name`` with a fresh id."""
    return {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}


def blocks_of(message: dict[str, Any]) -> list[Block]:
    """Return a message's content as a list of blocks (a plain string becomes one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [text(content)]
    return [b for b in content or [] if isinstance(b, dict)]


def block_text(block: Block) -> str:
    """Return the text a block carries: its text, or a tool result's text content."""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(block_text(b) for b in content or [] if isinstance(b, dict))
    return ""


def all_text(body: dict[str, Any]) -> str:
    """Return every text of a request's messages, joined (system prompt excluded)."""
    return "\n".join(
        block_text(b) for m in body.get("messages", []) for b in blocks_of(m) if block_text(b)
    )


def system_text(body: dict[str, Any]) -> str:
    """Return a request's system prompt as one string."""
    system = body.get("system")
    if isinstance(system, str):
        return system
    return "\n".join(str(b.get("text", "")) for b in system or [] if isinstance(b, dict))


def tool_results(body: dict[str, Any]) -> list[Block]:
    """Return every tool_result block of a request, oldest first."""
    return [
        b for m in body.get("messages", []) for b in blocks_of(m) if b.get("type") == "tool_result"
    ]


def turn(body: dict[str, Any]) -> int:
    """Return how many assistant messages the conversation already holds."""
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def steps(*answers: list[Block]) -> Script:
    """Return a script answering the k-th request of a conversation with ``answers[k]``.

    Past the last answer it ends the turn with a short text, so a surplus request never hangs.
    """

    def script(body: dict[str, Any]) -> list[Block]:
        k = turn(body)
        return answers[k] if k < len(answers) else [text("done")]

    return script


def _sse(blocks: list[Block], message_id: str) -> bytes:
    """Return ``blocks`` as the server-sent events of one streamed assistant message."""
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    usage = {"input_tokens": 100, "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            },
        )
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: Block = {"type": "text", "text": ""}
            delta: Block = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()


@dataclass
class ScriptedModel:
    """The server: ``with ScriptedModel(script) as model: ... model.url, model.requests``."""

    script: Script
    requests: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Return the base URL to put in ANTHROPIC_BASE_URL."""
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def conversations(self, marker: str) -> list[dict[str, Any]]:
        """Return the recorded requests whose system prompt or messages contain ``marker``."""
        with self._lock:
            recorded = list(self.requests)
        return [r for r in recorded if marker in system_text(r) or marker in all_text(r)]

    def answer(self, body: dict[str, Any]) -> list[Block]:
        """Record ``body`` and return the script's answer (a script error becomes text)."""
        with self._lock:
            self.requests.append(body)
        try:
            return self.script(body)
        except Exception as exc:  # a broken script must fail the test, not hang the CLI
            self.errors.append(repr(exc))
            return [text(f"scripted model error: {exc!r}")]

    def __enter__(self) -> ScriptedModel:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class bound to ``model``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            route = self.path.split("?", 1)[0]
            if route.endswith("/count_tokens"):
                self._send(200, "application/json", json.dumps({"input_tokens": 100}).encode())
                return
            if not route.endswith("/v1/messages"):
                self._send(404, "application/json", b'{"type":"error"}')
                return
            blocks = model.answer(body)
            message_id = f"msg_{next(_ids):06d}"
            if body.get("stream"):
                self._send(200, "text/event-stream", _sse(blocks, message_id))
                return
            stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
            message = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 10},
            }
            self._send(200, "application/json", json.dumps(message).encode())

        def do_GET(self) -> None:
            self._send(404, "application/json", b'{"type":"error"}')

        def _send(self, code: int, kind: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep pytest output clean

    return Handler


def events(stdout: str) -> Iterator[dict[str, Any]]:
    """Yield the JSON events of a stream-json transcript (non-JSON lines are skipped)."""
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue
