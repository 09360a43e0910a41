#!/usr/bin/env python3
"""Time a full render against a --preview render of the same cut, and check it is the same cut.

The demo media (../shared/media when present, synthetic otherwise) goes through the pipeline
once to get a timeline; then that timeline is rendered twice, full and preview, each with an
empty piece cache so both do all their work, alternating `--repeat` times (best time kept).
Printed: both times, the ratio (the issue asks for preview < 1/4 of full), frame counts, and
how far apart the two renders' per-frame thumbnails are (the same shot on every frame).

    python scripts/bench_preview.py [--resolution 1080p] [--duration 20] [--synthetic] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import opentimelineio as otio

from montage_ai.demo.media import build_demo_media
from montage_ai.pipeline import run
from montage_ai.render.conform import render
from montage_ai.report.preview import preview_spec
from montage_ai.settings import Settings
from montage_ai.timeline.model import RenderSpec
from montage_ai.timeline.read import read_timeline

ROOT = Path(__file__).resolve().parents[1]


def timed_render(spec: RenderSpec, out: Path, cache: Path, workers: int) -> float:
    """Seconds for one render from an empty piece cache."""
    shutil.rmtree(cache, ignore_errors=True)
    t = time.perf_counter()
    render(spec, out, cache, workers=workers, progress=False)
    return time.perf_counter() - t


def frame_signatures(path: Path, size: tuple[int, int] = (32, 18)) -> np.ndarray:
    """A tiny RGB picture of every frame: enough to tell which shot is on screen."""
    import av

    with av.open(str(path)) as c:
        return np.array([f.to_ndarray(format="rgb24", width=size[0], height=size[1]).astype(np.int16)
                         for f in c.decode(video=0)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="1080p", help="the full render's resolution (default 1080p)")
    ap.add_argument("--duration", type=float, default=20.0, help="montage length in seconds")
    ap.add_argument("--synthetic", action="store_true", help="synthetic demo media even when ../shared/media exists")
    ap.add_argument("--repeat", type=int, default=2, help="renders of each kind; the best time counts")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        media = build_demo_media(ROOT / ".cache" / "bench-preview-media", prefer_real=not args.synthetic)
        s = Settings(clips=media.clips, music=media.music, out=tmp / "out", cache_dir=tmp / "cache",
                     resolution=args.resolution, duration=min(args.duration, media.duration_s))
        summary = run(s, progress=False)
        spec = read_timeline(otio.adapters.read_from_file(str(summary.timeline)), base_dir=summary.out_dir)
        small = preview_spec(spec)
        workers = s.worker_count()
        full_s, prev_s = [], []
        for _ in range(max(1, args.repeat)):
            full_s.append(timed_render(spec, tmp / "full.mp4", tmp / "rc-full", workers))
            prev_s.append(timed_render(small, tmp / "preview.mp4", tmp / "rc-prev", workers))
        full_sig, prev_sig = frame_signatures(tmp / "full.mp4"), frame_signatures(tmp / "preview.mp4")
        same_count = len(full_sig) == len(prev_sig) == spec.total_frames
        diff = np.abs(full_sig - prev_sig).reshape(len(full_sig), -1).mean(axis=1) if same_count else None

    best_full, best_prev = min(full_s), min(prev_s)
    fs, ps = spec.settings, small.settings
    print(f"demo: {media.kind} media, {summary.cuts} segments, {spec.total_frames} frames at {fs.fps} fps "
          f"({spec.duration_s:.1f} s); {workers} workers; best of {len(full_s)}")
    print(f"{'render':8s} {'size':>10s} {'preset':>10s} {'crf':>4s} {'seconds':>8s} {'frames/s':>9s}")
    for name, st, sec in (("full", fs, best_full), ("preview", ps, best_prev)):
        print(f"{name:8s} {f'{st.width}x{st.height}':>10s} {st.preset:>10s} {st.crf:>4d} {sec:8.2f} "
              f"{spec.total_frames / sec:9.0f}")
    print(f"ratio preview/full: {best_prev / best_full:.3f} (the issue asks for < 0.25)")
    print(f"all times: full {', '.join(f'{x:.2f}' for x in full_s)}; preview {', '.join(f'{x:.2f}' for x in prev_s)}")
    if diff is None:
        print(f"NOT the same cut: frame counts {len(full_sig)} vs {len(prev_sig)} (spec {spec.total_frames})")
        sys.exit(1)
    print(f"same cut: {spec.total_frames} frames in both; per-frame mean |difference| of 32x18 thumbnails: "
          f"median {np.median(diff):.1f}, max {diff.max():.1f} (of 255)")


if __name__ == "__main__":
    main()
