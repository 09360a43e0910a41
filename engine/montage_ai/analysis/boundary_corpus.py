"""A shot-boundary corpus made of real footage, with ground truth known by construction.

Segments of real clips are cut, scaled to one size and rate, and joined by hard cuts, fades
through black and cross-dissolves in one ffmpeg run; flashes, a strobe and a flicker can be
laid over a segment (inside one shot: no boundary). Frame counts are chosen up front, so every
boundary is known to the frame. Used by scripts/bench_shots.py (a ~48 s corpus) and by the
tests (a small one).

Truth spans are inclusive frame ranges of the output: a hard cut is (f, f), f being the first
frame of the new shot; a fade or dissolve spans every frame of the transition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..media.ffmpeg import run_ffmpeg


@dataclass(frozen=True)
class Segment:
    source: str                 # file name inside the media folder
    start_s: float
    frames: int                 # frames of this segment in the output (before transition overlap)
    look: str = ""              # extra ffmpeg filters after scaling (a crop, a flip)
    effect: str = ""            # flash | strobe | flicker: disturbances inside the shot


@dataclass(frozen=True)
class Join:
    kind: str                   # cut | fade | dissolve
    frames: int = 0             # transition length (fade, dissolve)


@dataclass
class CorpusTruth:
    path: Path
    fps: int
    width: int
    height: int
    frame_count: int
    boundaries: list[tuple[str, int, int]]          # (kind, first frame, last frame)
    disturbances: list[tuple[str, int, int]] = field(default_factory=list)  # flash spans (no boundary)

    def to_json(self) -> str:
        d = asdict(self)
        d["path"] = str(self.path)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> CorpusTruth:
        d = json.loads(text)
        d["path"] = Path(d["path"])
        d["boundaries"] = [tuple(b) for b in d["boundaries"]]
        d["disturbances"] = [tuple(b) for b in d["disturbances"]]
        return cls(**d)


# Disturbances inside one shot, frame numbers relative to the segment's first frame.
# flash: one white frame (10), a two-frame brightness burst (30-31), a half-frame camera flash (50)
# strobe: every fourth frame much brighter for 40 frames; flicker: firelight-like irregular
# brightness and contrast swings every frame for 2 s.
_EFFECTS = {
    "flash": ("drawbox=x=0:y=0:w=iw:h=ih:c=white:t=fill:enable='eq(n,10)',"
              "eq=brightness=0.45:contrast=0.8:enable='between(n,30,31)',"
              "drawbox=x=0:y=0:w=iw/2:h=ih:c=white@0.8:t=fill:enable='eq(n,50)'", [(10, 10), (30, 31), (50, 50)]),
    "strobe": ("eq=brightness=0.5:enable='lt(mod(n,4),1)*between(n,4,44)'", [(4, 44)]),
    "flicker": ("eq=eval=frame:brightness='between(n,3,49)*(0.16*sin(n*2.3)+0.09*sin(n*5.1+1))':"
                "contrast='1+between(n,3,49)*0.25*sin(n*3.7)':saturation='1+between(n,3,49)*0.3*sin(n*1.3)'",
                [(3, 49)]),
}


def _segment_filter(i: int, seg: Segment, fps: int, w: int, h: int) -> str:
    chain = [f"fps={fps}", f"scale={w}:{h}:force_original_aspect_ratio=increase", f"crop={w}:{h}"]
    if seg.look:
        chain += [seg.look, f"scale={w}:{h}"]
    chain += ["setsar=1", f"trim=end_frame={seg.frames}", "setpts=PTS-STARTPTS"]
    if seg.effect:
        chain.append(_EFFECTS[seg.effect][0])
    chain += ["format=yuv420p", f"settb=1/{fps}"]
    return f"[{i}:v]" + ",".join(chain) + f"[s{i}]"


def build_corpus(path: Path, media: Path, segments: Sequence[Segment], joins: Sequence[Join], *,
                 fps: int = 25, width: int = 1280, height: int = 720, gop: int = 50,
                 crf: int = 21, preset: str = "medium") -> CorpusTruth:
    """Write the corpus to `path` (H.264, no audio, x264 scene-cut keyframes off so keyframes
    say nothing about cuts) and return its truth. `joins[i]` joins segment i and i+1."""
    if len(joins) != len(segments) - 1:
        raise ValueError("one join between each pair of segments")
    args: list[str | Path] = []
    for seg in segments:
        args += ["-ss", f"{seg.start_s:.3f}", "-t", f"{seg.frames / fps + 1.0:.3f}", "-i", media / seg.source]
    graph = [_segment_filter(i, s, fps, width, height) for i, s in enumerate(segments)]
    truth: list[tuple[str, int, int]] = []
    disturbances: list[tuple[str, int, int]] = []
    cur, length = "s0", segments[0].frames
    offsets = [0]
    for i, (join, seg) in enumerate(zip(joins, segments[1:]), start=1):
        out = f"j{i}"
        if join.kind == "cut":
            graph.append(f"[{cur}][s{i}]concat=n=2:v=1:a=0,settb=1/{fps}[{out}]")
            truth.append(("cut", length, length))
            offsets.append(length)
            length += seg.frames
        else:
            d = join.frames
            mode = {"fade": "fadeblack", "dissolve": "fade"}[join.kind]   # xfade "fade" is the cross-dissolve
            graph.append(f"[{cur}][s{i}]xfade=transition={mode}:duration={d / fps:.4f}:"
                         f"offset={(length - d) / fps:.4f}[{out}]")
            truth.append((join.kind, length - d, length - 1))
            offsets.append(length - d)
            length += seg.frames - d
        cur = out
    for seg, off in zip(segments, offsets):
        if seg.effect:
            disturbances += [(seg.effect, off + a, off + b) for a, b in _EFFECTS[seg.effect][1]]
    run_ffmpeg([*args, "-filter_complex", ";".join(graph), "-map", f"[{cur}]", "-an",
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-g", str(gop), "-keyint_min", str(gop), "-x264-params", "scenecut=0",
                "-r", str(fps), "-frames:v", str(length), path], what="boundary corpus")
    return CorpusTruth(path=path, fps=fps, width=width, height=height, frame_count=length,
                       boundaries=truth, disturbances=disturbances)


def score(found: Sequence[int], truth: Sequence[tuple[str, int, int]], tolerance: int = 2) -> tuple[float, float, float]:
    """(precision, recall, F1): a found boundary frame matches a hard cut within `tolerance`
    frames and a fade or dissolve anywhere in its span (widened by the tolerance); each truth
    boundary matches at most one found boundary, nearest first."""
    pairs = []
    for fi, f in enumerate(found):
        for ti, (_, a, b) in enumerate(truth):
            dist = 0 if a <= f <= b else min(abs(f - a), abs(f - b))
            if dist <= tolerance:
                pairs.append((dist, fi, ti))
    used_f, used_t = set(), set()
    for _, fi, ti in sorted(pairs):
        if fi not in used_f and ti not in used_t:
            used_f.add(fi)
            used_t.add(ti)
    tp = len(used_t)
    p = tp / len(found) if found else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# The benchmark corpus: 26 segments of real footage (Big Buck Bunny and Sintel, animated;
# three real camera clips at 10, 12.5 and 29.83 fps, so repeated and dropped frames), 22 hard
# cuts, two fades through black, one dissolve, and flashes, a strobe and a flicker inside shots.
BBB, SIN = "big_buck_bunny_0_30.webm", "sintel_2s.mp4"
CAR, PEO, BOT = "car-detection.mp4", "one-by-one-person-detection.mp4", "bottle-detection.mp4"
ZOOM_L = "crop=iw*0.6:ih*0.6:0:ih*0.2"
ZOOM_R = "crop=iw*0.6:ih*0.6:iw*0.4:ih*0.4"
FLIP = "hflip"

BENCH_SEGMENTS = [
    Segment(BBB, 2.0, 50), Segment(PEO, 5.0, 45), Segment(BOT, 3.0, 40), Segment(CAR, 2.0, 55),
    Segment(BBB, 12.2, 60, effect="flash"), Segment(SIN, 0.0, 45), Segment(PEO, 40.0, 50, ZOOM_L),
    Segment(BOT, 12.0, 35), Segment(BBB, 16.0, 45), Segment(CAR, 12.0, 50, ZOOM_R),
    Segment(PEO, 70.0, 55, effect="flicker"), Segment(BBB, 24.0, 40), Segment(BOT, 20.0, 45, FLIP),
    Segment(SIN, 0.6, 30, ZOOM_L), Segment(CAR, 20.0, 50, effect="strobe"), Segment(BBB, 7.0, 45),
    Segment(PEO, 100.0, 40, FLIP), Segment(BOT, 28.0, 50, ZOOM_L), Segment(BBB, 18.5, 55, ZOOM_R),
    Segment(CAR, 25.0, 40, ZOOM_L), Segment(PEO, 120.0, 50), Segment(BBB, 26.0, 45, FLIP),
    Segment(BOT, 34.0, 45), Segment(BBB, 3.5, 50, FLIP), Segment(CAR, 6.0, 45, FLIP), Segment(BOT, 5.0, 55, ZOOM_R),
]
BENCH_JOINS = [Join("cut")] * 25
BENCH_JOINS[7] = Join("fade", 20)
BENCH_JOINS[15] = Join("dissolve", 15)
BENCH_JOINS[20] = Join("fade", 16)

# The tests' corpus: 10 s, 360p, three cuts, a fade, a dissolve, a flash and a flicker shot.
TEST_SEGMENTS = [
    Segment(BBB, 2.0, 40), Segment(BOT, 12.0, 35), Segment(BBB, 12.2, 75, effect="flash"),
    Segment(PEO, 40.0, 35), Segment(BBB, 16.0, 40), Segment(CAR, 2.0, 40),
    Segment(PEO, 70.0, 55, effect="flicker"),
]
TEST_JOINS = [Join("cut"), Join("cut"), Join("fade", 16), Join("dissolve", 14), Join("cut"), Join("cut")]
