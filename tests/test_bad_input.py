"""Bad input through the real command line: one line naming the file and the reason, a
non-zero exit, no traceback, and no partial montage.mp4."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = root / "good"
    colors = distinct_colors(4)
    make_clip(good / "a.mp4", [ShotSpec(duration_s=3, color=colors[0]), ShotSpec(duration_s=3, color=colors[1])],
              width=320, height=180)
    make_clip(good / "b.mp4", [ShotSpec(duration_s=4, color=colors[2])], width=320, height=180)
    (good / "corrupt.mp4").write_bytes(os.urandom(20000))
    music = make_drum_track(root / "drums.wav", bpm=120, duration_s=10).path
    silent = make_clip(root / "silent.mp4", [ShotSpec(duration_s=2, color=colors[3])], width=160, height=90).path
    empty = root / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no video here")
    return {"root": root, "good": good, "music": music, "silent": silent, "empty": empty}


def _cli(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _assert_clean_failure(proc, out: Path, *needles: str):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    assert not (out / "montage.mp4").exists()


def test_corrupt_file_is_skipped_with_a_warning(media, tmp_path):
    out = tmp_path / "out"
    proc = _cli("run", "--clips", media["good"], "--music", media["music"], "--out", out, "--duration", "6",
                "--resolution", "360p", cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "corrupt.mp4" in proc.stderr + proc.stdout
    assert (out / "montage.mp4").is_file() and (out / "montage.otio").is_file() and (out / "plan.json").is_file()


@pytest.mark.parametrize("case", ["missing_clips", "no_video", "music_without_audio", "missing_music",
                                  "too_long", "unwritable_out", "bad_style"])
def test_bad_input_fails_cleanly(media, tmp_path, case):
    out = tmp_path / "out"
    args = {"clips": media["good"], "music": media["music"], "out": out}
    extra: list[str] = []
    needles: tuple[str, ...] = ()
    if case == "missing_clips":
        args["clips"] = tmp_path / "nope"
        needles = ("nope", "not found")
    elif case == "no_video":
        args["clips"] = media["empty"]
        needles = ("no usable video",)
    elif case == "music_without_audio":
        args["music"] = media["silent"]
        needles = ("silent.mp4", "no audio")
    elif case == "missing_music":
        args["music"] = tmp_path / "song.mp3"
        needles = ("song.mp3", "not found")
    elif case == "too_long":
        extra = ["--duration", "60"]
        needles = ("drums.wav", "longer than the music")
    elif case == "unwritable_out":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        args["out"] = out = blocker / "sub"
        needles = ("sub", "not writable")
    elif case == "bad_style":
        extra = ["--style", "nosuchstyle"]
        needles = ("nosuchstyle", "dynamic")
    proc = _cli("run", "--clips", args["clips"], "--music", args["music"], "--out", args["out"], *extra,
                cache=tmp_path / "c")
    _assert_clean_failure(proc, out, *needles)


def test_render_of_a_missing_timeline_fails_cleanly(tmp_path):
    proc = _cli("render", tmp_path / "edited.otio", cache=tmp_path / "c")
    _assert_clean_failure(proc, tmp_path, "edited.otio", "not found")
