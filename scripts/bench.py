#!/usr/bin/env python3
"""Benchmark the engine on a fixed corpus and print a table.

Corpus (generated once into .cache/bench-corpus): four 720p clips and two 1080p clips of
synthetic footage (4 minutes in all, 25 fps, H.264) and a 3-minute synthesized drum track.
The run uses a fresh analysis and render cache, so every stage does its full work.

    python scripts/bench.py [--resolution 1080p] [--duration SECONDS] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.media.probe import probe
from montage_ai.pipeline import run
from montage_ai.resources import PeakMemory
from montage_ai.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(folder: Path, quick: bool) -> tuple[Path, Path, float, int]:
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    specs = [(1280, 720)] * 4 + [(1920, 1080)] * 2
    length = 12.0 if quick else 40.0
    colors = distinct_colors(len(specs) * 5)
    for i, (w, h) in enumerate(specs):
        path = clips / f"{'q' if quick else 'f'}{i}_{h}p.mp4"
        if not path.exists():
            shots = [ShotSpec(duration_s=length / 5, color=colors[i * 5 + k]) for k in range(5)]
            make_clip(path, shots, width=w, height=h, fps="25")
    music = folder / f"track_{'q' if quick else 'f'}.wav"
    track_s = 60.0 if quick else 180.0
    if not music.exists():
        make_drum_track(music, bpm=124.0, duration_s=track_s)
    mine = [p for p in sorted(clips.iterdir()) if p.name.startswith("q" if quick else "f")]
    frames = sum(probe(p).frame_count for p in mine)
    media_s = sum(probe(p).duration_s for p in mine)
    sub = folder / ("clips_q" if quick else "clips_f")
    sub.mkdir(exist_ok=True)
    for p in mine:
        link = sub / p.name
        if not link.exists():
            link.symlink_to(p)
    return sub, music, media_s, frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", default="1080p")
    ap.add_argument("--duration", type=float, default=None, help="montage length (default: the whole track)")
    ap.add_argument("--quick", action="store_true", help="a small corpus for a smoke run")
    args = ap.parse_args()
    corpus = ROOT / ".cache" / "bench-corpus"
    t0 = time.perf_counter()
    clips, music, media_s, frames = build_corpus(corpus, args.quick)
    print(f"corpus: {clips} ({media_s:.0f} s of video, {frames} frames), {music.name}; built in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(clips=clips, music=music, out=Path(tmp) / "out", cache_dir=Path(tmp) / "cache",
                     resolution=args.resolution, duration=args.duration)
        t = time.perf_counter()
        with PeakMemory() as mem:
            summary = run(s, progress=False)
        total = time.perf_counter() - t
    st = summary.stages_s
    rows = [
        ("probe", st["probe"], "", ""),
        ("music analysis", st["music"], "", f"{(180.0 if not args.quick else 60.0) / max(st['music'], 1e-9):.1f}x"),
        ("clip analysis", st["clips"], f"{frames / max(st['clips'], 1e-9):.0f}", f"{media_s / max(st['clips'], 1e-9):.1f}x"),
        ("direct + cut + timeline", st["direct"] + st["cut"] + st["timeline"], "", ""),
        ("render", st["render"], f"{summary.frames / max(st['render'], 1e-9):.0f}", f"{summary.duration_s / max(st['render'], 1e-9):.2f}x"),
        ("report (page, storyboard, chart)", st.get("report", 0.0), "", ""),
        ("total", total, "", ""),
    ]
    print(f"\nmontage: {summary.duration_s:.1f} s, {summary.frames} frames at {summary.fps} fps, {args.resolution}, "
          f"{summary.cuts} segments; {s.worker_count()} workers")
    print(f"{'stage':32s} {'wall s':>8s} {'frames/s':>9s} {'x realtime':>11s}")
    for name, sec, fps, rt in rows:
        print(f"{name:32s} {sec:8.1f} {fps:>9s} {rt:>11s}")
    print(f"{'peak memory (engine+ffmpeg)':32s} {mem.peak / 2**20:8.0f} MB")


if __name__ == "__main__":
    main()
