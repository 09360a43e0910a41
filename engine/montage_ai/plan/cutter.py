"""The cutter: beat grid + EditPlan + analysed shots -> Segments.

One cursor walks the beat grid in whole output frames. Each segment runs from one grid point
to a later one, so every cut sits on a beat (rounded to the nearest frame) and the segments sum
to the target length exactly: there is no second bookkeeping of time that could drift.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from ..analysis.music import MusicAnalysis, Section
from ..analysis.shots import ClipAnalysis, Shot
from ..direct.plan import EditPlan
from ..errors import MontageError


class Segment(BaseModel):
    """One piece of the cut. Frames are at the output rate; source frames count from the file start."""

    index: int
    shot_id: str
    clip_index: int
    source: Path
    record_start_frame: int
    duration_frames: int
    source_in_frame: int
    transition_in_frames: int = 0   # dissolve length centred on this segment's first frame; 0 = hard cut
    section: str
    level: str
    beats: float                    # length in beats of the song
    score: float
    reason: str

    @property
    def record_end_frame(self) -> int:
        return self.record_start_frame + self.duration_frames


class CutList(BaseModel):
    fps_num: int
    fps_den: int
    total_frames: int
    segments: list[Segment]
    warnings: list[str] = []


def end_frame_for(music: MusicAnalysis, target_s: float, fps: Fraction) -> int:
    """The montage's last frame boundary: the beat nearest the target, never past the music."""
    limit = min(target_s, music.duration_s)
    beats = [b for b in music.beat_times_s if 0 < b <= music.duration_s + 1e-6]
    if beats:
        best = min(beats, key=lambda b: (abs(b - limit), b))
        if abs(best - limit) <= 60.0 / max(music.tempo_bpm, 1.0):
            limit = best
    return max(1, round(limit * fps))


def grid_frames(music: MusicAnalysis, plan: EditPlan, end_frame: int, fps: Fraction) -> tuple[list[int], set[int]]:
    """Cut candidates in frames (0 and end included) and the grid indices where sections start."""
    times = music.downbeat_times_s if plan.cut_on == "downbeat" else music.beat_times_s
    points = {0, end_frame}
    points.update(f for f in (round(t * fps) for t in times) if 0 < f < end_frame)
    section_frames = [round(s.start_s * fps) for s in music.sections[1:]]
    points.update(f for f in section_frames if 0 < f < end_frame)
    grid = sorted(points)
    section_idx = {grid.index(f) for f in section_frames if 0 < f < end_frame}
    return grid, section_idx


def section_at(music: MusicAnalysis, t: float) -> Section:
    for s in music.sections:
        if s.start_s - 1e-6 <= t < s.end_s:
            return s
    return music.sections[-1] if music.sections else Section(start_s=0, end_s=music.duration_s, label="verse", energy=0.5, level="mid")


def spans_on_grid(grid: list[int], section_idx: set[int], music: MusicAnalysis, plan: EditPlan,
                  fps: Fraction, rng: random.Random) -> list[tuple[int, int]]:
    """Walk the grid with one cursor; each step is a segment of n grid units chosen by the pacing."""
    last = len(grid) - 1
    spans: list[tuple[int, int]] = []
    i = 0
    while i < last:
        sec = section_at(music, grid[i] / fps)
        pace = plan.pacing_for(sec.level, sec.label)
        j = min(i + rng.randint(pace.min_beats, pace.max_beats), last)
        if plan.bar_aligned_section_changes:
            inside = [b for b in section_idx if i < b < j]
            if inside:
                j = min(inside)
        if 0 < last - j < pace.min_beats:
            j = last
        spans.append((i, j))
        i = j
    return spans


def transition_frames(spans: list[tuple[int, int]], grid: list[int], section_idx: set[int],
                      music: MusicAnalysis, plan: EditPlan, fps: Fraction, rng: random.Random) -> list[int]:
    """Dissolve length (even, in frames) at the start of each span; 0 for a hard cut."""
    out = [0] * len(spans)
    t = plan.transitions
    if t.kind == "cut":
        return out
    beat_s = 60.0 / max(music.tempo_bpm, 1.0)
    want = 2 * max(1, round(t.duration_beats * beat_s * fps / 2))
    for k in range(1, len(spans)):
        eligible = t.at == "any" or spans[k][0] in section_idx
        if not eligible or rng.random() >= t.probability:
            continue
        prev_len = grid[spans[k - 1][1]] - grid[spans[k - 1][0]]
        next_len = grid[spans[k][1]] - grid[spans[k][0]]
        cap = min(prev_len, next_len) - 2
        d = min(want, cap - cap % 2)
        out[k] = d if d >= 2 else 0
    return out


@dataclass
class _Candidate:
    shot: Shot
    clip: ClipAnalysis
    first: int          # first usable output-rate frame (from the file start)
    stop: int           # one past the last
    group: str = ""     # near-duplicate group (the same moment seen again): the shot's id when alone
    uses: int = 0
    last_used: int = -10**9
    used: list[tuple[int, int]] = field(default_factory=list)
    quality_sums: np.ndarray | None = None      # running sum of per-frame quality, made once when needed

    @property
    def frames(self) -> int:
        return self.stop - self.first


def _candidates(clips: list[ClipAnalysis], fps: Fraction, plan: EditPlan) -> tuple[list[_Candidate], list[_Candidate]]:
    """Every shot as ranges of whole output frames, a frame of margin each side against
    boundary jitter when the shot is long enough: the footage, and apart from it the ranges
    with text on screen (titles, credits), unless the plan takes text like footage."""
    footage, text = [], []
    for clip in clips:
        spans = [(math.floor(r.start_s * fps), math.ceil(r.end_s * fps)) for r in clip.text] if plan.titles != "allow" else []
        for shot in clip.shots:
            first, stop = math.ceil(shot.start_s * fps), math.floor(shot.end_s * fps)
            if stop - first > 6:
                first, stop = first + 1, stop - 1
            for a, b, has_text in _split(first, stop, spans):
                (text if has_text else footage).append(
                    _Candidate(shot=shot, clip=clip, first=a, stop=b, group=shot.group or shot.id))
    return footage, text


def _split(first: int, stop: int, spans: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """[first, stop) cut into pieces without and with text, in order."""
    pieces, at = [], first
    for a, b in sorted(spans):
        a, b = max(a, first), min(b, stop)
        if b <= a or b <= at:
            continue
        if a > at:
            pieces.append((at, a, False))
        pieces.append((max(a, at), b, True))
        at = b
    if stop > at:
        pieces.append((at, stop, False))
    return pieces


def _appeal(c: _Candidate, plan: EditPlan, sec: Section, prev: _Candidate | None) -> float:
    w = plan.weights
    s = c.shot
    a = (w.quality * s.score + w.motion * s.motion + w.sharpness * s.sharpness
         + w.brightness * (s.brightness - 0.5))
    a += plan.energy_match * (1.0 - abs(s.motion - sec.energy))
    if s.id in plan.favor_shots:
        a += 0.5
    if prev is not None and prev.shot.clip_index == s.clip_index:
        a -= 0.15
    return a


def _window_means(c: _Candidate, need: int, fps: Fraction) -> np.ndarray:
    """Mean quality of every `need`-frame window of c, by start (c.first + index)."""
    if c.quality_sums is None:
        frames = np.arange(c.first, c.stop)
        clip = c.clip
        if clip.sample_times_s:
            q = np.interp(frames / float(fps), clip.sample_times_s, clip.quality)
        else:
            q = np.ones(len(frames))
        c.quality_sums = np.concatenate([[0.0], np.cumsum(q)])
    sums = c.quality_sums
    return (sums[need:] - sums[:-need]) / need


def _free_stretches(c: _Candidate) -> list[tuple[int, int]]:
    """The [a, b) stretches of c that no earlier use of it touches, in order: the one rule that
    "never the same moment twice" checks."""
    stretches, at = [], c.first
    for a, b in sorted(c.used):
        if min(a, c.stop) > at:
            stretches.append((at, min(a, c.stop)))
        at = max(at, b)
    if c.stop > at:
        stretches.append((at, c.stop))
    return stretches


def _has_free_window(c: _Candidate, need: int) -> bool:
    """Whether some `need` frames of c are free (cheap: no quality arrays)."""
    return any(b - a >= need for a, b in _free_stretches(c))


def _free_window(c: _Candidate, need: int, fps: Fraction) -> int | None:
    """Start of the best `need`-frame window of c that shares no frame with an earlier use of
    it (never the same moment twice); None when none is left."""
    stretches = [(a, b) for a, b in _free_stretches(c) if b - a >= need]
    if not stretches:
        return None
    means = _window_means(c, need, fps)
    free = np.zeros(means.size, dtype=bool)
    for a, b in stretches:            # a window starting in [a, b - need] lies inside the stretch
        free[a - c.first: b - need - c.first + 1] = True
    starts = np.flatnonzero(free)
    return int(c.first + starts[np.argmax(means[free])])


def _least_reused_window(c: _Candidate, need: int, fps: Fraction) -> int:
    """When material has run out: the window that overlaps earlier uses of c least."""
    means = _window_means(c, need, fps)
    starts = np.arange(c.first, c.first + means.size)
    overlap = np.zeros(means.size)
    for a, b in c.used:
        overlap += np.clip(np.minimum(starts + need, b) - np.maximum(starts, a), 0, None)
    return int(starts[np.lexsort((-means, overlap))[0]])


def _jump_cut(c: _Candidate, prev: _Candidate | None) -> bool:
    """c right after prev would be a jump cut: the same shot again, or the same moment seen
    again (its near-duplicate group: a shot split by a flash, a take repeated)."""
    return prev is not None and (c is prev or c.group == prev.group)


@dataclass
class _Choice:
    cand: _Candidate
    start: int
    forced: str = ""    # why the rules had to bend: the material ran out


def _pick(cands: list[_Candidate], need: int, k: int, plan: EditPlan, sec: Section,
          prev: _Candidate | None, rng: random.Random, group_last: dict[str, int],
          fps: Fraction) -> _Choice | None:
    """Fresh good shots first, never a moment already shown, nor the same moment seen again
    (a near-duplicate group) while others are left, nor a jump cut unless the plan wants them;
    reuse only once the material is spent, least-used and not too recent."""
    eligible = [c for c in cands if c.frames >= need and c.shot.id not in plan.avoid_shots
                and (plan.jump_cuts or c is not prev)]
    smooth = [c for c in eligible if plan.jump_cuts or not _jump_cut(c, prev)]
    fresh = [c for c in (smooth or eligible) if _has_free_window(c, need)]

    def group_new(c: _Candidate) -> bool:      # its moment has not been shown at all
        return c.group not in group_last

    def group_away(c: _Candidate) -> bool:     # ...or not within the last reuse_gap segments
        return k - group_last.get(c.group, -10**9) > plan.reuse_gap

    pools = [
        [c for c in fresh if c.uses == 0 and group_new(c) and c.shot.score >= plan.min_quality],
        [c for c in fresh if c.uses == 0 and group_new(c)],
        [c for c in fresh if c.uses == 0 and group_away(c)],
        [c for c in fresh if c.uses == 0],
        [c for c in fresh if k - c.last_used > plan.reuse_gap and group_away(c)],
        [c for c in fresh if k - c.last_used > plan.reuse_gap],
        fresh,
    ]
    pool = next((p for p in pools if p), None)
    forced = ""
    if pool is None:
        pool = smooth or eligible
        forced = "every moment long enough had been shown"
        if not pool:
            return None
    fewest = min(c.uses for c in pool)
    pool = [c for c in pool if c.uses == fewest]
    ranked = sorted(pool, key=lambda c: (-_appeal(c, plan, sec, prev), c.shot.id))[:3]
    c = rng.choices(ranked, weights=[0.6, 0.3, 0.1][: len(ranked)])[0]
    if not smooth and not forced:
        forced = "no other shot was long enough to avoid a jump cut"
    start = _free_window(c, need, fps)
    return _Choice(c, _least_reused_window(c, need, fps) if start is None else start, forced)


def cut(music: MusicAnalysis, clips: list[ClipAnalysis], plan: EditPlan, fps: Fraction,
        target_s: float, seed: int = 0) -> CutList:
    """Place segments on the beat grid and fill each with the best available shot."""
    if not clips or not any(c.shots for c in clips):
        raise MontageError("no usable video shots in the clips folder")
    rng = random.Random(seed)
    end = end_frame_for(music, target_s, fps)
    grid, section_idx = grid_frames(music, plan, end, fps)
    spans = spans_on_grid(grid, section_idx, music, plan, fps, rng)
    dissolves = transition_frames(spans, grid, section_idx, music, plan, fps, rng)
    cands, titles = _candidates(clips, fps, plan)
    segments: list[Segment] = []
    warnings: list[str] = []
    if not cands:       # nothing but text on screen: show it rather than nothing, and say so
        cands, titles = titles, []
        warnings.append("every shot shows text on screen (titles or credits): the cut shows it")
    beat_frames = 60.0 / max(music.tempo_bpm, 1.0) * float(fps)
    forced: list[str] = []
    group_last: dict[str, int] = {}
    prev: _Candidate | None = None
    for k, (i, j) in enumerate(spans):
        rec, dur = grid[i], grid[j] - grid[i]
        head = dissolves[k] // 2
        tail = dissolves[k + 1] // 2 if k + 1 < len(spans) else 0
        sec = section_at(music, rec / fps)
        need = head + dur + tail
        choice = None
        if k == 0 and plan.titles == "open":
            choice = _pick(titles, need, k, plan, sec, prev, rng, group_last, fps)
        choice = choice or _pick(cands, need, k, plan, sec, prev, rng, group_last, fps)
        if choice is None:
            # No shot is long enough: take the longest and let the window run on across the
            # shot boundary, kept inside the file, and say so.
            c = max((x for x in cands if x is not prev), key=lambda x: x.frames, default=cands[0])
            file_frames = math.floor(c.clip.media.duration_s * fps)
            start = max(0, min(c.first, file_frames - need))
            warnings.append(f"segment {k}: no shot is {float(need / fps):.2f}s long; {c.shot.id} runs past its shot")
        else:
            c, start = choice.cand, choice.start
            if choice.forced:
                forced.append(f"segment {k} ({c.shot.id}): {choice.forced}")
        c.uses += 1
        c.last_used = k
        group_last[c.group] = k
        c.used.append((start, start + need))
        in_frame = start + head
        segments.append(Segment(
            index=k, shot_id=c.shot.id, clip_index=c.shot.clip_index, source=c.clip.media.path,
            record_start_frame=rec, duration_frames=dur, source_in_frame=in_frame,
            transition_in_frames=dissolves[k], section=sec.label, level=sec.level,
            beats=round(dur / beat_frames, 2), score=round(c.shot.score, 3),
            reason=(f"{c.shot.id} (quality {c.shot.score:.2f}, motion {c.shot.motion:.2f}) for the "
                    f"{sec.label} ({sec.level} energy); best {float(dur / fps):.2f}s window at "
                    f"{float(in_frame / fps):.2f}s" + (f", use {c.uses}" if c.uses > 1 else "")),
        ))
        prev = c
    if forced:
        warnings.append(f"the material ran out: {len(forced)} segment(s) repeat a moment or cut within a shot "
                        f"({'; '.join(forced[:5])}{'; ...' if len(forced) > 5 else ''})")
    return CutList(fps_num=fps.numerator, fps_den=fps.denominator, total_frames=end,
                   segments=segments, warnings=warnings)
