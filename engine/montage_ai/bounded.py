"""Untrusted JSON (LLM replies, timelines from other tools, remote result lines) is checked for
size and nesting before any parser sees it.

Python's json module recurses per nesting level (RecursionError on a deep reply) and OTIO's
C++ reader does too, where it ends in a segmentation fault with no message at all. One linear
scan over the text, outside any parser, finds the depth first.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64


class BoundsError(ValueError):
    """Text too large or too deeply nested to parse safely; the message says which."""


def nesting_depth(text: str, stop_at: int | None = None) -> int:
    """The deepest [ / { nesting in JSON text, brackets inside strings ignored. Stops counting
    once `stop_at` is exceeded (the answer is then stop_at + 1)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def check_json_text(text: str, *, what: str, max_chars: int, max_depth: int = MAX_DEPTH) -> None:
    """Raise BoundsError naming `what` when `text` is longer than `max_chars` or nested deeper
    than `max_depth`."""
    if len(text) > max_chars:
        raise BoundsError(f"{what} is {len(text):,} characters, more than the {max_chars:,} allowed")
    depth = nesting_depth(text, stop_at=max_depth)
    if depth > max_depth:
        raise BoundsError(f"{what} is nested more than {max_depth} levels deep")


def _reject_constant(name: str) -> Any:
    raise BoundsError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BoundsError(f"{text} is out of range")
    return value


def loads(text: str, *, what: str, max_chars: int, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads after the bounds check; NaN and Infinity are rejected rather than parsed
    (a float('inf') beat count ends in OverflowError far from here)."""
    check_json_text(text, what=what, max_chars=max_chars, max_depth=max_depth)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except BoundsError as exc:
        raise BoundsError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, or an integer too long to convert
        raise BoundsError(f"{what} is not valid JSON ({exc})") from None


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
