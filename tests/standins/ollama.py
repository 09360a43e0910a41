"""A local stand-in for Ollama's OpenAI-compatible API (plus the native routes we probe).

Why: the Creative Director can use a local Ollama instead of cgpu; tests need its real shapes
(chat.completion objects, the model list at /api/tags and /v1/models, its error bodies,
unknown models answered 404) without running a model. Shapes follow ollama's openai/openai.go
and server routes. Unlike cgpu serve, Ollama honours `response_format` (JSON mode / JSON
schema), so requests are recorded for tests to assert that JSON output was asked for.

Deliberate difference: `stream: true` is refused with 400 because the engine never streams;
a request that streams is a bug the tests should catch.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from typing import Any

from .cgpu_serve import Error, RecordedRequest, Reply, StandInServer, Text, _BaseHandler

__all__ = ["OllamaStandIn", "Text", "Error", "Reply", "RecordedRequest", "chat_payload", "ollama_error_body"]

OLLAMA_VERSION = "0.12.6"


def ollama_error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """Ollama's openai.NewError: the `type` follows the status, `param` is always null."""
    etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _canonical(name: str) -> str:
    """Ollama resolves `llama3.2` to `llama3.2:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class _OllamaHandler(_BaseHandler):
    stand_in: "OllamaStandIn"  # type: ignore[assignment]

    def route(self) -> None:
        method, path = self.command, self.url_path
        try:
            if method in ("GET", "HEAD") and path == "/":
                self._record(None, None)
                self.send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8")
            elif method in ("GET", "HEAD") and path == "/api/version":
                self._record(None, None)
                self.send_json(200, {"version": OLLAMA_VERSION})
            elif method in ("GET", "HEAD") and path == "/api/tags":
                self._record(None, None)
                self.send_json(200, {"models": self.stand_in.tags()})
            elif method == "GET" and path == "/v1/models":
                self._record(None, None)
                self.send_json(200, {"object": "list", "data": self.stand_in.openai_models()})
            elif method == "POST" and path == "/v1/chat/completions":
                self._chat()
            else:
                self._record(None, None)
                self.send_bytes(404, b"404 page not found", "text/plain")
        except _Reject as err:
            self.send_json(err.status, ollama_error_body(err.status, err.message))

    def _chat(self) -> None:
        raw = self.read_body(None) or b""
        try:
            body = json.loads(raw.decode("utf-8", errors="replace"))
        except ValueError as exc:
            self._record(raw, raw)
            raise _Reject(400, str(exc) if raw else "EOF")
        self._record(body, raw)
        if not isinstance(body, dict):
            raise _Reject(400, "json: cannot unmarshal into Go value of type openai.ChatCompletionRequest")
        if body.get("stream") is True:
            raise _Reject(400, "stream: true is refused by the Ollama stand-in (the engine never streams)")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(400, "[] is too short - 'messages'")
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, (str, list)):
                raise _Reject(400, f"invalid message content type: {type(content).__name__}")
        fmt = body.get("response_format")
        if fmt is not None and (not isinstance(fmt, dict)
                                or fmt.get("type") not in ("text", "json_object", "json_schema")):
            raise _Reject(400, "invalid response_format")
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise _Reject(400, "model is required")
        if not self.stand_in.has_model(model):
            raise _Reject(404, f'model "{model}" not found, try pulling it first')

        reply = self.stand_in.next_reply()
        self.stand_in.wait(reply.delay_s)
        if isinstance(reply, Error):
            self.send_json(reply.status, ollama_error_body(reply.status, reply.message, reply.code or None))
            return
        prompt_words = sum(len(m.get("content", "").split()) for m in messages
                           if isinstance(m, dict) and isinstance(m.get("content"), str))
        self.send_json(200, chat_payload(reply.text, model, prompt_words))


def chat_payload(text: str, model: str = "llama3.2:latest", prompt_words: int = 0) -> dict[str, Any]:
    """Ollama's chat.completion object for an assistant answer `text` (openai/openai.go)."""
    completion_words = len(text.split())
    return {
        "id": f"chatcmpl-{random.randint(0, 999)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": completion_words,
                  "total_tokens": prompt_words + completion_words},
    }


class OllamaStandIn(StandInServer):
    """Ollama on 127.0.0.1 with scripted chat answers.

    Args:
        default_text: the assistant content answered when no reply is scripted.
        models: the "pulled" models listed by /api/tags and /v1/models; a chat request for any
            other model gets Ollama's 404 `model "x" not found, try pulling it first`
            (`llama3.2` matches `llama3.2:latest`, as in Ollama).
        host, port: where to listen; port 0 lets the OS choose.

    `base_url` is root + /v1 (what the openai client wants); `url` is the root (OLLAMA_HOST).
    Replies: `Text(text, delay_s)`; `Error(status, code, message, details, delay_s)` answered
    as `{"error": {"message", "type", "param": null, "code"}}`. Delays are honoured as is.
    """

    handler_class = _OllamaHandler

    def __init__(
        self,
        default_text: str = "{}",
        models: Sequence[str] = ("llama3.2:latest",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(default_text, host=host, port=port)
        self.models = [_canonical(m) for m in models]
        self._modified = int(time.time()) - 86400

    def __enter__(self) -> "OllamaStandIn":
        self.start()
        return self

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded POST /v1/chat/completions requests."""
        return self.requests_for("/v1/chat/completions", "POST")

    def has_model(self, name: str) -> bool:
        return _canonical(name.strip()) in self.models

    def tags(self) -> list[dict[str, Any]]:
        """The /api/tags entries, shaped like Ollama's ListModelResponse."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._modified)) + "+00:00"
        out = []
        for i, name in enumerate(self.models):
            family = name.split(":", 1)[0].split("/")[-1].rstrip("0123456789.") or "llama"
            out.append({
                "name": name, "model": name, "modified_at": stamp, "size": 2_019_393_189 + i,
                "digest": f"{i:064x}",
                "details": {"parent_model": "", "format": "gguf", "family": family,
                            "families": [family], "parameter_size": "3.2B",
                            "quantization_level": "Q4_K_M"},
            })
        return out

    def openai_models(self) -> list[dict[str, Any]]:
        """The /v1/models entries (owned_by is the namespace, `library` for official models)."""
        return [{"id": name, "object": "model", "created": self._modified,
                 "owned_by": name.split("/", 1)[0] if "/" in name else "library"}
                for name in self.models]
