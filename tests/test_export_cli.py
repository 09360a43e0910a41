"""`run --export` and `render` of every exported format through the real command line: each
re-renders to the same frames as the engine's own montage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from media_tools import median_colors, video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip

pytestmark = pytest.mark.slow


def _cli(*args, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    colors = distinct_colors(6)
    for c in range(3):
        make_clip(root / "clips" / f"clip {c}.mp4", [ShotSpec(duration_s=4, color=colors[2 * c + s]) for s in range(2)],
                  width=320, height=180)
    music = make_drum_track(root / "drums.wav", bpm=120, duration_s=12).path
    proc = _cli("run", "--clips", root / "clips", "--music", music, "--out", root / "out", "--duration", "8",
                "--resolution", "360p", "--style", "wedding", "--export", "otio,kdenlive,fcp7,fcpxml,edl",
                cache=root / "cache")
    assert proc.returncode == 0, proc.stderr
    return root, proc.stdout


def test_run_writes_every_export(exported):
    root, stdout = exported
    out = root / "out"
    for name in ["montage.otio", "montage.kdenlive", "montage.xml", "montage.fcpxml", "montage.edl", "montage.music.edl"]:
        assert (out / name).is_file(), name
    assert "edl note" in stdout and "music" in stdout  # the split of the music is said, not silent


@pytest.mark.parametrize("name", ["montage.kdenlive", "montage.xml", "montage.fcpxml", "montage.edl"])
def test_every_export_re_renders_the_same_cut(exported, name):
    root, _ = exported
    out = root / "out"
    target = root / f"rerender-{name}.mp4"
    proc = _cli("render", out / name, "-o", target, cache=root / "cache")
    assert proc.returncode == 0, proc.stderr
    n_ref, rate_ref, _, _ = video_facts(out / "montage.mp4")
    n, rate, _, adur = video_facts(target)
    assert (n, rate) == (n_ref, rate_ref)
    ref, got = median_colors(out / "montage.mp4"), median_colors(target)
    assert np.abs(ref - got).max() < 12, f"{name}: frames differ from the engine's render"
    assert adur > 0


def test_export_command_converts_without_overwriting(exported, tmp_path):
    root, _ = exported
    src = root / "out" / "montage.otio"
    before = src.read_bytes()
    proc = _cli("export", src, "--to", "otio,edl", "--out-dir", tmp_path, cache=root / "cache")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "montage.otio").is_file() and (tmp_path / "montage.edl").is_file()
    proc = _cli("export", src, "--to", "otio", cache=root / "cache")
    assert proc.returncode == 0 and src.read_bytes() == before
    assert (root / "out" / "montage.export.otio").is_file()
