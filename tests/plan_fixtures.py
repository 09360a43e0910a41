"""Analysis models built by hand, for planner and timeline tests that need exact inputs."""

from __future__ import annotations

from pathlib import Path

from montage_ai.analysis.music import MusicAnalysis, Section
from montage_ai.analysis.shots import ClipAnalysis, Shot
from montage_ai.media.probe import MediaInfo


def music(bpm: float = 120.0, duration_s: float = 32.0, first_beat_s: float = 0.25,
          sections: list[tuple[float, float, str, str, float]] | None = None, root: Path = Path("/music")) -> MusicAnalysis:
    period = 60.0 / bpm
    beats = [first_beat_s + i * period for i in range(int((duration_s - first_beat_s) / period) + 1)]
    beats = [b for b in beats if b <= duration_s]
    sections = sections or [(0.0, 8.25, "intro", "low", 0.2), (8.25, 24.25, "chorus", "high", 0.9),
                            (24.25, duration_s, "outro", "low", 0.25)]
    return MusicAnalysis(
        path=root / "song.wav", duration_s=duration_s, file_duration_s=duration_s, tempo_bpm=bpm,
        beat_times_s=beats, downbeat_times_s=beats[::4], energy_hop_s=0.1, energy=[0.5] * int(duration_s * 10),
        sections=[Section(start_s=a, end_s=b, label=l, level=v, energy=e) for a, b, l, v, e in sections],
    )


def clip(index: int, shot_lengths: list[float], fps: tuple[int, int] = (25, 1), score: float = 0.7,
         motion: float = 0.5, root: Path = Path("/media")) -> ClipAnalysis:
    path = root / f"clip{index:02d}.mp4"
    total = sum(shot_lengths)
    info = MediaInfo(path=path, size_bytes=1, mtime_ns=1, duration_s=total, has_video=True, width=640, height=360,
                     fps_num=fps[0], fps_den=fps[1], frame_count=int(total * fps[0] / fps[1]))
    shots, t = [], 0.0
    for n, length in enumerate(shot_lengths):
        shots.append(Shot(id=f"c{index:02d}s{n:02d}", clip_index=index, start_s=t, end_s=t + length, score=score,
                          motion=motion, sharpness=0.6, brightness=0.5, usable_s=length))
        t += length
    times = [i / 10 for i in range(int(total * 10))]
    return ClipAnalysis(media=info, analysis_version=1, shots=shots, unusable=[], sample_times_s=times,
                        motion=[motion] * len(times), sharpness=[0.6] * len(times), brightness=[0.5] * len(times),
                        quality=[score] * len(times))
