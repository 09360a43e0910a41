"""Render cost against the encode floor, on real footage.

Source: 60 s of 1280x720 30 fps H.264 with a 1 s GOP, made from the clips in ../shared/media
(scaled, looped). Cut: 20 segments, 16 s in all, from all over the source. Measured, as whole
processes (CPU = user + system of the process and every child it waited for):

- the engine's render of the cut (cold cache), x264 crf 20 veryfast;
- the encode floor: the same 480 output frames, already decoded and stored raw, encoded once with
  the same settings (what any renderer must spend at least);
- the decode floor: decoding the cut's source frames once with PyAV, one thread, from the keyframe
  before each segment (reference frames only before it), nothing else (what any renderer that
  decodes in software must spend besides the encode);
- ffmpeg alone: one ffmpeg process seeking each segment (-ss before -i), trimming, concatenating
  and encoding with the same settings (a renderer with no frame rule, no resume and no audio);
- the engine's imports (Python, OpenTimelineIO, PyAV, NumPy): a fixed cost of every render.

    python scripts/bench_render.py [--runs 3] [--work /tmp/bench-render]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "media"
FPS, W, H = 30, 1280, 720
SEGMENTS, CUT_FRAMES = 20, 480


def _ffmpeg() -> str:
    sys.path.insert(0, str(ROOT / "engine"))
    from montage_ai.media.ffmpeg import ffmpeg_path

    return ffmpeg_path()


def measured(argv: list[str], **kw) -> tuple[float, float]:
    """(wall s, CPU s) of a command and everything it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(argv, check=True, **kw)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def make_source(work: Path) -> Path:
    src = work / "source-720p30.mp4"
    if src.exists():
        return src
    clips = sorted(p for p in SHARED.glob("*.mp4")) + sorted(SHARED.glob("*.webm"))
    if not clips:
        raise SystemExit(f"no clips in {SHARED}")
    listing = work / "clips.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in clips * 20))
    chain = f"scale={W}:{H}:force_original_aspect_ratio=increase,crop={W}:{H},fps={FPS},setsar=1"
    # each clip normalised first so the concat demuxer sees one format
    norm = []
    for i, p in enumerate(clips):
        out = work / f"norm{i}.mp4"
        subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-i", str(p), "-vf", chain, "-an", "-c:v", "libx264",
                        "-crf", "16", "-preset", "veryfast", str(out)], check=True)
        norm.append(out)
    listing.write_text("".join(f"file '{p}'\n" for p in norm * 20))
    subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "60",
                    "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", "-g", str(FPS), "-pix_fmt", "yuv420p",
                    str(src)], check=True)
    return src


def make_timeline(src: Path, work: Path) -> Path:
    import opentimelineio as otio

    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    lengths = [CUT_FRAMES // SEGMENTS + (1 if i % 3 == 0 else -1 if i % 3 == 1 else 0) for i in range(SEGMENTS)]
    lengths[-1] += CUT_FRAMES - sum(lengths)
    for i, n in enumerate(lengths):
        start = (i * 7919) % (60 * FPS - n - 1)          # spread over the source, out of order
        track.append(otio.schema.Clip(name=f"s{i}", media_reference=otio.schema.ExternalReference(target_url=str(src)),
                                      source_range=tr(rt(start, FPS), rt(n, FPS))))
    tl = otio.schema.Timeline(name="bench")
    tl.tracks.append(track)
    tl.metadata["montage_ai"] = {"render": {"width": W, "height": H, "fps_num": FPS, "fps_den": 1,
                                            "crf": 20, "preset": "veryfast"}}
    path = work / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


DECODE_FLOOR = """
import sys
import av
import opentimelineio as otio
for clip in otio.adapters.read_from_file(sys.argv[1]).find_clips():
    start = clip.source_range.start_time.to_seconds()
    end = start + clip.source_range.duration.to_seconds()
    with av.open(clip.media_reference.target_url) as c:
        s = c.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        c.seek(int(start / s.time_base), stream=s, backward=True)
        s.codec_context.skip_frame = "NONREF"
        for packet in c.demux(s):
            if packet.pts is not None and packet.pts * s.time_base >= start - 0.1:
                s.codec_context.skip_frame = "DEFAULT"
            frames = packet.decode()
            if frames and frames[-1].time >= end:
                break
"""

IMPORTS = "import opentimelineio, av, numpy; from montage_ai.render.conform import render; " \
          "from montage_ai.timeline.read import read_timeline"


def ffmpeg_alone(tl_path: Path, out: Path) -> list[str]:
    """One ffmpeg: each segment an input seeked to its start, trimmed, concatenated, encoded."""
    import opentimelineio as otio

    args, chains = [_ffmpeg(), "-loglevel", "error", "-y"], []
    for i, clip in enumerate(otio.adapters.read_from_file(str(tl_path)).find_clips()):
        rng = clip.source_range
        args += ["-ss", f"{rng.start_time.to_seconds():.6f}", "-t", f"{rng.duration.to_seconds():.6f}",
                 "-i", clip.media_reference.target_url]
        chains.append(f"[{i}:v]setpts=PTS-STARTPTS[v{i}]")
    n = len(chains)
    graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[out]"
    return args + ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-crf", "20", "-preset", "veryfast",
                   "-pix_fmt", "yuv420p", str(out)]


ENGINE = """
import sys
from pathlib import Path
import opentimelineio as otio
from montage_ai.render.conform import render
from montage_ai.timeline.read import read_timeline
tl, out, cache = sys.argv[1:4]
render(read_timeline(otio.adapters.read_from_file(tl)), Path(out), Path(cache), workers=2, progress=False)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-render"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    src = make_source(a.work)
    tl = make_timeline(src, a.work)
    raw = a.work / "cut.yuv"
    rows: dict[str, list[tuple[float, float]]] = {"engine render (cold cache)": [], "encode floor": [],
                                                  "decode floor": [], "ffmpeg alone (no frame rule)": [],
                                                  "engine imports": []}
    for run in range(a.runs):
        cache = a.work / f"cache{run}"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        rows["engine render (cold cache)"].append(
            measured([sys.executable, "-c", ENGINE, str(tl), str(a.work / "engine.mp4"), str(cache)]))
        if not raw.exists():   # the floor's input: the engine's own output frames, decoded once
            subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-i", str(a.work / "engine.mp4"), "-f", "rawvideo",
                            "-pix_fmt", "yuv420p", str(raw)], check=True)
        rows["encode floor"].append(measured([
            _ffmpeg(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}",
            "-framerate", str(FPS), "-i", str(raw), "-c:v", "libx264", "-crf", "20", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", str(a.work / "floor.mp4")]))
        rows["decode floor"].append(measured([sys.executable, "-c", DECODE_FLOOR, str(tl)]))
        rows["ffmpeg alone (no frame rule)"].append(measured(ffmpeg_alone(tl, a.work / "ffmpeg-alone.mp4")))
        rows["engine imports"].append(measured([sys.executable, "-c", IMPORTS]))
    floor_cpu = statistics.median(c for _, c in rows["encode floor"])
    print(f"\n{SEGMENTS} segments, {CUT_FRAMES} frames {W}x{H}@{FPS} from a 60 s H.264 source (1 s GOP), "
          f"x264 crf 20 veryfast, {os.cpu_count()} cores, median of {a.runs}\n")
    print(f"| {'work':<28} | {'wall s':>7} | {'CPU s':>7} | {'CPU / floor':>11} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 13}|")
    for name, vals in rows.items():
        wall = statistics.median(w for w, _ in vals)
        cpu = statistics.median(c for _, c in vals)
        print(f"| {name:<28} | {wall:7.2f} | {cpu:7.2f} | {cpu / floor_cpu:10.2f}x |")
    med = {k: statistics.median(c for _, c in v) for k, v in rows.items()}
    both = med["encode floor"] + med["decode floor"]
    print(f"\nencode + decode floors: {both:.2f} s CPU; the engine spends {med['engine render (cold cache)'] / both:.2f}x "
          f"that ({med['engine render (cold cache)'] - both:+.2f} s, of which {med['engine imports']:.2f} s imports)")
    print(json.dumps({k: v for k, v in rows.items()}))


if __name__ == "__main__":
    main()
