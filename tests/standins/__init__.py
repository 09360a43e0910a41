"""Test stand-ins for the LLM services the Creative Director talks to (real HTTP on 127.0.0.1).

Why: cgpu serve and Ollama are not reachable where tests run; these follow their contracts
(see /work/shared/notes/cgpu.md) so the engine's clients are tested against real HTTP.
"""

from .cgpu_serve import (
    CgpuServeStandIn,
    Error,
    RecordedRequest,
    Reply,
    Text,
    cli_error,
    cli_failure,
    cli_missing,
    empty_response,
    invalid_json,
    quota_exceeded,
)
from .fake_cgpu import free_port, install_fake_cgpu
from .ollama import OllamaStandIn

__all__ = [
    "CgpuServeStandIn",
    "Error",
    "OllamaStandIn",
    "RecordedRequest",
    "Reply",
    "Text",
    "cli_error",
    "cli_failure",
    "cli_missing",
    "empty_response",
    "free_port",
    "install_fake_cgpu",
    "invalid_json",
    "quota_exceeded",
]
