"""Decoding for shot analysis: small frames from PyAV, streamed one at a time.

Two ways to read a clip:
  `decode_small_frames(media, reference_only=True)`: the first pass. Frames that no other frame
      refers to (non-reference B-frames; about 45% of an x264 stream) are skipped by the decoder
      without being decoded (`skip_frame = NONREF`), so the pass costs about two thirds of a
      full decode and yields every picture the codec keeps as a reference. Streams without such
      frames (intra-only, P-only) are decoded in full, as before.
  `decode_windows(media, windows)`: every frame inside the given time windows, for the few
      places where the first pass must be made exact (a cut between two frames it did not see
      both sides of). Windows close together are read in one forward run; farther ones after a
      seek to the keyframe before them. Frames before a window are decoded reference-only.
Both skip the in-loop deblocking filter on codecs that have one: invisible at 160 px, and up to
a third of the decode time.

The first pass also decodes, after all, the non-reference frames right after (in decode order)
a predicted frame whose packet is several times larger than those before it (`CutHint`): a hard
cut makes the first predicted frame after it mostly intra-coded, and the non-reference frames
that follow its packet are the ones between the two reference frames on screen, the cut's
neighbourhood. They come out marked `extra`, apart from the reference-only series; where the
second pass needs them they spare it a seek and a re-decode from the keyframe, and a cut the
hint misses is still read there. H.264 and HEVC only (a packet's NAL header says whether
other frames refer to it).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from montage_otio.names import one_line

from ..errors import MediaError
from ..media.probe import MediaInfo, open_media, pick_video_stream
from .text import TEXT_WIDTH

ANALYSIS_WIDTH = 160                # px; every frame is scaled to this width for the features
MIN_HEIGHT = 18                     # two rows per cell of the 16x9 colour signature
SEEK_AHEAD_S = 1.0                  # a window further ahead than this is reached by a seek
_SKIP_LOOP_FILTER_CODECS = frozenset({"h264", "hevc", "vp8", "vp9"})


class SmallFrame(NamedTuple):
    """One decoded frame as the detectors see it."""

    time_s: float               # seconds from the clip start
    rgb: np.ndarray             # (h, w, 3) uint8, ANALYSIS_WIDTH wide
    key_frame: bool = False     # an intra frame: compression quality may jump here
    extra: bool = False         # a non-reference frame a reference-only pass decoded on CutHint's word
    detail: np.ndarray | None = None  # the same frame TEXT_WIDTH wide, on the text-sampling grid only


def decode_small_frames(media: MediaInfo, width: int = ANALYSIS_WIDTH, problems: list[str] | None = None,
                        reference_only: bool = False, threads: bool = True,
                        detail_every: float | None = None) -> Iterator[SmallFrame]:
    """Yield every frame (or every reference frame), small, with its time from the clip start.

    A decode error after some frames ends the stream (recorded in `problems`); before any
    frame it is a MediaError. `threads`: the decoder's own frame threads (for a clip read
    alone on an idle machine); without, one thread (less CPU per frame). `detail_every`: the
    first frame at or after each multiple of this many seconds also comes TEXT_WIDTH wide.
    """
    with _open(media, threads) as (container, stream):
        reader = _Reader(media, stream, width, detail_every)
        hint = CutHint.for_stream(stream) if reference_only else None
        if reference_only and hint is None:
            stream.codec_context.skip_frame = "NONREF"
        frames = _decoded(container, stream, hint)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                if reader.count == 0:
                    raise MediaError(f"{one_line(str(media.path))}: cannot decode video ({_reason(exc)})") from exc
                if problems is not None:
                    problems.append(f"decoding stopped after {reader.count} frames: {_reason(exc)}")
                return
            yield reader.small(frame, extra=hint is not None and hint.take(frame.pts))


def decode_windows(media: MediaInfo, windows: Sequence[tuple[float, float]], width: int = ANALYSIS_WIDTH,
                   reference_only: bool = False, threads: bool = False,
                   detail_every: float | None = None) -> Iterator[SmallFrame]:
    """Every frame (or every reference frame) whose time from the clip start lies in one of
    `windows` ([t0, t1), sorted, not overlapping), in order. Frames before a window are decoded
    only as far as the codec needs them (reference frames) and not scaled. Decode errors
    propagate (av.FFmpegError, OSError)."""
    if not windows:
        return
    with _open(media, threads) as (container, stream):
        ctx = stream.codec_context
        tb = float(stream.time_base) if stream.time_base else 0.0
        step = 1.0 / float(media.fps) if media.fps_num else 1.0 / 25.0
        hint = CutHint.for_stream(stream) if reference_only else None
        inside = "NONREF" if reference_only else "DEFAULT"
        reader = _Reader(media, stream, width, detail_every)
        k, pos = 0, None        # next window; time of the last frame decoded (None: must seek)
        while k < len(windows):
            t0 = windows[k][0]
            if pos is None or t0 - pos > SEEK_AHEAD_S or pos >= t0:
                target = max(0.0, t0) + media.start_time_s
                if tb:
                    container.seek(int(target / tb), stream=stream, backward=True, any_frame=False)
                else:   # no stream time base: seek in the container's (AV_TIME_BASE) units
                    container.seek(int(target * av.time_base), backward=True, any_frame=False)
                reader.last_t = None
                if hint is not None:
                    hint.restart()
            far = passed = False
            for packet in container.demux(stream):
                wanted = hint.skip_for(packet) if hint is not None else inside
                if packet.pts is not None and tb:
                    pt = packet.pts * tb - media.start_time_s
                    near = any(a - step <= pt < b + step for a, b in windows[k:k + 4])
                    ctx.skip_frame = wanted if near else "NONREF"
                else:
                    ctx.skip_frame = wanted
                for frame in packet.decode():
                    t = reader.time(frame)
                    pos = t
                    while k < len(windows) and t >= windows[k][1]:
                        k += 1
                        passed = True
                    extra = hint is not None and hint.take(frame.pts)
                    if k < len(windows) and windows[k][0] <= t:
                        yield reader.small(frame, t, extra)
                if k >= len(windows):
                    return
                if passed and pos is not None and windows[k][0] - pos > SEEK_AHEAD_S:
                    far = True
                    break       # the next window is far: seek to it
            if not far:
                return          # end of the stream


class CutHint:
    """Which frames a reference-only pass decodes after all, judged from packets before they
    are decoded: the non-reference frames that follow (in decode order) a predicted frame at
    least RATIO times the median size of the last predicted frames. Keyframes are large by
    nature and open nothing. Only a speed hint: what it misses, the second pass reads."""

    RATIO = 3.0
    HISTORY = 12
    MIN_HISTORY = 3

    def __init__(self, codec: str, length_size: int) -> None:
        self.codec = codec
        self.length_size = length_size      # bytes of each NAL length prefix; 0: start codes
        self.sizes: deque[int] = deque(maxlen=self.HISTORY)
        self.extra_pts: set[int] = set()
        self.restart()

    @classmethod
    def for_stream(cls, stream: av.video.stream.VideoStream) -> CutHint | None:
        """A hint for an H.264 or HEVC stream whose packets it can read; else None."""
        ctx = stream.codec_context
        if ctx.name not in _NAL_CODECS:
            return None
        data = bytes(ctx.extradata or b"")
        if not data or data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
            return cls(ctx.name, 0)
        at = 4 if ctx.name == "h264" else 21          # lengthSizeMinusOne in avcC / hvcC
        if data[0] != 1 or len(data) <= at:
            return None
        return cls(ctx.name, (data[at] & 3) + 1)

    def restart(self) -> None:
        """After a seek: decode order starts again (the size history stays)."""
        self.max_pts: int | None = None
        self.open = False
        self.extra_pts.clear()

    def skip_for(self, packet: av.Packet) -> str:
        """The decoder's skip_frame for this packet."""
        pts = packet.pts
        if pts is None:
            return "NONREF"
        if self.max_pts is None or pts > self.max_pts:     # shown after every packet before it: I or P
            self.max_pts = pts
            if packet.is_keyframe:
                self.open = False
            else:
                size = packet.size
                self.open = len(self.sizes) >= self.MIN_HISTORY and size >= self.RATIO * statistics.median(self.sizes)
                self.sizes.append(size)
            return "NONREF"
        if self.open and is_reference(bytes(packet), self.codec, self.length_size) is False:
            self.extra_pts.add(pts)
            return "DEFAULT"
        return "NONREF"

    def take(self, pts: int | None) -> bool:
        """Whether the frame with this pts came from a packet the hint opened."""
        if pts is None or pts not in self.extra_pts:
            return False
        self.extra_pts.discard(pts)
        return True


_NAL_CODECS = frozenset({"h264", "hevc"})


def _nal_starts(data: bytes, length_size: int) -> Iterator[int]:
    """Offsets of the NAL unit headers in one packet (length-prefixed, or Annex B start codes)."""
    if length_size:
        i = 0
        while i + length_size < len(data):
            n = int.from_bytes(data[i:i + length_size], "big")
            i += length_size
            if n <= 0 or i + n > len(data):
                return
            yield i
            i += n
    else:
        i = data.find(b"\x00\x00\x01")
        while 0 <= i and i + 3 < len(data):
            yield i + 3
            i = data.find(b"\x00\x00\x01", i + 3)


def is_reference(data: bytes, codec: str, length_size: int) -> bool | None:
    """Whether other frames may refer to this packet's picture, from its first slice's NAL
    header (what the decoder's skip_frame=NONREF reads); None without a slice."""
    for i in _nal_starts(data, length_size):
        b = data[i]
        if codec == "h264":
            if b & 0x1F in (1, 5):                      # coded slice
                return (b >> 5) & 3 != 0                # nal_ref_idc
        else:
            kind = (b >> 1) & 0x3F
            if kind <= 31:                              # VCL: the _N types (even, <= 14) are not referenced
                return not (kind <= 14 and kind % 2 == 0)
    return None


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             hint: CutHint | None) -> Iterator[av.VideoFrame]:
    """Every frame of `stream`; with a hint, reference frames and what the hint opens."""
    ctx = stream.codec_context
    for packet in container.demux(stream):
        if hint is not None:
            ctx.skip_frame = hint.skip_for(packet)
        yield from packet.decode()


class _Reader:
    """Scales decoded frames and gives them monotonic times from the clip start."""

    def __init__(self, media: MediaInfo, stream: av.video.stream.VideoStream, width: int,
                 detail_every: float | None = None):
        self.media = media
        self.size = _small_size(stream.codec_context.width, stream.codec_context.height, width)
        self.detail_size = _small_size(stream.codec_context.width, stream.codec_context.height, TEXT_WIDTH)
        self.detail_every = detail_every
        self.next_detail: float | None = None
        self.scaler = VideoReformatter()
        self.step = 1.0 / float(media.fps) if media.fps_num else 1.0 / 25.0
        self.last_t: float | None = None
        self.count = 0

    def time(self, frame: av.VideoFrame) -> float:
        """The frame's time from the clip start, made monotonic."""
        t = float(frame.time) - self.media.start_time_s if frame.time is not None else None
        if t is None or (self.last_t is not None and t <= self.last_t):
            t = (self.last_t + self.step) if self.last_t is not None else 0.0
        self.last_t = t
        return t

    def small(self, frame: av.VideoFrame, t: float | None = None, extra: bool = False) -> SmallFrame:
        if t is None:
            t = self.time(frame)
        w, h = self.size
        small = self.scaler.reformat(frame, w, h, "rgb24", interpolation="AREA", threads=1)
        self.count += 1
        return SmallFrame(t, small.to_ndarray(), bool(frame.key_frame), extra,
                          None if extra else self._detail(frame, t))

    def _detail(self, frame: av.VideoFrame, t: float) -> np.ndarray | None:
        """The frame TEXT_WIDTH wide when it is the first at or after a multiple of
        `detail_every` (a grid in clip time, so parts read in parallel sample alike)."""
        every = self.detail_every
        if not every or (self.next_detail is not None and t < self.next_detail - 1e-6):
            return None
        self.next_detail = (math.floor(t / every + 1e-6) + 1) * every
        w, h = self.detail_size
        return self.scaler.reformat(frame, w, h, "rgb24", interpolation="AREA", threads=1).to_ndarray()


class _open:
    """The clip's container and video stream, deblocking skipped; frame threads or one thread."""

    def __init__(self, media: MediaInfo, threads: bool = True):
        self.media = media
        self.threads = threads

    def __enter__(self):
        path = self.media.path
        try:
            self.container = open_media(path)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"{one_line(str(path))}: cannot open for analysis ({_reason(exc)})") from exc
        try:
            stream = _video_stream(self.container, self.media)
        except BaseException:
            self.container.close()
            raise
        if self.threads:
            stream.thread_type = "AUTO"
        else:
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = 1
        if stream.codec_context.name in _SKIP_LOOP_FILTER_CODECS:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        return self.container, stream

    def __exit__(self, *exc):
        self.container.close()
        return False


def _video_stream(container: av.container.InputContainer, media: MediaInfo) -> av.video.stream.VideoStream:
    if 0 <= media.video_stream_index < len(container.streams):
        s = container.streams[media.video_stream_index]
        if s.type == "video":
            return s
    s = pick_video_stream(container)
    if s is None:
        raise MediaError(f"{one_line(str(media.path))}: no video stream to analyse")
    return s


def _small_size(w: int, h: int, width: int) -> tuple[int, int]:
    if w <= 0 or h <= 0:
        return width, width * 9 // 16
    return width, max(MIN_HEIGHT, int(round(width * h / w / 2)) * 2)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__
