"""Demo media: the real clips and songs in ../shared/media when present, synthetic otherwise.

Synthetic media has exact ground truth (known cut points, known beats), so the same builders
serve the tests and the benchmark.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel

from .synth_audio import make_drum_track
from .synth_video import ShotSpec, distinct_colors, make_clip

REAL_CLIPS = ["big_buck_bunny_0_30.webm", "big_buck_bunny_2s.mp4", "sintel_2s.mp4"]
REAL_MUSIC = "vibe_ace.ogg"
CREDITS = """Demo media credits (CC BY 3.0):
"Big Buck Bunny" (c) copyright 2008 Blender Foundation, www.bigbuckbunny.org
"Sintel" (c) copyright Blender Foundation, durian.blender.org
"Vibe Ace" by Kevin MacLeod, from the Free Music Archive
"""


class DemoMedia(BaseModel):
    kind: str          # "real" or "synthetic"
    clips: Path
    music: Path
    duration_s: float


def shared_media_dir() -> Path | None:
    """../shared/media beside the project (or beside the working directory)."""
    candidates = [Path(__file__).resolve().parents[3].parent / "shared" / "media", Path.cwd().parent / "shared" / "media"]
    return next((c for c in candidates if (c / REAL_MUSIC).is_file()), None)


def build_synthetic(folder: Path, clip_count: int = 5, shots_per_clip: int = 3, bpm: float = 120.0,
                    duration_s: float = 24.0, width: int = 640, height: int = 360) -> DemoMedia:
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    colors = distinct_colors(clip_count * shots_per_clip)
    for c in range(clip_count):
        path = clips / f"clip_{c:02d}.mp4"
        if not path.exists():
            shots = [ShotSpec(duration_s=2.5 + (s + c) % 3, color=colors[c * shots_per_clip + s]) for s in range(shots_per_clip)]
            make_clip(path, shots, width=width, height=height, fps="25")
    music = folder / "drums_120bpm.wav"
    if not music.exists():
        make_drum_track(music, bpm=bpm, duration_s=duration_s + 2)
    return DemoMedia(kind="synthetic", clips=clips, music=music, duration_s=duration_s)


def build_demo_media(folder: Path, prefer_real: bool = True) -> DemoMedia:
    shared = shared_media_dir() if prefer_real else None
    if shared is None:
        return build_synthetic(folder / "synthetic")
    clips = folder / "real" / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for name in REAL_CLIPS:
        if not (clips / name).exists():
            shutil.copy2(shared / name, clips / name)
    music = folder / "real" / REAL_MUSIC
    if not music.exists():
        shutil.copy2(shared / REAL_MUSIC, music)
    (folder / "real" / "CREDITS.txt").write_text(CREDITS, encoding="utf-8")
    return DemoMedia(kind="real", clips=clips, music=music, duration_s=30.0)
