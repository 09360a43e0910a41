"""The Blender extension inside real Blender (PyPI's bpy 5.0.1 in its own virtualenv).

The suite installs bpy itself (scripts/setup_bpy.sh: once, about 820 MB; skipped with the
reason only when that install fails), builds the extension zip with its bundled OpenTimelineIO
wheel, and installs it the way a user does. Then, on synthetic media whose every shot has its
own colour: the add-on's Import places every OTIO clip at its channel, record frame, in-point
and length; frames rendered by Blender's sequencer show what the engine's montage.mp4 shows;
Export gives back the same cut list (and the user's edits); Generate runs the real engine in
the background, driven by its timer without blocking, and can be cancelled.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from blender_support.addon_modules import addon_module
from blender_support.runner import (
    SetupFailed,
    build_zip,
    engine_executable,
    ensure_bpy,
    run_in_blender,
)
from media_tools import decode_frames, make_counter_clip, median_colors, read_counter
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.settings import Settings
from PIL import Image

pytestmark = pytest.mark.slow
cutlist = addon_module("cutlist")
OFFSET = cutlist.FIRST_FRAME


@pytest.fixture(scope="session")
def bpy_env():
    try:
        env = ensure_bpy()
    except SetupFailed as exc:
        pytest.skip(f"Blender tests need bpy 5.0.1 in .venv-bpy and it could not be installed: {exc}")
    print(f"\nbpy: {env.python} (setup call {env.install_s:.1f} s; one-time install took "
          f"{env.first_install_s if env.first_install_s is not None else '?'} s)")
    return env


@pytest.fixture(scope="session")
def extension_zip(bpy_env, tmp_path_factory):
    try:
        return build_zip(bpy_env.python, tmp_path_factory.mktemp("blender-ext"))
    except SetupFailed as exc:
        if "no opentimelineio wheel" in str(exc):
            pytest.skip(f"the OpenTimelineIO wheel for the extension could not be downloaded: {exc}")
        raise


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four clips (one 4:3, names with spaces), three single-colour shots each, a drum track with
    a quiet-loud-quiet shape so the dynamic style dissolves into the loud section."""
    root = tmp_path_factory.mktemp("blender corpus")
    colors = distinct_colors(12)
    truths = []
    for c in range(4):
        shots = [ShotSpec(duration_s=2.0 + ((c + s) % 3) * 0.8, color=colors[c * 3 + s]) for s in range(3)]
        w = 240 if c == 3 else 320
        truths.append(make_clip(root / "clips" / f"clip {c}.mp4", shots, width=w, height=180, fps="25"))
    drums = make_drum_track(root / "drums.wav", bpm=120.0, duration_s=22.0,
                            sections=[(0.0, "low"), (8.0, "high"), (16.0, "low")])
    s = Settings(clips=root / "clips", music=drums.path, out=root / "out", style="dynamic", duration=14.0,
                 resolution="360p", cache_dir=root / "cache", seed=1)
    summary = run(s, progress=False)
    return root, truths, drums, summary


def _video_clips(tl: otio.schema.Timeline) -> list[otio.schema.Clip]:
    return list(tl.video_tracks()[0].find_clips())


def _sample_frames(tl: otio.schema.Timeline) -> dict[int, str]:
    """Record frame -> what it samples: the middle of each clip's solo part, and the middle of
    each dissolve."""
    frames: dict[int, str] = {}
    busy = set()
    for cut, i, o in cutlist.transitions(tl):
        busy.update(range(cut - i, cut + o))
        frames[cut] = "dissolve"
    for clip in _video_clips(tl):
        rng = clip.trimmed_range_in_parent()
        solo = [f for f in range(int(rng.start_time.value), int(rng.end_time_exclusive().value)) if f not in busy]
        frames[solo[len(solo) // 2]] = clip.name
    return frames


@pytest.fixture(scope="module")
def imported(bpy_env, extension_zip, corpus, tmp_path_factory):
    root, _, _, summary = corpus
    work = tmp_path_factory.mktemp("bl import")
    tl = otio.adapters.read_from_file(str(summary.timeline))
    frames = _sample_frames(tl)
    missing = _video_clips(tl)[1].name
    run_in_blender(bpy_env.python, "bl_import_export.py", {
        "zip": str(extension_zip), "timeline": str(summary.timeline), "out_dir": str(work),
        "frames": [f + OFFSET for f in frames], "percent": 25, "engine": str(engine_executable()),
        "missing_clip": missing}, work)
    result = json.loads((work / "result.json").read_text())
    return tl, frames, result, work, missing


def test_extension_installs_from_its_zip_with_bundled_otio(imported, extension_zip):
    _, _, result, work, _ = imported
    # OpenTimelineIO came from the wheel inside the zip, unpacked by Blender's extension system
    assert str(work / "blender-user" / "extensions" / ".local") in result["otio_from"]
    assert extension_zip.name.endswith("-py311.zip")
    # and it unregisters everything it registered, and registers again
    assert result["after_disable"] == {"scene_prop": False, "operator": False, "panel": False}
    assert result["reenabled"]


def test_scene_takes_rate_size_and_range_from_the_timeline(imported):
    tl, _, result, _, _ = imported
    scene = result["scene"]
    render = tl.metadata["montage_ai"]["render"]
    assert (scene["fps"], scene["fps_base"]) == (25, 1.0)
    assert (scene["width"], scene["height"]) == (render["width"], render["height"])
    assert (scene["frame_start"], scene["frame_end"]) == (OFFSET, OFFSET + int(tl.duration().value) - 1)
    assert scene["view_transform"] == "Standard"


def test_every_clip_is_placed_at_its_channel_record_frame_in_point_and_length(imported, corpus):
    tl, _, result, _, _ = imported
    truths = {str(t.path): t for t in corpus[1]}
    render = tl.metadata["montage_ai"]["render"]
    strips = {json.loads(s["props"])["clip_name"]: s for s in result["strips"] if s["props"] and s["type"] != "CROSS"}
    video = tl.video_tracks()[0]
    items = list(video)
    seen = 0
    roll_channels = set()
    for i, item in enumerate(items):
        if not isinstance(item, otio.schema.Clip):
            continue
        s = strips[item.name]
        pre = int(items[i - 1].in_offset.value) if i and isinstance(items[i - 1], otio.schema.Transition) else 0
        post = int(items[i + 1].out_offset.value) if i + 1 < len(items) and isinstance(items[i + 1], otio.schema.Transition) else 0
        rec = item.range_in_parent()
        start, dur = int(rec.start_time.value), int(rec.duration.value)
        src_in = int(item.source_range.start_time.value)
        assert s["type"] == "MOVIE" and s["path"] == item.media_reference.target_url
        assert s["left"] == start - pre + OFFSET, item.name                 # record frame (with dissolve handle)
        assert s["right"] - s["left"] == dur + pre + post, item.name       # length
        assert s["left"] - s["content_start"] == src_in - pre, item.name    # source in-point
        assert s["channel"] == (3 if pre else 2), item.name                 # A/B roll above the music
        t = truths[s["path"]]                                               # the engine crops to fill: FILL
        fill = max(render["width"] / t.width, render["height"] / t.height)
        assert s["scale"] == pytest.approx([fill, fill], rel=1e-3), item.name
        roll_channels.add(s["channel"])
        seen += 1
    assert seen == len(_video_clips(tl)) and roll_channels == {2, 3}
    assert any(truths[s["path"]].width == 240 for s in strips.values() if s["type"] == "MOVIE"), "no 4:3 clip in the cut"
    music = next(c for c in tl.audio_tracks()[0].find_clips())
    s = strips[music.name]
    assert s["type"] == "SOUND" and s["channel"] == 1 and s["path"] == music.media_reference.target_url
    assert (s["left"], s["right"] - s["left"]) == (OFFSET, int(music.source_range.duration.value))
    assert s["left"] - s["content_start"] == int(music.source_range.start_time.value)


def test_dissolves_become_cross_strips_over_the_overlap(imported):
    tl, _, result, _, _ = imported
    crosses = [s for s in result["strips"] if s["type"] == "CROSS"]
    want = cutlist.transitions(tl)
    assert len(crosses) == len(want) >= 1
    for x, (cut, i, o) in zip(sorted(crosses, key=lambda s: s["left"]), want):
        assert (x["left"], x["right"]) == (cut - i + OFFSET, cut + o + OFFSET)
        assert x["channel"] == 4 and json.loads(x["props"])["in_offset"] == i


def test_beats_downbeats_and_sections_become_timeline_markers(imported):
    tl, _, result, _, _ = imported
    markers = result["scene"]["markers"]
    want = sorted((int(m.marked_range.start_time.value) + OFFSET,
                   f"section: {m.comment}" if m.name.startswith("section") else m.comment) for m in tl.tracks.markers)
    assert [tuple(m) for m in markers] == want
    assert any(name.startswith("section: ") for _, name in markers)


def test_frames_rendered_by_the_vse_match_the_engine_render(imported, corpus):
    tl, frames, result, _, _ = imported
    _, truths, _, summary = corpus
    engine = median_colors(summary.video)            # per frame, decoded from montage.mp4
    palette = np.array([c for t in truths for c in t.shot_colors], float)
    worst = 0.0
    for f, what in frames.items():
        img = np.asarray(Image.open(result["rendered"][str(f + OFFSET)]).convert("RGB"), float)
        vse = np.median(img.reshape(-1, 3), axis=0)
        diff = np.abs(vse - engine[f]).max()
        worst = max(worst, diff)
        limit = 30 if what == "dissolve" else 12
        assert diff <= limit, f"frame {f} ({what}): VSE {vse} vs engine {engine[f]}"
        if what != "dissolve":   # and it is the right shot, not merely a similar colour
            assert np.argmin(np.abs(palette - vse).max(axis=1)) == np.argmin(np.abs(palette - engine[f]).max(axis=1))
    print(f"\nVSE vs engine: {len(frames)} frames, worst channel difference {worst:.1f} levels")


def test_export_gives_back_the_same_cut(imported):
    tl, _, _, work, _ = imported
    back = otio.adapters.read_from_file(str(work / "roundtrip.otio"))
    assert cutlist.cut_list(back) == cutlist.cut_list(tl)
    assert cutlist.transitions(back) == cutlist.transitions(tl)
    assert [t.name for t in back.tracks] == [t.name for t in tl.tracks]
    assert [(m.name, m.comment, m.color, m.marked_range) for m in back.tracks.markers] == \
        [(m.name, m.comment, m.color, m.marked_range) for m in tl.tracks.markers]
    assert back.metadata["montage_ai"]["render"] == tl.metadata["montage_ai"]["render"]
    assert [c.metadata["montage_ai"]["shot_id"] for c in _video_clips(back)] == \
        [c.metadata["montage_ai"]["shot_id"] for c in _video_clips(tl)]
    # the .kdenlive export went through the engine's adapter and reads back to the same cut
    kden = otio.adapters.read_from_file(str(work / "roundtrip.kdenlive"))
    assert cutlist.cut_list(kden) == cutlist.cut_list(tl)


def test_export_writes_back_what_the_user_changed(imported):
    tl, _, result, work, _ = imported
    edited = otio.adapters.read_from_file(str(work / "edited.otio"))
    before, after = cutlist.cut_list(tl), cutlist.cut_list(edited)
    first, last = 0, len(_video_clips(tl)) - 1
    k, path, rec, src, dur = before[first]
    assert after[first] == (k, path, rec + 3, src + 3, dur - 3)         # head trimmed by 3 frames
    k, path, rec, src, dur = before[last]
    assert after[last] == (k, path, rec + 5, src, dur)                  # moved 5 frames later
    assert before[first + 1:last] == after[first + 1:last]
    assert isinstance(list(edited.video_tracks()[0])[0], otio.schema.Gap)


def test_missing_media_becomes_a_placeholder_that_keeps_the_path(imported):
    tl, _, result, work, missing = imported
    holders = [s for s in result["missing_strips"] if s["type"] == "COLOR"]
    assert len(holders) == 1 and json.loads(holders[0]["props"])["path"] == "/nonexistent/folder/gone clip.mp4"
    assert any("missing media" in w for w in result["missing_warnings"])
    back = otio.adapters.read_from_file(str(work / "missing_roundtrip.otio"))
    want = [(k, "/nonexistent/folder/gone clip.mp4" if i == 1 else p, r, s, d)
            for i, (k, p, r, s, d) in enumerate(cutlist.cut_list(tl))]
    assert cutlist.cut_list(back) == want


@pytest.fixture(scope="module")
def generated(bpy_env, extension_zip, corpus, tmp_path_factory):
    root, _, drums, _ = corpus
    work = tmp_path_factory.mktemp("bl generate")
    run_in_blender(bpy_env.python, "bl_generate.py", {
        "zip": str(extension_zip), "engine": str(engine_executable()), "clips": str(root / "clips"),
        "music": str(drums.path), "out_dir": str(work / "out"), "cancel_out_dir": str(work / "cancelled"),
        "style": "fast", "duration": 10, "resolution": "360p", "timeout_s": 240, "cancel_after_s": 1.5}, work,
        timeout_s=600)
    return json.loads((work / "generate_result.json").read_text()), work


def test_generate_runs_the_engine_in_the_background_and_imports_the_cut(generated):
    result, work = generated
    job = result["run"]
    assert job["state"] == "done" and job["returncode"] == 0, job["messages"]
    assert "--out" in job["argv"] and job["argv"][job["argv"].index("--out") + 1] == str(work / "out")
    # the caller kept control: many short timer calls, and its own work in between
    assert job["ticks"] >= 10 and job["busy_loops"] > job["ticks"]
    assert max(job["tick_s"][:-1]) < 0.1, "a poll blocked the UI thread"
    percents = [p for _, p, _ in job["samples"]]
    assert percents == sorted(percents) and percents[-1] == 100
    assert any("montage:" in m or "done" in m for m in job["messages"])
    # the sidebar showed a progress bar with the stage and percentage, and the engine's messages
    bars = [e for e in job["panel_running"] if e[0] == "progress"]
    assert bars and "%" in bars[0][2] and 0 < bars[0][1] < 1
    assert ["operator", "montage_ai.cancel"] in job["panel_running"]
    assert sum(e[0] == "label" for e in job["panel_running"]) >= 2
    assert ["label", f"done: {job['result_scene']}"] in job["panel_after"]
    # the result was imported as a new scene with every clip of the engine's timeline
    timeline = otio.adapters.read_from_file(str(work / "out" / "montage.otio"))
    assert result["source"] == str(work / "out" / "montage.otio")
    movies = [s for s in result["strips"] if s["type"] == "MOVIE"]
    assert len(movies) == len(_video_clips(timeline))
    placed = sorted((s["left"], s["right"], s["left"] - s["content_start"]) for s in movies)
    layout = cutlist.layout_from_timeline(timeline)
    want = sorted((p.start, p.end, p.source_in) for p in layout.clips if p.kind == "movie")
    assert placed == want
    assert result["scene"]["frame_end"] == OFFSET + int(timeline.duration().value) - 1


def test_generate_can_be_cancelled(generated):
    result, _ = generated
    job = result["cancel"]
    assert job["state"] == "cancelled" and job["cancelled_at_s"] is not None
    assert job["elapsed_s"] - job["cancelled_at_s"] < 10, "the engine did not stop soon after Cancel"
    assert job["process_gone"] and job["result_scene"] == ""
    assert ["label", "cancelled"] in job["panel_after"]


# --- mixed frame rates ---------------------------------------------------------------------------
# Sources whose every frame shows its own index, at seven rates, cut into one timeline at 29.97 and
# at 25 fps. What Blender must show follows docs/frame-rule.md: at frame k of a clip with in-point
# `in`, the source frame nearest to in + k / scene rate (ties to the later); computed here from each
# source's exact rate, independently of the add-on and of Blender.

MIXED_RATES = {"23.976": Fraction(24000, 1001), "24": Fraction(24), "25": Fraction(25),
               "29.97": Fraction(30000, 1001), "30": Fraction(30), "50": Fraction(50),
               "59.94": Fraction(60000, 1001)}
MIXED_SECONDS = 4


def rule_frame(in_frames: int, k: int, scene_rate: Fraction, media_rate: Fraction) -> int:
    """docs/frame-rule.md for a constant-rate source: floor(t_k * r + 1/2), t_k = (in + k) / R."""
    t = Fraction(in_frames + k) / scene_rate
    return math.floor(t * media_rate + Fraction(1, 2))


@pytest.fixture(scope="module")
def mixed_media(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed rates")
    media = {}
    for n, (name, rate) in enumerate(MIXED_RATES.items()):
        frames = int(MIXED_SECONDS * rate)
        path = root / f"count {name}.mp4"
        make_counter_clip(path, frames, fps=f"{rate.numerator}/{rate.denominator}",
                          tint=(40 * n % 256, 90, 200 - 25 * n))
        media[name] = (path, rate, frames)
    # for an exact tie at 29.97: 300 scene frames in, 50 fps source time 500.5 frames
    path = root / "count 50 long.mp4"
    make_counter_clip(path, 560, fps="50", tint=(200, 200, 40))
    media["50 long"] = (path, Fraction(50), 560)
    return root, media


def _mixed_timeline(media: dict, scene_rate: Fraction, path: Path) -> tuple[otio.schema.Timeline, list[dict]]:
    """One clip per source, in-points spread over the media, two of them cut to the very end of
    their media (the source range ends where the available range does), a gap in the middle; at
    29.97 also a clip through an exact tie (source time half-way between two frames)."""
    R = float(scene_rate)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    plan = []
    record = 0
    for n, (name, (src, rate, frames)) in enumerate(media.items()):
        last = int(Fraction(frames) * scene_rate / rate)          # scene frames of media, floored
        in_frames = 5 + 7 * n
        dur = last - in_frames if name in ("25", "59.94") else 31 + 4 * n
        if name == "50 long":
            if scene_rate != Fraction(30000, 1001):
                continue
            in_frames, dur = 290, 21                              # k = 10: 300 / R * 50 = 500.5
        if n == 3:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, R), otio.opentime.RationalTime(6, R))))
            record += 6
        ref = otio.schema.ExternalReference(target_url=str(src), available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, float(rate)), otio.opentime.RationalTime(frames, float(rate))))
        track.append(otio.schema.Clip(name=f"clip {name}", media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(in_frames, R), otio.opentime.RationalTime(dur, R))))
        plan.append({"name": f"clip {name}", "rate": rate, "frames": frames, "in": in_frames, "dur": dur,
                     "record": record, "to_end": name in ("25", "59.94")})
        record += dur
    tl = otio.schema.Timeline(name=f"mixed at {R:.3f}")
    tl.tracks.append(track)
    tl.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": scene_rate.numerator,
                                            "fps_den": scene_rate.denominator, "fit": "pad"}}
    otio.adapters.write_to_file(tl, str(path))
    return tl, plan


@pytest.fixture(scope="module")
def mixed_imported(bpy_env, extension_zip, mixed_media, tmp_path_factory):
    root, media = mixed_media
    work = tmp_path_factory.mktemp("bl mixed")
    runs = {}
    for label, rate in (("29.97", Fraction(30000, 1001)), ("25", Fraction(25))):
        tl, plan = _mixed_timeline(media, rate, root / f"mixed {label}.otio")
        runs[label] = {"timeline": tl, "plan": plan, "rate": rate, "path": root / f"mixed {label}.otio",
                       "out": work / f"at {label}"}
    run_in_blender(bpy_env.python, "bl_mixed_rate.py", {
        "zip": str(extension_zip), "percent": 50,
        "timelines": [{"timeline": str(r["path"]), "out_dir": str(r["out"])} for r in runs.values()]}, work)
    for r in runs.values():
        r["result"] = json.loads((r["out"] / "result.json").read_text())
    return runs


@pytest.mark.parametrize("label", ["29.97", "25"])
def test_mixed_rate_clips_play_at_their_own_rate_and_end_inside_their_media(mixed_imported, label):
    run = mixed_imported[label]
    result, rate = run["result"], run["rate"]
    assert (Fraction(result["scene"]["fps"]) / Fraction(result["scene"]["fps_base"]).limit_denominator(1001)) == rate
    strips = {json.loads(s["props"])["clip_name"]: s for s in result["strips"] if s["type"] == "MOVIE"}
    assert len(strips) == len(run["plan"]) >= len(MIXED_RATES)
    for p in run["plan"]:
        s = strips[p["name"]]
        own = p["rate"] != rate
        assert json.loads(s["props"])["own_rate"] is own, p["name"]
        assert result["own_rate_probe"][s["name"]] is own, p["name"]
        # placed at its record frame with its in-point, counted in scene frames
        assert (s["left"], s["right"]) == (p["record"] + OFFSET, p["record"] + p["dur"] + OFFSET), p["name"]
        assert s["left"] - s["content_start"] == p["in"], p["name"]
        # the content Blender plays is the media's length at the scene rate: real speed
        # (Blender divides in float32 and truncates: where the exact length is a whole number it
        # can come out one frame short, e.g. 120 frames at 30 fps in a 25 fps scene give 99)
        exact = Fraction(p["frames"]) * rate / p["rate"]
        assert s["frame_duration"] == math.floor(exact) or (
            s["frame_duration"] == exact - 1 and exact.denominator == 1), p["name"]
        # and the strip ends inside it (two clips end exactly at the media's last frame)
        assert s["right"] <= s["content_start"] + s["frame_duration"], p["name"]
        last = rule_frame(p["in"], p["dur"] - 1, rate, p["rate"])
        # (a clip cut to the end shows, last, a frame less than one scene frame from the media's end)
        assert last <= p["frames"] - 1, p["name"]
        assert not p["to_end"] or last >= p["frames"] - 1 - math.ceil(p["rate"] / rate), p["name"]
    # a source slower than the scene needs the Raw cache off (see docs/blender.md)
    assert result["use_cache_raw"] is False


@pytest.mark.parametrize("label", ["29.97", "25"])
def test_mixed_rate_vse_shows_the_frame_the_rule_names_on_every_frame(mixed_imported, label):
    run = mixed_imported[label]
    result, rate = run["result"], run["rate"]
    rendered = {int(f): p for f, p in result["rendered"].items()}
    checked, ties, wrong = 0, 0, []
    for p in run["plan"]:
        for k in range(p["dur"]):
            frame = p["record"] + k + OFFSET
            want = rule_frame(p["in"], k, rate, p["rate"])
            got = read_counter(np.asarray(Image.open(rendered[frame]).convert("RGB")))
            checked += 1
            ties += (Fraction(p["in"] + k) / rate * p["rate"]).denominator == 2
            if got != want:
                wrong.append((p["name"], k, want, got))
    assert checked > 300
    assert ties >= (1 if label == "29.97" else 0)                 # ties go to the later frame
    assert not wrong, f"{len(wrong)} of {checked} frames differ (clip, k, rule, VSE): {wrong[:12]}"
    print(f"\nat {label}: {checked} frames of {len(run['plan'])} clips ({ties} exact ties), "
          "every one the rule's source frame")


@pytest.mark.parametrize("label", ["29.97", "25"])
def test_mixed_rate_export_gives_back_the_same_in_points(mixed_imported, label):
    run = mixed_imported[label]
    tl, out = run["timeline"], run["out"]
    want = cutlist.cut_list(tl)
    for name in ("roundtrip.otio", "probed.otio"):
        back = otio.adapters.read_from_file(str(out / name))
        assert cutlist.cut_list(back) == want, name
    edited = cutlist.cut_list(otio.adapters.read_from_file(str(out / "edited.otio")))
    trimmed = [(k, p, r + 3, s + 3, d - 3) for k, p, r, s, d in want]
    k, p, r, s, d = trimmed[-1]
    trimmed[-1] = (k, p, r + 5, s, d)
    assert edited == trimmed


@pytest.mark.parametrize("label", ["29.97", "25"])
def test_mixed_rate_vse_frames_match_the_engine_render(mixed_imported, label, tmp_path):
    """Blender and the engine agree frame for frame, the last frame of every clip included."""
    from montage_ai.render.conform import render
    from montage_ai.timeline.read import read_timeline

    run = mixed_imported[label]
    rendered = {int(f): p for f, p in run["result"]["rendered"].items()}
    out = tmp_path / "engine.mp4"
    render(read_timeline(run["timeline"]), out, tmp_path / "cache", workers=2, progress=False)
    engine = [read_counter(f) for f in decode_frames(out)]
    wrong, lasts = [], 0
    for p in run["plan"]:
        for k in range(p["dur"]):
            frame = p["record"] + k
            vse = read_counter(np.asarray(Image.open(rendered[frame + OFFSET]).convert("RGB")))
            lasts += k == p["dur"] - 1
            if vse != engine[frame]:
                wrong.append((p["name"], k, engine[frame], vse))
    assert lasts == len(run["plan"])
    assert not wrong, f"{len(wrong)} frames differ (clip, k, engine, VSE): {wrong[:12]}"
