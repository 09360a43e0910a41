"""A local stand-in for `cgpu serve`, the Gemini-backed OpenAI Responses API proxy.

Why: cgpu cannot be installed or reached where the project is built and tested, yet the
Creative Director must be tested against its exact HTTP contract (routes, status codes, error
bodies, the missing JSON mode, the per-request timeout). This server reproduces that contract
as read from cgpu's source (src/serve/server.ts, utils.ts, runner.ts; see
/work/shared/notes/cgpu.md) and replaces the `gemini` CLI run by scripted replies.

Usage::

    with CgpuServeStandIn(default_text='{"cuts": []}') as srv:
        srv.script(Text('{"style": "dynamic"}'), quota_exceeded())
        client = OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)
        client.responses.create(model="gemini-2.5-flash", input="...").output_text

Where each failure comes from (cgpu 0.1.4, src/serve/runner.ts and server.ts; gemini-cli
packages/cli/src/utils/errors.ts, validateNonInterActiveAuth.ts, core/src/output/json-formatter.ts,
core/src/utils/googleQuotaErrors.ts):

- `empty_response()`: cgpu SIGKILLs gemini at `--timeout`; Node reports exit code null, which
  runner.ts reads as 0, and gemini (JSON output is written at the end) printed nothing, so the
  reply is 502 `empty_response` "Gemini CLI produced no output", details null.
- `invalid_json(stdout)`: gemini exited 0 but its trimmed stdout is not JSON: 502 `invalid_json`
  "Gemini CLI returned malformed JSON", details = that stdout.
- `cli_error(stderr, stdout, exit_code)`: gemini exited non-zero: 502 `gemini_cli_error`, the
  message is its trimmed stderr with every "Loaded cached credentials." line removed (or
  "Gemini CLI exited with code N" when stderr was empty), details = its trimmed stdout ("").
- `auth_error()` and `quota_exceeded()`: what gemini-cli writes to stderr in `--output-format
  json` mode before exiting 1: handleError -> JsonFormatter.formatError, i.e.
  `JSON.stringify({session_id?, error: {type, message, code}}, null, 2)`. `session_id` is there
  since gemini-cli 0.21 (December 2025); pass `session_id=None` for the older form. A quota
  failure is a TerminalQuotaError (daily quota) or a RetryableQuotaError whose retries ran out,
  after "Attempt N failed: ..." warning lines, also on stderr.
- `cli_missing()`: spawn fails with ENOENT: 500 `gemini_cli_missing`.
- `cli_failure()`: gemini's JSON on stdout holds an `error`: 502 `gemini_cli_failure`.

The module also holds the pieces shared with the other stand-ins (reply kinds, request
recording, the threaded server base class).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Sequence
from typing import Any, Callable, Union
from urllib.parse import urlsplit

__all__ = [
    "CgpuServeStandIn",
    "Error",
    "RecordedRequest",
    "Reply",
    "StandInServer",
    "Text",
    "auth_error",
    "cli_error",
    "cli_failure",
    "cli_missing",
    "empty_response",
    "gemini_json_error",
    "invalid_json",
    "quota_exceeded",
    "response_payload",
]

MAX_BODY_BYTES = 512 * 1024  # cgpu serve: DEFAULT_MAX_BODY
_DISCARD_CAP = 64 * 1024 * 1024  # read at most this much of an oversized body before closing


# --------------------------------------------------------------------------- reply kinds


@dataclass(frozen=True)
class Text:
    """A successful model answer: the text the gemini CLI put in its `response` field.

    `delay_s` is how long the model "thinks"; longer than the server timeout means the gemini
    process is killed and the client gets 502 `empty_response`, as with the real server.
    """

    text: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class Error:
    """A scripted failure answered as `{"error": {...}}` with the given HTTP status.

    For cgpu serve the body is `{"error": {"code", "message", "details"}}`; the Ollama stand-in
    maps the same fields to its own OpenAI-style error body.
    """

    status: int
    code: str
    message: str
    details: Any = None
    delay_s: float = 0.0


Reply = Union[Text, Error]


# The real server's failure modes, with the messages its source produces (see the module
# docstring for where each comes from). Quota and auth errors are the gemini CLI exiting
# non-zero, so they arrive as 502 gemini_cli_error with stderr as the message.

_CREDENTIALS_LINE = re.compile(r"^Loaded cached credentials\.\n?", re.M)
SESSION_ID = "9f1c2a4e-5b7d-4c3e-8a6f-0d2b4e6f8a1c"
AUTH_MESSAGE = ("Please set an Auth method in your /home/user/.gemini/settings.json or specify one of the "
                "following environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, "
                "GOOGLE_GENAI_USE_GCA")
DAILY_QUOTA_MESSAGE = "You have exhausted your daily quota on this model."


def cli_error(stderr: str, stdout: str = "", delay_s: float = 0.0, exit_code: int = 1) -> Error:
    """502 `gemini_cli_error`: the gemini CLI exited non-zero (runner.ts: the message is its
    trimmed stderr without "Loaded cached credentials." lines, details its trimmed stdout)."""
    message = stderr.strip() or f"Gemini CLI exited with code {exit_code}"
    message = _CREDENTIALS_LINE.sub("", message).strip()
    return Error(502, "gemini_cli_error", message, stdout.strip(), delay_s)


def gemini_json_error(message: str, error_type: str = "Error", code: int = 1,
                      session_id: str | None = SESSION_ID) -> str:
    """What gemini-cli writes to stderr for a fatal error in `--output-format json` mode."""
    payload: dict[str, Any] = {} if session_id is None else {"session_id": session_id}
    payload["error"] = {"type": error_type, "message": message, **({"code": code} if code else {})}
    return json.dumps(payload, indent=2, ensure_ascii=False)


def auth_error(message: str = AUTH_MESSAGE, session_id: str | None = SESSION_ID, delay_s: float = 0.0) -> Error:
    """gemini is not logged in: validateNonInteractiveAuth -> handleError(error, config, 1)."""
    return cli_error("Loaded cached credentials.\n" + gemini_json_error(message, "Error", 1, session_id),
                     delay_s=delay_s)


def quota_exceeded(message: str = DAILY_QUOTA_MESSAGE, error_type: str = "TerminalQuotaError",
                   warnings: Sequence[str] = (), session_id: str | None = SESSION_ID,
                   delay_s: float = 0.0) -> Error:
    """502 `gemini_cli_error` carrying gemini-cli's pretty-printed quota error (after any
    "Attempt N failed ..." warning lines), as cgpu passes stderr on."""
    stderr = "\n".join([*warnings, gemini_json_error(message, error_type, 1, session_id)])
    return cli_error(stderr, delay_s=delay_s)


def empty_response(delay_s: float = 0.0) -> Error:
    """502 `empty_response`: the gemini CLI printed nothing (also what a timeout produces)."""
    return Error(502, "empty_response", "Gemini CLI produced no output", None, delay_s)


def invalid_json(stdout: str = "Loaded cached credentials.\nnot json", delay_s: float = 0.0) -> Error:
    """502 `invalid_json`: the gemini CLI's trimmed stdout was not JSON (details is that stdout)."""
    return Error(502, "invalid_json", "Gemini CLI returned malformed JSON", stdout.strip(), delay_s)


def cli_failure(message: str = "Gemini CLI reported an error", delay_s: float = 0.0) -> Error:
    """502 `gemini_cli_failure`: the gemini CLI's JSON carried an `error` object."""
    payload = {"error": {"type": "Error", "message": message, "code": 1}}
    return Error(502, "gemini_cli_failure", message, payload, delay_s)


def cli_missing(gemini_bin: str = "gemini") -> Error:
    """500 `gemini_cli_missing`: no gemini executable (spawn failed with ENOENT)."""
    return Error(
        500,
        "gemini_cli_missing",
        f'Unable to find Gemini CLI executable "{gemini_bin}". '
        "Install it globally or pass --gemini-bin to cgpu serve.",
    )


# --------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest:
    """One request as the stand-in saw it, so tests can assert what the client sent."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # keys lower-cased
    body: Any  # parsed JSON when the body was JSON, else the raw bytes (None: body not kept)
    raw: bytes | None = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        """The parsed JSON body (None when the body was not JSON)."""
        return None if isinstance(self.body, (bytes, type(None))) else self.body


class _HttpError(Exception):
    """An error answered with a status and a JSON body (mirrors cgpu's HttpError)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, *,
                 has_details: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.has_details = has_details


class _Closed(Exception):
    """The stand-in is shutting down while a request waits: drop the connection."""


# --------------------------------------------------------------------------- server base


class StandInServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread, with scripted replies.

    Why a base class: the cgpu and Ollama stand-ins (and the fake `cgpu` executable) share the
    life cycle, the reply queue and the request log; only their handlers differ.
    """

    handler_class: type[BaseHTTPRequestHandler]
    reply_types: tuple[type, ...] = (Text, Error)   # what `script` accepts

    def __init__(self, default_text: str = "{}", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.default_text = default_text
        self.requests: list[RecordedRequest] = []
        self._bind = (host, port)
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_address: tuple[Any, ...] | None = None

    # -- life cycle
    def bind(self) -> ThreadingHTTPServer:
        """Create and bind the listening socket (raises OSError when the port is taken)."""
        if self._httpd is None:
            httpd = ThreadingHTTPServer(self._bind, self.handler_class)
            httpd.daemon_threads = True
            httpd.stand_in = self  # type: ignore[attr-defined]
            self._httpd = httpd
        return self._httpd

    def start(self) -> "StandInServer":
        """Bind and serve in a daemon thread; returns self."""
        httpd = self.bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                name=f"{type(self).__name__}:{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the fake `cgpu serve` executable uses this)."""
        self.bind().serve_forever(poll_interval=0.01)

    def stop(self) -> None:
        """Stop serving, wake any delayed requests and close the socket."""
        self._closing.set()
        httpd = self._httpd
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        httpd.server_close()
        self._httpd = None

    def __enter__(self) -> "StandInServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses (after stop(), the address it had: reading it must not bind a new server)
    @property
    def host(self) -> str:
        return str(self._address()[0])

    @property
    def port(self) -> int:
        return int(self._address()[1])

    def _address(self) -> tuple[Any, ...]:
        if self._httpd is None and self._last_address is not None:
            return self._last_address
        self._last_address = tuple(self.bind().server_address)
        return self._last_address

    @property
    def url(self) -> str:
        """The server root, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI client base URL (root + /v1)."""
        return f"{self.url}/v1"

    # -- scripting and recording
    def script(self, *replies: Reply) -> None:
        """Queue replies; each model request consumes one, then `default_text` is answered."""
        for reply in replies:
            if not isinstance(reply, self.reply_types):
                names = ", ".join(t.__name__ for t in self.reply_types)
                raise TypeError(f"not one of {names}: {reply!r}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._queue)

    def next_reply(self) -> Any:
        with self._lock:
            return self._queue.popleft() if self._queue else Text(self.default_text)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_for(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests to one path (and method)."""
        with self._lock:
            return [r for r in self.requests
                    if r.path == path and (method is None or r.method == method)]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def wait(self, seconds: float) -> None:
        """Sleep like a slow model, but give up at once when the server is stopping."""
        if seconds > 0 and self._closing.wait(seconds):
            raise _Closed()


class _BaseHandler(BaseHTTPRequestHandler):
    """Shared plumbing: any method dispatches to `route`, bodies are read defensively."""

    protocol_version = "HTTP/1.1"
    server_version = "StandIn/1.0"
    sys_version = ""

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler looks up do_<METHOD>; every method goes through `route`,
        # so unknown methods get the stand-in's 404 instead of Python's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    @property
    def stand_in(self) -> StandInServer:
        return self.server.stand_in  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test logs quiet
        pass

    def _dispatch(self) -> None:
        self._body_consumed = False
        self._recorded = False
        parts = urlsplit(self.path)
        self.url_path, self.url_query = parts.path or "/", parts.query
        try:
            self.route()
        except _Closed:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if not self._recorded:
                self._record(None, None)

    def route(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- helpers
    def _record(self, body: Any, raw: bytes | None) -> None:
        self._recorded = True
        self.stand_in.record(RecordedRequest(
            method=self.command, path=self.url_path, query=self.url_query,
            headers={k.lower(): v for k, v in self.headers.items()}, body=body, raw=raw,
        ))

    def read_body(self, limit: int | None) -> bytes | None:
        """The request body, or None when it is larger than `limit` (the rest is discarded)."""
        self._body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            self._discard(length)
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _discard(self, length: int) -> None:
        if length > _DISCARD_CAP:
            self._body_consumed = False  # too much to drain: the connection will be closed
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def _read_chunked(self, limit: int | None) -> bytes | None:
        data, too_big = bytearray(), False
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(3)
            if not too_big:
                data += chunk
                if limit is not None and len(data) > limit:
                    too_big, data = True, bytearray()
        return None if too_big else bytes(data)

    def send_bytes(self, status: int, payload: bytes, content_type: str | None,
                   extra: dict[str, str] | None = None) -> None:
        if not self._body_consumed and self.command not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            # We answered without reading the body: the connection cannot be reused.
            self.close_connection = True
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", extra)


# --------------------------------------------------------------------------- cgpu serve


def _reject_constant(name: str) -> float:
    # JSON.parse rejects NaN/Infinity; Python's json would accept them.
    raise ValueError(f"invalid JSON constant {name}")


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _truthy(value: Any) -> bool:
    """JavaScript truthiness ({} and [] are truthy; "", 0, null, false are not)."""
    if isinstance(value, (dict, list)):
        return True
    return bool(value)


def _number(value: Any, name: str) -> float | None:
    """cgpu's ensureOptionalNumber."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _HttpError(400, "invalid_number", f"{name} must be a number")
    return value


def _boolean(value: Any, name: str, fallback: bool) -> bool:
    """cgpu's ensureBoolean."""
    if value is None:
        return fallback
    if not isinstance(value, bool):
        raise _HttpError(400, "invalid_boolean", f"{name} must be a boolean")
    return value


def _content_text(part: Any) -> str | None:
    """cgpu's extractTextFromContent: text parts only (images are silently dropped)."""
    if isinstance(part, str):
        return part.strip() or None
    if not _is_object(part):
        return None
    for key in ("text", "refusal", "data"):
        if isinstance(part.get(key), str):
            return part[key].strip() or None
    return None


def _item_text(item: Any) -> str | None:
    """cgpu's formatInputItem: an item's text, prefixed with its role label."""
    if isinstance(item, str):
        return item.strip() or None
    if not _is_object(item):
        return None
    text: str | None = None
    if isinstance(item.get("text"), str):
        text = item["text"].strip() or None
    elif isinstance(item.get("content"), str):
        text = item["content"].strip() or None
    else:
        for key in ("content", "parts"):
            if isinstance(item.get(key), list):
                joined = "\n".join(s for s in map(_content_text, item[key]) if s and s.strip()).strip()
                if joined:
                    text = joined
                    break
        if text is None and isinstance(item.get("message"), str):
            text = item["message"].strip() or None
    if not text:
        return None
    role = item.get("role")
    role = role.strip() if isinstance(role, str) else ""
    return f"{role[0].upper()}{role[1:].lower()}:\n{text}" if role else text


def input_to_prompt(value: Any) -> str:
    """cgpu's normalizeInputToPrompt: the text the gemini CLI would receive."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "\n\n".join(s for s in map(_item_text, value) if s and s.strip()).strip()
    if _is_object(value):
        return (_item_text(value) or "").strip()
    raise _HttpError(400, "invalid_input", 'The "input" field must be a string or an array of input items.')


def _instructions(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) or _is_object(value):
        return input_to_prompt(value) or None
    raise _HttpError(400, "invalid_instructions",
                     'The "instructions" field must be a string or an array of input items.')


class _CgpuHandler(_BaseHandler):
    """The routes of cgpu serve's handleRequest."""

    stand_in: "CgpuServeStandIn"  # type: ignore[assignment]

    def route(self) -> None:
        try:
            if self.command == "OPTIONS":
                self._record(None, None)
                self.send_bytes(204, b"", None, {
                    **self._cors(),
                    "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
                })
                return
            if self.command == "GET" and self.url_path == "/health":
                self._record(None, None)
                self.send_json(200, {"status": "ok"}, self._cors())
                return
            if self.command == "POST" and self.url_path == "/v1/responses":
                self._create_response()
                return
            self._record(None, None)
            raise _HttpError(404, "not_found", f"No route for {self.command} {self.url_path}")
        except _HttpError as err:
            error: dict[str, Any] = {"code": err.code, "message": err.message}
            if err.has_details:
                error["details"] = err.details
            self.send_json(err.status, {"error": error}, self._cors())

    @staticmethod
    def _cors() -> dict[str, str]:
        return {"Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Headers": "content-type,authorization"}

    def _create_response(self) -> None:
        stand_in = self.stand_in
        accept = self.headers.get_all("Accept") or []
        wants_stream = any("text/event-stream" in a for a in accept)

        content_types = self.headers.get_all("Content-Type") or []
        if not any("application/json" in c for c in content_types):
            self._record(None, None)
            raise _HttpError(415, "unsupported_media_type", "Content-Type must be application/json")

        raw = self.read_body(MAX_BODY_BYTES)
        if raw is None:
            self._record(None, None)
            self.close_connection = True  # the real server destroys the request
            raise _HttpError(413, "payload_too_large", "Request body is too large")
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text, parse_constant=_reject_constant) if text else None
        except ValueError:
            self._record(raw, raw)
            # details is the JSON.parse SyntaxError, which JSON.stringify renders as {}
            raise _HttpError(400, "invalid_json", "Request body is not valid JSON", {})
        self._record(body if text else raw, raw)
        if not text:
            raise _HttpError(400, "empty_body", "Request body is empty")
        if body is None:  # `null.stream` throws in the real server
            raise _HttpError(500, "internal_error", "An unexpected error occurred.", has_details=False)
        fields: dict[str, Any] = body if isinstance(body, dict) else {}

        if wants_stream or _boolean(fields.get("stream"), "stream", False):
            raise _HttpError(400, "streaming_not_supported",
                             "Streaming responses are not supported yet. Please omit the stream "
                             "flag and Accept: text/event-stream.")
        include = fields.get("include")
        if isinstance(include, list) and include:
            raise _HttpError(400, "include_not_supported", "The include[] parameter is not supported yet.")
        if _truthy(fields.get("conversation")):
            raise _HttpError(400, "conversation_not_supported", "Conversations are not supported yet.")
        if _truthy(fields.get("previous_response_id")):
            raise _HttpError(400, "previous_response_not_supported", "previous_response_id is not supported yet.")

        normalized = self._normalize(fields, stand_in.default_model)
        stand_in.check_gemini()

        reply = stand_in.next_reply()
        if reply.delay_s > stand_in.server_timeout_s:
            # The gemini process is SIGKILLed at the timeout; it printed nothing.
            stand_in.wait(stand_in.server_timeout_s)
            reply = empty_response()
        else:
            stand_in.wait(reply.delay_s)
        if isinstance(reply, Error):
            raise _HttpError(reply.status, reply.code, reply.message, reply.details)
        self.send_json(200, _response_payload(normalized, reply.text.strip()), self._cors())

    @staticmethod
    def _normalize(body: dict[str, Any], default_model: str) -> dict[str, Any]:
        """cgpu's normalizeRequest: validation in the same order, same codes and messages."""
        if "input" not in body:
            raise _HttpError(400, "missing_input", 'The "input" field is required.')
        prompt = input_to_prompt(body["input"])
        if not prompt:
            raise _HttpError(400, "empty_input", "Input must contain at least one text segment.")
        instructions = _instructions(body.get("instructions"))

        model = body.get("model")
        if model is not None and not isinstance(model, str):  # `.trim()` of a non-string throws
            raise _HttpError(500, "internal_error", "An unexpected error occurred.", has_details=False)
        requested = (model or "").strip() or (default_model or "gpt-4.1").strip()

        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        elif not _is_object(metadata):
            raise _HttpError(400, "invalid_metadata", "metadata must be an object of string values")
        else:
            for key, value in metadata.items():
                if not isinstance(value, str):
                    kind = {bool: "boolean", int: "number", float: "number", list: "object",
                            dict: "object"}.get(type(value), "object")
                    raise _HttpError(400, "invalid_metadata",
                                     f"metadata[{key}] must be a string, received {kind}")
        tool_choice = body.get("tool_choice")
        if tool_choice is None:
            tool_choice = "auto"
        elif not isinstance(tool_choice, str) and not _is_object(tool_choice):
            raise _HttpError(400, "invalid_tool_choice", "tool_choice must be a string or object")
        tools = body.get("tools")
        if tools is None:
            tools = []
        elif not isinstance(tools, list):
            raise _HttpError(400, "invalid_tools", "tools must be an array")

        temperature = _number(body.get("temperature"), "temperature")
        if temperature is not None and not 0 <= temperature <= 2:
            raise _HttpError(400, "invalid_temperature", "temperature must be between 0 and 2")
        top_p = _number(body.get("top_p"), "top_p")
        if top_p is not None and not 0 <= top_p <= 1:
            raise _HttpError(400, "invalid_top_p", "top_p must be between 0 and 1")
        max_output_tokens = _number(body.get("max_output_tokens"), "max_output_tokens")
        parallel = _boolean(body.get("parallel_tool_calls"), "parallel_tool_calls", True)
        return {
            "prompt": f"{instructions}\n\n{prompt}" if instructions else prompt,
            "model": requested, "instructions": instructions, "metadata": metadata,
            "tool_choice": tool_choice, "tools": tools, "temperature": temperature,
            "top_p": top_p, "max_output_tokens": max_output_tokens, "parallel_tool_calls": parallel,
        }


def response_payload(text: str, model: str = "gemini-2.5-flash") -> dict[str, Any]:
    """A complete cgpu serve reply for `text`, for stand-ins that answer without validating."""
    return _response_payload({"model": model, "instructions": None, "metadata": {}, "tool_choice": "auto",
                              "tools": [], "temperature": None, "top_p": None, "max_output_tokens": None,
                              "parallel_tool_calls": True}, text)


def _response_payload(n: dict[str, Any], text: str) -> dict[str, Any]:
    """cgpu's buildResponsePayload (usage is always 0: gemini's stats keys never match)."""
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "model": n["model"],
        "status": "completed",
        "previous_response_id": None,
        "instructions": n["instructions"],
        "error": None,
        "incomplete_details": None,
        "output": [{
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            "status": "completed",
        }],
        "output_text": text,
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
        "metadata": n["metadata"],
        "tool_choice": n["tool_choice"],
        "tools": n["tools"],
        "parallel_tool_calls": n["parallel_tool_calls"],
        "temperature": n["temperature"],
        "top_p": n["top_p"],
        "max_output_tokens": n["max_output_tokens"],
        "max_tool_calls": None,
        "reasoning": None,
        "background": False,
        "truncation": "disabled",
    }


class CgpuServeStandIn(StandInServer):
    """`cgpu serve` on 127.0.0.1 with scripted Gemini answers.

    Args:
        default_text: answered (as gemini's `response`, trimmed) when no reply is scripted.
        server_timeout_s: the real `--timeout` (ms there, seconds here); a reply slower than
            this becomes 502 `empty_response` after this many seconds.
        default_model: the `--default-model`, echoed as `model` when the request names none.
        gemini_bin: when given, every model request first looks this executable up on PATH (as
            the real server spawns it) and answers 500 `gemini_cli_missing` if it is absent.
            None (the default) skips the check.
        host, port: where to listen; port 0 lets the OS choose.
    """

    handler_class = _CgpuHandler

    def __init__(
        self,
        default_text: str = "{}",
        server_timeout_s: float = 120.0,
        default_model: str = "gemini-2.5-flash",
        *,
        gemini_bin: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(default_text, host=host, port=port)
        self.server_timeout_s = float(server_timeout_s)
        self.default_model = default_model
        self.gemini_bin = gemini_bin

    def __enter__(self) -> "CgpuServeStandIn":
        self.start()
        return self

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """The recorded POST /v1/responses requests."""
        return self.requests_for("/v1/responses", "POST")

    def check_gemini(self) -> None:
        """Fail like spawn(gemini) would: ENOENT -> 500 gemini_cli_missing."""
        if self.gemini_bin is None:
            return
        if os.sep in self.gemini_bin:
            found = self.gemini_bin if os.path.exists(self.gemini_bin) else None
        else:
            found = shutil.which(self.gemini_bin, mode=os.F_OK)
        if found is None:
            err = cli_missing(self.gemini_bin)
            raise _HttpError(err.status, err.code, err.message, err.details)
        if not os.access(found, os.X_OK):  # EACCES is not ENOENT: an unexpected error
            raise _HttpError(500, "internal_error", "An unexpected error occurred.", has_details=False)
