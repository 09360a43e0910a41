"""The craft report: how the cut was judged, in numbers a user can check.

What an editor would look at in someone else's cut: whether a moment was shown twice, whether
the same moment (near-duplicate shots) came back, jump cuts, how the sources are balanced, and
whether the cuts sit on the music's beats. Pure: a CutList and the analyses in, a model out.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from pydantic import BaseModel

from ..analysis.music import MusicAnalysis
from ..analysis.shots import ClipAnalysis
from .cutter import CutList


class SourceShare(BaseModel):
    source: str          # file name
    segments: int
    seconds: float


class CraftReport(BaseModel):
    segments: int
    shots_used: int
    shots_available: int
    repeated_shots: dict[str, int]          # shot id -> uses, for shots shown more than once
    repeated_windows: int                   # pairs of segments sharing a source frame
    near_duplicate_returns: int             # segments whose moment (group) had been shown by another shot
    jump_cuts: int                          # consecutive segments of one shot or one moment
    ran_out: bool                           # the cutter said the material ran out
    sources: list[SourceShare]
    cuts: int
    cuts_on_beat: int                       # within one frame of a beat
    text_ranges: int = 0                    # ranges of the footage with text on screen (titles, credits)
    text_seconds: float = 0.0
    segments_with_text: int = 0             # segments that show some of it

    @property
    def on_beat_share(self) -> float:
        return self.cuts_on_beat / self.cuts if self.cuts else 1.0

    def lines(self) -> list[str]:
        """The report as summary lines."""
        repeats = (", ".join(f"{k} x{n}" for k, n in sorted(self.repeated_shots.items())) or "none")
        balance = ", ".join(f"{s.source} {s.segments} ({s.seconds:.1f}s)" for s in self.sources)
        return [
            f"craft: {self.segments} segments from {self.shots_used} of {self.shots_available} shots; "
            f"{100 * self.on_beat_share:.0f}% of cuts on a beat ({self.cuts_on_beat}/{self.cuts})",
            f"craft: shots shown again: {repeats}; moments shown twice: {self.repeated_windows}"
            + ("" if not self.ran_out else " (the material ran out)"),
            f"craft: near-duplicates returning: {self.near_duplicate_returns}; jump cuts: {self.jump_cuts}",
            f"craft: sources: {balance}",
            f"craft: text on screen (titles, credits): {self.text_ranges} range(s), {self.text_seconds:.1f}s of "
            f"footage; segments showing it: {self.segments_with_text}",
        ]


def _overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two [start, stop) spans share a moment."""
    return first[0] < second[1] and second[0] < first[1]


def craft_report(cuts: CutList, clips: list[ClipAnalysis], music: MusicAnalysis) -> CraftReport:
    fps = Fraction(cuts.fps_num, cuts.fps_den)
    segs = cuts.segments
    group = {s.id: (s.group or s.id) for c in clips for s in c.shots}
    uses = Counter(s.shot_id for s in segs)
    windows = []
    for k, s in enumerate(segs):
        head = s.transition_in_frames // 2
        tail = segs[k + 1].transition_in_frames // 2 if k + 1 < len(segs) else 0
        windows.append((s.source, s.source_in_frame - head, s.source_in_frame + s.duration_frames + tail))
    text = {c.media.path: [(r.start_s * float(fps), r.end_s * float(fps)) for r in c.text] for c in clips}
    with_text = sum(1 for src, a, b in windows if any(_overlap((a, b), span) for span in text.get(src, [])))
    repeated = sum(1 for i in range(len(windows)) for j in range(i) if windows[i][0] == windows[j][0]
                   and _overlap(windows[i][1:], windows[j][1:]))
    seen: dict[str, str] = {}
    returns = 0
    for s in segs:
        g = group.get(s.shot_id, s.shot_id)
        if g in seen and seen[g] != s.shot_id:
            returns += 1
        seen.setdefault(g, s.shot_id)
    jumps = sum(1 for a, b in zip(segs, segs[1:]) if group.get(a.shot_id, a.shot_id) == group.get(b.shot_id, b.shot_id))
    per_source: dict[str, list[int]] = {}
    for s in segs:
        per_source.setdefault(s.source.name, []).append(s.duration_frames)
    beat_frames = [t * float(fps) for t in music.beat_times_s]
    cut_frames = [s.record_start_frame for s in segs[1:]]
    on_beat = sum(1 for f in cut_frames if beat_frames and min(abs(f - b) for b in beat_frames) <= 1.0)
    return CraftReport(
        segments=len(segs), shots_used=len(uses), shots_available=len(group),
        repeated_shots={k: n for k, n in uses.items() if n > 1}, repeated_windows=repeated,
        near_duplicate_returns=returns, jump_cuts=jumps,
        ran_out=any("ran out" in w for w in cuts.warnings),
        sources=[SourceShare(source=name, segments=len(d), seconds=round(float(sum(d) / fps), 2))
                 for name, d in sorted(per_source.items(), key=lambda kv: -sum(kv[1]))],
        cuts=len(cut_frames), cuts_on_beat=on_beat,
        text_ranges=sum(len(c.text) for c in clips),
        text_seconds=round(sum(r.end_s - r.start_s for c in clips for r in c.text), 2),
        segments_with_text=with_text,
    )
