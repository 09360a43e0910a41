"""The OTIO timeline: built from a cut list, it round-trips through otio_json with markers,
transitions and metadata intact, and reads back into the same render pieces."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

import plan_fixtures as fx
from montage_ai.direct.presets import load_style
from montage_ai.media.probe import MediaInfo
from montage_ai.plan.cutter import cut
from montage_ai.timeline.build import build_timeline
from montage_ai.timeline.model import RenderSettings
from montage_ai.timeline.read import exact_rate, read_timeline

FPS = Fraction(30000, 1001)


def _timeline(style="wedding", root: Path = Path("/media")):
    m = fx.music(root=root)
    clips = [fx.clip(i, [6.0, 6.0, 5.0], fps=(30000, 1001), root=root) for i in range(6)]
    plan = load_style(style)
    cl = cut(m, clips, plan, FPS, 30.0, seed=2)
    media = {str(c.media.path): c.media for c in clips}
    music_info = MediaInfo(path=m.path, size_bytes=1, mtime_ns=1, duration_s=32.0, has_video=False, has_audio=True)
    rs = RenderSettings(width=640, height=360, fps_num=30000, fps_den=1001)
    return build_timeline("t", cl, media, m, music_info, plan, rs), cl, m


def test_timeline_matches_the_cut_list():
    tl, cl, m = _timeline()
    video = tl.video_tracks()[0]
    clips = list(video.find_clips())
    assert len(clips) == len(cl.segments)
    for clip, seg in zip(clips, cl.segments):
        rng = clip.trimmed_range_in_parent()
        assert round(rng.start_time.value) == seg.record_start_frame
        assert rng.duration.value == seg.duration_frames
        assert clip.source_range.start_time.value == seg.source_in_frame
        assert clip.source_range.start_time.rate == float(FPS)
        assert clip.media_reference.target_url == str(seg.source)
    # every time in the timeline is at the video rate, including the music
    assert tl.duration().rate == float(FPS)
    assert tl.duration().value == cl.total_frames
    assert tl.audio_tracks()[0].duration().value == cl.total_frames


def test_round_trip_keeps_markers_transitions_metadata():
    tl, cl, m = _timeline()
    back = otio.adapters.read_from_string(otio.adapters.write_to_string(tl, "otio_json"), "otio_json")
    markers = back.tracks.markers
    assert len(markers) == len(tl.tracks.markers) > 0
    kinds = {mk.name for mk in markers}
    assert {"beat", "downbeat"} <= kinds and any(k.startswith("section") for k in kinds)
    assert all(mk.comment for mk in markers)
    transitions = [t for t in back.video_tracks()[0] if isinstance(t, otio.schema.Transition)]
    assert len(transitions) == sum(1 for s in cl.segments if s.transition_in_frames) > 0
    assert back.metadata["montage_ai"]["render"]["fps_num"] == 30000
    assert back.metadata["montage_ai"]["style"] == "wedding"
    first = back.find_clips()[0]
    assert first.metadata["montage_ai"]["shot_id"] == cl.segments[0].shot_id
    assert first.metadata["montage_ai"]["reason"]
    assert back.video_tracks()[0].effects[0].effect_name == "montage_ai.look"


def test_read_back_covers_every_frame_once(tmp_path):
    for name in ["song.wav", *(f"clip{i:02d}.mp4" for i in range(6))]:
        (tmp_path / name).touch()
    tl, cl, m = _timeline(root=tmp_path)
    spec = read_timeline(tl)
    assert spec.total_frames == cl.total_frames
    pos = 0
    for p in spec.pieces:
        assert p.record_start_frame == pos
        pos += p.frames
    assert pos == cl.total_frames
    assert spec.settings.fps == FPS
    assert spec.audio[0].duration_s == cl.total_frames / float(FPS)
    assert spec.look is not None


def test_exact_rates():
    assert exact_rate(29.97002997) == Fraction(30000, 1001)
    assert exact_rate(23.976) == Fraction(24000, 1001)
    assert exact_rate(25.0) == 25
