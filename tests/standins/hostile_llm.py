"""A hostile LLM server (real HTTP on 127.0.0.1) for the Creative Director's failure tests.

Why: the director must survive servers that break the contract in ways cgpu serve and Ollama
normally do not: bodies that are not JSON or not the API's object, enormous or endlessly nested
bodies, bodies cut off mid-way, connections dropped before any answer, answers that trickle in
forever. Each scripted behaviour below puts exactly one of these on the wire. `Text` and
`Error` answer like the real servers (a Responses object and cgpu serve's error body on
/v1/responses, an Ollama chat.completion and its error body on /v1/chat/completions), so one
script can mix well-formed and hostile answers. `GET /health` answers `{"status":"ok"}` like
cgpu serve, so a health check alone calls this server healthy.

Every request is recorded (StandInServer.requests), and `answers` says, per answer, how many
body bytes went out before the client hung up.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass

from .cgpu_serve import Error, RecordedRequest, StandInServer, Text, _BaseHandler, response_payload
from .ollama import chat_payload, ollama_error_body

__all__ = ["Answer", "Flood", "Hangup", "HostileLLM", "Raw", "Silent", "Trickle", "Truncated"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Raw:
    """A complete answer with any status, content type and body bytes."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    encoding: str = ""          # a Content-Encoding header to claim (the body is sent as given)


@dataclass(frozen=True)
class Truncated:
    """Announces `announced` bytes in Content-Length, sends `body` (fewer), then closes."""

    body: bytes
    announced: int


@dataclass(frozen=True)
class Hangup:
    """Reads the request, then closes without a byte of answer; `reset` sends an RST instead
    of a FIN (SO_LINGER 0), as a crashed or firewalled server does."""

    reset: bool = False


@dataclass(frozen=True)
class Flood:
    """A 200 whose body is `size` bytes (the start of a JSON string that never ends in time);
    with `chunked`, no Content-Length, so only counting the bytes can stop it."""

    size: int
    chunked: bool = False


@dataclass(frozen=True)
class Trickle:
    """A 200 announcing `total_bytes`, then one byte every `interval_s`: every single read is
    quick, so only a deadline on the whole request ends it."""

    interval_s: float = 0.2
    total_bytes: int = 1000


@dataclass(frozen=True)
class Silent:
    """Reads the request and sends nothing for `seconds`, then closes."""

    seconds: float


@dataclass
class Answer:
    """What one answer got onto the wire."""

    behaviour: str
    bytes_sent: int = 0          # body bytes written before the client went away
    complete: bool = False       # the whole intended answer was written


class _HostileHandler(_BaseHandler):
    stand_in: "HostileLLM"  # type: ignore[assignment]

    def route(self) -> None:
        if self.command == "GET" and self.url_path == "/health":
            self._record(None, None)
            self.send_json(200, {"status": "ok"})
            return
        if self.command != "POST" or self.url_path not in ("/v1/responses", "/v1/chat/completions"):
            self._record(None, None)
            self.send_json(404, {"error": {"code": "not_found", "message": f"No route for {self.command} {self.url_path}"}})
            return
        raw = self.read_body(512 * 1024) or b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self._record(body, raw)
        reply = self.stand_in.next_reply()
        answer = Answer(type(reply).__name__)
        self.stand_in.answers.append(answer)
        try:
            self._perform(reply, answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- behaviours
    def _perform(self, reply: object, answer: Answer) -> None:
        chat = self.url_path.endswith("/chat/completions")
        if isinstance(reply, Text):
            self.stand_in.wait(reply.delay_s)
            payload = chat_payload(reply.text) if chat else response_payload(reply.text.strip())
            self._send(200, json.dumps(payload).encode(), "application/json", answer)
        elif isinstance(reply, Error):
            self.stand_in.wait(reply.delay_s)
            error = (ollama_error_body(reply.status, reply.message, reply.code or None) if chat else
                     {"error": {"code": reply.code, "message": reply.message, "details": reply.details}})
            self._send(reply.status, json.dumps(error).encode(), "application/json", answer)
        elif isinstance(reply, Raw):
            extra = {"Content-Encoding": reply.encoding} if reply.encoding else {}
            self._send(reply.status, reply.body, reply.content_type, answer, extra)
        elif isinstance(reply, Truncated):
            self._head(200, "application/json", {"Content-Length": str(reply.announced)})
            self._write(reply.body, answer)
            self.close_connection = True
        elif isinstance(reply, Hangup):
            self._hang_up(reply.reset)
            answer.complete = True
        elif isinstance(reply, Flood):
            self._flood(reply, answer)
        elif isinstance(reply, Trickle):
            self._trickle(reply, answer)
        elif isinstance(reply, Silent):
            self.stand_in.wait(reply.seconds)
            self.close_connection = True
            answer.complete = True

    def _head(self, status: int, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()

    def _write(self, data: bytes, answer: Answer) -> None:
        for i in range(0, len(data), _CHUNK):
            chunk = data[i:i + _CHUNK]
            self.wfile.write(chunk)
            answer.bytes_sent += len(chunk)

    def _send(self, status: int, body: bytes, content_type: str, answer: Answer,
              extra: dict[str, str] | None = None) -> None:
        self._head(status, content_type, {"Content-Length": str(len(body)), **(extra or {})})
        self._write(body, answer)
        answer.complete = True

    def _hang_up(self, reset: bool) -> None:
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _flood(self, reply: Flood, answer: Answer) -> None:
        self.close_connection = True
        header = {"Transfer-Encoding": "chunked"} if reply.chunked else {"Content-Length": str(reply.size)}
        self._head(200, "application/json", header)
        start = b'{"object": "response", "output": [], "output_text": "'
        left = reply.size
        piece = start + b"x" * (_CHUNK - len(start))
        while left > 0:
            data = piece[:left]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if reply.chunked else data)
            answer.bytes_sent += len(data)
            left -= len(data)
            piece = b"x" * _CHUNK
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
        answer.complete = True

    def _trickle(self, reply: Trickle, answer: Answer) -> None:
        self.close_connection = True
        self._head(200, "application/json", {"Content-Length": str(reply.total_bytes)})
        for _ in range(reply.total_bytes):
            self.wfile.write(b" ")
            answer.bytes_sent += 1
            self.stand_in.wait(reply.interval_s)
        answer.complete = True


class HostileLLM(StandInServer):
    """A server on 127.0.0.1 that answers each model request with the next scripted behaviour
    (`Text`, `Error`, `Raw`, `Truncated`, `Hangup`, `Flood`, `Trickle`, `Silent`); `Text(default_text)`
    once the script is used up.

    `base_url` (root + /v1) serves both the Responses API (as cgpu serve) and chat completions
    (as Ollama or an OpenAI-compatible server); `model_requests` are the POSTs to either.
    """

    handler_class = _HostileHandler
    reply_types = (Text, Error, Raw, Truncated, Hangup, Flood, Trickle, Silent)

    def __init__(self, default_text: str = "{}", *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(default_text, host=host, port=port)
        self.answers: list[Answer] = []

    def __enter__(self) -> "HostileLLM":
        self.start()
        return self

    @property
    def model_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if r.method == "POST" and r.path in ("/v1/responses", "/v1/chat/completions")]
