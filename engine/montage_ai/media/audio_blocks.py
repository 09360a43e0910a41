"""Decoded audio as a stream of sample blocks: the one resample-and-trim loop the music
analysis and the render's mixer share. Functional: iterators in, iterators out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import av
import numpy as np


def resampled(frames: Iterable[av.AudioFrame], resampler: av.AudioResampler, channels: int) -> Iterator[np.ndarray]:
    """Blocks of shape (n, channels) (n for mono), the resampler flushed at the end. The output
    is contiguous: sample k sits at the first frame's time + k / rate."""
    shape = (-1, channels) if channels > 1 else (-1,)
    for frame in frames:
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(shape)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(shape)


def drop_leading(blocks: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """The blocks without their first `count` samples (empty blocks left out)."""
    count = max(0, count)
    for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        if count:
            block, count = block[count:], 0
        yield block
