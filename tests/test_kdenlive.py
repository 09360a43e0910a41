"""The Kdenlive adapter (`montage_kdenlive`) against real tools.

Round trips through our writer and reader must keep every clip, in-point, record position,
transition and marker to the frame; `melt` (the MLT renderer Kdenlive itself uses) must render the
written project to exactly the timeline's frames, with the right source frame on each (our counter
clips carry their own frame index), and an engine-made timeline must come out of melt looking like
the engine's own render. melt is a system package: without it those tests skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from media_tools import decode_frames, make_counter_clip, median_colors, read_counter, video_facts
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.pipeline import run
from montage_ai.settings import Settings
from montage_otio import kdenlive

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
RATES = {"25": Fraction(25), "30000/1001": Fraction(30000, 1001)}
TINTS = {"a": (200, 30, 30), "b": (30, 30, 200), "c": (30, 190, 30)}
ODD_NAME = "clip b & ü <1> 'q' \"x\".mp4"          # &, <, quotes, spaces and non-ASCII
SRC_FRAMES = 130


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def melt() -> str:
    path = shutil.which("melt")
    if path is None:
        pytest.skip("melt not installed: apt-get install melt")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Counter clips per rate: frame n shows n; a, b, c have distinct tints."""
    root = tmp_path_factory.mktemp("kdenlive-media")
    out: dict[str, dict[str, Path]] = {}
    for rate in RATES:
        folder = root / rate.replace("/", "_")
        folder.mkdir()
        names = {"a": "a.mp4", "b": ODD_NAME, "c": "c.mp4"}
        out[rate] = {k: make_counter_clip(folder / n, SRC_FRAMES, rate, tint=TINTS[k]) for k, n in names.items()}
    out["music"] = {"wav": make_drum_track(root / "drums.wav", bpm=120.0, duration_s=6.0).path}
    return out


# (source, in-point, frames, dissolve frames before this clip (in, out)), None = 5-frame gap
LAYOUT = [("a", 10, 20, None), ("b", 30, 20, (4, 4)), ("c", 40, 16, (3, 3)), None, ("c", 7, 15, None),
          ("a", 60, 12, None), ("b", 80, 14, (3, 3))]
MUSIC_IN = 12


def _clip(path: Path, src_in: int, frames: int, rate: float, name: str) -> otio.schema.Clip:
    return otio.schema.Clip(
        name=name, metadata={"montage_ai": {"source_in_frame": src_in}},
        media_reference=otio.schema.ExternalReference(target_url=str(path),
                                                      available_range=TR(RT(0, rate), RT(SRC_FRAMES, rate))),
        source_range=TR(RT(src_in, rate), RT(frames, rate)))


def make_timeline(paths: dict[str, Path], music: Path, fps: Fraction) -> otio.schema.Timeline:
    """A timeline shaped like the engine's: V1 with cuts, dissolves, a gap and a source used
    twice; "A1 music" from an offset; beat markers and a ranged section marker; render metadata."""
    rate = float(fps)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for i, item in enumerate(LAYOUT):
        if item is None:
            video.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(5, rate))))
            continue
        key, src_in, frames, dissolve = item
        if dissolve:
            video.append(otio.schema.Transition(
                name=f"dissolve {i}", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=RT(dissolve[0], rate), out_offset=RT(dissolve[1], rate)))
        video.append(_clip(paths[key], src_in, frames, rate, f"{i:03d} shot {key} {paths[key].name}"))
    total = int(video.duration().value)
    audio = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
    audio.append(otio.schema.Clip(
        name="music drums.wav", metadata={"montage_ai": {"role": "music", "fade_out_s": 0.5}},
        media_reference=otio.schema.ExternalReference(target_url=str(music),
                                                      available_range=TR(RT(0, rate), RT(round(6 * fps), rate))),
        source_range=TR(RT(MUSIC_IN, rate), RT(total, rate))))
    timeline = otio.schema.Timeline(name="Kdenlive & <test> ü", global_start_time=RT(0, rate))
    timeline.tracks.extend([video, audio])
    for f, kind in [(0, "downbeat"), (12, "beat"), (25, "beat"), (37, "downbeat"), (49, "beat")]:
        timeline.tracks.markers.append(otio.schema.Marker(
            name=kind, comment=kind, marked_range=TR(RT(f, rate), RT(0, rate)),
            color=otio.schema.MarkerColor.RED if kind == "downbeat" else otio.schema.MarkerColor.GREEN,
            metadata={"montage_ai": {"kind": kind}}))
    timeline.tracks.markers.append(otio.schema.Marker(
        name="section: chorus", comment="chorus (high energy) & <more>", color=otio.schema.MarkerColor.PURPLE,
        marked_range=TR(RT(37, rate), RT(total - 37, rate))))
    timeline.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": fps.numerator,
                                                  "fps_den": fps.denominator, "fit": "crop"}}
    return timeline


def expected_frames(timeline: otio.schema.Timeline) -> dict[int, tuple[str, int] | None]:
    """Output frame -> (source path, source frame) outside dissolves, None in gaps."""
    track = timeline.video_tracks()[0]
    out: dict[int, tuple[str, int] | None] = {}
    dissolving: set[int] = set()
    children = list(track)
    for i, item in enumerate(children):
        if isinstance(item, otio.schema.Transition):
            cut = int(track.range_of_child_at_index(i + 1).start_time.value)
            dissolving.update(range(cut - int(item.in_offset.value), cut + int(item.out_offset.value)))
            continue
        rng = track.range_of_child_at_index(i)
        start, n = int(rng.start_time.value), int(rng.duration.value)
        for k in range(n):
            if isinstance(item, otio.schema.Clip):
                out[start + k] = (item.media_reference.target_url, int(item.source_range.start_time.value) + k)
            else:
                out[start + k] = None
    return {f: v for f, v in out.items() if f not in dissolving}


def summary(timeline: otio.schema.Timeline) -> list[list[tuple]]:
    """Everything a round trip must keep, in frames."""
    tracks = []
    for track in timeline.tracks:
        items = []
        for i, item in enumerate(track):
            if isinstance(item, otio.schema.Transition):
                items.append(("transition", item.name, item.transition_type,
                              item.in_offset.value, item.out_offset.value))
                continue
            rng = track.range_of_child_at_index(i)
            if isinstance(item, otio.schema.Clip):
                items.append(("clip", item.name, item.media_reference.target_url,
                              item.source_range.start_time.value, rng.start_time.value, rng.duration.value,
                              json.dumps(dict(item.metadata), sort_keys=True, default=str)))
            else:
                items.append(("gap", rng.start_time.value, rng.duration.value))
        tracks.append([(track.name, track.kind)] + items)
    return tracks


def markers(timeline: otio.schema.Timeline) -> list[tuple]:
    return [(m.name, m.comment, m.color, m.marked_range.start_time.value, m.marked_range.duration.value)
            for m in timeline.tracks.markers]


def render_with_melt(melt: str, project: Path, out: Path) -> None:
    """Exactly the command a user runs: no `out=`, the project's own bounds must stop it."""
    proc = subprocess.run([melt, str(project), "-consumer", f"avformat:{out}", "vcodec=libx264", "acodec=aac"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]


def tint_of(img: np.ndarray) -> np.ndarray:
    return np.median(img[img.shape[0] * 3 // 4:].reshape(-1, 3), axis=0)


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("rate", list(RATES))
def test_round_trip_keeps_every_clip_transition_and_marker(sources, rate):
    fps = RATES[rate]
    tl = make_timeline(sources[rate], sources["music"]["wav"], fps)
    back = kdenlive.read_from_string(kdenlive.write_to_string(tl))
    assert summary(back) == summary(tl)
    assert markers(back) == markers(tl)
    assert back.name == tl.name
    assert back.duration().value == tl.duration().value
    assert back.duration().rate == pytest.approx(float(fps))
    render = back.metadata["montage_ai"]["render"]
    assert (render["width"], render["height"], render["fps_num"], render["fps_den"]) == \
        (320, 180, fps.numerator, fps.denominator)
    assert render["fit"] == "crop"                      # our other render settings ride along
    odd = [c for c in back.find_clips() if c.media_reference.target_url.endswith(ODD_NAME)]
    assert len(odd) == 2 and Path(odd[0].media_reference.target_url).is_file()


@pytest.mark.slow
def test_engine_timeline_round_trips_to_identical_otio(engine_run):
    """Ours in, ours out: the OTIO JSON of an engine timeline survives .kdenlive unchanged."""
    summary_, _ = engine_run
    tl = otio.adapters.read_from_file(str(summary_.timeline))
    back = kdenlive.read_from_string(kdenlive.write_to_string(tl))
    assert otio.adapters.write_to_string(back) == otio.adapters.write_to_string(tl)


def test_document_has_kdenlive_structure(sources):
    fps = RATES["30000/1001"]
    tl = make_timeline(sources["30000/1001"], sources["music"]["wav"], fps)
    text = kdenlive.write_to_string(tl)
    root = ET.fromstring(text)
    total = int(tl.duration().value)
    assert root.tag == "mlt" and root.get("LC_NUMERIC") == "C" and root.get("producer") == "main_bin"
    assert root.get("version", "").startswith("7.") and root.get("root")
    profile = root.find("profile")
    assert {k: profile.get(k) for k in ("width", "height", "frame_rate_num", "frame_rate_den", "progressive")} == \
        {"width": "320", "height": "180", "frame_rate_num": "30000", "frame_rate_den": "1001", "progressive": "1"}

    def props(el):
        return {p.get("name"): p.text or "" for p in el.findall("property")}

    ids = [el.get("id") for el in root.iter() if el.tag in ("producer", "chain", "playlist", "tractor")]
    assert len(ids) == len(set(ids)), "element ids must be unique"
    main_bin = next(el for el in root if el.get("id") == "main_bin")
    doc = props(main_bin)
    assert doc["kdenlive:docproperties.version"] == "1.1" and doc["kdenlive:docproperties.uuid"].startswith("{")
    bin_chains = [next(el for el in root if el.get("id") == e.get("producer")) for e in main_bin.findall("entry")]
    bin_sources = [props(c) for c in bin_chains if c.tag == "chain"]
    resources = [p["resource"] for p in bin_sources]
    assert len(resources) == len(set(resources)) == 4            # a, b, c and the music: one bin clip each
    assert str(sources["30000/1001"]["b"]) in resources          # the odd name, escaped and back intact
    assert all(p["mlt_service"] == "avformat-novalidate" and p["kdenlive:id"] and p["kdenlive:clipname"]
               for p in bin_sources)
    tractors = [el for el in root if el.tag == "tractor"]
    assert all(t.get("in") == "0" and t.get("out") == str(total - 1) for t in tractors)
    project = tractors[-1]
    assert props(project)["kdenlive:projectTractor"] == "1"
    sequence = next(t for t in tractors if "kdenlive:uuid" in props(t))
    assert project.find("track").get("producer") == sequence.get("id")
    track_tractors = [next(el for el in root if el.get("id") == t.get("producer")) for t in sequence.findall("track")]
    tracks = [t for t in track_tractors if t.tag == "tractor"]
    assert [props(t).get("kdenlive:track_name") for t in tracks] == ["A1 music", "V1"]
    assert [props(t).get("kdenlive:audio_track") for t in tracks] == ["1", None]
    assert all(len(t.findall("track")) == 2 for t in tracks), "Kdenlive tracks hold two playlists"
    mixes = [props(m) for m in tracks[1].findall("transition")]
    assert [(m["mlt_service"], m["kdenlive:mixcut"], m["reverse"]) for m in mixes] == \
        [("luma", "4", "0"), ("luma", "3", "1"), ("luma", "3", "0")]
    audio_mix = [props(t) for t in sequence.findall("transition")]
    assert any(p["mlt_service"] == "mix" and p["b_track"] == "1" and p["internal_added"] == "237" for p in audio_mix)
    guides = json.loads(props(sequence)["kdenlive:sequenceproperties.guides"])
    assert [g["pos"] for g in guides] == [0, 12, 25, 37, 49]
    assert guides[3]["comment"] == "downbeat | chorus (high energy) & <more>"
    entry_names = [props(e).get("montage_ai:name") for e in root.iter("entry")]
    assert sum(1 for n in entry_names if n and n.endswith(ODD_NAME)) == 2


def test_relative_paths_resolve_against_root_then_the_document_folder(tmp_path, sources):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["25"]["a"], media / "a.mp4")
    tl = otio.schema.Timeline(name="relative")
    track = otio.schema.Track(name="V1")
    track.append(otio.schema.Clip(name="rel", media_reference=otio.schema.ExternalReference(target_url="media/a.mp4"),
                                  source_range=TR(RT(3, 25), RT(10, 25))))
    tl.tracks.append(track)
    project = tmp_path / "rel.kdenlive"
    otio.adapters.write_to_file(tl, str(project))             # suffix -> our adapter; root = tmp_path
    text = project.read_text(encoding="utf-8")
    assert ">media/a.mp4<" in text and f'root="{tmp_path}"' in text
    back = otio.adapters.read_from_file(str(project))
    assert back.find_clips()[0].media_reference.target_url == str(media / "a.mp4")
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "media").mkdir()
    shutil.copy(media / "a.mp4", moved / "media" / "a.mp4")
    (moved / "rel.kdenlive").write_text(text.replace(f' root="{tmp_path}"', ""), encoding="utf-8")
    back = kdenlive.read_from_file(str(moved / "rel.kdenlive"))
    assert back.find_clips()[0].media_reference.target_url == str(moved / "media" / "a.mp4")


KDENLIVE_STYLE = """<?xml version='1.0' encoding='utf-8'?>
<mlt LC_NUMERIC="C" producer="main_bin" version="7.22.0" root="{root}">
 <profile frame_rate_num="25" frame_rate_den="1" width="1280" height="720" progressive="1"
   sample_aspect_num="1" sample_aspect_den="1" display_aspect_num="16" display_aspect_den="9" colorspace="709"/>
 <producer id="producer0" in="00:00:00.000" out="00:00:04.960">
  <property name="length">2147483647</property><property name="resource">black</property>
  <property name="mlt_service">color</property><property name="kdenlive:playlistid">black_track</property>
 </producer>
 <chain id="chain0" out="00:00:05.160"><property name="length">130</property>
  <property name="resource">a.mp4</property><property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">2</property></chain>
 <chain id="chain1" out="00:00:05.160"><property name="length">130</property>
  <property name="resource">c.mp4</property><property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">3</property></chain>
 <playlist id="playlist0">
  <entry producer="chain0" in="00:00:00.400" out="00:00:01.960"><property name="kdenlive:id">2</property></entry>
  <blank length="00:00:00.400"/>
  <entry producer="chain0" in="00:00:02.000" out="00:00:02.360"><property name="kdenlive:id">2</property></entry>
 </playlist>
 <playlist id="playlist1">
  <blank length="00:00:00.800"/>
  <entry producer="chain1" in="00:00:00.200" out="00:00:01.160"><property name="kdenlive:id">3</property></entry>
 </playlist>
 <tractor id="tractor0" in="00:00:00.000" out="00:00:02.360">
  <property name="kdenlive:track_name">Cam</property>
  <track hide="audio" producer="playlist0"/><track hide="audio" producer="playlist1"/>
  <transition id="transition0" in="00:00:00.800" out="00:00:01.560">
   <property name="a_track">0</property><property name="b_track">1</property>
   <property name="mlt_service">luma</property><property name="kdenlive_id">luma</property>
   <property name="kdenlive:mixcut">10</property><property name="reverse">0</property>
  </transition>
 </tractor>
 <tractor id="{{aaaa-bbbb}}" in="00:00:00.000" out="00:00:02.360">
  <property name="kdenlive:uuid">{{aaaa-bbbb}}</property><property name="kdenlive:clipname">Sequence 1</property>
  <property name="kdenlive:sequenceproperties.guides">[
    {{"comment": "Intro", "pos": 0, "type": 0}},
    {{"comment": "Drop", "pos": 50, "type": 8}}
]
</property>
  <track producer="producer0"/><track producer="tractor0"/>
 </tractor>
 <playlist id="main_bin">
  <property name="kdenlive:docproperties.version">1.1</property>
  <property name="kdenlive:docproperties.activetimeline">{{aaaa-bbbb}}</property>
  <entry producer="chain0" in="0" out="129"/>
 </playlist>
 <tractor id="tractor9" in="00:00:00.000" out="00:00:02.360">
  <property name="kdenlive:projectTractor">1</property><track producer="{{aaaa-bbbb}}"/>
 </tractor>
</mlt>
"""


def test_reads_a_kdenlive_style_document_with_clock_times_and_a_mix(tmp_path):
    """The form Kdenlive saves: clock-time in/out, relative resources under `root`, a mix
    across the two playlists with `kdenlive:mixcut`, guides without our extra metadata."""
    tl = kdenlive.read_from_string(KDENLIVE_STYLE.format(root=tmp_path))
    assert tl.name == "Sequence 1"
    assert tl.metadata["montage_ai"]["render"] == {"width": 1280, "height": 720, "fps_num": 25, "fps_den": 1}
    (track,) = tl.tracks
    assert track.name == "Cam" and track.kind == otio.schema.TrackKind.Video
    got = [item[:6] for item in summary(tl)[0][1:]]
    a, c = str(tmp_path / "a.mp4"), str(tmp_path / "c.mp4")
    # a: record 0-39 from source 10, c: record 20-44 from source 5 on the second playlist; the
    # 20-frame mix cuts 10 frames in (record 30), so a shows 30 frames and c from source 15
    assert got == [
        ("clip", "a.mp4", a, 10.0, 0.0, 30.0),
        ("transition", "", otio.schema.TransitionTypes.SMPTE_Dissolve, 10.0, 10.0),
        ("clip", "c.mp4", c, 15.0, 30.0, 15.0),
        ("gap", 45.0, 5.0),
        ("clip", "a.mp4", a, 50.0, 50.0, 10.0),
    ]
    assert [m[1] for m in markers(tl)] == ["Intro", "Drop"]
    assert markers(tl)[1][2] == otio.schema.MarkerColor.RED and markers(tl)[1][3] == 50


# --------------------------------------------------------------------------- melt renders

@pytest.mark.parametrize("rate", list(RATES))
def test_melt_renders_exact_frames_from_the_project(melt, sources, tmp_path, rate):
    fps = RATES[rate]
    tl = make_timeline(sources[rate], sources["music"]["wav"], fps)
    project = tmp_path / "cut.kdenlive"
    kdenlive.write_to_file(tl, str(project))
    profile = ET.parse(project).getroot().find("profile")
    assert (profile.get("width"), profile.get("height")) == ("320", "180")
    assert Fraction(int(profile.get("frame_rate_num")), int(profile.get("frame_rate_den"))) == fps

    out = tmp_path / "melt.mp4"
    render_with_melt(melt, project, out)
    total = int(tl.duration().value)
    n, got_rate, vdur, adur = video_facts(out)
    assert n == total and got_rate == fps
    assert abs(adur - vdur) <= 2 / float(fps)

    frames = decode_frames(out)
    tints = {str(p): np.array(TINTS[k], float) for k, p in sources[rate].items()}
    wrong = []
    for f, want in expected_frames(tl).items():
        img = frames[f]
        if want is None:
            if tint_of(img).max() > 20:
                wrong.append((f, "gap not black"))
            continue
        path, src_frame = want
        if read_counter(img) != src_frame or np.abs(tint_of(img) - tints[path]).max() > 40:
            wrong.append((f, read_counter(img), src_frame, Path(path).name))
    assert not wrong, f"{len(wrong)} frames differ, e.g. {wrong[:5]}"
    # first frame of each clip that starts on a cut shows exactly its in-point
    assert [read_counter(frames[f]) for f in (0, 61, 76)] == [10, 7, 60]
    # a dissolve starts on the outgoing shot and ends on the incoming one, half-way at the cut
    # (b -> c runs from the second playlist back to the first: Kdenlive's reversed mix)
    for first, cut, last, before, after in dissolves(tl):
        t_out, t_in = tints[before], tints[after]
        near = [np.abs(tint_of(frames[f]) - t_out).max() < np.abs(tint_of(frames[f]) - t_in).max()
                for f in (first, last)]
        assert near == [True, False], (first, last)
        assert np.abs(tint_of(frames[cut]) - (t_out + t_in) / 2).max() < 45


def dissolves(timeline: otio.schema.Timeline) -> list[tuple[int, int, int, str, str]]:
    """(first frame, cut, last frame, outgoing source, incoming source) of each dissolve."""
    track = timeline.video_tracks()[0]
    out = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            cut = int(track.range_of_child_at_index(i + 1).start_time.value)
            out.append((cut - int(item.in_offset.value), cut, cut + int(item.out_offset.value) - 1,
                        track[i - 1].media_reference.target_url, track[i + 1].media_reference.target_url))
    return out


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """A real pipeline run on small synthetic media, with dissolves and a grade (wedding)."""
    root = tmp_path_factory.mktemp("kdenlive-e2e")
    colors = distinct_colors(6)
    for c in range(2):
        shots = [ShotSpec(duration_s=2.0 + s * 0.6, color=colors[c * 3 + s]) for s in range(3)]
        make_clip(root / "clips" / f"clip_{c}.mp4", shots, width=320, height=180, fps="25")
    drums = make_drum_track(root / "drums.wav", bpm=120.0, duration_s=10.0)
    s = Settings(clips=root / "clips", music=drums.path, out=root / "out", style="wedding", duration=6.0,
                 music_start=0.5, resolution="360p", cache_dir=root / "cache", seed=1)
    return run(s, progress=False), root


@pytest.mark.slow
def test_engine_timeline_renders_in_melt_like_the_engine(melt, engine_run):
    summary_, root = engine_run
    tl = otio.adapters.read_from_file(str(summary_.timeline))
    assert any(isinstance(t, otio.schema.Transition) for t in tl.video_tracks()[0])
    project = root / "montage.kdenlive"
    otio.adapters.write_to_file(tl, str(project), adapter_name="montage_kdenlive")
    profile = ET.parse(project).getroot().find("profile")
    render = tl.metadata["montage_ai"]["render"]
    assert (int(profile.get("width")), int(profile.get("height"))) == (render["width"], render["height"])

    out = root / "melt.mp4"
    render_with_melt(melt, project, out)
    n, rate, vdur, adur = video_facts(out)
    n_engine, rate_engine, _, _ = video_facts(summary_.video)
    assert n == n_engine == tl.duration().value == summary_.frames
    assert rate == rate_engine == 25
    assert abs(adur - vdur) <= 2 / 25
    ours, theirs = median_colors(out), median_colors(summary_.video)
    track = tl.video_tracks()[0]
    samples = [0, n // 2, n - 1]                            # ends and middle ...
    for i, item in enumerate(track):                        # ... each clip's middle, each dissolve's cut
        rng = track.range_of_child_at_index(i if not isinstance(item, otio.schema.Transition) else i + 1)
        samples.append(int(rng.start_time.value + (0 if isinstance(item, otio.schema.Transition)
                                                   else rng.duration.value // 2)))
    diff = {f: float(np.abs(ours[f] - theirs[f]).max()) for f in sorted(set(samples))}
    assert max(diff.values()) <= 12, diff


# --------------------------------------------------------------------------- OTIO plugin discovery

def test_otioconvert_finds_the_adapter_through_the_entry_point(sources, tmp_path):
    tl = make_timeline(sources["25"], sources["music"]["wav"], Fraction(25))
    src = tmp_path / "timeline.otio"
    otio.adapters.write_to_file(tl, str(src))
    otioconvert = Path(sys.executable).parent / "otioconvert"
    out = tmp_path / "out.kdenlive"
    proc = subprocess.run([str(otioconvert), "-i", str(src), "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "mlt" and root.find("profile").get("width") == "320"
    back = otio.adapters.read_from_file(str(out))
    assert summary(back) == summary(tl)
    proc = subprocess.run([str(otioconvert), "-i", str(src), "-o", str(tmp_path / "hd.kdenlive"),
                           "-A", "width=1280", "-A", "height=720"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ET.parse(tmp_path / "hd.kdenlive").getroot().find("profile").get("height") == "720"
