#!/usr/bin/env python3
"""Benchmark the engine on a fixed corpus and print a table.

Corpus (generated once into .cache/bench-corpus): four 720p clips and two 1080p clips of
synthetic footage (4 minutes in all, 25 fps, H.264) and a 3-minute synthesized drum track.
The run uses a fresh analysis and render cache, so every stage does its full work.

    python scripts/bench.py [--resolution 1080p] [--duration SECONDS] [--quick]
    python scripts/bench.py --ray [--clips 8] [--cut 120]   # analysis and render on 1 and 2 Ray worker nodes

--ray: real footage (the clips in ../shared/media, looped and scaled to 720p25, 30 s each), analysed,
and a cut of it rendered, here (1 and 2 CPUs) and on a Ray cluster started on this machine with
Ray's own test cluster (a head that runs no tasks, and 1 or 2 worker nodes of one CPU; with 2, also
through Ray Client, ray://): throughput per configuration, and the time to join the cluster.
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


def real_corpus(folder: Path, n: int, height: int = 720, bitrate: str = "") -> list[Path]:
    """n clips of 30 s at `height` p25 from the real footage (looped where shorter); `bitrate`
    sets a camera-like rate (2160p: 60M) instead of CRF 20."""
    from montage_ai.media.ffmpeg import run_ffmpeg

    shared = ROOT.parent / "shared" / "media"
    sources = [shared / name for name in ("car-detection.mp4", "bottle-detection.mp4",
                                          "one-by-one-person-detection.mp4", "big_buck_bunny_0_30.webm")]
    if not all(p.is_file() for p in sources):
        sys.exit(f"--ray needs the real clips in {shared}")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = folder / (f"real{k}.mp4" if height == 720 else f"real{k}-{height}p.mp4")
        if not path.exists():
            src = sources[k % len(sources)]
            rate = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else ["-crf", "20"]
            run_ffmpeg(["-stream_loop", "-1", "-ss", str(5 * (k // len(sources))), "-i", str(src), "-t", "30",
                        "-vf", f"scale=-2:{height}:flags=lanczos,fps=25", "-an", "-c:v", "libx264",
                        "-preset", "veryfast" if height <= 1080 else "ultrafast", *rate,
                        "-g", "50", str(path)], what="bench clip", timeout_s=1800)
        out.append(path)
    return out


def _bench_spec(media, seconds: float):
    """A cut of `seconds` at 720p25 from the clips: 2 s pieces taken in turn, so the render reads
    every clip; about seconds / 30 chunks (the renderer's chunk plan)."""
    from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan

    frames, pieces = int(seconds * 25), []
    for k, rec in enumerate(range(0, frames, 50)):
        m = media[k % len(media)]
        start = (2.0 * (k // len(media))) % max(1.0, m.duration_s - 2.5)
        pieces.append(Piece(kind="clip", record_start_frame=rec, frames=min(50, frames - rec),
                            a=SourceSpan(path=m.path, start_s=start)))
    return RenderSpec(settings=RenderSettings(width=1280, height=720, fps_num=25), total_frames=frames,
                      pieces=pieces, audio=[])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_ray(n_clips: int, cut_s: float) -> None:
    """Clip analysis and render throughput: here with 1 and 2 CPUs, on Ray with 1 and 2
    worker nodes of one CPU each (a head that runs no tasks), and with 2 through Ray Client
    (ray://, as from outside the cluster), all on this machine."""
    import os

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")     # every address on loopback
    from ray.cluster_utils import Cluster

    from montage_ai.execute.local import LocalExecutor
    from montage_ai.execute.ray_cluster import RayExecutor
    from montage_ai.pipeline import analyze_clips
    from montage_ai.render.conform import plan_chunks, render
    from montage_ai.resources import TASK_CPUS_ENV

    clips = real_corpus(ROOT / ".cache" / "bench-ray", n_clips)
    media = [probe(p) for p in clips]
    footage_s = sum(m.duration_s for m in media)
    spec = _bench_spec(media, cut_s)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def timed(name: str, executor, workers: int, start_s: float = 0.0) -> None:
            cache = Path(tmp) / name.replace(" ", "-").replace(",", "")
            t = time.perf_counter()
            analyze_clips(media, cache, workers, False, executor)
            analysis_s = time.perf_counter() - t
            t = time.perf_counter()
            render(spec, cache / "out.mp4", cache / "render", workers=workers, progress=False,
                   encoder_threads=workers, executor=executor)
            rows.append((name, start_s, analysis_s, time.perf_counter() - t))

        big = [probe(p) for p in real_corpus(ROOT / ".cache" / "bench-ray", 2, 2160, "60M")]
        os.environ[TASK_CPUS_ENV] = "1"         # one core, as a one-CPU Ray task has
        t = time.perf_counter()
        analyze_clips(big, Path(tmp) / "2160p", 1, False, LocalExecutor(1))
        big_rate = sum(m.duration_s for m in big) / (time.perf_counter() - t)
        big_spec = _bench_spec(big, 30.0).model_copy(deep=True)
        big_spec.settings = big_spec.settings.model_copy(update={"width": 1920, "height": 1080})
        t = time.perf_counter()
        render(big_spec, Path(tmp) / "2160p" / "out.mp4", Path(tmp) / "2160p" / "render", workers=1,
               progress=False, encoder_threads=1)
        big_render = big_spec.total_frames / (time.perf_counter() - t)
        timed("here, 1 CPU", LocalExecutor(1), 1)
        del os.environ[TASK_CPUS_ENV]
        timed("here, 2 CPUs", LocalExecutor(2), 2)
        for nodes in (1, 2):
            port = _free_port()
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                                    "ray_client_server_port": port})
            for _ in range(nodes):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ways = [("Ray", cluster.address)] + [("Ray Client", f"ray://127.0.0.1:{port}")] * (nodes == 2)
            try:
                for way, address in ways:
                    t = time.perf_counter()
                    ex = RayExecutor(address, [], LocalExecutor(1))
                    try:
                        timed(f"{way}, {nodes} worker node{'s' if nodes > 1 else ''} (1 CPU each)", ex, 1,
                              time.perf_counter() - t)
                    finally:
                        ex.close()
            finally:
                cluster.shutdown()
    frames = spec.total_frames
    print(f"\n{len(media)} real clips, {footage_s:.0f} s of 720p25 footage; a {cut_s:.0f} s cut of them at 720p25 "
          f"({len(plan_chunks(spec))} chunks). Each Ray task, and the 1-CPU row here, uses one core.")
    print(f"{'where':43s} {'join s':>7s} {'analysis s':>11s} {'footage s/s':>12s} {'render s':>9s} {'frames/s':>9s}")
    for name, start_s, a_s, r_s in rows:
        print(f"{name:43s} {start_s:7.1f} {a_s:11.1f} {footage_s / a_s:12.1f} {r_s:9.1f} {frames / r_s:9.1f}")
    print(f"\nanalysis of 2 of them at 2160p25, H.264 60 Mbit/s (a camera's 4K), here on 1 CPU: "
          f"{big_rate:.2f} s of footage per s; a 30 s cut of them rendered at 1080p25 on 1 CPU: "
          f"{big_render:.1f} frames per s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", default="1080p")
    ap.add_argument("--duration", type=float, default=None, help="montage length (default: the whole track)")
    ap.add_argument("--quick", action="store_true", help="a small corpus for a smoke run")
    ap.add_argument("--ray", action="store_true", help="clip analysis on a Ray cluster of 1 and 2 worker nodes")
    ap.add_argument("--clips", type=int, default=8, help="--ray: how many 30 s real clips")
    ap.add_argument("--cut", type=float, default=120.0, help="--ray: seconds of the rendered cut")
    args = ap.parse_args()
    if args.ray:
        bench_ray(args.clips, args.cut)
        return
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
