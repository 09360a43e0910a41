"""Synthesized video clips with exact ground truth (cuts, colours, black and frozen ranges).

Used by tests, the demo and benchmarks: real footage has no exact answer, a clip we synthesize
does. Every shot is a flat, saturated background colour (so the per-frame MEDIAN RGB names the
shot even after H.264 compression; at most ~7% of the picture is anything else) with a small
moving test-pattern box on top (so sharpness and motion are non-zero). Frame counts are whole
numbers chosen up front, so cut frames are exact; x264 scene-cut keyframes are disabled, so
keyframes do not line up with cuts and seeking stays non-trivial.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..media.ffmpeg import run_ffmpeg

Color = tuple[int, int, int]
Range = tuple[float, float]

BOX_FRACTION = 0.25          # the moving box is 1/4 of the width and height: 6.25 % of the area
FADE_S = 0.4                 # length of each half of a fade-through-black, and of a dissolve
GOP = 48


class ShotSpec(BaseModel):
    """One synthetic shot. kind: pattern (moving box), still (nothing moves), blurred, black."""

    duration_s: float = Field(gt=0)
    color: Color
    kind: Literal["pattern", "still", "blurred", "black"] = "pattern"


class ClipTruth(BaseModel):
    """What the analysis should find in a clip written by `make_clip`."""

    path: Path
    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    duration_s: float
    transition: str
    cut_frames: list[int]            # first frame of each shot after the first (middle of a fade/dissolve)
    cut_times_s: list[float]         # the same, in seconds
    shot_start_frames: list[int]     # first frame of every shot (0 first)
    shot_colors: list[Color]
    shot_kinds: list[str]
    black_ranges_s: list[Range]      # extra black ranges (end exclusive)
    frozen_ranges_s: list[Range]     # extra frozen ranges (end exclusive)
    has_audio: bool

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    def shot_at_frame(self, frame: int) -> int:
        """Index of the shot on screen at `frame` (by the nominal boundaries)."""
        return max(i for i, s in enumerate(self.shot_start_frames) if s <= frame)


def distinct_colors(n: int) -> list[Color]:
    """`n` well-separated saturated colours, none near black or grey.

    Hues are spread evenly; past 8 colours a darker ring, past 16 a paler one, interleave
    with the first so that neighbours in the list stay far apart in RGB.
    """
    if n <= 0:
        return []
    rings = min(len(_RINGS), -(-n // 8))
    per_ring = -(-n // rings)
    out: list[Color] = []
    for i in range(n):
        ring, k = i % rings, i // rings
        hue = (k + ring / rings) / per_ring
        saturation, value = _RINGS[ring]
        r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


_RINGS = ((0.85, 0.9), (0.85, 0.6), (0.5, 0.95))  # (saturation, value)


def make_clip(
    path: Path,
    shots: Sequence[ShotSpec],
    width: int = 640,
    height: int = 360,
    fps: str = "25",
    transition: Literal["cut", "fade", "dissolve"] = "cut",
    audio_tone_hz: float | None = None,
    black_ranges_s: Sequence[Range] = (),
    frozen_ranges_s: Sequence[Range] = (),
    transition_s: float = FADE_S,
) -> ClipTruth:
    """Write an H.264 mp4 of `shots` and return its ground truth.

    transition "fade" fades each shot out to black and the next in from black (the boundary
    is the junction, the darkest point); "dissolve" cross-fades (the boundary is the middle of
    the dissolve, which shortens the clip); `transition_s` is the length of a dissolve and of
    each half of a fade. `black_ranges_s` paint the picture black and
    `frozen_ranges_s` repeat one frame, both over ranges of the finished clip in seconds.
    """
    if not shots:
        raise ValueError("make_clip needs at least one shot")
    rate = Fraction(fps)
    path = Path(path).absolute()
    frames = [max(1, round(s.duration_s * rate)) for s in shots]
    fade_frames = max(2, round(transition_s * rate))
    if transition != "cut" and min(frames) < 2 * fade_frames + 2:
        raise ValueError(f"shots must be longer than {2 * transition_s + 0.1:.1f} s for {transition} transitions")

    parts = [_shot_graph(i, s, n, width, height, rate, transition, fade_frames, len(shots))
             for i, (s, n) in enumerate(zip(shots, frames))]
    if transition == "dissolve":
        join, starts, total = _dissolve_join(frames, fade_frames, rate)
    else:
        join = "".join(f"[s{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0[joined]"
        starts = [sum(frames[:i]) for i in range(len(shots))]
        total = sum(frames)

    black_f = [_frame_range(r, rate, total) for r in black_ranges_s]
    frozen_f = [_frame_range(r, rate, total) for r in frozen_ranges_s]
    graph = ";".join(parts + [join] + _extras_graph(black_f, frozen_f))

    args: list[str] = ["-filter_complex", graph, "-map", "[out]"]
    if audio_tone_hz is not None:
        dur = float(total / rate)
        args = ["-f", "lavfi", "-i", f"sine=frequency={audio_tone_hz}:sample_rate=48000:duration={dur:.6f}"] + args
        args += ["-map", "0:a", "-c:a", "aac", "-b:a", "96k"]
    args += ["-r", str(rate), "-fps_mode", "cfr", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
             "-pix_fmt", "yuv420p", "-g", str(GOP), "-sc_threshold", "0", "-bf", "2",
             "-frames:v", str(total), "-movflags", "+faststart", str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(args, what=f"synthesize {path.name}")

    cut_frames = starts[1:]
    return ClipTruth(
        path=path, width=width, height=height, fps_num=rate.numerator, fps_den=rate.denominator,
        frame_count=total, duration_s=float(total / rate), transition=transition,
        cut_frames=cut_frames, cut_times_s=[float(f / rate) for f in cut_frames],
        shot_start_frames=starts, shot_colors=[(0, 0, 0) if s.kind == "black" else tuple(s.color) for s in shots],
        shot_kinds=[s.kind for s in shots],
        black_ranges_s=[(float(a / rate), float(b / rate)) for a, b in black_f],
        frozen_ranges_s=[(float(a / rate), float(b / rate)) for a, b in frozen_f],
        has_audio=audio_tone_hz is not None,
    )


def _hex(c: Color) -> str:
    return "0x{:02X}{:02X}{:02X}".format(*c)


def _shot_graph(i: int, spec: ShotSpec, n: int, w: int, h: int, rate: Fraction,
                transition: str, fade: int, count: int) -> str:
    """Filter chain for one shot, labelled [s{i}]: background, moving box, effects, fades."""
    bw, bh = _even(w * BOX_FRACTION), _even(h * BOX_FRACTION)
    color = (0, 0, 0) if spec.kind == "black" else spec.color
    bg = f"color=c={_hex(color)}:s={w}x{h}:r={rate},trim=end_frame={n},setpts=PTS-STARTPTS[bg{i}]"
    if spec.kind == "black":
        chain = [bg.replace(f"[bg{i}]", "")]
    else:
        fg = f"testsrc2=s={bw}x{bh}:r={rate}"
        if spec.kind == "still":
            fg += f",trim=end_frame=1,loop=loop={n - 1}:size=1:start=0"
            x, y = f"{(w - bw) * (1 + i % 3) // 4}", f"{(h - bh) // 2}"
        else:
            # Smooth back-and-forth motion (no jumps), a different phase per shot.
            x = f"{(w - bw) / 2:.1f}*(1+sin(t*1.3+{i * 1.7:.1f}))"
            y = f"{(h - bh) / 2:.1f}+{(h - bh) / 3:.1f}*sin(t*2+{i})"
        fg += f",trim=end_frame={n},setpts=PTS-STARTPTS[fg{i}]"
        chain = [bg + ";" + fg + ";" + f"[bg{i}][fg{i}]overlay=x='{x}':y='{y}':eval=frame:shortest=1"]
        if spec.kind == "blurred":
            chain.append("gblur=sigma=8")
    if transition == "fade":
        if i > 0:
            chain.append(f"fade=t=in:start_frame=0:nb_frames={fade}")
        if i < count - 1:
            chain.append(f"fade=t=out:start_frame={n - fade}:nb_frames={fade}")
    return ",".join(chain) + f",format=yuv420p,setsar=1[s{i}]"


def _dissolve_join(frames: list[int], t: int, rate: Fraction) -> tuple[str, list[int], int]:
    """xfade chain over the shots; returns graph, boundary frames (mid-dissolve), total frames."""
    links, starts, length, prev = [], [0], frames[0], "s0"
    for i in range(1, len(frames)):
        offset = length - t
        out = "joined" if i == len(frames) - 1 else f"x{i}"
        links.append(f"[{prev}][s{i}]xfade=transition=fade:duration={float(t / rate):.6f}"
                     f":offset={float(offset / rate):.6f}[{out}]")
        starts.append(offset + t // 2)
        length, prev = length + frames[i] - t, out
    if len(frames) == 1:
        links.append("[s0]null[joined]")
    return ";".join(links), starts, length


def _extras_graph(black: list[tuple[int, int]], frozen: list[tuple[int, int]]) -> list[str]:
    """Paint black ranges and freeze frozen ranges on the joined stream -> [out]."""
    chains: list[str] = []
    cur = "joined"
    for k, (a, b) in enumerate(frozen):
        chains.append(f"[{cur}]split[fa{k}][fb{k}];"
                      f"[fa{k}][fb{k}]freezeframes=first={a}:last={b - 1}:replace={a}[fz{k}]")
        cur = f"fz{k}"
    boxes = ",".join(f"drawbox=x=0:y=0:w=iw:h=ih:c=black:t=fill:enable='between(n,{a},{b - 1})'"
                     for a, b in black)
    chains.append(f"[{cur}]" + (boxes + "," if boxes else "") + "setpts=PTS-STARTPTS[out]")
    return chains


def _frame_range(r: Range, rate: Fraction, total: int) -> tuple[int, int]:
    a, b = (min(total, max(0, round(x * rate))) for x in r)
    if b <= a:
        raise ValueError(f"empty range {r}")
    return a, b


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)
