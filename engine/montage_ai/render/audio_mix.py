"""The soundtrack as 48 kHz stereo float PCM, sample-exact by construction.

Every span (the music, and with keep-clip-audio each clip's own sound) is decoded with PyAV,
resampled once as one continuous stream, and added at its exact sample position into a file
that is as long as the picture, sample for sample. The encoder then only encodes it: no filter
graph meets the picture's timestamps, so the mix cannot drift, and two renders of one timeline
give identical samples. Positions are exact fractions rounded once to a sample.

The file is written through a memory map in blocks, so a long montage costs disk, not memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from montage_otio.names import one_line

from ..errors import RenderError
from ..media.audio_blocks import drop_leading, resampled
from ..media.probe import open_media
from ..timeline.model import RenderSpec

SAMPLE_RATE = 48000
CHANNELS = 2
CLIP_AUDIO_GAIN = 0.35          # the clips' own sound, ducked under the music
BLOCK = 1 << 16                 # samples mixed per step
# containers whose timestamps after a seek are exact; anything else (MP3, raw AAC) is decoded
# from its start, where the decoder's own sample count is the clock
EXACT_SEEK_FORMATS = {"mov", "mp4", "m4a", "3gp", "matroska", "webm", "wav"}
SEEK_PREROLL_S = Fraction(2)


def samples_at(t: Fraction) -> int:
    """The sample index of time `t` (round half up, as frames are)."""
    return math.floor(Fraction(t) * SAMPLE_RATE + Fraction(1, 2))


def total_samples(spec: RenderSpec) -> int:
    return samples_at(Fraction(spec.total_frames) / spec.settings.fps)


def first_audio_time(path: Path) -> Fraction:
    """The stream time of a song's first decoded sample: its media time zero (what librosa and
    every editor call 0 s; an MP3's encoder delay is already skipped by the decoder)."""
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                return Fraction(0)
            stream = container.streams.audio[0]
            tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, stream.rate or SAMPLE_RATE)
            for frame in container.decode(stream):
                return Fraction(frame.pts) * tb if frame.pts is not None else Fraction(0)
    except av.FFmpegError as exc:
        raise RenderError(f"{one_line(str(path))}: cannot decode its audio ({exc})") from exc
    return Fraction(0)


def _exact_seek(container: av.container.InputContainer) -> bool:
    return bool(set(container.format.name.split(",")) & EXACT_SEEK_FORMATS)


def stream_samples(path: Path, start: Fraction, count: int) -> Iterator[np.ndarray]:
    """`count` stereo float32 samples of `path`'s first audio stream from absolute stream time
    `start` (seconds on the file's own clock), in blocks; silence past its end."""
    given = 0
    try:
        for block in _decoded_from(path, start, count):
            take = block[: count - given]
            given += len(take)
            yield take
            if given >= count:
                return
    except av.FFmpegError as exc:
        raise RenderError(f"{one_line(str(path))}: cannot decode its audio ({exc})") from exc
    while given < count:
        n = min(BLOCK, count - given)
        given += n
        yield np.zeros((n, CHANNELS), np.float32)


def _decoded_from(path: Path, start: Fraction, count: int) -> Iterator[np.ndarray]:
    with open_media(path) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, stream.rate or SAMPLE_RATE)
        if _exact_seek(container) and start > SEEK_PREROLL_S:
            container.seek(int((start - SEEK_PREROLL_S) / tb), stream=stream, backward=True)
        frames = iter(container.decode(stream))
        first = next(frames, None)
        if first is None:
            return
        first_t = Fraction(first.pts) * tb if first.pts is not None else Fraction(0)
        skip = samples_at(start) - samples_at(first_t)     # negative: silence before the first sample
        if skip < 0:
            yield np.zeros((-skip, CHANNELS), np.float32)
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE)
        yield from drop_leading(resampled(itertools.chain([first], frames), resampler, CHANNELS), max(0, skip))


def _add(mix: np.ndarray, at: int, blocks: Iterator[np.ndarray], gain: np.ndarray | float = 1.0) -> None:
    """Add `blocks` into `mix` from sample `at`; `gain` is a scalar or one value per sample."""
    pos = at
    for block in blocks:
        end = min(pos + len(block), len(mix))
        if end <= pos:
            return
        g = gain if np.isscalar(gain) else gain[pos - at: end - at, None]
        mix[pos:end] += block[: end - pos] * g
        pos = end


def _ramp(n: int, fade: int, fade_in: bool = False) -> np.ndarray:
    """Per-sample gain: 1, then a linear fade over the last `fade` samples (or first, fading in)."""
    g = np.ones(n, np.float32)
    if fade > 0:
        ramp = np.linspace(1.0, 0.0, fade, endpoint=False, dtype=np.float32)
        if fade_in:
            g[:fade] = ramp[::-1]
        else:
            g[n - fade:] = ramp
    return g


def mix_to_pcm(spec: RenderSpec, out: Path, clip_origins: dict[Path, Fraction]) -> int:
    """Write the soundtrack of `spec` to `out` as raw f32le stereo at 48 kHz; return its length in
    samples. `clip_origins` maps each picture source to the stream time of its media time zero
    (its first frame), so its sound stays in sync with its picture."""
    n = total_samples(spec)
    if n <= 0:
        out.write_bytes(b"")
        return 0
    mix = np.memmap(out, mode="w+", dtype=np.float32, shape=(n, CHANNELS))
    for a in spec.audio:
        r0 = samples_at(a.record_start)
        length = samples_at(a.record_start + a.duration) - r0
        if length <= 0:
            continue
        fade = min(length, samples_at(Fraction(a.fade_out_s))) if a.fade_out_s > 0 else 0
        start = first_audio_time(a.path) + a.source_start
        _add(mix, r0, stream_samples(a.path, start, length), _ramp(length, fade))
    if spec.settings.keep_clip_audio:
        fps = spec.settings.fps
        for p in spec.pieces:
            r0 = samples_at(Fraction(p.record_start_frame) / fps)
            length = samples_at(Fraction(p.record_start_frame + p.frames) / fps) - r0
            sides = [(p.a, "out" if p.kind == "dissolve" else None), (p.b, "in")] if p.kind != "black" else []
            for span, fading in sides:
                if span is None:
                    continue
                gain = CLIP_AUDIO_GAIN * (_ramp(length, length, fade_in=fading == "in") if fading else 1.0)
                start = clip_origins.get(span.path, Fraction(0)) + span.start
                _add(mix, r0, stream_samples(span.path, start, length), gain)
    mix.flush()
    del mix
    return n
