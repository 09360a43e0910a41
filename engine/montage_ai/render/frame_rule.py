"""The one source-frame rule (docs/frame-rule.md), in exact arithmetic.

At a clip's output frame k the source time is t_k = in + k / R; the frame shown is the source
frame whose presentation time is nearest to t_k, the later one on a tie, the last one past the
end. Functional and media-free, so the rule is tested on its own and every consumer (the
renderer, exports, Blender's retiming) computes the same indices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")


def source_times(in_point: Fraction, frames: int, out_fps: Fraction) -> list[Fraction]:
    """t_k for k in 0..frames-1: the media times a clip's output frames stand for."""
    step = 1 / out_fps
    return [in_point + k * step for k in range(frames)]


def cfr_index(t: Fraction, rate: Fraction) -> int:
    """The frame a constant-rate source at `rate` shows at media time `t`: floor(t*rate + 1/2)
    (MLT's `(int64_t)(position / fps * source_fps + 0.5)`, without its float rounding)."""
    return max(0, math.floor(Fraction(t) * rate + Fraction(1, 2)))


def nearer_is_next(current: Fraction, following: Fraction, t: Fraction) -> bool:
    """Whether the frame at `following` is at least as near to `t` as the one at `current`
    (ties go to the later frame)."""
    return abs(following - t) <= abs(current - t)


def select(frames: Iterable[tuple[Fraction, T]], targets: Iterable[Fraction]) -> Iterator[T]:
    """For each target time (non-decreasing), the frame nearest to it from `frames`, a stream
    of (presentation time, frame) in presentation order. Reads one frame ahead at most, so it
    runs over a decoder without holding the clip in memory; holds the last frame past the end."""
    it = iter(frames)
    current = next(it, None)
    if current is None:
        return
    ahead = next(it, None)
    for t in targets:
        while ahead is not None and nearer_is_next(current[0], ahead[0], t):
            current, ahead = ahead, next(it, None)
        yield current[1]
