"""`montage-ai run --upscale --cgpu-gpu` through the real command line against a hostile cgpu.

The stand-in (tests/standins/fake_cgpu.py) is first on PATH with a logged-in config dir and
CGPU_TIMEOUT=10. Each case checks what the issue asks of the cloud step: it ends within
CGPU_TIMEOUT plus a few seconds, no traceback, the ranges fall back to the local path with the
reason in the run's notes (or, with --strict-cloud, exactly one error line), no process of the
stand-in is left running (the detached grandchildren included), no temporary file is left in
the output or the cache, and the sources are untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile import CliResult, assert_clean, cli, sha256_tree
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.media.ffmpeg import ffmpeg_path
from standins.fake_cgpu import FakeColab, detached_pids, install_fake_colab, kill_leftovers, still_alive

pytestmark = pytest.mark.slow

CGPU_TIMEOUT = 10
SLACK_S = 5.0        # "a few seconds": the clean-up's minimum, process start-up, packaging
_ENTRY = re.compile(r"^upscale .*: (\w+) in ([\d.]+) s")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """Two 160x90 clips (a 360p montage upscales them x4) and a drum track."""
    d = tmp_path_factory.mktemp("hostile-upscale-media")
    colors = distinct_colors(2)
    for i in range(2):
        make_clip(d / "clips" / f"small{i}.mp4", [ShotSpec(duration_s=3, color=colors[i])], width=160, height=90)
    return d / "clips", make_drum_track(d / "drums.wav", bpm=120, duration_s=6).path


@pytest.fixture
def colab(tmp_path) -> Iterator[FakeColab]:
    colab = install_fake_colab(tmp_path / "colab", ffmpeg_path())
    yield colab
    assert kill_leftovers(colab.root) == [], "the stand-in's processes outlived the run"


def _run(media: tuple[Path, Path], colab: FakeColab, tmp_path: Path, *flags: str, **env: str) -> CliResult:
    clips, music = media
    return cli("run", "--json", "--clips", clips, "--music", music, "--out", tmp_path / "out", "--duration", 2,
               "--resolution", "360p", "--style", "fast", "--upscale", "--cgpu-gpu", *flags, cache=tmp_path / "cache",
               env={**colab.env, "CGPU_TIMEOUT": str(CGPU_TIMEOUT), "MONTAGE_REMOTE_ENGINE": "lanczos", **env},
               timeout_s=300)


def _summary(result: CliResult) -> dict:
    done = [e for e in map(json.loads, result.stdout.splitlines()) if e.get("event") == "done"]
    assert done, result.stdout[-2000:]
    return done[-1]["summary"]


def _cloud_step_s(summary: dict) -> float:
    """The upscale stage minus the local upscaling that followed the cloud failure (ffmpeg
    here; ncnn where it can run): the time the cloud step took."""
    local = sum(float(m.group(2)) for m in map(_ENTRY.match, summary["notes"]) if m and m.group(1) != "cloud")
    return summary["stages_s"]["upscale"] - local


def test_cli_cgpu_that_hangs_after_status_falls_back_in_time(media, colab, tmp_path):
    """`cgpu status` answers, then every call hangs and leaves a detached `sleep 600` holding
    its output: the montage is made locally, the notes say why, within CGPU_TIMEOUT + a few s."""
    pids = tmp_path / "detached.pids"
    before = sha256_tree(*media)
    result = _run(media, colab, tmp_path, FAKE_CGPU_HANG_AFTER_STATUS="1", FAKE_CGPU_DETACH_PIDS=str(pids))
    assert_clean(result, ok=True, written=(tmp_path / "out", tmp_path / "cache"), sources=before)
    summary = _summary(result)
    fallback = [n for n in summary["notes"] if n.startswith("upscale fallback: Colab GPU failed")]
    assert fallback and "no answer from cgpu within" in fallback[0], summary["notes"]
    entries = [m.group(1) for m in map(_ENTRY.match, summary["notes"]) if m]
    assert entries and "cloud" not in entries, summary["notes"]
    cloud_s = _cloud_step_s(summary)
    print(f"\nhang after status via the CLI: cloud step {cloud_s:.1f} s (upscale stage "
          f"{summary['stages_s']['upscale']:.1f} s), whole run {result.seconds:.1f} s")
    assert cloud_s < CGPU_TIMEOUT + SLACK_S
    assert detached_pids(pids) and still_alive(detached_pids(pids)) == []


def test_cli_truncated_result_line_with_strict_cloud_is_one_error_line(media, colab, tmp_path):
    """The remote script's MONTAGE_PART line arrives cut short: with --strict-cloud the run
    stops with one error line naming it (no JSONDecodeError traceback), nothing half-written."""
    before = sha256_tree(*media)
    result = _run(media, colab, tmp_path, "--strict-cloud", FAKE_CGPU_PART_LINE="truncate")
    print(f"\ntruncated MONTAGE_PART via the CLI, strict: {result.seconds:.1f} s: {result.error_lines}")
    assert_clean(result, needles=("--strict-cloud", "malformed MONTAGE_PART line"),
                 written=(tmp_path / "out", tmp_path / "cache"), sources=before, max_seconds=120)
    assert [p.name for p in (colab.root / "content").iterdir() if p.name.startswith("montage-upscale")] == []
