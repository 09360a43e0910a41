"""No dead keys: every behavioural field of the EditPlan (and so of every style preset)
changes the timeline the renderer receives."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio
import pytest

import plan_fixtures as fx
from montage_ai.analysis.on_screen import TextRange
from montage_ai.analysis.shots import ClipAnalysis
from montage_ai.direct.plan import EditPlan
from montage_ai.direct.presets import load_style
from montage_ai.media.probe import MediaInfo
from montage_ai.plan.cutter import cut
from montage_ai.timeline.build import build_timeline
from montage_ai.timeline.model import RenderSettings

FPS = Fraction(25)
SECTIONS = [(0.0, 8.25, "intro", "low", 0.2), (8.25, 16.25, "verse", "mid", 0.5),
            (16.25, 24.25, "chorus", "high", 0.95), (24.25, 32.0, "outro", "low", 0.25)]


def _varied_clips(n_clips: int) -> list[ClipAnalysis]:
    out = []
    for i in range(n_clips):
        c = fx.clip(i, [4.0, 5.0, 6.0])
        shots = []
        for k, s in enumerate(c.shots):
            j = i * 3 + k
            shots.append(s.model_copy(update={
                "score": 0.3 + 0.6 * ((j * 7) % 10) / 10, "motion": ((j * 3) % 10) / 10,
                "sharpness": ((j * 5) % 10) / 10, "brightness": ((j * 9) % 10) / 10}))
        out.append(c.model_copy(update={"shots": shots}))
    return out


def _timeline_text(plan: EditPlan, n_clips: int = 8, text: bool = False) -> str:
    m = fx.music(sections=SECTIONS)
    clips = _varied_clips(n_clips)
    if text:    # half the clips are titles and credits from end to end
        clips = [c.model_copy(update={"text": [TextRange(start_s=0.0, end_s=c.shots[-1].end_s, share=0.05)]})
                 if i % 2 else c for i, c in enumerate(clips)]
    cl = cut(m, clips, plan, FPS, plan.target_duration_s or 30.0, seed=5)
    media = {str(c.media.path): c.media for c in clips}
    music_info = MediaInfo(path=m.path, size_bytes=1, mtime_ns=1, duration_s=32.0, has_video=False, has_audio=True)
    tl = build_timeline("t", cl, media, m, music_info, plan, RenderSettings(width=64, height=36, fps_num=25))
    tl.metadata["montage_ai"].pop("style")
    tl.metadata["montage_ai"].pop("director")
    tl.metadata["montage_ai"].pop("rationale")
    return otio.adapters.write_to_string(tl, "otio_json")


BR = lambda a, b: {"min_beats": a, "max_beats": b}  # noqa: E731

CHANGES = {
    "pacing.low": {"pacing": {"low": BR(1, 1)}},
    "pacing.mid": {"pacing": {"mid": BR(6, 6)}},
    "pacing.high": {"pacing": {"high": BR(3, 4)}},
    "section_pacing": {"section_pacing": {"chorus": BR(4, 4)}},
    "cut_on": {"cut_on": "downbeat"},
    "bar_aligned_section_changes": {"bar_aligned_section_changes": False},
    "energy_match": {"energy_match": 0.0},
    "weights.quality": {"weights": {"quality": 3.0}},
    "weights.motion": {"weights": {"motion": -2.0}},
    "weights.sharpness": {"weights": {"sharpness": 3.0}},
    "weights.brightness": {"weights": {"brightness": 2.0}},
    "min_quality": {"min_quality": 0.7},
    "transitions.kind": {"transitions": {"kind": "cut"}},
    "transitions.duration_beats": {"transitions": {"duration_beats": 0.5}},
    "transitions.at": {"transitions": {"at": "any"}},
    "transitions.probability": {"transitions": {"probability": 0.3}},
    "look.contrast": {"look": {"contrast": 1.3}},
    "look.saturation": {"look": {"saturation": 0.5}},
    "look.brightness": {"look": {"brightness": 0.1}},
    "music_fade_out_s": {"music_fade_out_s": 4.0},
    "target_duration_s": {"target_duration_s": 20.0},
    "favor_shots": {"favor_shots": ["c07s02"]},
    "avoid_shots": {"avoid_shots": ["c00s00", "c01s01", "c02s02"]},
}


def _merge(base: dict, change: dict) -> dict:
    out = dict(base)
    for k, v in change.items():
        out[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) and k != "section_pacing" else v
    return out


def test_the_list_covers_every_behavioural_field():
    nested = {"pacing", "weights", "transitions", "look"}
    informational = {"style", "description", "rationale", "director"}
    fields = set()
    for name, f in EditPlan.model_fields.items():
        if name in nested:
            fields |= {f"{name}.{sub}" for sub in f.annotation.model_fields}
        elif name not in informational:
            fields.add(name)
    assert fields - set(CHANGES) == {"reuse_gap", "jump_cuts", "titles"}  # covered by their own tests below


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_field_changes_the_timeline(field):
    base = load_style("dynamic")
    changed = EditPlan.model_validate(_merge(base.model_dump(), CHANGES[field]))
    assert _timeline_text(changed) != _timeline_text(base), f"{field} is a dead key"


def test_reuse_gap_changes_the_timeline_when_material_runs_out():
    base = load_style("fast").model_copy(update={"reuse_gap": 1})
    assert _timeline_text(base, n_clips=2) != _timeline_text(base.model_copy(update={"reuse_gap": 5}), n_clips=2)


def test_jump_cuts_change_the_timeline_when_material_runs_out():
    base = load_style("fast")
    assert _timeline_text(base, n_clips=1) != _timeline_text(base.model_copy(update={"jump_cuts": True}), n_clips=1)


@pytest.mark.parametrize("titles", ["open", "allow"])
def test_titles_change_the_timeline_when_footage_shows_text(titles):
    base = load_style("dynamic")
    assert _timeline_text(base, text=True) != _timeline_text(base.model_copy(update={"titles": titles}), text=True)
