"""storyboard.png: one thumbnail per segment, in timeline order, with timecode, beats and source.

Also the small read-only view of a timeline that the chart and the page share (`segment_views`),
read from the OTIO timeline alone, so a report can be made from an output folder, or from a
timeline edited elsewhere (the record ranges come from the track; the planner's notes, such as
beats, score and reason, from each clip's `metadata["montage_ai"]` when present).

Thumbnails come from the RENDERED montage.mp4 at each segment's middle record frame, by default:
that is what the viewer sees (crop or pad, the grade, dissolves), it is in the output folder
(sources may have moved or be on another machine), and one sequential decode of one file is
exact and cheaper than one accurate seek per segment into long-GOP sources. When there is no
rendered video (a report before the render, or of an edited timeline), the same frames are
decoded from the sources with an accurate seek.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import opentimelineio as otio
from montage_otio.names import one_line
from PIL import Image, ImageDraw, ImageFont

from .. import atomic
from ..timeline.model import META_KEY
from ..timeline.read import exact_rate, url_to_path

BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
MUTED = (160, 160, 170)
PAD = 10
HEADER_H = 34
LINE_H = 16


# --- the timeline, read once for the storyboard, the chart and the page ------------------------


@dataclass(frozen=True)
class SegmentView:
    """One picture segment of the timeline, in output frames."""

    index: int
    name: str
    source: Path
    record_start_frame: int
    duration_frames: int
    source_in_frame: int
    transition_in_frames: int = 0
    shot_id: str = ""
    section: str = ""
    level: str = ""
    beats: float | None = None
    score: float | None = None
    reason: str = ""

    @property
    def record_end_frame(self) -> int:
        return self.record_start_frame + self.duration_frames

    @property
    def mid_frame(self) -> int:
        """The record frame a thumbnail shows: the middle of the segment."""
        return self.record_start_frame + self.duration_frames // 2

    @property
    def source_name(self) -> str:
        return self.source.name


def timeline_fps(timeline: otio.schema.Timeline) -> Fraction:
    """The output rate: exact from the render metadata, else from the first clip's rate."""
    render = timeline.metadata.get(META_KEY, {}).get("render", {}) or {}
    if render.get("fps_num"):
        return Fraction(int(render["fps_num"]), int(render.get("fps_den", 1)))
    track = _picture_track(timeline)
    rate = next((c.trimmed_range().duration.rate for c in track.find_clips()), 30.0) if track else 30.0
    return exact_rate(rate)


def total_frames(timeline: otio.schema.Timeline) -> int:
    return round(timeline.duration().to_seconds() * timeline_fps(timeline))


def render_size(timeline: otio.schema.Timeline) -> tuple[int, int]:
    render = timeline.metadata.get(META_KEY, {}).get("render", {}) or {}
    return int(render.get("width", 1920)), int(render.get("height", 1080))


def _picture_track(timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    return tracks[0] if tracks else None


def segment_views(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> list[SegmentView]:
    """The clips of the first enabled video track, in record order."""
    track = _picture_track(timeline)
    if track is None:
        return []
    fps = timeline_fps(timeline)
    out: list[SegmentView] = []
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Clip) or not item.enabled:
            continue
        out.append(_segment_view(item, track.range_of_child_at_index(i), len(out), fps, base_dir))
    return out


def _segment_view(clip: otio.schema.Clip, rng: otio.opentime.TimeRange, k: int, fps: Fraction,
                  base_dir: Path | None) -> SegmentView:
    meta = clip.metadata.get(META_KEY, {}) or {}
    ref = clip.media_reference
    url = getattr(ref, "target_url", "") or ""
    avail = getattr(ref, "available_range", None)
    offset_s = avail.start_time.to_seconds() if avail is not None else 0.0
    src_in_s = clip.trimmed_range().start_time.to_seconds() - offset_s
    return SegmentView(
        index=int(meta.get("index", k)), name=clip.name, source=url_to_path(url, base_dir) if url else Path(clip.name),
        record_start_frame=round(rng.start_time.to_seconds() * fps),
        duration_frames=round(rng.duration.to_seconds() * fps),
        source_in_frame=round(src_in_s * fps), transition_in_frames=int(meta.get("transition_in_frames", 0) or 0),
        shot_id=str(meta.get("shot_id", "")), section=str(meta.get("section", "")), level=str(meta.get("level", "")),
        beats=_num(meta.get("beats")), score=_num(meta.get("score")), reason=str(meta.get("reason", "") or ""),
    )


def _num(x: object) -> float | None:
    try:
        return None if x is None else float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def timecode(frame: int, fps: Fraction) -> str:
    """HH:MM:SS:FF at the nominal (rounded) rate, non-drop: what editors show for a record frame."""
    base = max(1, round(float(fps)))
    ff = frame % base
    s = frame // base
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"


# --- frames ------------------------------------------------------------------------------------


def frames_from_video(video: Path, wanted: list[int], fps: Fraction, size: tuple[int, int]) -> dict[int, Image.Image]:
    """Record frames `wanted` of a rendered montage, scaled to `size`, by one sequential decode.

    A frame's index is its presentation time times the rate, counted from the first frame, so
    it does not depend on the decoder's output order or on a container start offset."""
    import av

    want = set(wanted)
    got: dict[int, Image.Image] = {}
    if not want:
        return got
    last = max(want)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin: float | None = None
        for k, frame in enumerate(container.decode(stream)):
            t = frame.time
            if t is not None and origin is None:
                origin = t
            idx = round((t - origin) * fps) if t is not None and origin is not None else k
            if idx in want and idx not in got:
                got[idx] = _to_image(frame, size)
            if idx >= last or len(got) == len(want):
                break
    return got


def frames_from_sources(segments: list[SegmentView], fps: Fraction, size: tuple[int, int]) -> dict[int, Image.Image]:
    """Each segment's middle frame decoded from its source (accurate seek), keyed by record frame."""
    by_source: dict[Path, list[tuple[float, int]]] = defaultdict(list)
    for seg in segments:
        t = float((seg.source_in_frame + seg.mid_frame - seg.record_start_frame) / fps)
        by_source[seg.source].append((t, seg.mid_frame))
    got: dict[int, Image.Image] = {}
    for path, items in by_source.items():
        if path.is_file():
            got.update(_decode_at(path, sorted(items), fps, size))
    return got


def _decode_at(path: Path, items: list[tuple[float, int]], fps: Fraction, size: tuple[int, int]) -> dict[int, Image.Image]:
    """Seek to the keyframe before each time and decode forward to the first frame at or after
    it (less half an output frame, as the renderer does), reusing the position when close."""
    import av

    half = 0.5 / float(fps)
    out: dict[int, Image.Image] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base or Fraction(1, 90000))
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
        frames = None
        pos = math.inf
        for t, key in items:
            target = start + t - half
            if frames is None or target < pos or target - pos > 2.0:
                container.seek(max(0, int((start + t - 1.0) / tb)), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            for frame in frames:
                pos = frame.time if frame.time is not None else pos
                if frame.time is not None and frame.time >= target:
                    out[key] = _to_image(frame, size)
                    break
            else:              # ran off the end: the next item seeks afresh
                frames, pos = None, math.inf
    return out


def _to_image(frame: object, size: tuple[int, int]) -> Image.Image:
    arr = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])  # type: ignore[attr-defined]
    return Image.fromarray(arr, "RGB")


def segment_thumbnails(timeline: otio.schema.Timeline, thumb_width: int = 240, video: Path | None = None,
                       source: Literal["auto", "montage", "sources"] = "auto",
                       base_dir: Path | None = None) -> list[Image.Image | None]:
    """One thumbnail per segment (None where no frame could be read), in timeline order."""
    segs = segment_views(timeline, base_dir)
    size = thumb_size(timeline, thumb_width)
    fps = timeline_fps(timeline)
    use_video = source == "montage" or (source == "auto" and video is not None and video.is_file())
    if use_video:
        if video is None:
            raise ValueError("source='montage' needs the rendered video")
        frames = frames_from_video(video, [s.mid_frame for s in segs], fps, size)
        missing = [s for s in segs if s.mid_frame not in frames]
        if missing and source == "auto":      # a short or broken render: the sources still know
            frames.update(frames_from_sources(missing, fps, size))
    else:
        frames = frames_from_sources(segs, fps, size)
    return [frames.get(s.mid_frame) for s in segs]


def thumb_size(timeline: otio.schema.Timeline, thumb_width: int) -> tuple[int, int]:
    w, h = render_size(timeline)
    return thumb_width, max(2, round(thumb_width * h / w))


# --- the contact sheet -------------------------------------------------------------------------


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own scalable default font (Pillow >= 10.1), else its bitmap font: no system fonts."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow < 10.1
        return ImageFont.load_default()


def fit_text(draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """`text` on one line (a file name may hold a newline, which Pillow would draw as a second
    line over the next one, and cannot measure), cut with an ellipsis to fit `width` pixels."""
    text = one_line(text)
    if draw.textlength(text, font=fnt) <= width:
        return text
    while text and draw.textlength(text + "…", font=fnt) > width:
        text = text[:-1]
    return text + "…"


@dataclass
class Storyboard:
    """What was drawn: the file, its size, and each segment's thumbnail box (x0, y0, x1, y1)."""

    path: Path
    size: tuple[int, int]
    boxes: list[tuple[int, int, int, int]]
    thumbnails: list[Image.Image | None] = field(repr=False)
    segments: list[SegmentView] = field(repr=False)


def sheet_layout(count: int, thumb: tuple[int, int], columns: int) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """Sheet size and thumbnail boxes for `count` cells, row by row."""
    tw, th = thumb
    cols = max(1, min(columns, count))
    rows = max(1, -(-count // cols))
    cell_w, cell_h = tw + PAD, th + 3 * LINE_H + PAD + 4
    size = (PAD + cols * cell_w, HEADER_H + rows * cell_h + PAD)
    boxes = []
    for i in range(count):
        x0 = PAD + (i % cols) * cell_w
        y0 = HEADER_H + (i // cols) * cell_h
        boxes.append((x0, y0, x0 + tw, y0 + th))
    return size, boxes


def make_storyboard(timeline: otio.schema.Timeline, out_png: Path, thumb_width: int = 240, *,
                    video: Path | None = None, columns: int = 6,
                    source: Literal["auto", "montage", "sources"] = "auto",
                    base_dir: Path | None = None) -> Storyboard:
    """Write the contact sheet to `out_png`. `video` is the rendered montage (used when present)."""
    segs = segment_views(timeline, base_dir)
    thumbs = segment_thumbnails(timeline, thumb_width, video, source, base_dir)
    fps = timeline_fps(timeline)
    size, boxes = sheet_layout(len(segs), thumb_size(timeline, thumb_width), columns)
    sheet = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title = f"{timeline.name or 'montage'}: {len(segs)} segments, {timecode(total_frames(timeline), fps)} at {_fps_text(fps)} fps"
    draw.text((PAD, 9), fit_text(draw, title, font(16), size[0] - 2 * PAD), font=font(16), fill=TEXT)
    for seg, thumb, box in zip(segs, thumbs, boxes, strict=True):
        _draw_cell(draw, sheet, seg, thumb, box, fps)
    out_png = save_png(sheet, out_png)
    return Storyboard(path=out_png, size=size, boxes=boxes, thumbnails=thumbs, segments=segs)


def save_png(img: Image.Image, out_png: Path) -> Path:
    """A picture written atomically: a full disk leaves no half PNG, and the error names it."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out_png) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return out_png


def _draw_cell(draw: ImageDraw.ImageDraw, sheet: Image.Image, seg: SegmentView, thumb: Image.Image | None,
               box: tuple[int, int, int, int], fps: Fraction) -> None:
    x0, y0, x1, y1 = box
    if thumb is not None:
        sheet.paste(thumb, (x0, y0))
    else:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=MUTED)
        draw.text((x0 + 6, y0 + 6), "no frame", font=font(12), fill=MUTED)
    w = x1 - x0
    beats = f"{seg.beats:g} beat{'s' if seg.beats != 1 else ''}" if seg.beats is not None else "? beats"
    lines = [(f"#{seg.index:02d}  {timecode(seg.record_start_frame, fps)}", TEXT),
             (f"{beats} · {seg.duration_frames} f" + (f" · {seg.section}" if seg.section else ""), MUTED),
             (seg.source_name, MUTED)]
    for k, (text, colour) in enumerate(lines):
        draw.text((x0, y1 + 3 + k * LINE_H), fit_text(draw, text, font(12), w), font=font(12), fill=colour)


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"
