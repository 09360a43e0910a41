"""Peak memory of whole `montage-ai run`s: the engine and every child it starts, summed.

Cases (real media from ../shared/media, looped):
- a 60-minute song (a real song looped) with the real clips, a 20 s montage at 720p;
- 10 minutes of 1080p sources (the real clips scaled to 1080p and looped: 5 files of 2 min)
  with a 3-minute song, a 30 s montage at 1080p.

The process tree's resident memory is sampled from /proc every 50 ms (the sum over the engine
and its ffmpeg children at each instant: what the machine must hold), and the time is printed.

    python scripts/bench_memory.py [--work /tmp/bench-memory] [--memory-limit-gb 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "media"
sys.path.insert(0, str(ROOT / "engine"))
from montage_ai.resources import tree_rss_bytes  # noqa: E402  (the engine's own measure of MEMORY_LIMIT_GB)


def _ffmpeg() -> str:
    sys.path.insert(0, str(ROOT / "engine"))
    from montage_ai.media.ffmpeg import ffmpeg_path

    return ffmpeg_path()


def measured_run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak MB of the process tree) of one engine run."""
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "montage-ai"), "-q", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.monotonic()
    sampler.start()
    _, err = proc.communicate()
    seconds = time.monotonic() - t0
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {err[-2000:]}")
    return seconds, peak / 2**20


def looped_song(minutes: float, work: Path) -> Path:
    out = work / f"song-{minutes:g}min.ogg"
    if not out.exists():
        subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(SHARED / "lets_go_fishin.ogg"),
                        "-t", str(minutes * 60), "-c:a", "libvorbis", "-q:a", "4", str(out)], check=True)
    return out


def clips_1080p(work: Path, files: int = 5, seconds: int = 120) -> Path:
    folder = work / "clips-1080p"
    folder.mkdir(exist_ok=True)
    sources = sorted(SHARED.glob("*.mp4"))
    for i in range(files):
        out = folder / f"c{i}.mp4"
        if not out.exists():
            subprocess.run([_ffmpeg(), "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(sources[i % len(sources)]),
                            "-t", str(seconds), "-vf", "scale=1920:1080:force_original_aspect_ratio=increase,crop=1920:1080",
                            "-an", "-c:v", "libx264", "-crf", "20", "-preset", "veryfast", "-g", "60", str(out)], check=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-memory"))
    ap.add_argument("--memory-limit-gb", type=float, default=8.0)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    real_clips = a.work / "clips-real"
    real_clips.mkdir(exist_ok=True)
    for p in SHARED.glob("*.mp4"):
        if not (real_clips / p.name).exists():
            (real_clips / p.name).symlink_to(p)
    env = {**os.environ, "MEMORY_LIMIT_GB": f"{a.memory_limit_gb:g}"}
    cases = [
        ("60-min song, real clips, 20 s at 720p",
         ["run", "--clips", str(real_clips), "--music", str(looped_song(60, a.work)), "--duration", "20",
          "--resolution", "720p"]),
        ("10 min of 1080p sources, 3-min song, 30 s at 1080p",
         ["run", "--clips", str(clips_1080p(a.work)), "--music", str(looped_song(3, a.work)), "--duration", "30",
          "--resolution", "1080p"]),
    ]
    rows = []
    for name, args in cases:
        out = a.work / f"out-{len(rows)}"
        cache = a.work / f"cache-{len(rows)}"
        subprocess.run(["rm", "-rf", str(out), str(cache)], check=True)
        rows.append((name, *measured_run([*args, "--out", str(out)], {**env, "MONTAGE_CACHE_DIR": str(cache)})))
    print(f"\nwhole runs, cold cache, MEMORY_LIMIT_GB={a.memory_limit_gb:g}, {os.cpu_count()} cores\n")
    print(f"| {'case':<52} | {'seconds':>7} | {'peak MB (tree)':>14} |")
    print(f"|{'-' * 54}|{'-' * 9}|{'-' * 16}|")
    for name, seconds, peak in rows:
        print(f"| {name:<52} | {seconds:7.1f} | {peak:14.0f} |")


if __name__ == "__main__":
    main()
