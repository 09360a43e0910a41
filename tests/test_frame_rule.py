"""The one source-frame rule (docs/frame-rule.md) on mixed-rate footage.

Sources whose every frame shows its own index, at 23.976, 24, 25, 29.97, 30, 50 and 59.94 fps,
a variable-frame-rate source and an MPEG-TS source whose first timestamp is not zero, are cut
into one timeline and rendered at 24, 25, 29.97 and 30 fps. The expected index of every output
frame is computed here, independently of the engine, from the timestamps PyAV reads from each
file: the frame nearest to in + k / rate, the later one on a tie. melt renders the exported
.kdenlive of the same timeline and must show the same frames.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.interchange import export_timeline
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.render.conform import render
from montage_ai.render.frame_rule import cfr_index, select, source_times
from montage_ai.timeline.read import read_timeline

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

SOURCE_RATES = {"r23976": "24000/1001", "r24": "24", "r25": "25", "r2997": "30000/1001", "r30": "30",
                "r50": "50", "r5994": "60000/1001"}
OUTPUT_RATES = {"24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}


# --------------------------------------------------------------------------- the rule alone


def test_rule_is_nearest_frame_with_ties_to_the_later():
    assert cfr_index(Fraction(2, 24), Fraction(30)) == 3          # 2.5 source frames: the later
    assert cfr_index(Fraction(1, 30), Fraction(24)) == 1          # 0.8: the nearer
    assert cfr_index(Fraction(1, 60), Fraction(24)) == 0          # 0.4
    assert [cfr_index(t, Fraction(25)) for t in source_times(Fraction(0), 6, Fraction(50))] == [0, 1, 1, 2, 2, 3]
    # variable rate: the same rule over real timestamps, past the end the last frame holds
    frames = [(Fraction(t, 1000), i) for i, t in enumerate([0, 18, 51, 84, 132])]
    assert list(select(iter(frames), [Fraction(t, 1000) for t in (0, 9, 10, 40, 67, 68, 500)])) == [0, 1, 1, 2, 2, 3, 4]
    # NTSC in exact arithmetic: 29.97 at 24 fps (2.5 source frames per 2 output frames)
    ntsc = Fraction(30000, 1001)
    assert [cfr_index(t, ntsc) for t in source_times(Fraction(0), 5, Fraction(24))] == [0, 1, 2, 4, 5]


# --------------------------------------------------------------------------- real files


def _vfr_clip(path: Path, work: Path) -> Path:
    """Frame n at (33 n + 15 [n % 4 == 0]) ms: intervals of 18, 33, 33 and 48 ms, as a phone's."""
    cfr = make_counter_clip(work / "vfr-src.mp4", 90, fps="30", tint=(200, 200, 40))
    run_ffmpeg(["-i", cfr, "-vf", "setpts='(N*33+15*eq(mod(N,4),0))/1000/TB'", "-fps_mode", "passthrough",
                "-c:v", "libx264", "-crf", "12", "-g", "30", "-pix_fmt", "yuv420p", path], what="vfr clip")
    return path


def _offset_clip(path: Path, work: Path) -> Path:
    """A 25 fps MPEG-TS file: its first timestamp is 1.4 s, not 0."""
    mp4 = make_counter_clip(work / "ts-src.mp4", 100, fps="25", tint=(40, 200, 200))
    run_ffmpeg(["-i", mp4, "-c", "copy", "-f", "mpegts", path], what="ts clip")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("frame-rule")
    tints = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 40, 200), (120, 120, 120), (200, 120, 40), (40, 120, 200)]
    out = {name: make_counter_clip(d / f"{name}.mp4", 160, fps=rate, tint=tint)
           for (name, rate), tint in zip(SOURCE_RATES.items(), tints)}
    out["vfr"] = _vfr_clip(d / "vfr.mkv", d)
    out["ts"] = _offset_clip(d / "offset.ts", d)
    return out


def presentation(path: Path) -> list[tuple[Fraction, int]]:
    """(media time, shown index) of every frame, from the file's own timestamps."""
    with av.open(str(path)) as c:
        frames = [(f.pts, f.time_base, read_counter(f.to_ndarray(format="rgb24"))) for f in c.decode(video=0)]
    frames.sort(key=lambda x: x[0])
    zero = frames[0][0]
    return [(Fraction(pts - zero) * Fraction(tb), n) for pts, tb, n in frames]


def expected_index(frames: list[tuple[Fraction, int]], t: Fraction) -> int:
    """Brute force: the frame nearest to t, the later on a tie."""
    best = min(range(len(frames)), key=lambda i: (abs(frames[i][0] - t), -i))
    return frames[best][1]


def cut(sources: dict[str, Path], rate: Fraction) -> otio.schema.Timeline:
    """One clip of every source, in-points spread so that ties and every phase occur."""
    r = float(rate)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for i, (name, path) in enumerate(sources.items()):
        track.append(otio.schema.Clip(
            name=name, media_reference=otio.schema.ExternalReference(target_url=str(path)),
            source_range=TR(RT(7 + 5 * i, r), RT(10 + i % 4, r))))
    tl = otio.schema.Timeline(name=f"mixed at {r:.3f}")
    tl.tracks.append(track)
    tl.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": rate.numerator,
                                            "fps_den": rate.denominator, "fit": "crop"}}
    return tl


def expected(tl: otio.schema.Timeline, rate: Fraction, truth: dict[str, list]) -> list[tuple[str, int]]:
    want = []
    for clip in tl.tracks[0].find_clips():
        start = Fraction(int(clip.source_range.start_time.value)) / rate
        for k in range(int(clip.source_range.duration.value)):
            want.append((clip.name, expected_index(truth[clip.name], start + Fraction(k) / rate)))
    return want


@pytest.fixture(scope="module")
def truth(sources) -> dict[str, list[tuple[Fraction, int]]]:
    t = {name: presentation(path) for name, path in sources.items()}
    gaps = np.diff([float(x) for x, _ in t["vfr"]])
    assert gaps.max() - gaps.min() > 0.02, "the variable-rate source must really vary"
    with av.open(str(sources["ts"])) as c:
        assert c.streams.video[0].start_time * c.streams.video[0].time_base > 1
    return t


@pytest.mark.parametrize("label", list(OUTPUT_RATES))
def test_every_output_frame_shows_the_frame_the_rule_names(sources, truth, tmp_path, label):
    rate = OUTPUT_RATES[label]
    tl = cut(sources, rate)
    want = expected(tl, rate, truth)
    out = tmp_path / "engine.mp4"
    render(read_timeline(tl), out, tmp_path / "cache", workers=2, progress=False)
    got = [read_counter(f) for f in decode_frames(out)]
    assert len(got) == len(want)
    wrong = [(i, name, w, g) for i, ((name, w), g) in enumerate(zip(want, got)) if w != g]
    assert not wrong, f"{len(wrong)} of {len(want)} frames differ (frame, source, want, got): {wrong[:8]}"


@pytest.mark.parametrize("label", list(OUTPUT_RATES))
def test_melt_shows_the_same_frames_as_the_engine(sources, truth, tmp_path, label):
    melt = shutil.which("melt")
    if melt is None:
        pytest.skip("melt not installed: apt-get install melt")
    rate = OUTPUT_RATES[label]
    tl = cut(sources, rate)
    want = expected(tl, rate, truth)
    export_timeline(tl, tmp_path, basename="cut", formats=["kdenlive"])
    out = tmp_path / "melt.mp4"
    proc = subprocess.run([melt, str(tmp_path / "cut.kdenlive"), "-consumer", f"avformat:{out}", "vcodec=libx264",
                           "crf=12", "an=1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [read_counter(f) for f in decode_frames(out)][: len(want)]
    wrong = [(i, name, w, g) for i, ((name, w), g) in enumerate(zip(want, got)) if w != g]
    constant_rate = [w for w in wrong if w[1] != "vfr"]
    assert not constant_rate, f"melt differs on constant-rate sources: {constant_rate[:8]}"
    # MLT maps a variable-rate file through its average rate (docs/frame-rule.md): a few frames
    # of it may differ from the rule; printed for the record
    vfr = [w for w in wrong if w[1] == "vfr"]
    frames_of_vfr = sum(1 for name, _ in want if name == "vfr")
    print(f"melt at {label} fps: {len(vfr)} of {frames_of_vfr} variable-rate frames differ from the rule")
