"""The Blender extension's pure-Python parts, without Blender: finding and running the engine,
reading its progress, the OTIO <-> VSE cut-list mapping, timeline formats and the build script.
(tests/test_blender.py runs the whole extension inside real Blender.)"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import textwrap
import time
import tomllib
import zipfile
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from blender_support.addon_modules import ADDON_DIR, addon_module
from blender_support.runner import BUILD, engine_executable

engine = addon_module("engine")
progress = addon_module("progress")
cutlist = addon_module("cutlist")
timeline_io = addon_module("timeline_io")

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange


# --- a stand-in engine: speaks --json (or not), sleeps, handles SIGINT like the real one -----

FAKE = textwrap.dedent('''
    import json, sys, time, signal, pathlib
    args = sys.argv[1:]
    mode = pathlib.Path(__file__).with_suffix(".mode").read_text().strip()
    if "--json" in args:
        where = "global" if args.index("--json") < args.index("run") else "run"
        if mode == "old" or (mode == "runflag") != (where == "run"):
            print("usage: montage-ai [-h] [-q] [--json] {run,export}", file=sys.stderr)
            print("montage-ai: error: unrecognized arguments: --json", file=sys.stderr)
            sys.exit(2)
    out = pathlib.Path(args[args.index("--out") + 1])
    def ev(kind, **kw):
        print(json.dumps({"event": kind, "t": 0, **kw}), flush=True)
    try:
        if mode == "fail":
            print("montage-ai: error: /x: clips folder not found", file=sys.stderr)
            sys.exit(1)
        if mode == "slow":
            time.sleep(30)
        stages = ["probe", "music", "clips", "direct", "cut", "timeline", "render"]
        for st in stages:
            if "--json" in args:
                ev("stage_start", stage=st)
                for k in range(1, 4):
                    ev("progress", stage=st, done=k, total=3)
                    time.sleep(0.02)
                ev("stage_end", stage=st, seconds=0.06)
            elif st in ("clips", "render"):
                desc = "analyse clips" if st == "clips" else "encode"
                for k in range(1, 4):
                    sys.stderr.write(f"\\r{desc}:  {k * 33}%|###       | {k}/3 [00:00<00:00]")
                    sys.stderr.flush()
                    time.sleep(0.05)
            else:
                time.sleep(0.02)
        (out / "montage.otio").write_text("{}")
        if "--json" in args:
            ev("warning", stage="render", message="segment 4 runs past its shot")
            ev("done", summary={"timeline": str(out / "montage.otio")})
        else:
            print(f"montage: {out / 'montage.mp4'}")
            print(f"timeline: {out / 'montage.otio'}   plan: {out / 'plan.json'}")
    except KeyboardInterrupt:
        print("montage-ai: interrupted; finished pieces are cached and a re-run resumes", file=sys.stderr)
        sys.exit(130)
''')


def _fake_engine(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE)
    script.with_suffix(".mode").write_text(mode)
    return [sys.executable, str(script)]


def _request(tmp_path: Path, **kw) -> object:
    return engine.EngineRequest(clips=tmp_path / "my clips", music=tmp_path / "a song.wav", out=tmp_path / "out", **kw)


def test_run_args_are_an_argument_list_with_paths_kept_whole(tmp_path):
    req = _request(tmp_path, style="wedding", prompt="slow and warm, \"golden\" hour", duration=30,
                   resolution="720p", aspect="9:16", cgpu=True, upscale=True)
    args = req.run_args()
    assert args[:7] == ["run", "--clips", str(tmp_path / "my clips"), "--music", str(tmp_path / "a song.wav"),
                        "--out", str(tmp_path / "out")]
    assert args[args.index("--prompt") + 1] == "slow and warm, \"golden\" hour"
    assert args[args.index("--duration") + 1] == "30" and "--cgpu" in args and "--upscale" in args
    assert req.args() == ["--json", *args] and "--json" not in args        # a global flag of the engine
    req.next_json_flag()
    assert req.args()[-1] == "--json" and req.args()[0] == "run"            # as `run --json`
    req.next_json_flag()
    assert "--json" not in req.args() and not req.json_events
    plain = _request(tmp_path, duration=0.0).run_args()
    assert "--duration" not in plain and "--prompt" not in plain and "--cgpu" not in plain


def test_json_events_drive_a_monotonic_progress_to_100(tmp_path):
    job = engine.EngineJob(engine=_fake_engine(tmp_path, "new"), request=_request(tmp_path)).start()
    seen = []
    while job.poll() == "running":
        seen.append(job.tracker.percent)
        time.sleep(0.01)
    assert job.state == "done" and job.tracker.json_seen
    assert seen == sorted(seen) and job.tracker.percent == 100
    assert len(set(seen)) > 5, "progress should move through the stages"
    assert job.timeline == tmp_path / "out" / "montage.otio"
    assert "warning: segment 4 runs past its shot" in job.tracker.messages


def test_json_after_run_is_tried_when_the_global_flag_is_rejected(tmp_path):
    job = engine.EngineJob(engine=_fake_engine(tmp_path, "runflag"), request=_request(tmp_path)).start()
    assert job.wait(20) == "done" and job.tracker.json_seen and job.request.json_flag == "run"
    assert job.argv[-1] == "--json" and not any("usage:" in m for m in job.tracker.messages)


def test_a_usage_line_listing_json_is_not_a_rejection():
    said = "usage: montage-ai [-h] [-q] [--json] {run}\nmontage-ai: error: unrecognized arguments: --upscale"
    assert not engine._unsupported_flag(said, "--json")
    assert engine._unsupported_flag("montage-ai: error: unrecognized arguments: --cgpu --json", "--json")


def test_an_engine_without_json_is_read_from_its_bars_and_summary(tmp_path):
    job = engine.EngineJob(engine=_fake_engine(tmp_path, "old"), request=_request(tmp_path)).start()
    seen = []
    while job.poll() == "running":
        seen.append(job.tracker.percent)
        time.sleep(0.01)
    assert job.state == "done" and not job.request.json_events and not job.tracker.json_seen
    assert seen == sorted(seen) and job.tracker.percent == 100 and len(set(seen)) > 2
    assert not any("usage:" in m for m in job.tracker.messages)    # the rejected try is not shown
    assert any(m.startswith("timeline: ") for m in job.tracker.messages)
    assert job.timeline == tmp_path / "out" / "montage.otio"


def test_an_engine_error_is_reported_in_one_line(tmp_path):
    job = engine.EngineJob(engine=_fake_engine(tmp_path, "fail"), request=_request(tmp_path)).start()
    assert job.wait(20) == "failed"
    assert job.tracker.error == "/x: clips folder not found" and job.returncode == 1


def test_polling_never_waits_and_cancel_stops_the_engine(tmp_path):
    job = engine.EngineJob(engine=_fake_engine(tmp_path, "slow"), request=_request(tmp_path), grace_s=2).start()
    time.sleep(0.5)                                   # let Python start inside the child
    t0 = time.perf_counter()
    for _ in range(20):
        assert job.poll() == "running"
    assert time.perf_counter() - t0 < 0.5             # 20 polls of a busy engine: no waiting
    job.cancel()
    assert job.wait(10) == "cancelled"
    assert job.returncode == 130 and "interrupted" in " ".join(job.tracker.messages)


def test_progress_tracker_reads_tqdm_redraws_and_errors():
    t = progress.ProgressTracker()
    t.feed_stderr("analyse clips:  50%|#####     | 2/4 [00:01<00:01,  1.9clip/s]")
    clips = t.percent
    assert t.stage == "clips" and 0 < clips < 60
    t.feed_stderr("encode: 100%|##########| 200/200 [00:00<00:00, 376.52frame/s]")
    assert t.stage == "render" and t.percent > clips and t.percent < 100
    t.feed_stderr("montage-ai: error: song.mp3: music file not found")
    assert t.error == "song.mp3: music file not found"
    t.feed_stdout('{"event": "done", "summary": {"timeline": "/x/montage.otio"}}')
    assert t.percent == 100 and t.summary["timeline"] == "/x/montage.otio"


def test_find_engine_order(tmp_path, monkeypatch):
    checkout = tmp_path / "montage ai"
    checkout.mkdir()
    sh = checkout / "montage-ai.sh"
    sh.write_text("#!/bin/sh\n")
    sh.chmod(sh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(engine.ENGINE_ENV, raising=False)
    monkeypatch.delenv(engine.HOME_ENV, raising=False)
    assert engine.find_engine(str(sh)) == [str(sh.resolve())]                  # the preference, a file
    assert engine.find_engine(str(checkout)) == [str(sh.resolve())]            # or the project folder
    with pytest.raises(engine.EngineNotFound):
        engine.find_engine(str(tmp_path / "nope"))
    lonely = tmp_path / "ext" / "montage_ai" / "engine.py"
    with pytest.raises(engine.EngineNotFound, match="add-on preferences"):
        engine.find_engine("", here=lonely)
    monkeypatch.setenv(engine.HOME_ENV, str(checkout))
    assert engine.find_engine("", here=lonely) == [str(sh.resolve())]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "montage-ai"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bindir))
    assert engine.find_engine("", here=lonely) == [str(exe)]                   # PATH before MONTAGE_AI_HOME
    # in this checkout the add-on finds the project's montage-ai.sh by itself
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(engine.HOME_ENV)
    assert engine.find_engine("", here=ADDON_DIR / "engine.py")[-1].endswith("montage-ai.sh")


# --- the cut list -------------------------------------------------------------------------------

def _clip(name: str, path: str, src: int, dur: int) -> otio.schema.Clip:
    return otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(target_url=path),
                            source_range=TR(RT(src, 25), RT(dur, 25)), metadata={"montage_ai": {"n": name}})


def _dissolve(i: int, o: int) -> otio.schema.Transition:
    return otio.schema.Transition(name="dissolve", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                  in_offset=RT(i, 25), out_offset=RT(o, 25))


@pytest.fixture()
def hand_timeline(tmp_path):
    """Gap, two dissolves in a row (A->B->C), a hard cut, a missing file, a second video track."""
    files = {}
    for n in "abcde":
        files[n] = tmp_path / f"{n} clip.mp4"
        files[n].write_bytes(b"")
    tl = otio.schema.Timeline(name="hand")
    tl.metadata["montage_ai"] = {"render": {"width": 1280, "height": 720, "fps_num": 25, "fps_den": 1, "fit": "pad"}}
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(10, 25))))
    v1.append(_clip("A", str(files["a"]), 20, 50))
    v1.append(_dissolve(5, 4))
    v1.append(_clip("B", str(files["b"]), 30, 40))
    v1.append(_dissolve(3, 3))
    v1.append(_clip("C", str(files["c"]), 10, 30))
    v1.append(_clip("D", "/gone/d clip.mp4", 0, 20))
    v2 = otio.schema.Track(name="V2 titles", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(40, 25))))
    v2.append(_clip("E", str(files["e"]), 0, 25))
    a1 = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
    a1.append(_clip("music", str(files["a"]), 12, 150))
    tl.tracks[:] = [v1, v2, a1]
    tl.tracks.markers.append(otio.schema.Marker(name="section: chorus", comment="chorus (high energy)",
                                                marked_range=TR(RT(40, 25), RT(20, 25))))
    return tl


def _as_vse(layout) -> object:
    """What Blender would hold after importing `layout` (the cross spans the overlap)."""
    names = [f"s{i}" for i in range(len(layout.clips))]
    strips = [cutlist.StripRecord(kind=p.kind, name=n, channel=p.channel, start=p.start, end=p.end,
                                  source_in=p.source_in, path=p.path, clip_name=p.clip_name, metadata=p.metadata,
                                  track=p.track, audio=p.audio) for n, p in zip(names, layout.clips)]
    crosses = []
    for x in layout.crosses:
        a, b = layout.clips[x.outgoing], layout.clips[x.incoming]
        crosses.append(cutlist.CrossRecord(channel=x.channel, start=max(a.start, b.start), end=min(a.end, b.end),
                                           input1=names[x.outgoing], input2=names[x.incoming],
                                           in_offset=x.in_offset, out_offset=x.out_offset, name=x.name))
    return cutlist.SceneRecord(name=layout.name, fps=layout.fps, width=layout.width, height=layout.height,
                               frame_offset=layout.frame_offset, strips=strips, crosses=crosses,
                               markers=layout.markers, tracks=layout.tracks, metadata=layout.metadata)


def test_layout_places_a_b_rolls_crosses_tracks_and_placeholders(hand_timeline):
    lay = cutlist.layout_from_timeline(hand_timeline)
    assert (lay.fps, lay.width, lay.height, lay.fit) == (Fraction(25), 1280, 720, "pad")
    by = {p.clip_name: p for p in lay.clips}
    # channels: music 1; V1 on 2/3 with crosses on 4; V2 on 5
    assert by["music"].channel == 1 and by["E"].channel == 5
    assert (by["A"].channel, by["B"].channel, by["C"].channel, by["D"].channel) == (2, 3, 2, 2)
    # A: record 10..60, keeps 4 frames of tail for the dissolve; B starts 5 early with its in-point 5 earlier
    assert (by["A"].start, by["A"].duration, by["A"].source_in) == (11, 54, 20)
    assert (by["B"].start, by["B"].duration, by["B"].source_in) == (56, 40 + 5 + 3, 25)
    assert (by["C"].start, by["C"].source_in) == (100 - 3 + 1, 7)
    assert by["D"].kind == "missing" and by["D"].path == "/gone/d clip.mp4"
    assert [(x.channel, x.in_offset, x.out_offset) for x in lay.crosses] == [(4, 5, 4), (4, 3, 3)]
    assert lay.markers[0].frame == 41 and lay.markers[0].label == "chorus (high energy)"
    assert lay.frame_end == hand_timeline.duration().value


def test_export_of_an_unchanged_layout_is_the_same_cut(hand_timeline):
    lay = cutlist.layout_from_timeline(hand_timeline)
    back = cutlist.timeline_from_strips(_as_vse(lay))
    assert cutlist.cut_list(back) == cutlist.cut_list(hand_timeline)
    assert cutlist.transitions(back) == cutlist.transitions(hand_timeline)
    assert [t.name for t in back.tracks] == ["V1", "V2 titles", "A1 music"]
    assert back.tracks.markers[0].comment == "chorus (high energy)"
    assert back.metadata["montage_ai"]["render"]["fit"] == "pad"


def test_a_missing_music_file_stays_on_an_audio_track(hand_timeline):
    music = next(c for c in hand_timeline.find_clips() if c.name == "music")
    music.media_reference.target_url = "/gone/song.wav"
    lay = cutlist.layout_from_timeline(hand_timeline)
    placeholder = next(p for p in lay.clips if p.clip_name == "music")
    assert placeholder.kind == "missing" and placeholder.audio and placeholder.channel == 1
    back = cutlist.timeline_from_strips(_as_vse(lay))
    assert cutlist.cut_list(back) == cutlist.cut_list(hand_timeline)
    assert [c.name for c in back.audio_tracks()[0].find_clips()] == ["music"]


def test_overlap_without_a_dissolve_splits_the_ab_roll(hand_timeline):
    scene = _as_vse(cutlist.layout_from_timeline(hand_timeline))
    scene.crosses.pop()                            # the user deleted the B->C dissolve
    back = cutlist.timeline_from_strips(scene)
    assert any("overlap without a dissolve" in w for w in scene.warnings)
    assert len(back.video_tracks()) == 3           # channels 2 and 3 as their own tracks, plus V2


def test_blender_fps_for_ntsc_rates():
    assert cutlist.blender_fps(Fraction(30000, 1001)) == (30, pytest.approx(1.001))
    assert cutlist.blender_fps(Fraction(25)) == (25, 1.0)
    assert cutlist.exact_fps(29.97) == Fraction(30000, 1001)


# --- formats --------------------------------------------------------------------------------------

def test_kdenlive_goes_through_the_engine_both_ways(hand_timeline, tmp_path):
    hand_timeline.tracks[:] = [t for t in hand_timeline.tracks if t.name != "V2 titles"]
    for clip in hand_timeline.find_clips():
        if clip.name == "D":
            clip.media_reference.target_url = str(tmp_path / "a clip.mp4")
    exe = [str(engine_executable())]
    written = timeline_io.write_timeline(hand_timeline, tmp_path / "my cut.kdenlive", exe)
    assert written == [tmp_path / "my cut.kdenlive"]
    back = timeline_io.read_timeline(tmp_path / "my cut.kdenlive", exe)
    assert cutlist.cut_list(back) == cutlist.cut_list(hand_timeline)
    with pytest.raises(timeline_io.TimelineIOError, match="needs the Montage AI engine"):
        timeline_io.write_timeline(hand_timeline, tmp_path / "x.kdenlive", None)
    with pytest.raises(timeline_io.TimelineIOError, match="unknown timeline format"):
        timeline_io.write_timeline(hand_timeline, tmp_path / "x.mov", exe)


# --- packaging --------------------------------------------------------------------------------------

def test_in_tree_manifest_is_a_valid_extension_manifest():
    m = tomllib.loads((ADDON_DIR / "blender_manifest.toml").read_text())
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min",
                "license"):
        assert m.get(key), key
    assert m["id"] == "montage_ai" and m["type"] == "add-on" and m["blender_version_min"] == "4.2.0"
    assert len(m["tagline"]) <= 64 and not m["tagline"].endswith(".")


def test_build_writes_wheels_and_bounds_into_the_zip_manifest(tmp_path):
    spec = importlib.util.spec_from_file_location("build_extension", BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stage = tmp_path / "stage"
    stage.mkdir()
    mod.write_manifest(stage, ["opentimelineio-0.18.1-cp313-cp313-win_amd64.whl"], ["windows-x64"], "3.13")
    m = tomllib.loads((stage / "blender_manifest.toml").read_text())
    assert m["wheels"] == ["./wheels/opentimelineio-0.18.1-cp313-cp313-win_amd64.whl"]
    assert m["platforms"] == ["windows-x64"] and m["blender_version_min"] == "5.1.0"
    assert "files" in m["permissions"]
    out = mod.build(tmp_path / "dist", "3.11", with_wheels=False)
    names = zipfile.ZipFile(out).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "vse_otio.py" in names
    assert not any("__pycache__" in n for n in names)
    assert tomllib.loads(zipfile.ZipFile(out).read("blender_manifest.toml").decode())["blender_version_max"] == "5.1.0"
    assert os.path.basename(out) == "montage_ai-0.1.0-py311.zip"
