"""Shot analysis: a low-resolution decode of each clip -> ClipAnalysis.

Like PySceneDetect, detectors see frames (small numpy arrays), never files: the decode loop
(decode.py) streams frames from PyAV and feeds per-frame features; boundaries and scores are
computed from those feature arrays.

Pipeline:
  first pass (decode.py): reference frames only: the decoder skips frames no other frame
      refers to (x264's non-reference B-frames, ~45% of a stream) without decoding them, in
      parallel parts with one-thread decoders where cores are free; in-loop deblocking skipped;
      every frame read is scaled to 160 px wide RGB. Streams without such frames (intra-only,
      P-only) and variable-rate clips are read in full.
  per frame (pure, ~0.25 ms): mean luma, dark/bright share, Laplacian variance (sharpness),
      luma variance (contrast), a 16x9 colour signature, per-channel cumulative histograms;
      per consecutive pair: motion (mean abs luma change, and its peak over the 16x9 grid),
      signature change, histogram change (earth mover's distance)
  second pass, only where needed: every frame between the two first-pass frames on either side
      of each hard cut, and the last frames; merged in, and everything found again, so cut
      frames are exact
  hard cuts: content score = signature change + histogram change; a cut where the score is
      several times its neighbours' mean (PySceneDetect's adaptive rule) and above a floor,
      higher on intra frames (a periodic keyframe's quality jump is not a cut)
  flicker, strobes, flashes: no cut where the layout is kept (the brightness-and-contrast
      normalised signature of a frame before matches one after)
  fades: runs of black frames (boundary in the middle) and dips to near-black (at the minimum)
  blips: a flash or a black glitch of a frame or two after which the picture returns is no
      boundary (the black frames stay unusable)
  dissolves: windows whose end frames differ like two shots, every frame in between close to
      the linear blend of the two, and detail dipping in the middle (boundary in the middle)
  unusable: black, frozen (no motion anywhere >= 0.5 s), blurred (detail far below the
      clip median)
  shots: boundaries -> spans, fragments under 0.25 s merged into a neighbour
Windows counted in frames are counted in samples at the series' own rate; motion is per frame
step; Boundary.frame and Shot.start_frame/end_frame are frame numbers of the clip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import av
import numpy as np
from pydantic import BaseModel

from montage_otio.names import one_line

from .. import procs
from ..errors import MediaError
from ..media.probe import MediaInfo
from ..resources import usable_cpus
from .decode import ANALYSIS_WIDTH, SmallFrame, decode_small_frames, decode_windows  # noqa: F401 (re-exported)
from .on_screen import TEXT_EVERY_S, TextRange, TextSampler, burned_in, text_on_screen  # noqa: F401 (re-exported)
from .text import unavailable as text_unavailable

ANALYSIS_VERSION = 4                 # 2: reference frames first, flicker-robust cuts; 3: shot signatures; 4: text
SIG_COLS, SIG_ROWS = 16, 9          # colour signature grid
HIST_BITS = 5                       # per-channel histograms of 2**5 = 32 bins
HIST_BINS = 1 << HIST_BITS

# Hard cuts. Content score 0..1 = signature change + histogram EMD (both 0..1).
CUT_MIN_SCORE = 0.04                # below this, never a cut (~10 grey levels of change)
CUT_KEYFRAME_MIN_SCORE = 0.08       # a weak change on an intra frame may be the encoder's quality jump
CUT_NOISE = 0.004                   # added to the neighbour baseline: compression flicker
CUT_ADAPTIVE_RATIO = 3.0            # weak change: score / mean of the neighbours' scores
CUT_HIST_RATIO = 2.5                # ...and the same for the colour distribution alone
CUT_SURE_SCORE = 0.25               # strong change...
CUT_SURE_RATIO = 2.0                # ...needs only this ratio
CUT_WINDOW = 2                      # neighbours each side for the baseline
# Black and fades.
BLACK_LUMA = 0.10                   # a pixel darker than this (0..1) is black...
BLACK_SHARE = 0.97                  # ...and a frame with this share of black pixels is black
DIP_MAX_LUMA = 0.12                 # a fade that never reaches black still dips below this
DIP_MIN_RISE = 0.10                 # and rises by this much on both sides within DIP_WINDOW_S
DIP_WINDOW_S = 1.0
# Dissolves.
DISSOLVE_HALF_S = (0.2, 0.4, 0.7, 1.0)
DISSOLVE_MIN_CHANGE = 0.08          # signature change between the two ends
DISSOLVE_MAX_RESIDUAL = 0.18        # mean distance of middle frames from the blend, / change
DISSOLVE_MIN_STRAIGHTNESS = 0.4     # end-to-end change / summed frame-to-frame changes
DISSOLVE_DETAIL_DIP = 0.65          # mid-window sharpness / the lower sharpness of the two ends
DISSOLVE_MIN_END_LUMA = 0.1         # darker ends make it a fade, handled as such
# Unusable material.
FROZEN_MOTION = 0.0015              # mean abs luma change (0..1) below which nothing moves...
FROZEN_PEAK = 0.008                 # ...and no grid cell changes more than this (a small moving detail)
FROZEN_MIN_S = 0.5
BLUR_RATIO = 0.3                    # detail below this share of the clip median is blurred
BLUR_MIN_LUMA = 0.08                # too dark to judge
DETAIL_FLOOR = 50.0                 # added to the luma variance so flat frames do not divide by ~0
BLUR_MIN_S = 0.5
MIN_SHOT_S = 0.25
LAYOUT_SAME = 0.35                  # normalised signature distance below which the layout is kept
LAYOUT_STD_FLOOR = 8.0              # added to the spread: a flat frame has no layout to compare
LAYOUT_SPAN = 2                     # frames each side compared
BLIP_MAX_FRAMES = 2                 # a flash or glitch this short after which the picture returns...
BLIP_RETURN = 0.35                  # ...to within this share of the jump is not a shot change
# Normalisation of raw measures to 0..1.
SHARPNESS_SCALE = 400.0             # Laplacian variance (luma 0..255 at 160 px) giving 1 - 1/e
MOTION_SCALE = 0.03                 # mean abs luma change giving 1 - 1/e
GOOD_MOTION = 0.3                   # normalised motion that scores best
QUALITY_WEIGHTS = (0.45, 0.35, 0.20)  # sharpness, exposure, motion

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHANNEL_OFFSETS = np.arange(3, dtype=np.intp) * HIST_BINS


class Shot(BaseModel):
    """A continuous shot inside one clip, in seconds of source time (relative to the file start)."""

    id: str                     # short stable ID, e.g. "c02s03": clip 2, shot 3 (used by directors)
    clip_index: int
    start_s: float
    end_s: float                # exclusive
    score: float                # mean usable-frame quality 0..1
    motion: float               # mean motion 0..1
    sharpness: float            # mean sharpness 0..1
    brightness: float           # mean luma 0..1
    usable_s: float             # seconds of usable (not black/frozen/blurred) material
    start_frame: int = 0        # index of the shot's first decoded frame
    end_frame: int = 0          # exclusive
    transition_in: str = "start"  # how the shot begins: start | cut | fade | dissolve
    flicker: bool = False       # flashes, a strobe or flicker inside (sudden changes that are not cuts)
    signature: str = ""         # the shot's look: median colour of a 8x4 grid (hex RGB), see similarity.py
    group: str = ""             # near-duplicate group across clips (the planner's; "" = not grouped yet)
    text: float = 0.0           # share of the shot's text samples that show lines of text (titles, credits)


class UnusableRange(BaseModel):
    start_s: float
    end_s: float
    reason: str                 # black | frozen | blurred


class Boundary(BaseModel):
    """A detected shot change: `frame` is the first frame of the new shot (mid-point of a fade/dissolve)."""

    frame: int
    time_s: float
    kind: str                   # cut | fade | dissolve
    strength: float             # 0..1


class ClipAnalysis(BaseModel):
    """Per-clip analysis. The per-frame arrays are sampled at `sample_times_s`."""

    media: MediaInfo
    analysis_version: int
    shots: list[Shot]
    unusable: list[UnusableRange]
    sample_times_s: list[float]
    motion: list[float]         # 0..1 per sample
    sharpness: list[float]      # 0..1 per sample
    brightness: list[float]     # 0..1 per sample
    quality: list[float]        # 0..1 per sample, 0 inside unusable ranges
    clip_index: int = 0
    boundaries: list[Boundary] = []
    text: list[TextRange] = []  # text on screen; the cutter avoids it unless the plan asks for titles
    frames_analyzed: int = 0
    decode_s: float = 0.0       # wall time of the decode + feature pass
    warnings: list[str] = []


# --------------------------------------------------------------------------- per-frame features


@dataclass(frozen=True)
class FrameFeatures:
    """Features of one small RGB frame; `luma` is kept only to measure motion to the next frame."""

    brightness: float
    dark_share: float
    bright_share: float
    sharpness_raw: float        # variance of the Laplacian of luma (0..255 scale)
    contrast: float             # variance of luma
    signature: np.ndarray       # (SIG_ROWS, SIG_COLS, 3) uint8
    cdf: np.ndarray             # (3, HIST_BINS) float32 cumulative per-channel histograms
    luma: np.ndarray            # (h, w) float32, 0..255


def frame_features(rgb: np.ndarray) -> FrameFeatures:
    """Features of one (h, w, 3) uint8 RGB frame. Pure and cheap (~0.2 ms at 160x90)."""
    luma = rgb.astype(np.float32) @ _LUMA_WEIGHTS
    n = luma.size
    lap = 4.0 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    return FrameFeatures(
        brightness=float(luma.mean()) / 255.0,
        dark_share=np.count_nonzero(luma < BLACK_LUMA * 255.0) / n,
        bright_share=np.count_nonzero(luma > 0.97 * 255.0) / n,
        sharpness_raw=float(lap.var()),
        contrast=float(luma.var()),
        signature=_signature(rgb),
        cdf=_cdf(rgb),
        luma=luma,
    )


def _cells(img: np.ndarray) -> np.ndarray:
    """Mean over each cell of a 16x9 grid (extra rows/columns at the edges are ignored).

    Two contiguous reductions (rows, then columns) are several times faster than one
    reduction over a strided 5-d view.
    """
    h, w = img.shape[:2]
    bh, bw = max(1, h // SIG_ROWS), max(1, w // SIG_COLS)
    cut = img[: bh * SIG_ROWS, : bw * SIG_COLS]
    acc = np.float32 if img.dtype.kind == "f" else np.uint32
    rows = cut.reshape(SIG_ROWS, bh, -1).sum(axis=1, dtype=acc)
    cells = rows.reshape(SIG_ROWS, SIG_COLS, bw, -1).sum(axis=2, dtype=acc)
    return cells.reshape(SIG_ROWS, SIG_COLS, *img.shape[2:]) / float(bh * bw)


def _signature(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of each cell of a 16x9 grid: a tiny picture that ignores small motion."""
    return _cells(rgb).astype(np.uint8)


def _cdf(rgb: np.ndarray) -> np.ndarray:
    """Cumulative per-channel histograms: compared by earth mover's distance, a global shift
    (a fade) costs only its size, while a new colour distribution (a cut) costs a lot.
    Every other pixel of every other row is plenty for a distribution."""
    q = (rgb[::2, ::2] >> (8 - HIST_BITS)).reshape(-1, 3).astype(np.intp)
    q += _CHANNEL_OFFSETS
    hist = np.bincount(q.ravel(), minlength=3 * HIST_BINS).reshape(3, HIST_BINS).astype(np.float32)
    return np.cumsum(hist, axis=1) / max(1, q.shape[0])


def pair_changes(prev: FrameFeatures, cur: FrameFeatures) -> tuple[float, float, float, float]:
    """(motion, peak cell motion, signature change, histogram change) between consecutive
    frames, each 0..1. Peak cell motion tells a frozen picture from a still one with a small
    moving detail."""
    diff = np.abs(cur.luma - prev.luma)
    motion = float(diff.mean()) / 255.0
    peak = float(_cells(diff).max()) / 255.0
    sig = float(np.abs(cur.signature.astype(np.int16) - prev.signature).mean()) / 255.0
    hist = float(np.abs(cur.cdf - prev.cdf).mean())
    return motion, peak, sig, hist


_SERIES_COLUMNS = ("times_s", "key_frame", "brightness", "dark_share", "bright_share", "sharpness_raw",
                   "contrast", "motion_raw", "motion_peak", "sig_change", "hist_change", "text_share")


@dataclass
class FeatureSeries:
    """Per-frame feature arrays for a whole clip; index 0's pair changes are 0."""

    times_s: np.ndarray
    key_frame: np.ndarray       # 1.0 on intra frames
    brightness: np.ndarray
    dark_share: np.ndarray
    bright_share: np.ndarray
    sharpness_raw: np.ndarray
    contrast: np.ndarray
    motion_raw: np.ndarray
    motion_peak: np.ndarray
    sig_change: np.ndarray
    hist_change: np.ndarray
    signatures: np.ndarray      # (n, SIG_ROWS * SIG_COLS * 3) uint8
    text_share: np.ndarray | None = None    # share of the frame in lines of text; NaN where not sampled

    def __post_init__(self) -> None:
        if self.text_share is None:
            self.text_share = np.full(self.times_s.size, np.nan)

    @property
    def n(self) -> int:
        return int(self.times_s.size)


@dataclass
class _SeriesBuilder:
    cols: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _SERIES_COLUMNS})
    sigs: list[np.ndarray] = field(default_factory=list)
    prev: FrameFeatures | None = None

    def add(self, t: float, key: bool, f: FrameFeatures, text: float = math.nan) -> None:
        changes = pair_changes(self.prev, f) if self.prev is not None else (0.0, 0.0, 0.0, 0.0)
        values = (t, float(key), f.brightness, f.dark_share, f.bright_share, f.sharpness_raw, f.contrast) + changes
        for k, v in zip(_SERIES_COLUMNS, values + (text,)):
            self.cols[k].append(v)
        self.sigs.append(f.signature.reshape(-1))
        self.prev = f

    text: TextSampler = field(default_factory=TextSampler)

    def add_frame(self, frame: SmallFrame) -> None:
        """A decoded frame's features, and its text where it is on the text-sampling grid."""
        f = frame_features(frame.rgb)
        text = self.text.share(frame.time_s, frame.detail, f.signature, f.contrast) if frame.detail is not None else math.nan
        self.add(frame.time_s, frame.key_frame, f, text)

    def build(self) -> FeatureSeries:
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in self.cols.items()}
        sigs = np.stack(self.sigs) if self.sigs else np.zeros((0, SIG_ROWS * SIG_COLS * 3), np.uint8)
        return FeatureSeries(signatures=sigs, **arrays)


def take(series: FeatureSeries, idx: np.ndarray) -> FeatureSeries:
    """The rows `idx` of a series, in that order."""
    cols = {k: getattr(series, k)[idx] for k in _SERIES_COLUMNS}
    return FeatureSeries(signatures=series.signatures[idx], **cols)


def merge_series(base: FeatureSeries, extra: FeatureSeries) -> FeatureSeries:
    """`base` with the rows of `extra` added in time order; a row of `extra` replaces the
    row of `base` at the same time (its change is now measured from a nearer frame)."""
    if extra.n == 0:
        return base
    keep = ~np.isin(np.round(base.times_s, 4), np.round(extra.times_s, 4))
    extra = _text_kept(extra, take(base, np.flatnonzero(~keep)))
    cols = {k: np.concatenate([getattr(base, k)[keep], getattr(extra, k)]) for k in _SERIES_COLUMNS}
    both = FeatureSeries(signatures=np.concatenate([base.signatures[keep], extra.signatures]), **cols)
    return take(both, np.argsort(both.times_s, kind="stable"))


def _text_kept(extra: FeatureSeries, replaced: FeatureSeries) -> FeatureSeries:
    """`extra` with the text measure of the rows it replaces where it has none (the second
    pass reads no text)."""
    if replaced.n == 0 or np.all(np.isnan(replaced.text_share)):
        return extra
    measured = dict(zip(np.round(replaced.times_s, 4).tolist(), replaced.text_share.tolist()))
    text = extra.text_share.copy()
    for i, t in enumerate(np.round(extra.times_s, 4).tolist()):
        if math.isnan(text[i]):
            text[i] = measured.get(t, math.nan)
    return dataclasses.replace(extra, text_share=text)


def extract_series(frames: Iterable[SmallFrame]) -> FeatureSeries:
    """Stream small frames into feature arrays; only one frame is held at a time. A run that is
    being stopped (SIGTERM, Ctrl-C) ends the decode at the next frame instead of the clip's end."""
    builder = _SeriesBuilder()
    for frame in frames:
        procs.check_interrupted()
        builder.add_frame(frame)
    return builder.build()


MAX_HELD_GROUPS = 256                # first-pass neighbourhoods kept for the second pass (~0.2 MB each)


@dataclass
class FirstPass:
    """A reference-only pass: its series, and the neighbourhoods where the decoder also gave
    the frames between two reference frames (decode.CutHint): [frame before, the frames
    between, frame after], kept where the two differ enough to be a cut."""

    series: FeatureSeries
    held: list[list[SmallFrame]] = field(default_factory=list)


def extract_first_pass(frames: Iterable[SmallFrame]) -> FirstPass:
    """extract_series for a reference-only pass: `extra` frames stay out of the series (its
    changes are between reference frames, as without them) and are held, with the frames on
    either side, only where the change across them could be a cut."""
    builder = _SeriesBuilder()
    held: list[list[SmallFrame]] = []
    before: SmallFrame | None = None
    between: list[SmallFrame] = []
    for frame in frames:
        procs.check_interrupted()
        if frame.extra:
            if before is not None:
                between.append(frame)
            continue
        prev = builder.prev
        builder.add_frame(frame)
        if between and prev is not None and len(held) < MAX_HELD_GROUPS:
            _, _, sig, hist = pair_changes(prev, builder.prev)
            if sig + hist >= CUT_MIN_SCORE:
                held.append([before, *between, frame])
        before, between = frame, []
    return FirstPass(builder.build(), held)


# --------------------------------------------------------------------------- boundary detection


def content_score(series: FeatureSeries) -> np.ndarray:
    """Per-frame change 0..1: colour layout (signature) plus colour distribution (histogram EMD),
    per frame step: after a gap of k frame steps (variable frame rate, dropped frames) the
    change is divided by k, so a skipped stretch of motion does not look like a cut."""
    score = np.minimum(1.0, series.sig_change + series.hist_change)
    return score / frame_gaps(series.times_s)


def frame_gaps(times: np.ndarray) -> np.ndarray:
    """Each frame's distance from the previous one in typical frame steps, at least 1."""
    gaps = np.ones_like(times)
    if times.size > 2:
        dt = np.diff(times)
        step = float(np.median(dt))
        if step > 0:
            gaps[1:] = np.maximum(1.0, dt / step)
    return gaps


def _neighbour_mean(x: np.ndarray, i: int, width: int) -> float:
    """Mean of x over i-width..i+width without i itself (and without frame 0, which has no change)."""
    lo, hi = max(1, i - width), min(x.size, i + width + 1)
    around = np.concatenate([x[lo:i], x[i + 1:hi]])
    return float(around.mean()) if around.size else 0.0


def detect_cuts(score: np.ndarray, hist: np.ndarray, key: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Hard cuts (frame, strength), PySceneDetect's adaptive rule: a frame whose change is
    several times its neighbours' mean. Strong changes need a smaller ratio; weak ones must
    also show in the colour distribution, so a sudden movement is not a cut, and on an intra
    frame they must be stronger still, so a periodic keyframe's quality jump is not a cut."""
    cuts: list[tuple[int, float]] = []
    for i in np.flatnonzero(score >= CUT_MIN_SCORE):
        if i == 0:
            continue
        lo, hi = max(1, i - CUT_WINDOW), min(score.size, i + CUT_WINDOW + 1)
        if score[i] < score[lo:hi].max():
            continue  # not the peak of its neighbourhood
        base = _neighbour_mean(score, i, CUT_WINDOW)
        if score[i] >= CUT_SURE_SCORE:
            is_cut = score[i] >= CUT_SURE_RATIO * base
        elif key is not None and key[i] > 0 and score[i] < CUT_KEYFRAME_MIN_SCORE:
            is_cut = False
        else:
            hist_base = _neighbour_mean(hist, i, CUT_WINDOW)
            is_cut = (score[i] >= CUT_ADAPTIVE_RATIO * base + CUT_NOISE
                      and hist[i] >= CUT_HIST_RATIO * hist_base + CUT_NOISE / 2)
        if is_cut:
            cuts.append((int(i), float(min(1.0, score[i] / CUT_SURE_SCORE))))
    return cuts


def black_frames(series: FeatureSeries) -> np.ndarray:
    return (series.dark_share >= BLACK_SHARE) & (series.brightness < BLACK_LUMA)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where `mask` is true."""
    if mask.size == 0:
        return []
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def detect_fades(series: FeatureSeries, fps: float) -> list[tuple[int, float, tuple[int, int]]]:
    """Fades through black: (boundary frame, strength, black span). Black runs inside the clip
    put the boundary at their middle; dips that never quite reach black, at the darkest frame."""
    n = series.n
    out: list[tuple[int, float, tuple[int, int]]] = []
    black = black_frames(series)
    for a, b in runs(black):
        if a > 0 and b < n:
            out.append(((a + b) // 2, 1.0, (a, b)))
    win = max(2, int(round(DIP_WINDOW_S * fps)))
    b_arr = series.brightness
    for i in range(1, n - 1):
        if black[i] or b_arr[i] > DIP_MAX_LUMA:
            continue
        lo, hi = max(0, i - win), min(n, i + win + 1)
        if b_arr[i] > b_arr[lo:hi].min() or (i > lo and b_arr[i] == b_arr[lo:i].min()):
            continue  # not the (first) darkest frame of its neighbourhood
        rise = min(b_arr[lo:i].max(), b_arr[i + 1:hi].max()) - b_arr[i]
        if rise >= DIP_MIN_RISE and _ramps(b_arr, i, lo, hi):
            out.append((i, float(min(1.0, rise / 0.3)), (i, i + 1)))
    return out


def _ramps(b: np.ndarray, i: int, lo: int, hi: int) -> bool:
    """A fade darkens over several frames and brightens over several: not a single dark frame."""
    before, after = b[lo:i + 1], b[i:hi]
    return (before.size >= 3 and after.size >= 3
            and b[i - 1] - b[i] < 0.75 * (before.max() - b[i])
            and b[i + 1] - b[i] < 0.75 * (after.max() - b[i]))


def detect_dissolves(series: FeatureSeries, fps: float, taken: np.ndarray) -> list[tuple[int, float]]:
    """Cross-dissolves (mid frame, strength). `taken` marks frames near known cuts and fades.

    A window is a dissolve when its end frames differ like two shots, the path between them
    is straight (the change is spread evenly, not a cut, not back-and-forth motion), every
    frame in between is close to the linear blend of the ends, and detail dips in the middle
    below both ends (two superimposed pictures blur each other; a pan or a zoom keeps its
    detail, and a fade from black rises from none).
    """
    n = series.n
    sigs = series.signatures
    steps = np.concatenate([[0.0], np.cumsum(series.sig_change[1:])])
    sharp, luma = series.sharpness_raw, series.brightness
    best: dict[int, tuple[float, int]] = {}
    for half_s in DISSOLVE_HALF_S:
        k = max(2, int(round(half_s * fps)))
        if 2 * k >= n:
            continue
        centres = np.arange(k, n - k)
        change = _lagged_change(sigs, 2 * k)
        path = steps[centres + k] - steps[centres - k]
        ends = np.minimum(sharp[centres - k], sharp[centres + k])
        lit = np.minimum(luma[centres - k], luma[centres + k]) >= DISSOLVE_MIN_END_LUMA
        ok = ((change >= DISSOLVE_MIN_CHANGE) & (change >= DISSOLVE_MIN_STRAIGHTNESS * path)
              & (sharp[centres] <= DISSOLVE_DETAIL_DIP * ends) & lit)
        for c in centres[ok]:
            if taken[c - k:c + k + 1].any():
                continue
            ch = float(change[c - k])
            if _blend_residual(sigs, c - k, c + k) <= DISSOLVE_MAX_RESIDUAL * ch:
                if ch > best.get(int(c), (0.0, 0))[0]:
                    best[int(c)] = (ch, k)
    return _plateau_middles(best)


def _lagged_change(sigs: np.ndarray, lag: int, chunk: int = 4096) -> np.ndarray:
    """Mean abs signature difference (0..1) between frames i and i+lag, in chunks so an hour
    of signatures never becomes an hour of floats."""
    out = np.empty(max(0, sigs.shape[0] - lag), dtype=np.float64)
    for a in range(0, out.size, chunk):
        b = min(out.size, a + chunk)
        d = np.abs(sigs[a + lag:b + lag].astype(np.int16) - sigs[a:b])
        out[a:b] = d.mean(axis=1) / 255.0
    return out


def _blend_residual(sigs: np.ndarray, a: int, b: int) -> float:
    """Mean distance (0..1) of frames a..b from the linear blend of frames a and b."""
    window = sigs[a:b + 1].astype(np.float32) / 255.0
    w = np.linspace(0.0, 1.0, b - a + 1, dtype=np.float32)[:, None]
    blend = window[0] * (1.0 - w) + window[-1] * w
    return float(np.abs(window - blend).mean())


def _plateau_middles(best: dict[int, tuple[float, int]]) -> list[tuple[int, float]]:
    """Group adjacent candidate centres; keep the middle of each group's strongest plateau."""
    out: list[tuple[int, float]] = []
    keys = sorted(best)
    groups: list[list[int]] = []
    for c in keys:
        if groups and c - groups[-1][-1] <= 1:
            groups[-1].append(c)
        else:
            groups.append([c])
    for g in groups:
        top = max(best[c][0] for c in g)
        plateau = [c for c in g if best[c][0] >= 0.95 * top]
        out.append((plateau[len(plateau) // 2], float(min(1.0, top * 4.0))))
    return out


def detect_boundaries(series: FeatureSeries, fps: float, disturbed: list[int] | None = None) -> list[Boundary]:
    """All shot boundaries, sorted; black runs swallow the cuts at their edges. Sudden changes
    that are not shot changes (a flash, a strobe, flicker) are added to `disturbed` when given."""
    n = series.n
    fades = detect_fades(series, fps)
    black = black_frames(series)
    black_spans = runs(black)
    found: dict[int, tuple[str, float]] = {}
    hist_per_step = series.hist_change / frame_gaps(series.times_s)
    for i, strength in detect_cuts(content_score(series), hist_per_step, series.key_frame):
        if _touches_black(i, black_spans):
            continue
        if is_blip(series, i, i) or same_layout(series, i):
            if disturbed is not None:
                disturbed.append(i)
            continue
        found[i] = ("cut", strength)
    for i, strength, (a, b) in fades:
        if not _black_glitch(series, a, b):
            found[i] = ("fade", strength)
    taken = np.zeros(n, dtype=bool)
    for i in found:
        taken[max(0, i - 1):i + 2] = True
    taken |= black
    for i, strength in detect_dissolves(series, fps, taken):
        found.setdefault(i, ("dissolve", strength))
    t = series.times_s
    return [Boundary(frame=i, time_s=float(t[i]), kind=k, strength=round(s, 4))
            for i, (k, s) in sorted(found.items()) if 0 < i < n]


def is_blip(series: FeatureSeries, first: int, last: int) -> bool:
    """A flash, a glitch or a dropped-to-black frame: a disturbance of at most a couple of
    frames around first..last after which the picture returns to what it was. Not a shot change.
    """
    sigs, n = series.signatures, series.n
    jump = float(np.abs(sigs[first].astype(np.int16) - sigs[max(0, first - 1)]).mean()) / 255.0
    for before in (first - 2, first - 1):
        for after in range(last + 1, min(n, last + 1 + BLIP_MAX_FRAMES)):
            if before < 0 or after - before > BLIP_MAX_FRAMES + 2 or after == first:
                continue
            back = float(np.abs(sigs[after].astype(np.int16) - sigs[before]).mean()) / 255.0
            if back < BLIP_RETURN * jump:
                return True
    return False


def same_layout(series: FeatureSeries, i: int) -> bool:
    """Flicker, a strobe or a flash changes how bright and how contrasted the picture is, not
    what is where: with each frame's signature normalised (mean 0, spread 1) some frame of the
    two before i still matches some frame of the three from i on. A cut changes the layout."""
    sigs, n = series.signatures, series.n
    before = range(max(0, i - LAYOUT_SPAN), i)
    after = range(i, min(n, i + LAYOUT_SPAN + 1))
    if not before or not after:
        return False
    z = {j: _normalised(sigs[j]) for j in (*before, *after)}
    return min(float(np.abs(z[a] - z[b]).mean()) for a in before for b in after) < LAYOUT_SAME


def _normalised(sig: np.ndarray) -> np.ndarray:
    x = sig.astype(np.float32)
    return (x - x.mean()) / (x.std() + LAYOUT_STD_FLOOR)


def _black_glitch(series: FeatureSeries, a: int, b: int) -> bool:
    """A black run of a frame or two that cuts in and out of the same picture (no fade)."""
    if b - a > BLIP_MAX_FRAMES or a < 1 or b >= series.n:
        return False
    lit = min(series.brightness[a - 1], series.brightness[b]) > 2 * DIP_MAX_LUMA
    return bool(lit) and is_blip(series, a, b - 1)


def _touches_black(i: int, spans: list[tuple[int, int]]) -> bool:
    """A cut into or out of a black run is part of that run's (single) boundary."""
    return any(a <= i <= b for a, b in spans)


# --------------------------------------------------------------------------- unusable and scores


def detail(series: FeatureSeries) -> np.ndarray:
    """Sharpness relative to contrast: a fade or a dim scene keeps it, defocus and motion blur lose it."""
    return series.sharpness_raw / (series.contrast + DETAIL_FLOOR)


def unusable_mask(series: FeatureSeries, fps: float) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Per-frame unusable flag and the [start, end) frame ranges with their reasons."""
    n = series.n
    black = black_frames(series)
    ranges: list[tuple[int, int, str]] = [(a, b, "black") for a, b in runs(black)]
    still = (series.motion_raw < FROZEN_MOTION) & (series.motion_peak < FROZEN_PEAK) & ~black
    still[0] = False
    min_frozen = max(2, int(math.ceil(FROZEN_MIN_S * fps)))
    for a, b in runs(still):
        if b - a + 1 >= min_frozen:
            ranges.append((max(0, a - 1), b, "frozen"))  # a-1: the frame that then stood still
    judged = ~black & (series.brightness >= BLUR_MIN_LUMA)
    if judged.any():
        d = detail(series)
        blurred = (d < BLUR_RATIO * float(np.median(d[judged]))) & judged
        min_blur = max(2, int(math.ceil(BLUR_MIN_S * fps)))
        ranges += [(a, b, "blurred") for a, b in runs(blurred) if b - a >= min_blur]
    mask = np.zeros(n, dtype=bool)
    for a, b, _ in ranges:
        mask[a:b] = True
    return mask, sorted(ranges)


def normalised_measures(series: FeatureSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(motion, sharpness, brightness), each 0..1 per frame."""
    motion = 1.0 - np.exp(-series.motion_raw / MOTION_SCALE)
    if motion.size > 1:
        motion[0] = motion[1]  # the first frame has no predecessor
    sharp = 1.0 - np.exp(-series.sharpness_raw / SHARPNESS_SCALE)
    return motion, sharp, np.clip(series.brightness, 0.0, 1.0)


def exposure_score(brightness: np.ndarray, clipped_share: np.ndarray | None = None) -> np.ndarray:
    """1 for mid-tones, falling to 0 for black (< 0.04) and blown-out (> 0.96) pictures, and
    by the share of clipped white pixels."""
    dark = np.clip((brightness - 0.04) / (0.25 - 0.04), 0.0, 1.0)
    bright = np.clip((0.96 - brightness) / (0.96 - 0.72), 0.0, 1.0)
    score = np.minimum(dark, bright)
    return score if clipped_share is None else score * (1.0 - np.clip(clipped_share, 0.0, 1.0))


def quality_scores(motion: np.ndarray, sharp: np.ndarray, brightness: np.ndarray,
                   unusable: np.ndarray, clipped_share: np.ndarray | None = None) -> np.ndarray:
    """Per-frame quality 0..1: sharp, well exposed, moderately moving; 0 where unusable."""
    ws, we, wm = QUALITY_WEIGHTS
    motion_good = 1.0 - np.minimum(1.0, np.abs(motion - GOOD_MOTION) / (1.0 - GOOD_MOTION))
    q = ws * sharp + we * exposure_score(brightness, clipped_share) + wm * motion_good
    return np.where(unusable, 0.0, np.clip(q, 0.0, 1.0))


# --------------------------------------------------------------------------- shots


def shot_id(clip_index: int, n: int) -> str:
    return f"c{clip_index:02d}s{n:02d}"


def shot_spans(boundaries: list[Boundary], n: int, min_frames: int) -> list[tuple[int, int, str]]:
    """[start, end) frame spans with the transition that starts each; short ones merged away."""
    cuts = [(b.frame, b.kind, b.strength) for b in boundaries if 0 < b.frame < n]
    while True:
        edges = [0] + [c[0] for c in cuts] + [n]
        short = [k for k in range(len(edges) - 1) if edges[k + 1] - edges[k] < min_frames]
        if not short or not cuts:
            break
        k = short[0]
        # Drop the weaker of the span's two boundaries (clip ends cannot be dropped).
        left = k - 1 if k > 0 else None
        right = k if k < len(cuts) else None
        if left is None:
            drop = right
        elif right is None:
            drop = left
        else:
            drop = left if cuts[left][2] < cuts[right][2] else right
        cuts.pop(drop)
    edges = [0] + [c[0] for c in cuts] + [n]
    kinds = ["start"] + [c[1] for c in cuts]
    return [(edges[k], edges[k + 1], kinds[k]) for k in range(len(edges) - 1) if edges[k + 1] > edges[k]]


def frame_end_times(times: np.ndarray, fps: float) -> np.ndarray:
    """Each frame's exclusive end time: the next frame's time, and one frame step for the last."""
    if times.size == 0:
        return times
    if fps > 0:
        step = 1.0 / fps
    else:
        step = float(np.median(np.diff(times))) if times.size > 1 else 0.04
    return np.concatenate([times[1:], [times[-1] + step]])


def shot_signature(sigs: np.ndarray) -> str:
    """A shot's look in 96 bytes: the median over its frames of each cell of an 8x4 grid (the
    16x9 frame signature, 2x2 cells averaged, last row dropped), hex RGB."""
    grid = np.median(sigs, axis=0).reshape(SIG_ROWS, SIG_COLS, 3)[:8].astype(np.float32)
    coarse = grid.reshape(4, 2, 8, 2, 3).mean(axis=(1, 3))
    return np.round(coarse).astype(np.uint8).tobytes().hex()


def build_shots(clip_index: int, spans: list[tuple[int, int, str]], times: np.ndarray, ends: np.ndarray,
                motion: np.ndarray, sharp: np.ndarray, bright: np.ndarray, quality: np.ndarray,
                unusable: np.ndarray, signatures: np.ndarray | None = None) -> list[Shot]:
    shots = []
    for n, (a, b, kind) in enumerate(spans):
        usable = ~unusable[a:b]
        pick = usable if usable.any() else np.ones(b - a, dtype=bool)
        durations = ends[a:b] - times[a:b]
        shots.append(Shot(
            id=shot_id(clip_index, n), clip_index=clip_index,
            start_s=_r(times[a]), end_s=_r(ends[b - 1]),
            score=_r(quality[a:b][usable].mean()) if usable.any() else 0.0,
            motion=_r(motion[a:b][pick].mean()), sharpness=_r(sharp[a:b][pick].mean()),
            brightness=_r(bright[a:b][pick].mean()), usable_s=_r(durations[usable].sum()),
            start_frame=a, end_frame=b, transition_in=kind,
            signature=shot_signature(signatures[a:b][pick]) if signatures is not None and b > a else "",
        ))
    return shots


def relabel(analysis: ClipAnalysis, clip_index: int) -> ClipAnalysis:
    """The same analysis under another clip index: only shot IDs and indices change."""
    if analysis.clip_index == clip_index and all(s.clip_index == clip_index for s in analysis.shots):
        return analysis
    shots = [s.model_copy(update={"id": shot_id(clip_index, n), "clip_index": clip_index})
             for n, s in enumerate(analysis.shots)]
    return analysis.model_copy(update={"shots": shots, "clip_index": clip_index})


def _r(x: float) -> float:
    return round(float(x), 4)


# --------------------------------------------------------------------------- entry point


def analyze_series(media: MediaInfo, clip_index: int, series: FeatureSeries) -> ClipAnalysis:
    """Everything after decoding: pure given the feature arrays. The series may skip frames
    (a first pass that read reference frames only): windows counted in frames are counted in
    samples at the series' own rate, and motion is measured per frame step."""
    fps = float(media.fps) if media.fps_num else _measured_fps(series.times_s)
    rate = _sample_rate(media, series.times_s)
    series = per_frame_motion(series, fps)
    disturbed: list[int] = []
    boundaries = detect_boundaries(series, rate, disturbed)
    unusable, ranges = unusable_mask(series, rate)
    motion, sharp, bright = normalised_measures(series)
    quality = quality_scores(motion, sharp, bright, unusable, series.bright_share)
    times = series.times_s
    ends = frame_end_times(times, fps)
    spans = shot_spans(boundaries, series.n, max(1, int(round(MIN_SHOT_S * rate))))
    kept = {a for a, _, _ in spans}
    number = frame_numbers(times, fps, dense=rate >= fps or media.variable_frame_rate)
    shots = build_shots(clip_index, spans, times, ends, motion, sharp, bright, quality, unusable, series.signatures)
    shots = [s.model_copy(update={"flicker": any(s.start_frame <= i < s.end_frame for i in disturbed)}) for s in shots]
    shots = [s.model_copy(update={"start_frame": int(number[s.start_frame]),
                                  "end_frame": int(number[s.end_frame]) if s.end_frame < series.n
                                  else int(number[-1]) + 1}) for s in shots]
    boundaries = [b.model_copy(update={"frame": int(number[b.frame])}) for b in boundaries if b.frame in kept]
    ratios, text = text_on_screen([(s.start_s, s.end_s) for s in shots], times,
                                  np.zeros(series.n) if burned_in(series.text_share) else series.text_share)
    shots = [s.model_copy(update={"text": _r(r)}) if r else s for s, r in zip(shots, ratios)]
    return ClipAnalysis(
        media=media, analysis_version=ANALYSIS_VERSION, clip_index=clip_index,
        shots=shots,
        unusable=[UnusableRange(start_s=_r(times[a]), end_s=_r(ends[b - 1]), reason=why) for a, b, why in ranges],
        sample_times_s=[_r(t) for t in times],
        motion=[_r(x) for x in motion], sharpness=[_r(x) for x in sharp],
        brightness=[_r(x) for x in bright], quality=[_r(x) for x in quality],
        boundaries=boundaries, text=text,
        frames_analyzed=series.n,
    )


def frame_numbers(times: np.ndarray, fps: float, dense: bool) -> np.ndarray:
    """Each sample's frame number: its index where every frame was decoded, else its time in
    frames (constant frame rate: the first pass skipped some)."""
    if dense or fps <= 0:
        return np.arange(times.size)
    return np.round(times * fps).astype(np.int64)


def per_frame_motion(series: FeatureSeries, fps: float) -> FeatureSeries:
    """Motion between samples a few frames apart, divided by the frames between them."""
    if series.n < 2 or fps <= 0:
        return series
    gaps = np.ones(series.n)
    gaps[1:] = np.maximum(1.0, np.round(np.diff(series.times_s) * fps))
    if np.all(gaps == 1.0):
        return series
    return dataclasses.replace(series, motion_raw=series.motion_raw / gaps, motion_peak=series.motion_peak / gaps)


def _measured_fps(times: np.ndarray) -> float:
    if times.size < 2:
        return 25.0
    step = float(np.median(np.diff(times)))
    return 1.0 / step if step > 0 else 25.0


def _sample_rate(media: MediaInfo, times: np.ndarray) -> float:
    """Samples per second: the frame rate, or less where the series skips frames."""
    measured = _measured_fps(times)
    return min(float(media.fps), measured) if media.fps_num else measured


def analyze_clip(media: MediaInfo, clip_index: int) -> ClipAnalysis:
    """Decode `media` at low resolution and find its shots, scores and unusable ranges.

    First pass: reference frames only (all frames where the codec has no others, and on
    variable-rate clips), in parallel parts when cores are free. Second pass, only where
    needed: every frame between the two first-pass frames on either side of each hard cut (so
    cut frames are exact), and the clip's last frames. Then everything is found again on the
    merged frames.
    """
    if not media.has_video:
        raise MediaError(f"{one_line(str(media.path))}: no video stream (audio only or cover art), nothing to analyse")
    problems: list[str] = []
    t0 = time.perf_counter()
    with _running() as share:
        sparse = bool(media.fps_num) and not media.variable_frame_rate  # frame numbers follow from times
        if os.environ.get("MONTAGE_SHOTS_EVERY_FRAME"):     # for comparison: no first pass
            sparse = False
        series = _read_in_parts(media, share, sparse)
        if series is None:
            first = extract_first_pass(decode_small_frames(media, problems=problems, reference_only=sparse,
                                                           threads=share > 1, detail_every=TEXT_EVERY_S))
            series = first.series
            if sparse and not problems and series.n:
                series = refine(media, first)
        if series.n == 0:
            raise MediaError(f"{one_line(str(media.path))}: video stream has no decodable frames")
    elapsed = time.perf_counter() - t0
    step = 1.0 / float(media.fps) if media.fps_num else 1.0 / _measured_fps(series.times_s)
    end = float(series.times_s[-1]) + step
    if media.duration_s > 0 and end < 0.9 * media.duration_s and not problems:
        problems.append(f"decoded {end:.2f} s of {media.duration_s:.2f} s: the file may be truncated")
    missing = text_unavailable() if np.all(np.isnan(series.text_share)) else None
    if missing:
        problems.append(f"text on screen not detected (titles and credits may be cut in): {missing}")
    if burned_in(series.text_share):
        problems.append("small text on nearly every frame (a clock or a logo burned in): taken as part of the "
                        "picture, not as a title")
    result = analyze_series(media, clip_index, series)
    return result.model_copy(update={"decode_s": round(elapsed, 3), "warnings": problems})


MIN_PART_S = 8.0                    # a clip is read in parallel parts of at least this length
_active = 0
_active_lock = threading.Lock()


@contextlib.contextmanager
def _running() -> Iterator[int]:
    """Count the analyses running in this process; yield this one's share of the cores."""
    global _active
    with _active_lock:
        _active += 1
        share = max(1, usable_cpus() // _active)
    try:
        yield share
    finally:
        with _active_lock:
            _active -= 1


def _read_in_parts(media: MediaInfo, share: int, reference_only: bool) -> FeatureSeries | None:
    """The first pass split into `share` parts read in parallel, each by a one-thread decoder
    (less CPU per frame than frame threads), each followed by its own second pass. None where the clip is short, its rate unknown,
    or a part fails (the caller then reads it in one piece and reports any error)."""
    if not media.fps_num or media.variable_frame_rate or media.duration_s <= 0:
        return None
    n = min(share, int(media.duration_s // MIN_PART_S))
    if n < 2:
        return None
    fps = float(media.fps)
    step = 1.0 / fps
    cuts = [(round(media.duration_s * j / n * fps) - 0.5) * step for j in range(1, n)]
    starts, ends = [-1.0] + cuts, cuts + [math.inf]

    def part(j: int) -> FeatureSeries:
        lead = starts[j] - 4 * step if j else -1.0     # a frame or two before: the first change
        first = extract_first_pass(decode_windows(media, [(lead, ends[j])], reference_only=reference_only,
                                                  detail_every=TEXT_EVERY_S))
        if j:
            first.series = take(first.series, np.flatnonzero(first.series.times_s >= starts[j]))
        # the part's own second pass, while the other parts still read (cuts at the seams: later)
        return refine(media, first, tail=j == n - 1) if reference_only and first.series.n else first.series

    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="shots") as pool:
            parts = list(pool.map(part, range(n)))
    except (av.FFmpegError, OSError, MediaError):
        return None
    if any(p.n == 0 for p in parts):
        return None
    cols = {c: np.concatenate([getattr(p, c) for p in parts]) for c in _SERIES_COLUMNS}
    return FeatureSeries(signatures=np.concatenate([p.signatures for p in parts]), **cols)


def refine(media: MediaInfo, first: FirstPass | FeatureSeries, tail: bool = True) -> FeatureSeries:
    """The second pass: the first pass's series with every frame of `refine_windows` merged
    in, from the frames it already holds where they cover a window, else decoded again."""
    if isinstance(first, FeatureSeries):
        first = FirstPass(first)
    series = first.series
    windows = refine_windows(media, series, tail)
    if not windows:
        return series
    step = 1.0 / float(media.fps)
    held, missing = _held_windows(windows, first.held, step)
    wide = [(a - step / 2, b + step / 2) for a, b in missing]
    try:
        frames = itertools.chain(itertools.chain.from_iterable(held), decode_windows(media, wide) if wide else ())
        return merge_series(series, window_series(frames, windows))
    except (av.FFmpegError, OSError):
        return series   # the first pass's frames stand; cut frames may be a frame off


def _held_windows(windows: list[tuple[float, float]], held: list[list[SmallFrame]],
                  step: float) -> tuple[list[list[SmallFrame]], list[tuple[float, float]]]:
    """The held neighbourhoods that are exactly a window (its two ends and every frame
    between), and the windows left to decode."""
    by_start = {round(g[0].time_s / step): g for g in held}
    found, missing = [], []
    for a, b in windows:
        g = by_start.get(round(a / step))
        if (g is not None and math.isfinite(b) and abs(g[0].time_s - a) < step / 4 and abs(g[-1].time_s - b) < step / 4
                and len(g) - 1 == round((b - a) / step)):
            found.append(g)
        else:
            missing.append((a, b))
    return found, missing


def refine_windows(media: MediaInfo, series: FeatureSeries, tail: bool = True) -> list[tuple[float, float]]:
    """Time spans (first and last frame, inclusive) the first pass skipped frames in and must
    see whole: around each hard cut whose two sides are more than a frame apart, and from the
    last frame seen to the clip end."""
    if not media.fps_num or series.n < 2:
        return []
    step = 1.0 / float(media.fps)
    t = series.times_s
    out = []
    for b in detect_boundaries(series, _sample_rate(media, t)):
        if b.kind == "cut" and t[b.frame] - t[b.frame - 1] > 1.5 * step:
            out.append((float(t[b.frame - 1]), float(t[b.frame])))
    last = (media.frame_count - 1) * step if media.frame_count else media.duration_s - step
    if tail and last - t[-1] > 0.5 * step:
        out.append((float(t[-1]), math.inf))
    out.sort()
    merged: list[tuple[float, float]] = []
    for a, b in out:
        if merged and a <= merged[-1][1] + step / 2:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def window_series(frames: Iterable[SmallFrame], windows: list[tuple[float, float]]) -> FeatureSeries:
    """Feature rows of the second pass, one run per window: the first frame of each window
    (already seen by the first pass) only gives the next its change, and a window whose first
    frame did not come back is dropped (the first pass's rows stay)."""
    parts: list[FeatureSeries] = []
    builder, start, k = None, 0.0, -1
    for frame in frames:
        procs.check_interrupted()
        j = next((i for i, (a, b) in enumerate(windows) if a - 1e-3 <= frame.time_s <= b + 1e-3), None)
        if j is None:
            continue
        if j != k:
            if builder is not None:
                parts.append(_without_first(builder.build(), start))
            builder, start, k = _SeriesBuilder(), windows[j][0], j
        builder.add(frame.time_s, frame.key_frame, frame_features(frame.rgb))
    if builder is not None:
        parts.append(_without_first(builder.build(), start))
    parts = [p for p in parts if p.n]
    if not parts:
        return _SeriesBuilder().build()
    cols = {c: np.concatenate([getattr(p, c) for p in parts]) for c in _SERIES_COLUMNS}
    return FeatureSeries(signatures=np.concatenate([p.signatures for p in parts]), **cols)


def _without_first(series: FeatureSeries, start: float) -> FeatureSeries:
    if series.n == 0 or abs(series.times_s[0] - start) > 1e-3:
        return take(series, np.arange(0))
    return take(series, np.arange(1, series.n))
