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

from media_tools import decode_audio_mono, decode_frames, make_counter_clip, median_colors, read_counter, video_facts
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


def test_cut_moved_clip_swapped_clip_trimmed_render_at_the_new_frames(tmp_path):
    colors = distinct_colors(6)
    clips = tmp_path / "clips"
    for i in range(6):
        make_clip(clips / f"solid{i}.mp4", [ShotSpec(duration_s=8, color=colors[i])], width=320, height=180)
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=12).path
    summary = run(Settings(clips=clips, music=music, out=tmp_path / "out", duration=9.0, style="vlog",
                           resolution="360p", cache_dir=tmp_path / "cache", seed=2), progress=False)
    tl = otio.adapters.read_from_file(str(summary.timeline))
    track = tl.video_tracks()[0]
    for t in [i for i, item in enumerate(track) if isinstance(item, otio.schema.Transition)][::-1]:
        del track[t]   # hard cuts only, so every cut is visible as a colour jump
    items = list(track)
    assert len(items) >= 5
    RTm = otio.opentime.RationalTime
    TRm = otio.opentime.TimeRange
    five = RTm(5, items[0].source_range.duration.rate)
    # a cut moved 5 frames later: clip 1 grows, clip 2 starts 5 frames later in its source
    items[1].source_range = TRm(items[1].source_range.start_time, items[1].source_range.duration + five)
    items[2].source_range = TRm(items[2].source_range.start_time + five, items[2].source_range.duration - five)
    # clips 3 and 4 swapped
    c3, c4 = track[3], track[4]
    del track[4]
    del track[3]
    track.insert(3, c4)
    track.insert(4, c3)
    # the last clip trimmed by 3 frames
    last = track[len(track) - 1]
    last.source_range = TRm(last.source_range.start_time, last.source_range.duration - RTm(3, five.rate))
    edited = tmp_path / "edited.otio"
    otio.adapters.write_to_file(tl, str(edited))

    proc = _cli("render", edited, "-o", tmp_path / "edited.mp4", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    colors_out = median_colors(tmp_path / "edited.mp4")
    jumps = [int(i) + 1 for i in np.flatnonzero(np.abs(np.diff(colors_out, axis=0)).max(axis=1) > 60)]
    starts = [int(c.trimmed_range_in_parent().start_time.value) for c in track.find_clips()]
    video_end = starts[-1] + int(last.source_range.duration.value)
    expected = [s for s in starts[1:]] + ([video_end] if video_end < len(colors_out) else [])
    assert jumps == expected
    for clip, start in zip(track.find_clips(), starts):
        want = np.array(colors[int(Path(clip.media_reference.target_url).stem[-1])], float)
        assert np.abs(colors_out[start + 1] - want).max() < 40
