"""A timeline edited elsewhere re-renders exactly as edited, through the real command line:
trims changed, a clip removed, media moved (relinked by name with --search) and a relative URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from media_tools import decode_audio_mono, decode_frames, make_counter_clip, read_counter, video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.settings import Settings

pytestmark = pytest.mark.slow


def _cli(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_edited_timeline_renders_as_edited(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, tint in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        make_counter_clip(clips / f"count{i}.mp4", 250, fps="25", tint=tint)
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=12).path
    summary = run(Settings(clips=clips, music=music, out=tmp_path / "out", duration=8.0, style="fast",
                           resolution="360p", cache_dir=tmp_path / "cache"), progress=False)

    tl = otio.adapters.read_from_file(str(summary.timeline))
    track = tl.video_tracks()[0]
    items = list(track)
    assert all(isinstance(i, otio.schema.Clip) for i in items)  # "fast" has hard cuts only
    # edit: slip the first clip by 7 frames, remove the third, make the second's URL relative
    first = items[0]
    slip = -7 if first.source_range.start_time.value >= 7 else 7
    first.source_range = otio.opentime.TimeRange(first.source_range.start_time + otio.opentime.RationalTime(slip, 25),
                                                 first.source_range.duration)
    del track[2]
    edit_dir = tmp_path / "project"
    (edit_dir / "media").mkdir(parents=True)
    second = track[1]
    name = Path(second.media_reference.target_url).name
    shutil.copy(clips / name, edit_dir / "media" / name)
    second.media_reference.target_url = f"media/{name}"
    # and move every source: the rest must be relinked by file name
    moved = tmp_path / "moved"
    shutil.move(str(clips), str(moved))
    edited = edit_dir / "edited.otio"
    otio.adapters.write_to_file(tl, str(edited))

    proc = _cli("render", edited, "-o", tmp_path / "edited.mp4", cache=tmp_path / "cache")
    assert proc.returncode != 0 and "--search" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("render", edited, "-o", tmp_path / "edited.mp4", "--search", moved, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr

    n, rate, _, adur = video_facts(tmp_path / "edited.mp4")
    assert n == tl.duration().value and rate == 25
    got = [read_counter(f) for f in decode_frames(tmp_path / "edited.mp4")]
    want = []
    for clip in track.find_clips():
        start = int(clip.source_range.start_time.value)
        want += list(range(start, start + int(clip.source_range.duration.value)))
    want += [0] * (n - len(want))  # the music track is longer now: the picture ends in black
    assert got == want


def test_keep_clip_audio_mixes_the_clips_sound_under_the_music(tmp_path):
    clips = tmp_path / "clips"
    colors = distinct_colors(2)
    for i in range(2):
        make_clip(clips / f"tone{i}.mp4", [ShotSpec(duration_s=6, color=colors[i])], width=320, height=180,
                  audio_tone_hz=1000.0)
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=10).path

    def tone_level(keep: bool) -> float:
        s = run(Settings(clips=clips, music=music, out=tmp_path / f"out{keep}", duration=6.0, resolution="360p",
                         keep_clip_audio=keep, cache_dir=tmp_path / "cache"), progress=False)
        audio = decode_audio_mono(s.video, 8000)
        spec = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
        band = (freqs > 990) & (freqs < 1010)
        return float(spec[band].max() / np.median(spec))

    assert tone_level(True) > 5 * tone_level(False)
