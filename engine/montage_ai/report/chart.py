"""timeline.png: the music and the cut on one time axis, so a glance shows whether cuts follow it.

Top panel: sections shaded and labelled, the energy curve, beats as short ticks and downbeats
as tall ones. Under it a bar per segment coloured by source. Cuts are 1-pixel vertical lines
across both, drawn last, at x = x0 + round(frame * plot_width / total_frames), so every cut
has one exact column (the tests read those columns back).

The music comes from a MusicAnalysis when the caller has one; otherwise from the timeline's
own markers (beat, downbeat, "section: X") and the energy from the rendered montage's audio
(or, without it, each section's energy as steps), so the chart can be made from the output
folder alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
from PIL import Image, ImageDraw

from ..analysis.music import MusicAnalysis
from ..timeline.model import META_KEY
from .storyboard import SegmentView, fit_text, font, save_png, segment_views, timeline_fps, total_frames

BG = (255, 255, 255)
INK = (40, 40, 48)
GRID = (225, 225, 230)
SECTION_FILLS = [(232, 238, 250), (246, 240, 228)]
ENERGY_FILL = (150, 200, 235)
ENERGY_LINE = (30, 110, 180)
BEAT = (120, 120, 132)
DOWNBEAT = (60, 60, 70)
CUT = (225, 20, 90)          # a colour nothing else on the chart uses
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194),
           (127, 127, 127), (188, 189, 34), (23, 190, 207), (57, 59, 121), (173, 73, 74), (99, 121, 57)]

MARGIN_L, MARGIN_R, TITLE_H = 48, 16, 28
MUSIC_H, GAP, BAR_H, AXIS_H, LEGEND_ROW = 200, 6, 34, 22, 20


@dataclass
class MusicView:
    """What the chart draws of the music, in seconds from the montage start."""

    beats_s: list[float]
    downbeats_s: list[float]
    sections: list[tuple[float, float, str, str]]       # start, end, label, level
    energy_hop_s: float
    energy: list[float]
    energy_source: str
    tempo_bpm: float | None = None


@dataclass
class Chart:
    """What was drawn, with the geometry a page needs to put a playhead over the image."""

    path: Path
    size: tuple[int, int]
    plot_x0: int                 # x of frame 0
    plot_x1: int                 # x of frame total_frames
    music_box: tuple[int, int, int, int]
    bar_box: tuple[int, int, int, int]
    total_frames: int
    fps: Fraction
    cut_frames: list[int]
    cut_xs: list[int]
    sources: list[str] = field(default_factory=list)

    def x_of_frame(self, frame: float) -> int:
        return frame_x(frame, self.total_frames, self.plot_x0, self.plot_x1)


def frame_x(frame: float, total: int, x0: int, x1: int) -> int:
    return x0 + round(frame * (x1 - x0) / max(1, total))


# --- the music, from an analysis or from the timeline alone ------------------------------------


def music_from_analysis(music: MusicAnalysis) -> MusicView:
    return MusicView(beats_s=list(music.beat_times_s), downbeats_s=list(music.downbeat_times_s),
                     sections=[(s.start_s, s.end_s, s.label, s.level) for s in music.sections],
                     energy_hop_s=music.energy_hop_s, energy=list(music.energy),
                     energy_source="music energy", tempo_bpm=music.tempo_bpm)


def music_from_timeline(timeline: otio.schema.Timeline, video: Path | None = None) -> MusicView:
    """Beats, downbeats and sections from the markers; energy from the montage audio if readable."""
    beats, downbeats, sections = [], [], []
    for m in timeline.tracks.markers:
        meta = m.metadata.get(META_KEY, {}) or {}
        kind = meta.get("kind") or ("section" if m.name.startswith("section:") else m.name)
        start = m.marked_range.start_time.to_seconds()
        if kind in ("beat", "downbeat"):
            beats.append(start)
            if kind == "downbeat":
                downbeats.append(start)
        elif kind == "section":
            label = str(meta.get("label") or m.name.removeprefix("section:").strip())
            end = start + m.marked_range.duration.to_seconds()
            sections.append((start, end, label, str(meta.get("level", "")), float(meta.get("energy", 0.0) or 0.0)))
    sections.sort()
    hop, energy, source = 0.05, [], "no energy"
    if video is not None and video.is_file():
        energy = audio_energy(video, hop)
        source = "montage audio (RMS)" if energy else source
    if not energy and sections:
        end = max(s[1] for s in sections)
        energy = [next((s[4] for s in reversed(sections) if s[0] <= k * hop), 0.0) for k in range(int(end / hop) + 1)]
        source = "section energy"
    tempo = timeline.metadata.get(META_KEY, {}).get("tempo_bpm")
    return MusicView(beats_s=sorted(beats), downbeats_s=sorted(downbeats),
                     sections=[s[:4] for s in sections], energy_hop_s=hop, energy=energy, energy_source=source,
                     tempo_bpm=float(tempo) if tempo else None)


def audio_energy(path: Path, hop_s: float = 0.05, rate: int = 8000) -> list[float]:
    """Normalised RMS of the file's first audio stream on a `hop_s` grid; [] without audio."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return []
            res = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [o.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for o in res.resample(fr)]
            chunks += [o.to_ndarray().reshape(-1) for o in res.resample(None)]
    except (av.FFmpegError, OSError):
        return []
    if not chunks:
        return []
    x = np.concatenate(chunks).astype(np.float64)
    n = max(1, round(hop_s * rate))
    frames = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    k = max(1, round(0.4 / hop_s))          # smooth the beat ripple as the music analysis does
    rms = np.convolve(rms, np.ones(k) / k, mode="same")
    top = rms.max() if rms.size else 0.0
    return (rms / top).round(4).tolist() if top > 0 else []


# --- drawing -----------------------------------------------------------------------------------


def source_colors(segments: list[SegmentView]) -> dict[str, tuple[int, int, int]]:
    """A palette colour per source, in order of first use (the page uses the same)."""
    names = list(dict.fromkeys(s.source_name for s in segments))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def make_timeline_chart(timeline: otio.schema.Timeline, music: MusicAnalysis | None, out_png: Path, *,
                        video: Path | None = None, width: int = 1600) -> Chart:
    """Write the chart to `out_png`; `video` (the rendered montage) supplies energy without `music`."""
    segs = segment_views(timeline)
    fps = timeline_fps(timeline)
    total = max(1, total_frames(timeline))
    view = music_from_analysis(music) if music is not None else music_from_timeline(timeline, video)
    colors = source_colors(segs)
    legend_rows = _legend_rows(_legend_items(view, colors), width)
    x0, x1 = MARGIN_L, width - MARGIN_R
    music_box = (x0, TITLE_H, x1, TITLE_H + MUSIC_H)
    bar_box = (x0, music_box[3] + GAP, x1, music_box[3] + GAP + BAR_H)
    height = bar_box[3] + AXIS_H + 8 + LEGEND_ROW * len(legend_rows) + 6
    img = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(img)
    to_x = lambda s: frame_x(s * float(fps), total, x0, x1)  # noqa: E731 - seconds -> x
    _title(d, timeline, view, len(segs), total, fps, width)
    _sections(d, view, music_box, to_x)
    _energy(d, view, music_box, to_x, total / float(fps))
    _segments(d, segs, colors, bar_box, total, x0, x1)
    _axis(d, bar_box, total / float(fps), to_x, width)
    cuts = [s.record_start_frame for s in segs if 0 < s.record_start_frame < total]
    cut_xs = [frame_x(f, total, x0, x1) for f in cuts]
    for x in cut_xs:
        d.line([(x, music_box[1]), (x, bar_box[3] - 1)], fill=CUT, width=1)
    _beats(d, view, music_box, to_x, total / float(fps))   # over the cuts: a cut on a beat shows its tick
    _legend(d, legend_rows, bar_box[3] + AXIS_H + 8)
    out_png = save_png(img, out_png)
    return Chart(path=out_png, size=(width, height), plot_x0=x0, plot_x1=x1, music_box=music_box, bar_box=bar_box,
                 total_frames=total, fps=fps, cut_frames=cuts, cut_xs=cut_xs, sources=list(colors))


def _title(d: ImageDraw.ImageDraw, timeline: otio.schema.Timeline, view: MusicView, n: int, total: int,
           fps: Fraction, width: int) -> None:
    meta = timeline.metadata.get(META_KEY, {}) or {}
    bits = [f"{n} segments", f"{total / float(fps):.2f} s"]
    if view.tempo_bpm:
        bits.append(f"{view.tempo_bpm:.1f} BPM")
    if meta.get("style"):
        bits.append(f"style {meta['style']}")
    text = "Cuts against the music: " + ", ".join(bits)
    d.text((MARGIN_L, 6), fit_text(d, text, font(15), width - MARGIN_L - MARGIN_R), font=font(15), fill=INK)


def _sections(d: ImageDraw.ImageDraw, view: MusicView, box: tuple[int, int, int, int], to_x) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=BG, outline=GRID)
    for k, (start, end, label, level) in enumerate(view.sections):
        a, b = max(x0, to_x(start)), min(x1, to_x(end))
        if b <= a:
            continue
        d.rectangle((a, y0, b - 1, y1 - 1), fill=SECTION_FILLS[k % 2])
        text = f"{label} ({level})" if level else label
        d.text((a + 4, y0 + 3), fit_text(d, text, font(12), b - a - 6), font=font(12), fill=INK)


def _energy(d: ImageDraw.ImageDraw, view: MusicView, box: tuple[int, int, int, int], to_x, dur_s: float) -> None:
    if not view.energy:
        return
    x0, y0, x1, y1 = box
    top, bottom = y0 + 22, y1 - 30            # keep clear of the labels and the beat ticks
    pts = []
    for k, e in enumerate(view.energy):
        t = k * view.energy_hop_s
        if t > dur_s:
            break
        pts.append((to_x(t), bottom - min(1.0, max(0.0, e)) * (bottom - top)))
    if len(pts) < 2:
        return
    d.polygon([(pts[0][0], bottom)] + pts + [(pts[-1][0], bottom)], fill=ENERGY_FILL)
    d.line(pts, fill=ENERGY_LINE, width=2)


def _beats(d: ImageDraw.ImageDraw, view: MusicView, box: tuple[int, int, int, int], to_x, dur_s: float) -> None:
    x0, y0, x1, y1 = box
    down = {round(t, 3) for t in view.downbeats_s}
    for t in view.beats_s:
        if 0 <= t <= dur_s:
            tall = round(t, 3) in down
            d.line([(to_x(t), y1 - (24 if tall else 13)), (to_x(t), y1 - 1)], fill=DOWNBEAT if tall else BEAT,
                   width=2 if tall else 1)


def _segments(d: ImageDraw.ImageDraw, segs: list[SegmentView], colors: dict[str, tuple[int, int, int]],
              box: tuple[int, int, int, int], total: int, x0: int, x1: int) -> None:
    _, y0, _, y1 = box
    for s in segs:
        a, b = frame_x(s.record_start_frame, total, x0, x1), frame_x(s.record_end_frame, total, x0, x1)
        d.rectangle((a, y0, max(a, b - 1), y1 - 1), fill=colors[s.source_name])
        label = str(s.index)
        if d.textlength(label, font=font(11)) < b - a - 4:
            d.text((a + 3, y0 + 3), label, font=font(11), fill=BG)


def _axis(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], dur_s: float, to_x, width: int) -> None:
    y = box[3] + 2
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if dur_s / s <= 16), 1200)
    k = 0
    while k * step <= dur_s + 1e-9:
        t = k * step
        x = to_x(t)
        d.line([(x, y), (x, y + 4)], fill=INK)
        text = f"{int(t // 60)}:{t % 60:04.1f}" if step < 1 else f"{int(t // 60)}:{int(t % 60):02d}"
        w = d.textlength(text, font=font(11))
        d.text((x + 2 if x + 2 + w < width - 2 else x - 2 - w, y + 4), text, font=font(11), fill=INK)
        k += 1


def _legend_items(view: MusicView, colors: dict[str, tuple[int, int, int]]) -> list[tuple[str, tuple[int, int, int], str]]:
    """(text, colour, swatch kind) for the marks, then one per source."""
    return ([("cut", CUT, "line"), ("beat", BEAT, "line"), ("downbeat", DOWNBEAT, "line"),
             (f"energy: {view.energy_source}", ENERGY_FILL, "box")]
            + [(name, colour, "box") for name, colour in colors.items()])


LegendItem = tuple[str, tuple[int, int, int], str, int]    # text, colour, swatch kind, width


def _legend_rows(items: list[tuple[str, tuple[int, int, int], str]], width: int) -> list[list[LegendItem]]:
    """Legend items wrapped into rows that fit the chart, each with its width."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows: list[list[LegendItem]] = [[]]
    x = MARGIN_L
    for text, colour, kind in items:
        shown = fit_text(probe, text, font(12), 260)
        w = 22 + int(probe.textlength(shown, font=font(12))) + 16
        if rows[-1] and x + w > width - MARGIN_R:
            rows.append([])
            x = MARGIN_L
        rows[-1].append((shown, colour, kind, w))
        x += w
    return rows


def _legend(d: ImageDraw.ImageDraw, rows: list[list[LegendItem]], y: int) -> None:
    for row in rows:
        x = MARGIN_L
        for text, colour, kind, w in row:
            if kind == "line":
                d.line([(x + 8, y + 2), (x + 8, y + 14)], fill=colour, width=2)
            else:
                d.rectangle((x, y + 3, x + 16, y + 13), fill=colour)
            d.text((x + 22, y + 2), text, font=font(12), fill=INK)
            x += w
        y += LEGEND_ROW
