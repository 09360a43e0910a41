"""LLM backends, all through the `openai` package, each speaking the API its server has.

- cgpu serve: the Responses API only (`POST /v1/responses`); no JSON mode, no streaming, no
  conversation state, so a repair request carries the whole exchange in its input.
- Ollama and any OpenAI-compatible server: chat completions, asking for JSON output
  (a JSON schema where the server takes one, else JSON mode).

Retries: only connection failures and 5xx answers, with backoff, and never a 5xx that says
the quota is spent. Client timeouts are longer than the server's own (cgpu serve gives up
after 120 s), so its clear `empty_response` error arrives before ours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from ..settings import Settings


class LLMError(Exception):
    """A backend could not produce a reply; `kind` names the failure for the summary."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Exchange:
    """One conversation: instructions, the user input, and earlier turns for a repair."""

    instructions: str
    input_text: str
    history: list[tuple[str, str]] = field(default_factory=list)  # (assistant reply, user follow-up)


class Backend(Protocol):
    name: str
    model: str
    requests_made: int

    def complete(self, exchange: Exchange, json_schema: dict[str, Any]) -> str: ...


_QUOTA_WORDS = ("quota", "429", "rate limit", "resource_exhausted", "resource exhausted")


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    if isinstance(err, dict):
        code, message = err.get("code") or "", err.get("message") or ""
        return f"{exc.status_code} {code}: {message}".strip()
    return f"{exc.status_code}: {exc.message}"


class _Retrying:
    """Shared call policy: bounded retries with backoff for connection errors and 5xx."""

    name = "llm"
    model = ""

    def __init__(self, base_url: str, api_key: str, timeout_s: float, retries: int = 2, backoff_s: float = 1.0):
        self.base_url = base_url
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.requests_made = 0

    def _where(self) -> str:
        return self.base_url

    def _hint_connection(self) -> str:
        return ""

    def _call(self, fn) -> str:
        last: LLMError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.requests_made += 1
            try:
                return fn()
            except openai.APITimeoutError as exc:
                raise LLMError("timeout", f"no reply from {self._where()} within {self.timeout_s:.0f} s") from exc
            except openai.APIConnectionError:
                last = LLMError("connection", f"connection refused at {self._where()}{self._hint_connection()}")
            except openai.APIStatusError as exc:
                text = _error_text(exc)
                if exc.status_code >= 500 and not any(w in text.lower() for w in _QUOTA_WORDS):
                    last = LLMError("server_error", f"{self._where()} answered {text}")
                    continue
                kind = "quota" if any(w in text.lower() for w in _QUOTA_WORDS) else "http_error"
                raise LLMError(kind, f"{self._where()} answered {text}") from exc
        assert last is not None
        raise last


class CgpuServeBackend(_Retrying):
    """Gemini through `cgpu serve` on the user's host (Responses API only)."""

    name = "cgpu"

    def __init__(self, s: Settings):
        self.host, self.port = s.cgpu_host, s.cgpu_port
        super().__init__(f"http://{s.cgpu_host}:{s.cgpu_port}/v1", "unused", s.llm_timeout, backoff_s=s.llm_backoff)
        self.model = s.cgpu_model

    def _where(self) -> str:
        return f"cgpu serve at {self.host}:{self.port}"

    def _hint_connection(self) -> str:
        return ("; start it with `./montage-ai.sh cgpu-start`, and inside Docker set "
                "CGPU_HOST=host.docker.internal")

    def complete(self, exchange: Exchange, json_schema: dict[str, Any]) -> str:
        parts = [exchange.input_text]
        for reply, follow_up in exchange.history:
            parts += [f"Your previous reply was:\n{reply}", follow_up]
        text = "\n\n".join(parts)

        def call() -> str:
            resp = self.client.responses.create(model=self.model, instructions=exchange.instructions, input=text)
            return resp.output_text or ""

        return self._call(call)


class ChatBackend(_Retrying):
    """Ollama's or any OpenAI-compatible server's chat completions, with JSON output requested."""

    def __init__(self, name: str, base_url: str, api_key: str, model: str, s: Settings, json_schema_ok: bool):
        super().__init__(base_url, api_key, s.llm_timeout, backoff_s=s.llm_backoff)
        self.name = name
        self.model = model
        self.json_schema_ok = json_schema_ok

    def _where(self) -> str:
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
                def call() -> str:
                    resp = self.client.chat.completions.create(model=self.model, messages=messages, response_format=fmt)
                    return resp.choices[0].message.content or ""

                return self._call(call)
            except LLMError as exc:
                # a server without structured output says 400: fall back to plain JSON mode once
                if exc.kind == "http_error" and "400" in str(exc) and i + 1 < len(formats):
                    continue
                raise
        raise LLMError("http_error", "no response format accepted")  # pragma: no cover


def configured_backend(s: Settings) -> Backend | None:
    """The backend the settings choose: cgpu serve, then an OpenAI-compatible server, then Ollama."""
    if s.cgpu_enabled:
        return CgpuServeBackend(s)
    if s.openai_base_url:
        return ChatBackend("openai-compatible", s.openai_base_url, s.openai_api_key, s.openai_model or "gpt-4o-mini",
                           s, json_schema_ok=True)
    if s.ollama_host:
        host = s.ollama_host if "://" in s.ollama_host else f"http://{s.ollama_host}"
        return ChatBackend("ollama", host.rstrip("/") + "/v1", "ollama", s.ollama_model, s, json_schema_ok=False)
    return None
