"""End to end on synthetic media with known content: clips whose shots each have a distinct
colour (so every output frame tells which shot is on screen) and a drum track with known beats.
Then the same run on the real clips and songs in ../shared/media when present."""

from __future__ import annotations

import json

import numpy as np
import opentimelineio as otio
import pytest

from media_tools import decode_audio_mono, median_colors, video_facts
from montage_ai.analysis.music import analyze_music
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.settings import Settings

pytestmark = pytest.mark.slow

MUSIC_START = 1.5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    clips = root / "clips"
    colors = distinct_colors(12)
    truths = []
    for c in range(4):
        shots = [ShotSpec(duration_s=2.0 + ((c + s) % 3) * 0.8, color=colors[c * 3 + s]) for s in range(3)]
        truths.append(make_clip(clips / f"clip_{c}.mp4", shots, width=480, height=270, fps="25",
                                transition="fade" if c == 3 else "cut"))
    drums = make_drum_track(root / "drums.wav", bpm=120.0, duration_s=22.0,
                            sections=[(0.0, "low"), (8.0, "high"), (16.0, "low")])
    return root, truths, drums


def _shot_color(truths, source: str, t_s: float) -> np.ndarray:
    truth = next(t for t in truths if str(t.path) == source)
    frame = t_s * truth.fps_num / truth.fps_den
    idx = max(i for i, f in enumerate(truth.shot_start_frames) if f <= frame + 1e-6)
    return np.array(truth.shot_colors[idx], float)


def _run(corpus, style: str, out_name: str, **kw):
    root, truths, drums = corpus
    s = Settings(clips=root / "clips", music=drums.path, out=root / out_name, style=style, duration=12.0,
                 music_start=MUSIC_START, resolution="360p", cache_dir=root / "cache", seed=1, **kw)
    return run(s, progress=False)


@pytest.fixture(scope="module")
def fast_run(corpus):
    return _run(corpus, "fast", "out_fast")


def _segments(summary):
    tl = otio.adapters.read_from_file(str(summary.timeline))
    return tl, [c for c in tl.video_tracks()[0].find_clips()]


def test_outputs_exist_and_agree_to_the_frame(fast_run):
    tl, clips = _segments(fast_run)
    n, rate, vdur, adur = video_facts(fast_run.video)
    assert rate == 25
    assert n == tl.duration().value == fast_run.frames
    assert abs(adur - vdur) <= 1 / 25
    plan = json.loads(fast_run.plan.read_text())
    assert plan["plan"]["style"] == "fast" and len(plan["segments"]) == len(clips)


def test_every_frame_shows_the_planned_shot(corpus, fast_run):
    _, truths, _ = corpus
    tl, clips = _segments(fast_run)
    colors = median_colors(fast_run.video)
    wrong = []
    for clip in clips:
        rng = clip.trimmed_range_in_parent()
        start, dur = int(rng.start_time.value), int(rng.duration.value)
        for k in range(dur):
            src_t = (clip.source_range.start_time.value + k) / 25
            want = _shot_color(truths, clip.media_reference.target_url, src_t)
            if np.abs(colors[start + k] - want).max() > 40:
                wrong.append((start + k, clip.name))
    assert not wrong, f"{len(wrong)} frames show the wrong shot, e.g. {wrong[:5]}"


def test_cuts_in_the_video_are_on_planned_frames_and_beats(corpus, fast_run):
    _, _, drums = corpus
    tl, clips = _segments(fast_run)
    planned = [int(c.trimmed_range_in_parent().start_time.value) for c in clips][1:]
    colors = median_colors(fast_run.video)
    jumps = np.abs(np.diff(colors, axis=0)).max(axis=1)
    detected = [i + 1 for i in np.flatnonzero(jumps > 60)]
    assert detected == planned
    analysed = analyze_music(drums.path, MUSIC_START).beat_times_s
    truth = [b - MUSIC_START for b in drums.beat_times_s]
    for f in planned:
        assert min(abs(f / 25 - b) for b in analysed) <= 1 / 25 + 1e-9
        assert min(abs(f / 25 - b) for b in truth) <= 1 / 25 + 0.015


def test_music_lines_up_at_the_planned_offset(corpus, fast_run):
    _, _, drums = corpus
    sr = 8000
    out = decode_audio_mono(fast_run.video, sr)
    src = decode_audio_mono(drums.path, sr)
    seg = out[: 8 * sr]
    expected = int(MUSIC_START * sr)
    window = src[expected - sr // 2: expected + sr // 2 + len(seg)]
    corr = np.correlate(window, seg, mode="valid")
    lag = (np.argmax(corr) - sr // 2) / sr
    assert abs(lag) <= 1 / 25, f"music off by {lag * 1000:.1f} ms"


def test_rerun_hits_the_caches(corpus, fast_run):
    again = _run(corpus, "fast", "out_fast_again")
    assert again.cache_hits == 4
    assert again.frames == fast_run.frames


def test_dissolve_style_renders_and_keeps_cuts_on_beats(corpus):
    summary = _run(corpus, "wedding", "out_wedding")
    tl, clips = _segments(summary)
    transitions = [t for t in tl.video_tracks()[0] if isinstance(t, otio.schema.Transition)]
    assert transitions
    n, _, _, _ = video_facts(summary.video)
    assert n == summary.frames == tl.duration().value
    beats = analyze_music(corpus[2].path, MUSIC_START).beat_times_s
    for c in clips[1:]:
        f = c.trimmed_range_in_parent().start_time.value
        assert min(abs(f / 25 - b) for b in beats) <= 1 / 25 + 1e-9


@pytest.mark.real_media
def test_real_media_run(shared_media, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ["big_buck_bunny_0_30.webm", "big_buck_bunny_2s.mp4", "sintel_2s.mp4"]:
        (clips / name).symlink_to(shared_media / name)
    s = Settings(clips=clips, music=shared_media / "vibe_ace.ogg", out=tmp_path / "out", duration=20.0,
                 resolution="360p", cache_dir=tmp_path / "cache")
    summary = run(s, progress=False)
    tl = otio.adapters.read_from_file(str(summary.timeline))
    n, rate, vdur, adur = video_facts(summary.video)
    assert rate == 24
    assert n == tl.duration().value == summary.frames
    assert abs(adur - vdur) <= 1 / 24
    beats = analyze_music(shared_media / "vibe_ace.ogg").beat_times_s
    for c in tl.video_tracks()[0].find_clips()[1:]:
        f = c.trimmed_range_in_parent().start_time.value
        assert min(abs(f / 24 - b) for b in beats) <= 1 / 24 + 1e-9
    assert 120 < summary.tempo_bpm < 140
