"""Signals: SIGTERM (what `docker stop` sends), Ctrl-C and SIGKILL during piece rendering and
during the final encode. Afterwards: the right exit and one line, no ffmpeg left running, no
stray file in the output folder or the cache once the next run has started, and the re-run
makes the same frames as a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hostile import PROJECT, assert_clean, cli, live_processes, sha256_tree, temp_files
from media_tools import decode_frames
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip

pytestmark = pytest.mark.slow

RUN = ("--duration", "12", "--resolution", "720p", "--style", "fast")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    colors = distinct_colors(6)
    for c in range(3):
        make_clip(root / "clips" / f"c{c}.mp4", [ShotSpec(duration_s=4, color=colors[2 * c]),
                                                 ShotSpec(duration_s=4, color=colors[2 * c + 1])],
                  width=640, height=360)
    music = make_drum_track(root / "drums.wav", bpm=128, duration_s=14).path
    clean_out, clean_cache = root / "clean", root / "clean-cache"
    assert_clean(cli("run", "--clips", root / "clips", "--music", music, "--out", clean_out, *RUN, cache=clean_cache),
                 ok=True, written=(clean_out, clean_cache))
    return root / "clips", music, decode_frames(clean_out / "montage.mp4", 64, 36)


def _start(clips: Path, music: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache), "MAX_PARALLEL_JOBS": "2"}
    return subprocess.Popen([sys.executable, "-m", "montage_ai.cli", "--json", "run", "--clips", str(clips),
                             "--music", str(music), "--out", str(out), *RUN], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, moment: str) -> None:
    """Read JSON events until the moment to strike: pieces in flight, or the encode under way."""
    assert proc.stdout is not None
    for line in proc.stdout:
        ev = json.loads(line)
        if moment == "analysis" and ev["event"] == "stage_start" and ev["stage"] == "clips":
            return
        if ev["event"] != "progress":
            continue
        if moment == "pieces" and ev["desc"] == "render pieces" and 1 <= (ev["done"] or 0) < ev["total"] - 1:
            return
        if moment == "encode" and ev["desc"] == "encode" and (ev["done"] or 0) > 0:
            return
    pytest.fail(f"the run ended before {moment}: {proc.stderr.read() if proc.stderr else ''}")


def _ffmpeg_children_of(folder: Path) -> list[str]:
    """ffmpeg processes still working on files under `folder` (orphans of a killed run)."""
    return live_processes("ffmpeg", str(folder))


@pytest.mark.parametrize("sig, moment", [(sig, moment) for moment in ("pieces", "encode")
                                          for sig in ("SIGTERM", "SIGINT", "SIGKILL")] + [("SIGTERM", "analysis")])
def test_stop_then_rerun_leaves_nothing_and_matches_a_clean_run(corpus, tmp_path, sig, moment):
    clips, music, clean_frames = corpus
    out, cache = tmp_path / "out", tmp_path / "cache"
    sources = sha256_tree(clips, music)
    proc = _start(clips, music, out, cache)
    _wait_for(proc, moment)
    t0 = time.monotonic()
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - t0
    time.sleep(0.3)
    assert not _ffmpeg_children_of(tmp_path), _ffmpeg_children_of(tmp_path)
    assert not (out / "montage.mp4").exists()
    if sig == "SIGKILL":
        assert proc.returncode == -9
    else:
        assert proc.returncode == {"SIGTERM": 143, "SIGINT": 130}[sig], stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        errors = [ln for ln in stderr.splitlines() if "error:" in ln]
        assert len(errors) == 1 and sig in errors[0], stderr
        assert temp_files(out, cache) == [], "a handled stop must remove its own temporary files"
        assert stopped_in < 15, f"took {stopped_in:.1f} s to stop"
    rerun = cli("run", "--clips", clips, "--music", music, "--out", out, *RUN, cache=cache)
    assert_clean(rerun, ok=True, written=(out, cache), sources=sources)
    frames = decode_frames(out / "montage.mp4", 64, 36)
    assert len(frames) == len(clean_frames)
    worst = max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames, clean_frames))
    assert worst < 1.0, f"re-run differs from a clean run by {worst:.2f} levels"
