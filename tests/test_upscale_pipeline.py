"""`run --upscale` through the pipeline: the summary says which path ran for which ranges,
the montage keeps its frame count, and a re-run reuses the upscaled ranges."""

from __future__ import annotations

import io
import json

import pytest

from media_tools import video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.report.progress import Progress
from montage_ai.settings import Settings

pytestmark = pytest.mark.slow


def test_run_with_upscale_reports_and_reuses(tmp_path):
    colors = distinct_colors(2)
    for i in range(2):
        make_clip(tmp_path / "clips" / f"small{i}.mp4", [ShotSpec(duration_s=3, color=colors[i])], width=160, height=90)
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=6).path
    s = Settings(clips=tmp_path / "clips", music=music, out=tmp_path / "out", duration=2.0, resolution="360p",
                 style="fast", upscale=True, cache_dir=tmp_path / "cache")
    events = io.StringIO()
    first = run(s, progress=Progress(mode="json", stream=events))
    n, _, _, _ = video_facts(first.video)
    assert n == first.frames
    ups = [line for line in first.notes if line.startswith("upscale ")]
    assert ups and all("x4" in line for line in ups), first.notes
    assert "upscale" in first.stages_s
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    upscale_progress = [e for e in lines if e["event"] == "progress" and e["stage"] == "upscale"]
    assert upscale_progress and upscale_progress[-1]["done"] == upscale_progress[-1]["total"]
    second = run(s.model_copy(update={"out": tmp_path / "again"}), progress=False)
    assert any("cache" in line for line in second.notes), second.notes
