"""Concurrency: a cut that uses the same source window twice, and two montages at once on one
cache. Pieces are content-addressed and written through unique, locked temporary files, so
identical pieces are rendered once per run and concurrent runs never share a temporary file."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from hostile import PROJECT, assert_clean, cli, sha256_tree, temp_files
from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.render.conform import render
from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan

pytestmark = pytest.mark.slow


def test_identical_pieces_are_rendered_once_and_every_frame_is_right(tmp_path):
    # four 2-second pieces of one window: each is a chunk of its own with the same content
    clip = make_counter_clip(tmp_path / "count.mp4", frames=80, fps="25")
    s = RenderSettings(width=320, height=180, fps_num=25, fps_den=1)
    window = SourceSpan(path=clip, start_s=0.4)
    pieces = [Piece(kind="clip", record_start_frame=i * 50, frames=50, a=window) for i in range(4)]
    spec = RenderSpec(settings=s, total_frames=200, pieces=pieces, audio=[])
    result = render(spec, tmp_path / "out.mp4", tmp_path / "cache", workers=2, progress=False)
    assert (result.chunks_rendered, result.chunks_cached) == (1, 0)
    shown = [read_counter(f) for f in decode_frames(tmp_path / "out.mp4")]
    assert shown == list(range(10, 60)) * 4
    assert temp_files(tmp_path) == []


@pytest.fixture(scope="module")
def short_material(tmp_path_factory):
    """A 1 s, 5 fps clip: the cutter has to reuse its only shot, so windows repeat."""
    root = tmp_path_factory.mktemp("short")
    (root / "clips").mkdir()
    make_counter_clip(root / "clips" / "tiny.mp4", frames=5, fps="5", width=320, height=180)
    make_counter_clip(root / "clips" / "small.mp4", frames=10, fps="5", width=320, height=180, tint=(0, 90, 0))
    music = make_drum_track(root / "drums.wav", bpm=120, duration_s=10).path
    return root / "clips", music


def _spawn(clips: Path, music: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache), "MAX_PARALLEL_JOBS": "2"}
    return subprocess.Popen([sys.executable, "-m", "montage_ai.cli", "-q", "run", "--clips", str(clips), "--music",
                             str(music), "--out", str(out), "--duration", "8", "--resolution", "360p", "--style", "fast"],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_repeated_windows_render_with_parallel_workers(short_material, tmp_path):
    clips, music = short_material
    sources = sha256_tree(clips, music)
    env = {"MAX_PARALLEL_JOBS": "2"}
    result = cli("run", "--clips", clips, "--music", music, "--out", tmp_path / "out", "--duration", "8",
                 "--resolution", "360p", "--style", "fast", cache=tmp_path / "cache", env=env)
    assert_clean(result, ok=True, written=(tmp_path / "out", tmp_path / "cache"), sources=sources)
    track = otio.adapters.read_from_file(str(tmp_path / "out" / "montage.otio")).video_tracks()[0]
    windows = [(c.media_reference.target_url, c.source_range.start_time.value, c.source_range.duration.value)
               for c in track.find_clips()]
    assert len(windows) > len(set(windows)), "the corpus should make the cutter repeat a source window"


def test_two_montages_at_once_on_one_cache(short_material, tmp_path):
    clips, music = short_material
    cache = tmp_path / "shared-cache"
    sources = sha256_tree(clips, music)
    for round_ in range(3):
        outs = [tmp_path / f"r{round_}-{k}" for k in range(2)]
        procs = [_spawn(clips, music, out, cache) for out in outs]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0 and "Traceback" not in err, err
        frames = [decode_frames(out / "montage.mp4", 64, 36) for out in outs]
        assert len(frames[0]) == len(frames[1])
        assert max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(*frames)) < 1.0
    assert temp_files(tmp_path) == []
    assert sha256_tree(clips, music) == sources
    _cached_pieces_match_a_fresh_render(tmp_path / "r0-0" / "montage.otio", cache, tmp_path / "fresh-cache")


def _cached_pieces_match_a_fresh_render(timeline: Path, shared: Path, fresh: Path) -> None:
    """Every chunk in the shared cache decodes, and equals the same chunk rendered alone."""
    from montage_ai.timeline.read import read_timeline

    spec = read_timeline(otio.adapters.read_from_file(str(timeline)), base_dir=timeline.parent)
    render(spec, fresh / "alone.mp4", fresh, workers=2, progress=False)
    pieces = sorted((shared / "render" / "chunks").glob("*.mp4"))
    assert pieces
    compared = 0
    for piece in pieces:
        alone = fresh / "chunks" / piece.name
        if not alone.exists():        # a piece of the other montage in that round
            continue
        a, b = decode_frames(piece), decode_frames(alone)
        assert len(a) == len(b) > 0
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), piece.name
        compared += 1
    assert compared == len({p.name for p in (fresh / "chunks").glob("*.mp4")}) > 0
    assert Fraction(spec.settings.fps_num, spec.settings.fps_den) == 5
