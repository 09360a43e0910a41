"""Probe a media file with PyAV -> MediaInfo.

PyAV bundles FFmpeg's libraries, so probing needs no ffprobe binary. The frame rate is kept
exact (30000/1001 stays 30000/1001) because every later time computation is in whole frames.
Probing decodes the first video frame: that proves the file is readable, and it is where FFmpeg
puts the display matrix (rotation) in PyAV 18, which exposes no stream-level side data.

Some valid files declare no duration at all: a WebM or Matroska file written to a pipe or by a
live recorder never goes back to fill it in. Their duration is then measured by demuxing the
packets (no decoding, bounded) to the end of the last one.

A file name may hold any byte; messages show it on one line (montage_otio.names.one_line), and
a name that is not valid UTF-8 is refused here, naming the file: timelines, plans, caches and
reports store names as UTF-8 text and could not write it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from pydantic import BaseModel, ConfigDict

from montage_otio.names import one_line

from ..errors import MediaError

# Rates cameras and editors actually use; a measured rate within 0.02 % snaps to one of these.
STANDARD_RATES = tuple(Fraction(r) for r in (
    "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60",
    "100", "120000/1001", "120", "15", "12", "240",
))
VFR_SAMPLE_PACKETS = 200
VFR_MIN_SHARE = 0.02          # share of irregular timestamp steps that makes a stream VFR
DURATION_SCAN_PACKETS = 2_000_000   # bound on the packets demuxed to measure an undeclared duration


class MediaInfo(BaseModel):
    """What the rest of the engine needs to know about one file."""

    model_config = ConfigDict(frozen=True)

    path: Path                      # absolute
    size_bytes: int
    mtime_ns: int
    duration_s: float               # container duration (else measured from the packets), seconds
    start_time_s: float = 0.0       # first video (else audio) timestamp; times elsewhere are relative to it
    has_video: bool
    width: int = 0                  # display size, after rotation
    height: int = 0
    fps_num: int = 0                # exact average frame rate as a fraction
    fps_den: int = 1
    frame_count: int = 0            # decoded or estimated number of video frames
    rotation_deg: int = 0           # display rotation (0, 90, 180, 270), counter-clockwise as ffmpeg's
                                    # -display_rotation and PyAV's VideoFrame.rotation
    variable_frame_rate: bool = False
    video_codec: str = ""
    has_audio: bool = False
    audio_codec: str = ""
    audio_sample_rate: int = 0
    audio_channels: int = 0
    coded_width: int = 0            # decoded picture size, before rotation
    coded_height: int = 0
    video_stream_index: int = -1    # container stream index of the video used (-1: none)
    audio_stream_index: int = -1

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den) if self.fps_num else Fraction(0)


def probe(path: Path) -> MediaInfo:
    """Open `path` with PyAV and describe it; raise MediaError naming the file on failure."""
    path = Path(path).expanduser().absolute()
    shown = one_line(str(path))
    if not path.exists():
        raise MediaError(f"{shown}: no such file")
    if not path.is_file():
        raise MediaError(f"{shown}: not a regular file")
    if not _utf8_name(path):
        raise MediaError(f"{shown}: the file name is not valid UTF-8 (timelines and reports store names "
                         "as UTF-8 text); rename the file")
    stat = path.stat()
    if stat.st_size == 0:
        raise MediaError(f"{shown}: file is empty")
    try:
        with open_media(path) as container:
            info = _describe(container, path, stat.st_size, stat.st_mtime_ns)
        if info.duration_s <= 0:
            info = info.model_copy(update=_measured_duration(path, info))
        return info
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"{shown}: cannot read media ({_reason(exc)})") from exc


def open_media(path: Path) -> av.container.InputContainer:
    """av.open for reading, tolerant of undecodable metadata where the PyAV in use supports
    saying so (the `metadata_errors` argument is gone from newer PyAV)."""
    try:
        return av.open(str(path), metadata_errors="ignore")
    except TypeError:
        return av.open(str(path))


def _utf8_name(path: Path) -> bool:
    """Whether the path's bytes are UTF-8 (undecodable bytes come as lone surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_real_video(stream: av.stream.Stream) -> bool:
    """A video stream that is footage, not cover art or a thumbnail attached to a song."""
    if stream.type != "video":
        return False
    disp = stream.disposition
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails
    return not (disp & still)


def pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The default (else first) footage stream, skipping attached pictures."""
    videos = [s for s in container.streams.video if is_real_video(s)]
    if not videos:
        return None
    default = [s for s in videos if s.disposition & av.stream.Disposition.default]
    return (default or videos)[0]


def _describe(container: av.container.InputContainer, path: Path, size: int, mtime_ns: int) -> MediaInfo:
    video = pick_video_stream(container)
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise MediaError(f"{one_line(str(path))}: no audio or video stream")
    fields: dict = dict(path=path, size_bytes=size, mtime_ns=mtime_ns, has_video=video is not None)
    if audio is not None:
        fields.update(_audio_fields(audio))
    start = _start_seconds(video if video is not None else audio, container)
    duration = _duration_seconds(container, video if video is not None else audio)
    fields.update(start_time_s=start, duration_s=duration)
    if video is not None:
        fields.update(_video_fields(container, video, path, duration))
    else:
        _check_audio_decodes(container, audio, path)
    return MediaInfo(**fields)


def _audio_fields(audio: av.audio.stream.AudioStream) -> dict:
    ctx = audio.codec_context
    return dict(
        has_audio=True,
        audio_codec=_codec_name(ctx),
        audio_sample_rate=int(ctx.sample_rate or 0),
        audio_channels=int(ctx.channels or 0),
        audio_stream_index=audio.index,
    )


def _video_fields(container: av.container.InputContainer, video: av.video.stream.VideoStream,
                  path: Path, duration: float) -> dict:
    first, pts = _first_frame_and_pts(container, video, path)
    vfr = is_variable_rate(pts_steps(pts))
    fps = _frame_rate(video, vfr)
    rotation = display_rotation(first, video)
    w, h = first.width, first.height
    dw, dh = (h, w) if rotation in (90, 270) else (w, h)
    frames = int(video.frames or 0)
    if frames <= 0 and fps > 0:
        own = float(video.duration * video.time_base) if video.duration and video.time_base else 0.0
        frames = int(round((own or duration) * fps))
    return dict(
        width=dw, height=dh, coded_width=w, coded_height=h,
        fps_num=fps.numerator, fps_den=fps.denominator,
        frame_count=frames, rotation_deg=rotation, variable_frame_rate=vfr,
        video_codec=_codec_name(video.codec_context), video_stream_index=video.index,
    )


def display_rotation(first: av.VideoFrame, video: av.video.stream.VideoStream) -> int:
    """Counter-clockwise display rotation in quarter turns: the display matrix FFmpeg attaches
    to decoded frames, else a legacy clockwise `rotate` tag."""
    degrees = first.rotation
    if not degrees:
        try:
            degrees = -int(float(video.metadata.get("rotate", "0")))
        except ValueError:
            degrees = 0
    return round(degrees / 90) * 90 % 360


def _first_frame_and_pts(container: av.container.InputContainer, video: av.video.stream.VideoStream,
                         path: Path) -> tuple[av.VideoFrame, list[int]]:
    """Decode the first frame (proves the stream decodes; carries the display matrix) while
    collecting the first packets' timestamps for the frame-rate regularity check."""
    first: av.VideoFrame | None = None
    pts: list[int] = []
    for packet in container.demux(video):
        if packet.pts is not None and packet.size:
            pts.append(packet.pts)
        if first is None:
            frames = video.decode(packet)
            first = frames[0] if frames else None
        if first is not None and len(pts) >= VFR_SAMPLE_PACKETS:
            break
    if first is None:
        raise MediaError(f"{one_line(str(path))}: video stream has no decodable frames")
    return first, pts


def _check_audio_decodes(container: av.container.InputContainer, audio: av.audio.stream.AudioStream,
                         path: Path) -> None:
    """An audio-only file must yield at least one audio frame to count as readable."""
    for _ in container.decode(audio):
        return
    raise MediaError(f"{one_line(str(path))}: audio stream has no decodable frames")


def pts_steps(pts: list[int]) -> np.ndarray:
    """Sorted presentation-time steps (in time_base ticks) of a prefix of packets in decode order.

    The tail is dropped: with B-frames, the last packets demuxed leave holes that later
    packets would fill.
    """
    if len(pts) < 3:
        return np.zeros(0, dtype=np.int64)
    steps = np.diff(np.unique(np.asarray(pts, dtype=np.int64)))
    steps = steps[steps > 0]
    return steps[: max(2, int(len(steps) * 0.85))]


def is_variable_rate(deltas: np.ndarray) -> bool:
    """VFR when frame steps vary materially: beyond timestamp rounding (1 tick) and 10 %."""
    if deltas.size < 4:
        return False
    med = float(np.median(deltas))
    tolerance = max(1.5, 0.1 * med)
    irregular = np.abs(deltas - med) > tolerance
    return int(irregular.sum()) >= max(2, int(np.ceil(VFR_MIN_SHARE * deltas.size)))


def _frame_rate(video: av.video.stream.VideoStream, vfr: bool) -> Fraction:
    """Exact frame rate: the stream's guessed (base) rate when the average agrees, else the average."""
    avg = _positive(video.average_rate)
    guessed = _positive(video.guessed_rate) or _positive(video.base_rate)
    if vfr:
        rate = avg or guessed
    elif avg and guessed:
        rate = guessed if abs(avg - guessed) <= guessed * Fraction(1, 100) else avg
    else:
        rate = avg or guessed
    if not rate:
        return Fraction(0)
    return snap_rate(rate)


def snap_rate(rate: Fraction) -> Fraction:
    """A measured rate within 0.02 % of a standard one becomes that one; others get a small denominator."""
    if rate in STANDARD_RATES:
        return rate
    for std in STANDARD_RATES:
        if abs(rate - std) <= std / 5000:
            return std
    return rate.limit_denominator(1001)


def _positive(rate: Fraction | None) -> Fraction | None:
    return Fraction(rate) if rate is not None and rate > 0 else None


def _start_seconds(stream: av.stream.Stream, container: av.container.InputContainer) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return container.start_time / av.time_base
    return 0.0


def _duration_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


class PacketScan(NamedTuple):
    """What demuxing a stream to its end found."""

    end_s: float | None     # the latest packet's pts plus its duration, on the stream's clock
    packets: int            # packets with a timestamp: the frame count, for video
    complete: bool          # False when the scan stopped at its bound


def _measured_duration(path: Path, info: MediaInfo) -> dict:
    """Duration, and for video the frame count, of a file that declares no duration, measured
    from its packets in a second pass (the first one stopped after the first frames). Counting
    packets gives a variable-rate file its real frame count, which duration x rate would not."""
    index = info.video_stream_index if info.has_video else info.audio_stream_index
    with open_media(path) as container:
        scan = scan_packets(container, container.streams[index])
    duration = max(0.0, scan.end_s - info.start_time_s) if scan.end_s is not None else 0.0
    fields: dict = {"duration_s": duration}
    if info.has_video:
        fields["frame_count"] = scan.packets if scan.complete else int(round(duration * info.fps))
    return fields


def scan_packets(container: av.container.InputContainer, stream: av.stream.Stream,
                 max_packets: int = DURATION_SCAN_PACKETS) -> PacketScan:
    """Demux `stream` without decoding, to the end or `max_packets` (so a huge file stays
    bounded; the end is then where the scan stopped), and find where it ends."""
    last_pts: int | None = None
    last_dur = step = count = 0
    complete = True
    for packet in container.demux(stream):
        if packet.pts is None or not packet.size:
            continue
        if count >= max_packets:
            complete = False
            break
        count += 1
        dur = int(packet.duration or 0)
        step = dur or step
        if last_pts is None or packet.pts >= last_pts:   # B-frames: decode order is not display order
            last_pts, last_dur = packet.pts, dur
    if last_pts is None or stream.time_base is None:
        return PacketScan(None, count, complete)
    end = float((last_pts + (last_dur or step or _frame_ticks(stream))) * stream.time_base)
    return PacketScan(end, count, complete)


def _frame_ticks(stream: av.stream.Stream) -> int:
    """One frame in time_base ticks, for a last packet that carries no duration."""
    rate = _positive(getattr(stream, "average_rate", None)) or _positive(getattr(stream, "guessed_rate", None))
    if not rate or not stream.time_base:
        return 0
    return max(0, round(1 / (rate * stream.time_base)))


def _codec_name(ctx: av.codec.context.CodecContext) -> str:
    """The format's name (mp3), not the decoder's (mp3float)."""
    codec = ctx.codec
    return (getattr(codec, "canonical_name", None) or codec.name or "") if codec is not None else ""


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words, on one line, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__
