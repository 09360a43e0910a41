"""Music analysis time and peak memory against song length, on a real song looped.

Each length runs in its own process (peak RSS of that process alone, `ru_maxrss`), so one
measurement cannot inherit another's memory.

    python scripts/bench_music.py [--minutes 3 10 60] [--song ../shared/media/lets_go_fishin.ogg]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT.parent / "shared" / "media" / "lets_go_fishin.ogg"

CHILD = """
import json, resource, sys, time
from pathlib import Path
import librosa  # imported before the clock starts: the same in every run
from montage_ai.analysis.music import analyze_music
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.monotonic()
m = analyze_music(Path(sys.argv[1]))
print(json.dumps({"seconds": time.monotonic() - t0, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "after_imports_mb": base / 1024, "beats": len(m.beat_times_s), "sections": len(m.sections),
                  "tempo": m.tempo_bpm, "duration_s": m.duration_s}))
"""


def looped(song: Path, minutes: float, work: Path) -> Path:
    out = work / f"{song.stem}-{minutes:g}min.ogg"
    if not out.exists():
        sys.path.insert(0, str(ROOT / "engine"))
        from montage_ai.media.ffmpeg import ffmpeg_path

        subprocess.run([ffmpeg_path(), "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(song),
                        "-t", str(minutes * 60), "-c:a", "libvorbis", "-q:a", "4", str(out)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3, 10, 60])
    ap.add_argument("--song", type=Path, default=SONG)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-music"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in a.minutes:
        path = looped(a.song, minutes, a.work)
        done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        rows.append((minutes, json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"\nmusic analysis of {a.song.name} looped, one process per length\n")
    print(f"| {'song':>8} | {'analysis s':>10} | {'s per min':>9} | {'peak MB':>8} | {'after imports MB':>16} | {'beats':>6} | {'tempo':>7} |")
    print(f"|{'-' * 10}|{'-' * 12}|{'-' * 11}|{'-' * 10}|{'-' * 18}|{'-' * 8}|{'-' * 9}|")
    for minutes, r in rows:
        print(f"| {minutes:>5g} min | {r['seconds']:10.1f} | {r['seconds'] / minutes:9.2f} | {r['peak_mb']:8.0f} | "
              f"{r['after_imports_mb']:16.0f} | {r['beats']:6d} | {r['tempo']:7.2f} |")


if __name__ == "__main__":
    main()
