"""LLM backends, all through the `openai` package, each speaking the API its server has.

- cgpu serve: the Responses API only (`POST /v1/responses`); no JSON mode, no streaming, no
  conversation state, so a repair request carries the exchange in its input.
- Ollama and any OpenAI-compatible server: chat completions, asking for JSON output
  (a JSON schema where the server takes one, else JSON mode).

A server is not trusted to be well behaved. Every request goes through the bounded transport
of remote/bounded_http.py: at most MAX_REPLY_BYTES read, the whole request ended at the
timeout, no compression, and a connection refused, one closed before any answer and a reply
cut off in the middle told apart.
Reply bodies are parsed with `bounded.loads` and checked against small pydantic models, never
by the openai client's own parser (which raises RecursionError, TypeError or AttributeError
on hostile bodies).

Retries: only when the request certainly never reached the model: connection refused, or the
connection closed or reset before any byte of a response. Anything else (a timeout, an HTTP
error, a broken body) means the model may have run; with cgpu serve every run is one gemini
process and one unit of quota, so it is reported, not repeated. The client timeout is longer
than cgpu serve's own (120 s), so its clear `empty_response` arrives before ours.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import bounded
from ..remote import bounded_http
from ..remote.bounded_http import bounded_client, one_line
from ..settings import Settings

MAX_REPLY_BYTES = 2 * 1024 * 1024    # a plan is a few KB; cgpu serve sends the text twice, escaped
MAX_BODY_DEPTH = bounded.MAX_DEPTH   # a Responses object is about 5 levels deep
MESSAGE_CHARS = 300                  # a server's error message, as quoted in one summary line
OLLAMA_DEFAULT_PORT = 11434


class LLMError(Exception):
    """A backend could not produce a reply; `kind` names the failure for the summary."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass
class Exchange:
    """One conversation: instructions, the user input, and earlier turns for a repair."""

    instructions: str
    input_text: str
    history: list[tuple[str, str]] = field(default_factory=list)  # (assistant reply, user follow-up)


class Backend(Protocol):
    name: str
    model: str
    requests_sent: int       # attempts, retries included
    requests_answered: int   # attempts that got an HTTP response back (what the server spent)

    def complete(self, exchange: Exchange, json_schema: dict[str, Any]) -> str: ...

    def where(self) -> str: ...


# --------------------------------------------------------------------------- addresses


def ollama_base_url(value: str) -> str:
    """OLLAMA_HOST -> the server's root URL, read the way Ollama's own client reads it
    (envconfig.Host): the scheme defaults to http and the port to 11434 (80 / 443 when a scheme
    is given), and a bind-everything address is reached through loopback."""
    text = value.strip().strip("\"'")
    scheme, sep, rest = text.partition("://")
    port = OLLAMA_DEFAULT_PORT if not sep else (443 if scheme == "https" else 80)
    scheme = scheme if sep else "http"
    hostport, _, path = (rest if sep else text).partition("/")
    host = "127.0.0.1"
    try:
        parts = urlsplit(f"//{hostport}")
        host = parts.hostname or host
        port = parts.port or port
    except ValueError:                      # a malformed host or port: Ollama falls back to defaults too
        pass
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    path = path.strip("/")
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


# --------------------------------------------------------------------------- server messages


_JSON_LINE = re.compile(r"^[ \t]*\{", re.M)
_MESSAGE_TAIL = 65536   # gemini's own error object is the last thing it writes


def gemini_message(message: str) -> str:
    """The message inside gemini-cli's error, else `message` itself, on one line.

    gemini-cli with `--output-format json` (as cgpu serve runs it) writes a failure to stderr
    as a pretty-printed `{"session_id"?, "error": {"type", "message", "code"}}`, sometimes
    after warning lines that hold JSON of their own; cgpu serve passes stderr on as its error
    message. The last top-level object with an error message wins."""
    tail = message[-_MESSAGE_TAIL:]
    if bounded.nesting_depth(tail, stop_at=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        return one_line(message)
    found, end = None, 0
    decoder = json.JSONDecoder()
    for match in _JSON_LINE.finditer(tail):
        start = match.end() - 1
        if start < end:
            continue                     # inside an object already read
        try:
            value, end = decoder.raw_decode(tail, start)
        except ValueError:
            continue
        error = value.get("error") if isinstance(value, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            found = error["message"]
    return one_line(found if found is not None else message)


class _ErrorBody(BaseModel):
    """`{"error": {"code", "message"}}` as cgpu serve, Ollama and OpenAI send it."""

    model_config = ConfigDict(extra="ignore")
    code: str | int | None = None
    message: str = ""
    type: str | None = None


def _error_body(text: str) -> _ErrorBody | None:
    try:
        data = bounded.loads(text, what="error body", max_chars=MAX_REPLY_BYTES)
    except bounded.BoundsError:
        return None
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, str):
        return _ErrorBody(message=error)
    try:
        return _ErrorBody.model_validate(error)
    except ValidationError:
        return None


_QUOTA_WORDS = ("quota", "429", "rate limit", "resource_exhausted", "resource exhausted", "too many requests")
_AUTH_WORDS = ("auth method", "authenticat", "credential", "api key", "api_key", "unauthorized", "login",
               "permission denied")


def _status_kind(status: int, text: str) -> str:
    low = text.lower()
    if status == 429 or any(w in low for w in _QUOTA_WORDS):
        return "quota"
    if status in (401, 403) or any(w in low for w in _AUTH_WORDS):
        return "auth"
    return "http_error"


# --------------------------------------------------------------------------- reply bodies


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _OutputContent(_Lenient):
    type: str
    text: str = ""


class _OutputItem(_Lenient):
    type: str
    content: list[_OutputContent] = []


class ResponsesBody(_Lenient):
    """The part of a Responses API object the director reads."""

    output: list[_OutputItem]
    output_text: str | None = None   # cgpu serve sends it; OpenAI leaves it to the SDK

    def text(self) -> str:
        parts = [c.text for item in self.output if item.type == "message" for c in item.content
                 if c.type == "output_text"]
        return "".join(parts) or self.output_text or ""


class _ChatMessage(_Lenient):
    content: str | None = None


class _Choice(_Lenient):
    message: _ChatMessage


class ChatBody(_Lenient):
    """The part of a chat.completion object the director reads."""

    choices: list[_Choice] = Field(min_length=1)

    def text(self) -> str:
        return self.choices[0].message.content or ""


Body = TypeVar("Body", ResponsesBody, ChatBody)


def _describe_start(raw: bytes, content_type: str) -> str:
    excerpt = one_line(raw[:200].decode("utf-8", errors="replace"), 60)
    return f"{content_type or 'no content type'}, starting {excerpt!r}" if excerpt else "an empty body"


def parse_body(raw: bytes, content_type: str, model: type[Body], what: str, where: str, status: int = 200) -> Body:
    """A 2xx body -> `model`, or LLMError('invalid_reply') saying what was wrong with it."""
    text = raw.decode("utf-8", errors="replace")
    try:
        data = bounded.loads(text, what="the body", max_chars=MAX_REPLY_BYTES, max_depth=MAX_BODY_DEPTH)
    except bounded.BoundsError as exc:
        if "not valid JSON" in str(exc):
            raise LLMError("invalid_reply", f"{where} answered {status} with a body that is not JSON ({_describe_start(raw, content_type)})")
        raise LLMError("invalid_reply", f"{where} answered {status} with an unusable body: {one_line(str(exc))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        raise LLMError("invalid_reply", f"{where} answered {status} with JSON that is not {what} ({loc}: {first['msg']})")


# --------------------------------------------------------------------------- the call policy


@dataclass
class _Failure:
    error: LLMError
    retry: bool
    hint: str = ""


class _Retrying:
    """Shared call policy: bounded requests; retries with backoff only for requests that
    never reached the server's model (see the module docstring)."""

    name = "llm"
    model = ""
    body_model: type[BaseModel] = ResponsesBody
    body_what = "a reply object"

    def __init__(self, base_url: str, api_key: str, timeout_s: float, retries: int = 2, backoff_s: float = 1.0):
        self.base_url = base_url
        self.client, self.transport = bounded_client(base_url, api_key, timeout_s, MAX_REPLY_BYTES)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.requests_sent = 0

    @property
    def requests_answered(self) -> int:
        return self.transport.answered

    def where(self) -> str:
        return self.base_url

    def _hint_connection(self) -> str:
        return ""

    def _hint_status(self, code: str, kind: str) -> str:
        return ""

    def _call(self, send: Callable[[], Any]) -> str:
        """Send with the retry policy; the reply's text, or LLMError."""
        failure: _Failure | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.requests_sent += 1
            try:
                raw = send()
            except openai.APITimeoutError as exc:
                raise LLMError("timeout", f"no complete reply from {self.where()} within {self.timeout_s:g} s") from exc
            except openai.APIConnectionError as exc:
                failure = self._connection_failure(exc.__cause__ or exc)
                if failure.retry:
                    continue
                raise LLMError(failure.error.kind, f"{failure.error}{failure.hint}") from exc
            except openai.APIStatusError as exc:
                raise self._status_failure(exc) from exc
            except openai.OpenAIError as exc:   # anything else the client raises: reported, not retried
                raise LLMError("client_error", f"{self.where()}: {one_line(str(exc))}") from exc
            http = raw.http_response
            body = parse_body(http.content, http.headers.get("content-type", ""), self.body_model, self.body_what,
                              self.where(), http.status_code)
            return body.text()  # type: ignore[attr-defined]
        assert failure is not None
        tries = f" ({self.requests_sent} attempts)" if self.requests_sent > 1 else ""
        raise LLMError(failure.error.kind, f"{failure.error}{tries}{failure.hint}")

    def _connection_failure(self, cause: BaseException) -> _Failure:
        where = self.where()
        if isinstance(cause, httpx2.ConnectError):
            what = "connection refused" if "refused" in str(cause).lower() else f"cannot connect ({one_line(str(cause), 120)})"
            return _Failure(LLMError("connection", f"{what} at {where}"), retry=True, hint=self._hint_connection())
        if isinstance(cause, bounded_http.NoAnswer):
            how = "reset" if "reset" in str(cause).lower() else "closed"
            return _Failure(LLMError("connection", f"{where} {how} the connection without answering"), retry=True)
        if isinstance(cause, bounded_http.CutOff):
            return _Failure(LLMError("truncated", f"{where}: {cause}"), retry=False)
        if isinstance(cause, bounded_http.TooLarge):
            return _Failure(LLMError("too_large", f"{where} sent {cause}"), retry=False)
        if isinstance(cause, (bounded_http.Compressed, bounded_http.Garbled)):
            return _Failure(LLMError("invalid_reply", f"{where} sent {cause}"), retry=False)
        return _Failure(LLMError("connection", f"{where}: {type(cause).__name__}: {one_line(str(cause), 160)}"),
                        retry=False)

    def _status_failure(self, exc: openai.APIStatusError) -> LLMError:
        status = exc.status_code
        try:
            text = exc.response.text
        except (httpx2.HTTPError, httpx2.StreamError, UnicodeDecodeError):
            text = ""
        body = _error_body(text)
        if body is None:
            detail = one_line(text, 120) or "no error body"
            return LLMError(_status_kind(status, text), f"{self.where()} answered {status}: {detail}", status)
        message = gemini_message(body.message)
        code = str(body.code) if body.code is not None else ""
        kind = _status_kind(status, f"{code} {body.type or ''} {message}")
        head = f"{status} {code}".strip()
        return LLMError(kind, f"{self.where()} answered {head}: {message}{self._hint_status(code, kind)}", status)


_CGPU_HINTS = {
    "empty_response": " (gemini printed nothing: it ran past cgpu serve's --timeout, 120 s by default, or crashed)",
    "invalid_json": " (gemini's output was not the JSON cgpu serve expects)",
}


class CgpuServeBackend(_Retrying):
    """Gemini through `cgpu serve` on the user's host (Responses API only)."""

    name = "cgpu"
    body_model = ResponsesBody
    body_what = "a Responses object"

    def __init__(self, s: Settings):
        self.host, self.port = s.cgpu_host, s.cgpu_port
        super().__init__(f"http://{s.cgpu_host}:{s.cgpu_port}/v1", "unused", s.llm_timeout, backoff_s=s.llm_backoff)
        self.model = s.cgpu_model

    def where(self) -> str:
        return f"cgpu serve at {self.host}:{self.port}"

    def _hint_connection(self) -> str:
        return ("; start it with `./montage-ai.sh cgpu-start`, and inside Docker set "
                "CGPU_HOST=host.docker.internal")

    def _hint_status(self, code: str, kind: str) -> str:
        if kind == "auth":
            return " (log gemini in: run `gemini` once on the host where cgpu serve runs)"
        return _CGPU_HINTS.get(code, "")

    def complete(self, exchange: Exchange, json_schema: dict[str, Any]) -> str:
        parts = [exchange.input_text]
        for reply, follow_up in exchange.history:
            parts += [f"Your previous reply was:\n{reply}", follow_up]
        text = "\n\n".join(parts)
        return self._call(lambda: self.client.responses.with_raw_response.create(
            model=self.model, instructions=exchange.instructions, input=text))


class ChatBackend(_Retrying):
    """Ollama's or any OpenAI-compatible server's chat completions, with JSON output requested."""

    body_model = ChatBody
    body_what = "a chat.completion object"

    def __init__(self, name: str, base_url: str, api_key: str, model: str, s: Settings, json_schema_ok: bool):
        super().__init__(base_url, api_key, s.llm_timeout, backoff_s=s.llm_backoff)
        self.name = name
        self.model = model
        self.json_schema_ok = json_schema_ok

    def where(self) -> str:
        return f"{self.name} at {self.base_url}"

    def complete(self, exchange: Exchange, json_schema: dict[str, Any]) -> str:
        messages: list[dict[str, str]] = [{"role": "system", "content": exchange.instructions},
                                          {"role": "user", "content": exchange.input_text}]
        for reply, follow_up in exchange.history:
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": follow_up}]
        formats: list[dict[str, Any]] = [{"type": "json_object"}]
        if self.json_schema_ok:
            formats.insert(0, {"type": "json_schema", "json_schema": {"name": "edit_plan", "schema": json_schema}})
        for i, fmt in enumerate(formats):
            try:
                return self._call(lambda: self.client.chat.completions.with_raw_response.create(
                    model=self.model, messages=messages, response_format=fmt))  # type: ignore[arg-type]
            except LLMError as exc:
                # a server without structured output says 400: fall back to plain JSON mode once
                if exc.status == 400 and i + 1 < len(formats):
                    continue
                raise
        raise LLMError("http_error", "no response format accepted")  # pragma: no cover


def _backends(s: Settings, include_cgpu: bool) -> Iterator[Backend]:
    """Each configured backend, built only when asked for (each holds its own HTTP client)."""
    if include_cgpu:
        yield CgpuServeBackend(s)
    if s.openai_base_url:
        yield ChatBackend("openai-compatible", s.openai_base_url, s.openai_api_key, s.openai_model or "gpt-4o-mini",
                          s, json_schema_ok=True)
    if s.ollama_host.strip():
        yield ChatBackend("ollama", ollama_base_url(s.ollama_host) + "/v1", "ollama", s.ollama_model, s,
                          json_schema_ok=False)


def configured_backends(s: Settings, include_cgpu: bool | None = None) -> list[Backend]:
    """Every backend the settings configure, in the order the director prefers them: cgpu serve
    (when enabled, or when `include_cgpu` says so), an OpenAI-compatible server, Ollama."""
    return list(_backends(s, s.cgpu_enabled if include_cgpu is None else include_cgpu))


def configured_backend(s: Settings) -> Backend | None:
    """The backend the director uses: the first configured one."""
    return next(_backends(s, s.cgpu_enabled), None)
