"""Test stand-ins for the LLM services the Creative Director talks to (real HTTP on 127.0.0.1).

Why: cgpu serve and Ollama are not reachable where tests run; these follow their contracts
(see /work/shared/notes/cgpu.md) so the engine's clients are tested against real HTTP.
`hostile_llm` breaks those contracts on purpose, one way per scripted behaviour.
"""

from .cgpu_serve import (
    CgpuServeStandIn,
    Error,
    RecordedRequest,
    Reply,
    Text,
    auth_error,
    cli_error,
    cli_failure,
    cli_missing,
    empty_response,
    gemini_json_error,
    invalid_json,
    quota_exceeded,
)
from .fake_cgpu import free_port, install_fake_cgpu
from .hostile_llm import Flood, Hangup, HostileLLM, Raw, Silent, Trickle, Truncated
from .ollama import OllamaStandIn

__all__ = [
    "CgpuServeStandIn",
    "Error",
    "Flood",
    "Hangup",
    "HostileLLM",
    "OllamaStandIn",
    "Raw",
    "RecordedRequest",
    "Reply",
    "Silent",
    "Text",
    "Trickle",
    "Truncated",
    "auth_error",
    "cli_error",
    "cli_failure",
    "cli_missing",
    "empty_response",
    "free_port",
    "gemini_json_error",
    "install_fake_cgpu",
    "invalid_json",
    "quota_exceeded",
]
