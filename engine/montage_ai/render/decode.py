"""Source frames for a span, chosen by the one rule (frame_rule.py) from the frames' own
timestamps, so mixed rates, variable frame rate and non-zero start times need no special case.

The renderer decodes with PyAV instead of handing ffmpeg a seek and an `fps` filter: ffmpeg's
seek rounding and its fps filter (which takes the last frame starting before half an output
frame later) disagree with the rule MLT, Kdenlive and the exports follow. Each span seeks to the
keyframe before its first needed frame, so only the GOP lead-in is decoded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from montage_otio.names import one_line

from ..errors import RenderError
from ..media.probe import display_rotation, open_media, pick_video_stream
from .frame_rule import select

# Seek this far before the first frame needed, then further back if the seek landed after it
# (a sparse index); None: decode from the start. The keyframe found covers the rest.
SEEK_PREROLLS_S = (Fraction(1, 8), Fraction(2), Fraction(10), None)
# Frames this far before the first one needed are decoded only when other frames refer to them
# (skip_frame NONREF): the GOP lead-in costs less.
FULL_DECODE_BEFORE_S = Fraction(1, 2)


@dataclass(frozen=True)
class SourceClock:
    """Where a source's media time zero lies: its first presented frame's timestamp."""

    zero_pts: int
    time_base: Fraction
    rotation_deg: int

    @property
    def zero_time(self) -> Fraction:
        """Media time zero on the file's own clock (stream seconds): where its sound lines up."""
        return self.zero_pts * self.time_base

    def media_time(self, pts: int) -> Fraction:
        return (pts - self.zero_pts) * self.time_base


def _fail(path: Path, why: str) -> RenderError:
    return RenderError(f"{one_line(str(path))}: {why}")


def source_clock(path: Path) -> SourceClock:
    """Decode the first frame of `path`'s footage stream: its timestamp is media time zero."""
    try:
        with open_media(path) as container:
            stream = pick_video_stream(container)
            if stream is None:
                raise _fail(path, "no video stream")
            for frame in container.decode(stream):
                if frame.pts is not None:
                    return SourceClock(zero_pts=frame.pts, time_base=Fraction(frame.time_base),
                                       rotation_deg=display_rotation(frame, stream))
    except av.FFmpegError as exc:
        raise _fail(path, f"cannot decode ({exc})") from exc
    raise _fail(path, "no decodable video frame")


def span_frames(path: Path, clock: SourceClock, targets: list[Fraction]) -> Iterator[av.VideoFrame]:
    """One decoded frame per target media time (non-decreasing), by the rule. A seek that lands
    after the first target's nearest frame is retried further back, then from the start."""
    if not targets:
        return
    for preroll in SEEK_PREROLLS_S:
        timed = _timed_frames(path, clock, None if preroll is None else targets[0] - preroll,
                              full_from=targets[0] - FULL_DECODE_BEFORE_S)
        first = next(timed, None)
        if first is None:
            raise _fail(path, "no video frames at or after the in-point")
        landed_early_enough = first[0] <= targets[0] or preroll is None
        if landed_early_enough:
            yield from select(itertools.chain([first], timed), targets)
            return
        timed.close()


def _timed_frames(path: Path, clock: SourceClock, seek_to: Fraction | None,
                  full_from: Fraction | None = None) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    """(media time, frame) from the keyframe before `seek_to` (None or <= 0: the start). Before
    media time `full_from` only reference frames are decoded: the others are never shown."""
    try:
        with open_media(path) as container:
            stream = pick_video_stream(container)
            if stream is None:
                raise _fail(path, "no video stream")
            # one thread: the render already decodes one span per chunk worker in parallel, and a
            # frame-threaded decoder holds a picture per thread (1080p: 3 MB each) for little gain
            stream.thread_count = 1
            ctx = stream.codec_context
            if seek_to is not None and seek_to > 0:
                pts = clock.zero_pts + int(seek_to / clock.time_base)
                container.seek(pts, stream=stream, backward=True, any_frame=False)
            full_pts = None if full_from is None else clock.zero_pts + int(full_from / clock.time_base)
            skipping = full_pts is not None
            if skipping:
                ctx.skip_frame = "NONREF"
            last = None
            for packet in container.demux(stream):
                if skipping and (packet.pts is None or packet.pts >= full_pts):
                    ctx.skip_frame = "DEFAULT"
                    skipping = False
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    t = clock.media_time(frame.pts)
                    if last is not None and t < last:
                        continue          # a damaged file's out-of-order frame: keep presentation order
                    last = t
                    yield t, frame
    except av.FFmpegError as exc:
        raise _fail(path, f"cannot decode ({exc})") from exc
