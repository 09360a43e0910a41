"""Hostile file names through the real command line: one run over a folder whose every clip has
a name that breaks something somewhere (a line-based format, XML, a shell, ffmpeg's option
parser or its concat list, UTF-8), then a re-render of every export with `montage-ai render`.

The promise for each name: the run works and every output is written (montage.mp4, montage.otio,
plan.json, report.html, storyboard.png, timeline.png and every export) with the name preserved
where the format can hold it, or the clip is skipped with one warning line naming it; no name
ever reaches a shell (`$(touch x)` creates nothing) or breaks a file format.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from hostile import assert_clean, cli, sha256_tree, temp_files
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_otio.names import one_line

pytestmark = pytest.mark.slow

#: each name, and what it attacks
NAMES = [
    "new\nline.mp4",            # every line-based format, messages, Pillow's text
    "car\rret.mp4",             # XML readers turn a raw CR into LF
    "tab\there.mp4",            # XML attribute normalisation turns it into a space
    "single'q.mp4",             # shell and ffconcat quoting
    'double"q.mp4',             # XML attributes, JSON
    "back\\slash.mp4",          # cmx_3600 turns backslashes into slashes; escapes everywhere
    "$(touch x).mp4",           # command substitution, if anything ever used a shell
    "-i.mp4",                   # an option to ffmpeg, if ever passed as a bare argument
    "<lt>&amp.mp4",             # XML and HTML
    "pct%d%s.mp4",              # printf-style and ffmpeg image-sequence patterns
    "star*.mp4",                # globs
    "co:lon.mp4",               # ffmpeg protocol prefixes, Windows
    "ünï—日本.mp4",              # non-ASCII
    "L" * 251 + ".mp4",         # 255 bytes, the longest name a Linux file system allows
]
NOT_UTF8 = b"\xff\xfe.mp4"      # a valid Linux file name that is not text
MUSIC_NAME = "dr\nums $(touch x) 'q'.wav"
EXPORTS = {"otio": ".otio", "kdenlive": ".kdenlive", "fcp7": ".xml", "fcpxml": ".fcpxml", "edl": ".edl"}
DURATION_S = 16                 # "fast" cuts ~20 segments: enough for every clip to be used once


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hostile names")
    clips = root / "clips"
    clips.mkdir()
    colors = distinct_colors(len(NAMES) + 1)
    for name, color in zip(NAMES, colors):
        make_clip(clips / name, [ShotSpec(duration_s=2, color=color)], width=320, height=180)
    made = make_clip(root / "not-utf8.mp4", [ShotSpec(duration_s=2, color=colors[-1])], width=320, height=180).path
    os.rename(os.fsencode(made), os.fsencode(clips) + b"/" + NOT_UTF8)
    music = make_drum_track(root / MUSIC_NAME, bpm=120, duration_s=20).path
    sources = sha256_tree(clips, music)
    work = root / "cwd"                   # where `$(touch x)` would leave its file
    work.mkdir()
    out, cache = root / "out", root / "cache"
    result = cli("run", "--clips", clips, "--music", music, "--out", out, "--resolution", "360p",
                 "--duration", DURATION_S, "--style", "fast", "--export", ",".join(EXPORTS), cache=cache, cwd=work)
    return {"root": root, "clips": clips, "music": music, "out": out, "cache": cache, "work": work,
            "result": result, "sources": sources}


def _timeline_paths(path: Path) -> set[Path]:
    timeline = otio.adapters.read_from_file(str(path))
    return {Path(c.media_reference.target_url) for c in timeline.video_tracks()[0].find_clips()}


def test_the_run_works_and_writes_everything(hostile_run):
    out = hostile_run["out"]
    assert_clean(hostile_run["result"], ok=True, written=(out, hostile_run["cache"]), sources=hostile_run["sources"])
    for name in ("montage.mp4", "montage.otio", "plan.json", "report.html", "storyboard.png", "timeline.png",
                 *(f"montage{suffix}" for suffix in EXPORTS.values())):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with av.open(str(out / "montage.mp4")) as c:
        assert c.streams.video[0].frames == DURATION_S * 25


def test_every_valid_name_is_used_and_kept_exactly(hostile_run):
    used = _timeline_paths(hostile_run["out"] / "montage.otio")
    assert {p.name for p in used} == set(NAMES)
    assert {p.parent for p in used} == {hostile_run["clips"].resolve()}
    timeline = otio.adapters.read_from_file(str(hostile_run["out"] / "montage.otio"))
    [song] = timeline.audio_tracks()[0].find_clips()
    assert Path(song.media_reference.target_url) == hostile_run["music"].resolve()
    plan = json.loads((hostile_run["out"] / "plan.json").read_text(encoding="utf-8"))
    assert {s["source"] for s in plan["analysis"]["shots"]} == set(NAMES)


def test_a_name_that_is_not_utf8_is_skipped_with_one_line_naming_it(hostile_run):
    result = hostile_run["result"]
    shown = one_line(os.fsdecode(NOT_UTF8))
    warnings = [line for line in result.stderr.splitlines() if shown in line]
    assert len(warnings) == 1 and "not valid UTF-8" in warnings[0], result.stderr
    assert f"skipped: {hostile_run['clips']}/{shown}" in result.stdout


def test_no_name_reaches_a_shell(hostile_run):
    for folder in (hostile_run["work"], hostile_run["clips"], hostile_run["out"], hostile_run["root"]):
        assert not (folder / "x").exists(), folder


def test_messages_stay_one_line_per_item(hostile_run):
    """No name splits a line of the summary: every line starts as the summary's lines do."""
    result = hostile_run["result"]
    for line in result.stdout.splitlines():
        assert re.match(r"^(montage|timeline|tempo|\d+ segments|time|director|craft|variant|export|skipped|warning)\b",
                        line), line
    assert "\x1b" not in result.stdout + result.stderr


def test_report_shows_each_name_on_one_line(hostile_run):
    page = (hostile_run["out"] / "report.html").read_text(encoding="utf-8")
    assert "new\\nline.mp4" in page and "car\\rret.mp4" in page and "tab\\there.mp4" in page
    assert "new\nline.mp4" not in page
    assert "&lt;lt&gt;&amp;amp.mp4" in page and "<lt>" not in page


def test_edl_lines_hold_no_injected_events(hostile_run):
    """Every EDL line is a title, FCM, event or comment line; one event per video segment."""
    out = hostile_run["out"]
    for name in ("montage.music.edl", "montage.edl"):
        text = (out / name).read_text(encoding="utf-8")
        events = 0
        for line in text.splitlines():
            if re.match(r"^\d{3,4}\s", line):
                events += 1
            else:
                assert line == "" or line.startswith(("TITLE:", "FCM:", "* ")), (name, line)
    timeline = otio.adapters.read_from_file(str(out / "montage.otio"))
    assert events == len(list(timeline.video_tracks()[0].find_clips()))
    assert "* FROM CLIP NAME:  new?line.mp4" in text


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24", width=64, height=36).astype(np.int16)
                         for f in c.decode(video=0)])


@pytest.mark.parametrize("fmt", list(EXPORTS))
def test_every_export_re_renders_the_same_montage(hostile_run, tmp_path, fmt):
    out = hostile_run["out"]
    video = tmp_path / f"again {fmt}.mp4"
    result = cli("render", out / f"montage{EXPORTS[fmt]}", "-o", video, cache=hostile_run["cache"],
                 cwd=hostile_run["work"])
    assert_clean(result, ok=True, written=(tmp_path, hostile_run["cache"]), sources=hostile_run["sources"])
    a, b = _frames(out / "montage.mp4"), _frames(video)
    assert a.shape == b.shape
    assert float(np.abs(a - b).mean()) < 2.0


def test_a_cache_folder_with_a_hostile_name_renders(hostile_run, tmp_path):
    """The render's concat list and its piece paths live in the cache folder."""
    cache = tmp_path / "ca\nche 'q\" $(touch y) -i"
    video = tmp_path / "again.mp4"
    result = cli("render", hostile_run["out"] / "montage.otio", "-o", video, cache=cache, cwd=hostile_run["work"])
    assert_clean(result, ok=True, written=(tmp_path, cache), sources=hostile_run["sources"])
    with av.open(str(video)) as c:
        assert c.streams.video[0].frames == DURATION_S * 25
    assert not (hostile_run["work"] / "y").exists() and not temp_files(cache)


def test_music_whose_name_is_not_utf8_fails_with_one_line_naming_it(hostile_run, tmp_path):
    music = os.fsencode(tmp_path) + b"/\xff song.wav"
    with open(music, "wb") as fh:
        fh.write(hostile_run["music"].read_bytes())
    out = tmp_path / "out"
    result = cli("run", "--clips", hostile_run["clips"], "--music", os.fsdecode(music), "--out", out,
                 "--resolution", "360p", "--duration", 4, cache=hostile_run["cache"], cwd=hostile_run["work"])
    assert_clean(result, needles=("\\xff song.wav", "not valid UTF-8"), written=(tmp_path, hostile_run["cache"]),
                 sources=hostile_run["sources"])
    assert not (out / "montage.mp4").exists()
