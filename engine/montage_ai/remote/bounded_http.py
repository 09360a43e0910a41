"""HTTP to a server that is not trusted to behave: bounded in bytes and in wall-clock time.

Used by the LLM backends (through the openai client's `http_client`). `BoundedTransport`
stops reading a reply past a byte limit (refusing an announced Content-Length above it before
reading anything), ends the whole request (headers and body) at a deadline even when a server
trickles a byte now and then, asks for no compression (a 2 MiB gzip body can inflate to
gigabytes), keeps no connections alive, and tells apart the ways a reply can fail: closed or
reset before any answer (`NoAnswer`: the request never reached the model, safe to retry), cut
off in the middle (`CutOff`), too large (`TooLarge`), compressed (`Compressed`), not HTTP at all
(`Garbled`), out of time (`Deadline`).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters: it ends up in a summary line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`: the transport replaces httpx's own proxy
    handling, so it is looked up here. A server on this machine is never proxied."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class ReplyFailure(httpx2.TransportError):
    """Base of the transport's own failures (a TransportError, so openai wraps it as a
    connection error and the cause tells which one it was)."""


class NoAnswer(ReplyFailure):
    """The connection closed or was reset before any byte of a response."""


class CutOff(ReplyFailure):
    """The response started, then the connection ended before its body was complete."""


class TooLarge(ReplyFailure):
    """The body is (or says it is) larger than the limit; reading stopped."""


class Compressed(ReplyFailure):
    """The body is compressed although none was asked for: it is not inflated."""


class Garbled(ReplyFailure):
    """Bytes came back, but not an HTTP response."""


class Deadline(httpx2.ReadTimeout):
    """The whole request ran past its time (openai reports it as a timeout)."""


class _Watchdog:
    """Shuts the request's socket down at the deadline. httpx's timeouts are per read, so a
    server that trickles a byte now and then would otherwise never time out."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore trace hook: remember the socket once it is connected."""
        if event.endswith("connect_tcp.complete") and info.get("return_value") is not None:
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.fired:
                    self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


class _CappedStream(httpx2.SyncByteStream):
    """A response body that ends in a TooLarge after `limit` bytes, and names how it ended."""

    def __init__(self, inner: httpx2.SyncByteStream, limit: int, watch: _Watchdog, announced: int | None) -> None:
        self._inner, self._limit, self._watch, self._announced = inner, limit, watch, announced

    def __iter__(self) -> Iterator[bytes]:
        got = 0
        try:
            for chunk in self._inner:
                got += len(chunk)
                if got > self._limit:
                    raise TooLarge(f"a reply larger than {self._limit:,} bytes; stopped reading it")
                yield chunk
        except ReplyFailure:
            raise
        except (httpx2.NetworkError, httpx2.RemoteProtocolError, httpx2.TimeoutException) as exc:
            if self._watch.fired:
                raise Deadline("the reply was not complete in time") from exc
            if isinstance(exc, httpx2.TimeoutException):
                raise
            of = f" of {self._announced:,}" if self._announced is not None else ""
            raise CutOff(f"the connection closed in the middle of the reply ({got:,}{of} bytes arrived)") from exc

    def close(self) -> None:
        self._watch.cancel()
        self._inner.close()


class BoundedTransport(httpx2.BaseTransport):
    """httpx transport with a byte limit and a wall-clock deadline per request, no keep-alive
    (a pooled connection the server has dropped would look like a refused request), and a
    count of the requests that got an HTTP response back."""

    def __init__(self, base_url: str, deadline_s: float, max_bytes: int) -> None:
        self._inner = httpx2.HTTPTransport(proxy=_env_proxy(base_url), trust_env=True,   # SSL_CERT_FILE etc.
                                           limits=httpx2.Limits(max_keepalive_connections=0))
        self.deadline_s, self.max_bytes = deadline_s, max_bytes
        self.answered = 0

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        watch = _Watchdog(self.deadline_s)
        request.extensions = {**request.extensions, "trace": watch.trace}
        try:
            response = self._inner.handle_request(request)
        except (httpx2.NetworkError, httpx2.RemoteProtocolError, httpx2.TimeoutException) as exc:
            watch.cancel()
            if watch.fired:
                raise Deadline("no reply in time") from exc
            if isinstance(exc, (httpx2.ConnectError, httpx2.TimeoutException)):
                raise
            if isinstance(exc, httpx2.RemoteProtocolError) and "without sending a response" not in str(exc):
                raise Garbled(f"an answer that is not HTTP ({one_line(str(exc), 120)})") from exc
            raise NoAnswer(str(exc) or type(exc).__name__) from exc
        except BaseException:
            watch.cancel()
            raise
        self.answered += 1
        try:
            announced = _announced_length(response, self.max_bytes)
        except ReplyFailure:
            watch.cancel()
            response.close()
            raise
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_CappedStream(response.stream, self.max_bytes, watch, announced),  # type: ignore[arg-type]
                               extensions=response.extensions)

    def close(self) -> None:
        self._inner.close()


def _announced_length(response: httpx2.Response, limit: int) -> int | None:
    """Content-Length, refused before a byte is read when it is over `limit`; a compressed
    body is refused too (it was not asked for, and its size says nothing)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Compressed(f"a {encoding}-compressed reply although none was asked for")
    value = response.headers.get("content-length", "")
    if not value.strip().isdigit():
        return None
    announced = int(value)
    if announced > limit:
        raise TooLarge(f"a {announced:,}-byte reply (limit {limit:,}); not read")
    return announced


def bounded_client(base_url: str, api_key: str, timeout_s: float,
                   max_bytes: int) -> tuple[openai.OpenAI, BoundedTransport]:
    """An openai client whose every request is bounded in bytes and time."""
    transport = BoundedTransport(base_url, deadline_s=timeout_s, max_bytes=max_bytes)
    http = httpx2.Client(transport=transport, timeout=timeout_s, trust_env=False)
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0,
                           http_client=http)
    return client, transport


