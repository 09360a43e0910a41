"""The user's files are sacred: no output replaces an input or a file the engine did not write.

Every case runs the real command line and checks, besides its own assertion, the promises
of tests/hostile.py: one error line (or success), no traceback, no temporary file left, every
source byte-identical.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import assert_clean, cli, sha256_tree, small_media, temp_files
from montage_ai import atomic
from montage_ai.outputs import LEDGER_NAME

pytestmark = pytest.mark.slow

RUN = ("--duration", "4", "--resolution", "360p")


@pytest.fixture
def media(tmp_path):
    clips, music = small_media(tmp_path, music_s=8)
    return clips, music, tmp_path / "cache"


def _run(clips: Path, music: Path, out: Path, cache: Path, *extra: str):
    return cli("run", "--clips", clips, "--music", music, "--out", out, *RUN, *extra, cache=cache)


def test_out_in_the_clips_folder_never_replaces_the_users_montage(media):
    clips, music, cache = media
    (clips / "montage.mp4").write_bytes((clips / "b.mp4").read_bytes())   # the user's own clip, by that name
    before = sha256_tree(clips, music)
    result = _run(clips, music, clips, cache)
    assert_clean(result, needles=("montage.mp4", "is a clip", "refusing"), written=(clips, cache), sources=before)
    assert not (clips / "plan.json").exists() and not (clips / LEDGER_NAME).exists()


def test_a_user_file_in_out_is_kept_unless_force(media):
    clips, music, cache = media
    out = clips.parent / "out"
    out.mkdir()
    (out / "plan.json").write_text("my own notes")
    before = sha256_tree(clips, music, out)
    result = _run(clips, music, out, cache)
    assert_clean(result, needles=("plan.json", "not written by montage-ai", "--force"), written=(out, cache),
                 sources=before)
    forced = _run(clips, music, out, cache, "--force")
    assert_clean(forced, ok=True, written=(out, cache), sources=sha256_tree(clips, music))
    assert json.loads((out / "plan.json").read_text())["plan"]["style"] == "dynamic"


def test_out_equal_to_clips_twice_never_ingests_its_own_outputs(media):
    clips, music, cache = media
    sources = sha256_tree(clips, music)
    first = _run(clips, music, clips, cache)
    assert_clean(first, ok=True, written=(clips, cache), sources=sources)
    second = _run(clips, music, clips, cache)
    assert_clean(second, ok=True, written=(clips, cache), sources=sources)
    used = {s["source"] for s in json.loads((clips / "plan.json").read_text())["analysis"]["shots"]}
    assert used == {"a.mp4", "b.mp4"}, used
    assert "from 2/2 clips" in second.stdout or "/2 clips" in second.stdout, second.stdout
    ledger = json.loads((clips / LEDGER_NAME).read_text())["files"]
    assert {"montage.mp4", "montage.otio", "plan.json", "report.html", "storyboard.png", "timeline.png"} <= set(ledger)


def test_an_edited_engine_output_counts_as_the_users(media):
    clips, music, cache = media
    out = clips.parent / "out"
    assert_clean(_run(clips, music, out, cache, "--export", "kdenlive"), ok=True, written=(out, cache))
    time.sleep(0.01)
    (out / "montage.kdenlive").write_text((out / "montage.kdenlive").read_text() + "\n<!-- edited -->\n")
    before = sha256_tree(out / "montage.kdenlive")
    again = _run(clips, music, out, cache, "--export", "kdenlive")
    assert_clean(again, needles=("montage.kdenlive", "changed since montage-ai wrote it"), written=(out, cache),
                 sources=before)


def test_render_never_writes_over_its_own_sources(media):
    clips, music, cache = media
    out = clips.parent / "out"
    assert_clean(_run(clips, music, out, cache), ok=True, written=(out, cache))
    sources = sha256_tree(clips, music, out / "montage.otio")
    for target, needles in ((clips / "a.mp4", ("a.mp4", "is media the timeline uses")),
                            (music, ("drums.wav", "is media the timeline uses")),
                            (out / "montage.otio", ("montage.otio", "is the timeline being rendered")),
                            (clips, ("is a folder",))):
        result = cli("render", out / "montage.otio", "-o", target, cache=cache)
        assert_clean(result, needles=needles, written=(out, clips, cache), sources=sources)


def test_render_replaces_its_own_output_but_not_a_users_file(media):
    clips, music, cache = media
    out = clips.parent / "out"
    assert_clean(_run(clips, music, out, cache), ok=True, written=(out, cache))
    again = cli("render", out / "montage.otio", cache=cache)           # default: montage.mp4 beside it
    assert_clean(again, ok=True, written=(out, cache))
    mine = clips.parent / "mine.mp4"
    mine.write_bytes(b"not a video, but mine")
    before = sha256_tree(mine)
    refused = cli("render", out / "montage.otio", "-o", mine, cache=cache)
    assert_clean(refused, needles=("mine.mp4", "not written by montage-ai"), written=(out, cache), sources=before)
    forced = cli("render", out / "montage.otio", "-o", mine, "--force", cache=cache)
    assert_clean(forced, ok=True, written=(out, cache))
    assert mine.stat().st_size > 1000


def test_export_never_replaces_the_timeline_it_reads(media):
    clips, music, cache = media
    out = clips.parent / "out"
    assert_clean(_run(clips, music, out, cache), ok=True, written=(out, cache))
    before = sha256_tree(out / "montage.otio")
    result = cli("export", out / "montage.otio", "--to", "otio,edl", cache=cache)
    assert_clean(result, ok=True, written=(out, cache), sources=before)
    assert (out / "montage.export.otio").is_file() and (out / "montage.export.edl").is_file()


def test_a_second_run_into_the_same_folder_waits_for_nobody(media, tmp_path):
    """While one run holds the output folder, another is refused at once with one line."""
    clips, music, cache = media
    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)      # what a running montage-ai holds
    try:
        result = _run(clips, music, out, cache)
    finally:
        os.close(fd)
    assert_clean(result, needles=("another montage-ai run",), written=(out, cache), max_seconds=60)


def test_stale_temporary_files_are_swept_but_live_ones_kept(media):
    """What a killed run left (unlocked .partial files) goes; a file a live writer holds stays."""
    clips, music, cache = media
    out = clips.parent / "out"
    out.mkdir()
    stale = out / ".montage.partial-1234.mp4"          # 0.1's naming, from a killed run
    stale.write_bytes(b"x" * 1000)
    stale_cache = cache / "render" / "pieces" / ".abc.partial-99aa00-7.mkv"
    stale_cache.parent.mkdir(parents=True)
    stale_cache.write_bytes(b"y")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from montage_ai.atomic import atomic_path\n"
        "with atomic_path(Path(sys.argv[1])) as t:\n"
        "    t.write_bytes(b'live'); print(t, flush=True); time.sleep(60)"), str(out / "other.bin")],
        stdout=subprocess.PIPE, text=True)
    live = Path(holder.stdout.readline().strip())
    try:
        result = _run(clips, music, out, cache)
        assert result.returncode == 0, result.stderr
        assert not stale.exists() and not stale_cache.exists()
        assert live.exists(), "a temporary file with a live writer was removed"
    finally:
        holder.kill()
        holder.wait()
    assert atomic.sweep_stale(out) == [live]
    assert temp_files(out, cache) == []
