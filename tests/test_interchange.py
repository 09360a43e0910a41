"""Editor interchange: every format round-trips our timeline to the frame.

A timeline is exported in each format (after lowering), read back with read_timeline_file and
compared with the original: clip sources, source in-points and record positions of every video
clip, dissolves, the music clip's offset into the song, markers, and the render spec the
renderer would get. The allowances per format are the ones docs/interchange.md documents:
EDL marker text comes back upper case and without durations. One re-read FCP7 timeline is also
rendered from sources whose frames carry their index.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree as ET

import numpy as np
import opentimelineio as otio
import pytest
import soundfile as sf

import plan_fixtures as fx
from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.direct.presets import load_style
from montage_ai.errors import MontageError
from montage_ai.interchange import FORMATS, adapter_can, export_timeline, read_timeline_file
from montage_ai.media.probe import MediaInfo
from montage_ai.plan.cutter import cut
from montage_ai.render.conform import render
from montage_ai.timeline.build import build_timeline
from montage_ai.timeline.model import RenderSettings
from montage_ai.timeline.read import read_timeline, url_to_path
from montage_otio import lowering
from montage_otio.formats import edl, fcp7, fcpxml
from montage_otio.formats import otio as otio_format

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

RATES = {"25": Fraction(25), "24": Fraction(24), "30": Fraction(30), "ntsc": Fraction(30000, 1001)}
#: file names that need escaping in XML and URLs, and two sharing their first 8 characters
NAMES = ["sunset_beach_morning.mp4", "sunset_beach_evening.mp4", "Tom & Jerry's <best> \"cut\".mp4",
         "café été 日本 clip.mp4", "clip04.mp4", "clip05.mp4"]
MUSIC_START_S = 1.5


def _formats() -> list[str]:
    out = []
    for name, fmt in FORMATS.items():
        if name == "kdenlive" and not (adapter_can(fmt.adapter, "write") and adapter_can(fmt.adapter, "read")):
            out.append(pytest.param(name, marks=pytest.mark.skip(reason="montage_kdenlive cannot write/read yet")))
        else:
            out.append(name)
    return out


def _build(root: Path, fps: Fraction, style: str = "wedding") -> otio.schema.Timeline:
    """Our timeline over placeholder files (read_timeline wants them to exist)."""
    media_dir = root / "my media"
    media_dir.mkdir(parents=True, exist_ok=True)
    m = fx.music(root=media_dir).model_copy(update={"start_offset_s": MUSIC_START_S})
    clips = []
    for i, name in enumerate(NAMES):
        c = fx.clip(i, [6.0, 6.0, 5.0], fps=(fps.numerator, fps.denominator), root=media_dir)
        clips.append(c.model_copy(update={"media": c.media.model_copy(update={"path": media_dir / name})}))
    for path in [m.path, *(c.media.path for c in clips)]:
        path.touch()
    cl = cut(m, clips, load_style(style), fps, 30.0, seed=2)
    media = {str(c.media.path): c.media for c in clips}
    music_info = MediaInfo(path=m.path, size_bytes=1, mtime_ns=1, duration_s=40.0, has_video=False, has_audio=True)
    rs = RenderSettings(width=320, height=180, fps_num=fps.numerator, fps_den=fps.denominator)
    return build_timeline("Montage: \"beach\" & <friends>", cl, media, m, music_info, load_style(style), rs)


def _path(clip: otio.schema.Clip) -> Path:
    return url_to_path(clip.media_reference.target_url, None).resolve()


def _frames(t: RT) -> int:
    assert abs(t.value - round(t.value)) < 1e-6, f"not a whole frame: {t}"
    return round(t.value)


def cut_list(tl: otio.schema.Timeline) -> list[tuple]:
    """Every item on the first video track: source, source in, record in, length; dissolves."""
    video = tl.video_tracks()[0]
    out: list[tuple] = []
    for i, item in enumerate(video):
        if isinstance(item, otio.schema.Transition):
            out.append(("dissolve", _frames(item.in_offset), _frames(item.out_offset)))
            continue
        rng = video.range_of_child_at_index(i)
        if isinstance(item, otio.schema.Clip):
            out.append(("clip", _path(item), _frames(item.source_range.start_time), _frames(rng.start_time),
                        _frames(rng.duration)))
        else:
            out.append(("gap", _frames(rng.start_time), _frames(rng.duration)))
    return out


def music(tl: otio.schema.Timeline) -> tuple:
    track = tl.audio_tracks()[0]
    clip = next(iter(track.find_clips()))
    rng = track.range_of_child_at_index(track.index(clip))
    return _path(clip), _frames(clip.source_range.start_time), _frames(rng.start_time), _frames(rng.duration)


def markers(tl: otio.schema.Timeline, fmt: str) -> list[tuple]:
    """(frame, length, label) for every timeline marker, with the allowances of `fmt`."""
    out = []
    for m in tl.tracks.markers:
        text = m.comment or m.name
        length = _frames(m.marked_range.duration.rescaled_to(m.marked_range.start_time.rate))
        if fmt == "edl":
            text, length = text.upper(), 0
        if fmt == "fcpxml":
            length = max(length, 1)
        out.append((_frames(m.marked_range.start_time), length, text))
    return sorted(out)


def assert_same_render(a: otio.schema.Timeline, b: otio.schema.Timeline) -> None:
    """read_timeline gives the same pieces, audio and output format for both."""
    sa, sb = read_timeline(a), read_timeline(b)
    fps = float(sa.settings.fps)
    half = 0.5 / fps
    assert sb.settings == sa.settings
    assert sb.look == sa.look
    assert sb.total_frames == sa.total_frames
    assert len(sb.pieces) == len(sa.pieces)
    for pa, pb in zip(sa.pieces, sb.pieces):
        assert (pb.kind, pb.record_start_frame, pb.frames) == (pa.kind, pa.record_start_frame, pa.frames)
        for x, y in ((pa.a, pb.a), (pa.b, pb.b)):
            assert (x is None) == (y is None)
            if x is not None:
                assert y.path == x.path
                assert abs(y.start_s - x.start_s) < half, (pa, pb)
    assert len(sb.audio) == len(sa.audio)
    for x, y in zip(sa.audio, sb.audio):
        assert y.path == x.path
        assert y.fade_out_s == x.fade_out_s
        for f in ("record_start_s", "source_start_s", "duration_s"):
            assert abs(getattr(y, f) - getattr(x, f)) < half, f


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("style", ["wedding", "fast"])   # dissolves / hard cuts only
@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
@pytest.mark.parametrize("fmt", _formats())
def test_round_trip_keeps_the_cut_to_the_frame(tmp_path, fmt, rate, style):
    tl = _build(tmp_path, RATES[rate], style)
    [result] = export_timeline(tl, tmp_path / "out", "cut", formats=[fmt])
    back = read_timeline_file(result.paths[0])

    want = cut_list(tl)
    assert (sum(1 for x in want if x[0] == "dissolve") > 0) == (style == "wedding")
    assert cut_list(back) == want
    assert music(back) == music(tl)
    assert music(back)[1] == round(MUSIC_START_S * RATES[rate])
    assert markers(back, fmt) == markers(tl, fmt)
    assert_same_render(tl, back)


def test_every_rate_survives_in_the_timeline_rate(tmp_path):
    tl = _build(tmp_path, RATES["ntsc"])
    for result in export_timeline(tl, tmp_path / "out", "cut"):
        if not result.paths:
            continue
        back = read_timeline_file(result.paths[0])
        rates = {c.source_range.start_time.rate for c in back.find_clips()}
        assert {lowering.exact_rate(r) for r in rates} == {Fraction(30000, 1001)}, result.format


# ---------------------------------------------------------------- what is written

def test_ntsc_is_written_as_ntsc(tmp_path):
    tl = _build(tmp_path, RATES["ntsc"])
    res = {r.format: r for r in export_timeline(tl, tmp_path / "out", "cut", formats=["fcp7", "fcpxml", "edl"])}
    xml = ET.parse(res["fcp7"].paths[0]).getroot()
    rates = {(r.findtext("timebase"), r.findtext("ntsc")) for r in xml.iter("rate")}
    assert rates == {("30", "TRUE")}
    fcpx = ET.parse(res["fcpxml"].paths[0]).getroot()
    assert {f.get("frameDuration") for f in fcpx.iter("format")} == {"1001/30000s"}
    edl = res["edl"].paths[0].read_text(encoding="utf-8")
    assert "FCM: DROP FRAME" in edl
    sidecar = json.loads(res["edl"].paths[-1].read_text())
    assert res["edl"].paths[-1].name == "cut.edl.json"
    assert (sidecar["fps_num"], sidecar["fps_den"]) == (30000, 1001)


@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
def test_xml_formats_carry_rate_ntsc_and_durations(tmp_path, rate):
    fps = RATES[rate]
    tl = _build(tmp_path, fps)
    total = int(tl.duration().value)
    res = {r.format: r for r in export_timeline(tl, tmp_path / "out", "cut", formats=["fcp7", "fcpxml"])}
    fcp7 = ET.parse(res["fcp7"].paths[0]).getroot()
    ntsc = "TRUE" if fps.denominator == 1001 else "FALSE"
    assert {(r.findtext("timebase"), r.findtext("ntsc")) for r in fcp7.iter("rate")} == {(str(round(fps)), ntsc)}
    assert int(fcp7.find(".//sequence/duration").text) == total
    durations = {f.get("id"): int(f.findtext("duration")) for f in fcp7.iter("file") if f.findtext("duration")}
    assert durations and all(d > 0 for d in durations.values())
    for item in fcp7.iter("clipitem"):   # real source durations: every out-point lies inside its file
        f = item.find("file")
        if f is not None and item.findtext("out") and f.get("id") in durations:
            assert 0 <= int(item.findtext("in")) < int(item.findtext("out")) <= durations[f.get("id")]
    fcpx = ET.parse(res["fcpxml"].paths[0]).getroot()
    [frame] = {f.get("frameDuration") for f in fcpx.iter("format")}
    num, den = frame.rstrip("s").split("/")
    assert Fraction(int(num), int(den)) == 1 / fps
    seq_dur = fcpx.find(".//sequence").get("duration").rstrip("s").split("/")
    seq_frames = Fraction(int(seq_dur[0]), int(seq_dur[1]) if len(seq_dur) > 1 else 1) * fps
    assert seq_frames == total


def test_xml_formats_escape_text_and_use_absolute_file_urls(tmp_path):
    tl = _build(tmp_path, RATES["25"])
    res = {r.format: r for r in export_timeline(tl, tmp_path / "out", "cut", formats=["fcp7", "fcpxml"])}
    sources = {str(_path(c)) for c in tl.find_clips()}

    fcp7 = ET.parse(res["fcp7"].paths[0]).getroot()   # parses: & < " are escaped
    urls = [e.text for e in fcp7.iter("pathurl")]
    assert urls and all(u.startswith("file:///") for u in urls)
    assert all(" " not in u and "&" not in u and "<" not in u and "'" not in u for u in urls)
    assert {unquote(urlparse(u).path) for u in urls} == sources
    names = {e.findtext("name") for e in fcp7.iter("file") if e.findtext("name")}
    assert "Tom & Jerry's <best> \"cut\".mp4" in names and "café été 日本 clip.mp4" in names
    assert {a.get("name") for a in ET.parse(res["fcpxml"].paths[0]).getroot().iter("asset")} == \
        {Path(p).name for p in sources}
    assert fcp7.find(".//sequence/name").text == tl.name
    assert {m.findtext("comment") for m in fcp7.iter("marker")} >= {"downbeat", "beat"}

    fcpx = ET.parse(res["fcpxml"].paths[0]).getroot()
    srcs = [a.get("src") for a in fcpx.iter("asset")]
    assert srcs and all(s.startswith("file:///") for s in srcs)
    assert {unquote(urlparse(s).path) for s in srcs} == sources
    assert fcpx.find(".//project").get("name") == tl.name
    assert len(fcpx.findall(".//spine/transition")) == sum(1 for x in cut_list(tl) if x[0] == "dissolve")


@pytest.mark.parametrize("fmt", ["fcp7", "fcpxml"])
def test_xml_without_sidecar_keeps_cut_size_and_rate(tmp_path, fmt):
    """As an editor saves it: no sidecar, so no grade or fade, but the cut, size and rate hold;
    and with the sidecar, what the file says (a new sequence size) wins over it."""
    tl = _build(tmp_path, RATES["ntsc"])
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=[fmt])
    main, sidecar = res.paths
    text = main.read_text(encoding="utf-8")
    edited = text.replace("<width>320</width>", "<width>640</width>").replace('width="320"', 'width="640"')
    main.write_text(edited, encoding="utf-8")
    with_sidecar = read_timeline(read_timeline_file(main))
    assert with_sidecar.settings.width == 640 and with_sidecar.look is not None
    sidecar.unlink()
    back = read_timeline_file(main)
    assert cut_list(back) == cut_list(tl) and music(back) == music(tl)
    spec = read_timeline(back)
    assert (spec.settings.width, spec.settings.height, spec.settings.fps) == (640, 180, RATES["ntsc"])
    assert spec.look is None and spec.audio[0].fade_out_s == 0


def test_text_xml_cannot_hold_is_dropped_with_a_note(tmp_path):
    tl = _build(tmp_path, RATES["25"])
    tl.tracks.markers[0].comment = "bell\x07 here"
    low = fcp7.lower(tl)
    assert low.timeline.tracks.markers[0].comment == "bell here"
    assert any("control characters" in n for n in low.notes)
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["fcp7"])
    ET.parse(res.paths[0])


def test_edl_reels_are_valid_unique_and_name_the_file(tmp_path):
    tl = _build(tmp_path, RATES["25"])
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["edl"])
    text = "\n".join(p.read_text(encoding="utf-8") for p in res.paths if p.suffix == ".edl")
    reels = [line.split()[1] for line in text.splitlines() if re.match(r"^\d{3}\s", line)]
    assert reels and all(re.fullmatch(r"[A-Z0-9]{1,8}", r) for r in reels), reels
    reel_of: dict[str, set[str]] = {}
    back = read_timeline_file(res.paths[0])
    for clip in back.find_clips():
        reel_of.setdefault(str(_path(clip)), set()).add(clip.metadata["cmx_3600"]["reel"])
        assert clip.name == _path(clip).name        # FROM CLIP NAME is the file name
    assert all(len(r) == 1 for r in reel_of.values() if r), reel_of
    by_file = {Path(p).name: next(iter(r)) for p, r in reel_of.items() if r}
    assert len(set(by_file.values())) == len(by_file)
    assert by_file["sunset_beach_morning.mp4"] != by_file["sunset_beach_evening.mp4"]
    assert by_file["sunset_beach_morning.mp4"] == "SUNSETBE"
    assert by_file["song.wav"] == "SONG"
    assert any("music" in n for n in res.notes)


def test_reel_names_deduplicate():
    reels = edl.reel_names(["/a/sunset_beach_1.mov", "/b/sunset_beach_2.mov", "/c/SunsetBe.mov",
                                 "/d/日本.mov", "/e/ax.mov", "/a/sunset_beach_1.mov"])
    assert list(reels.values()) == ["SUNSETBE", "SUNSETB2", "SUNSETB3", "REEL", "AX2"]


def test_ntsc_edl_past_the_first_minute(tmp_path):
    """Drop-frame timecode skips numbers from minute one on: events and LOCs must still land."""
    rate = 30000 / 1001
    paths = [tmp_path / n for n in ("a.mov", "b.mov")]
    for p in paths:
        p.touch()
    tl = otio.schema.Timeline(name="long")
    v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for i, (start, dur) in enumerate([(100, 1500), (2000, 1800), (37, 999)]):
        v.append(otio.schema.Clip(name=f"c{i}", source_range=TR(RT(start, rate), RT(dur, rate)),
                                  media_reference=otio.schema.ExternalReference(target_url=str(paths[i % 2]))))
    v.insert(2, otio.schema.Transition(in_offset=RT(10, rate), out_offset=RT(11, rate)))
    tl.tracks.append(v)
    tl.tracks.markers.extend(otio.schema.Marker(name=f"m{f}", marked_range=TR(RT(f, rate), RT(0, rate)))
                             for f in (0, 1799, 1800, 2000, 3995, 4200))
    [res] = export_timeline(tl, tmp_path / "out", "long", formats=["edl"])
    assert ";" in res.paths[0].read_text(encoding="utf-8")
    back = read_timeline_file(res.paths[0])
    assert cut_list(back) == cut_list(tl)
    assert [(f, t) for f, _, t in markers(back, "edl")] == [(f, t) for f, _, t in markers(tl, "edl")]


def test_edl_needs_a_rate(tmp_path):
    tl = _build(tmp_path, RATES["24"])
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["edl"])
    edl, music_edl, sidecar = res.paths
    assert json.loads(sidecar.read_text())["companions"] == {"music": "cut.music.edl"}
    assert music_edl.name == "cut.music.edl" and sidecar.name == "cut.edl.json"
    # the music EDL alone finds its rate through its sibling's sidecar
    alone = read_timeline_file(music_edl)
    assert not alone.video_tracks() or not len(alone.video_tracks()[0])
    assert music(alone) == music(tl)
    lone = tmp_path / "lone.edl"
    lone.write_text(edl.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(MontageError, match="--fps") as err:
        read_timeline_file(lone)
    assert "lone.edl" in str(err.value) and "\n" not in str(err.value)
    assert cut_list(read_timeline_file(lone, rate=24)) == cut_list(tl)


def test_adapter_errors_are_one_line_naming_the_file(tmp_path):
    for name, body in [("bad.xml", "<xmeml><project>"), ("bad.fcpxml", "not xml"), ("bad.otio", "{"),
                       ("bad.edl", "001  A  V  C  garbage\n")]:
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        with pytest.raises(MontageError) as err:
            read_timeline_file(path, rate=25)
        assert name in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "notes.txt"
    other.touch()
    with pytest.raises(MontageError, match="unknown timeline format"):
        read_timeline_file(other)


def test_exports_are_atomic_and_leave_no_temp_files(tmp_path):
    tl = _build(tmp_path, RATES["25"])
    out = tmp_path / "out"
    results = export_timeline(tl, out, "cut")
    written = {p for r in results for p in r.paths}
    assert set(out.iterdir()) == written
    assert not any(p.name.startswith(".tmp-") for p in out.iterdir())


# ---------------------------------------------------------------- lowering

def _dump(tl: otio.schema.Timeline) -> str:
    return otio.adapters.write_to_string(tl, "otio_json")


def test_lowering_never_touches_its_input(tmp_path):
    tl = _build(tmp_path, RATES["ntsc"])
    before = _dump(tl)
    for lower in (edl.lower, fcp7.lower, fcpxml.lower, otio_format.lower):
        lowered = lower(tl)
        assert lowered.timeline is not tl
        assert _dump(tl) == before, lower.__name__


def test_native_otio_puts_every_time_at_the_video_rate():
    rate = 25.0
    tl = otio.schema.Timeline(name="t")
    v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v.append(otio.schema.Clip(name="a", media_reference=otio.schema.ExternalReference(target_url="/m/a.mp4"),
                              source_range=TR(RT(10, rate), RT(50, rate))))
    v.append(otio.schema.Clip(name="slug", media_reference=otio.schema.GeneratorReference(generator_kind="black"),
                              source_range=TR(RT(0, rate), RT(25, rate))))
    a = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a.append(otio.schema.Clip(name="song", media_reference=otio.schema.ExternalReference(
        target_url="/m/song.wav", available_range=TR(RT(0, 48000), RT(48000 * 60, 48000))),
        source_range=TR(RT(96000, 48000), RT(192000, 48000))))
    tl.tracks.extend([v, a])
    v.markers.append(otio.schema.Marker(name="hit", marked_range=TR(RT(48000, 48000), RT(0, 48000))))
    assert tl.duration().rate == 48000

    low = otio_format.lower(tl)
    out = low.timeline
    assert out.duration().rate == rate and out.duration().value == 100
    song = out.audio_tracks()[0][0]
    assert song.source_range == TR(RT(50, rate), RT(100, rate))
    assert song.media_reference.available_range == TR(RT(0, rate), RT(1500, rate))
    assert isinstance(out.video_tracks()[0][1], otio.schema.Gap)
    [m] = out.tracks.markers
    assert m.comment == "hit" and m.marked_range.start_time == RT(25, rate)
    assert not len(out.video_tracks()[0].markers)
    assert any("gap" in n for n in low.notes) and any("rescaled" in n for n in low.notes)


def test_fcpxml_lowering_says_what_it_changes(tmp_path):
    tl = _build(tmp_path, RATES["25"])
    low = fcpxml.lower(tl)
    assert not len(low.timeline.tracks.markers)
    assert sum(len(c.markers) for c in low.timeline.find_clips()) == len(tl.tracks.markers)
    assert any("reorder" in n for n in low.notes)
    assert all(c.media_reference.target_url.startswith("file:///") for c in low.timeline.find_clips())


# ---------------------------------------------------------------- a real render of a re-read timeline

def test_reread_fcp7_renders_the_same_frames(tmp_path):
    media = tmp_path / "media dir"
    media.mkdir()
    a = make_counter_clip(media / "counter & co é.mp4", 120, fps="25", tint=(200, 30, 30))
    b = make_counter_clip(media / "b.mp4", 120, fps="25", tint=(30, 200, 30))
    song = media / "song.wav"
    sf.write(song, (0.1 * np.sin(np.arange(48000 * 6) * 2 * np.pi * 440 / 48000)).astype(np.float32), 48000)
    rate = 25.0
    tl = otio.schema.Timeline(name="render me")
    v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)

    def clip(path: Path, start: int, dur: int) -> otio.schema.Clip:
        return otio.schema.Clip(name=path.name, source_range=TR(RT(start, rate), RT(dur, rate)),
                                media_reference=otio.schema.ExternalReference(
                                    target_url=str(path), available_range=TR(RT(0, rate), RT(120, rate))))
    v.extend([clip(a, 10, 30), otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                                      in_offset=RT(3, rate), out_offset=RT(3, rate)),
              clip(b, 40, 25), clip(a, 90, 20)])
    music_track = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
    music_track.append(clip(song, 25, 75))
    music_track[0].media_reference.available_range = TR(RT(0, rate), RT(150, rate))
    tl.tracks.extend([v, music_track])
    tl.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": 25, "fps_den": 1}}

    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["fcp7"])
    back = read_timeline_file(res.paths[0])
    assert_same_render(tl, back)
    out = tmp_path / "reread.mp4"
    spec = read_timeline(back)
    result = render(spec, out, tmp_path / "cache", workers=2, progress=False)
    frames = decode_frames(out)
    assert len(frames) == result.frames == spec.total_frames == 75
    got = [read_counter(f) for f in frames]
    assert got[:27] == list(range(10, 37))          # clip a up to the dissolve
    assert got[33:55] == list(range(43, 65))        # clip b after it
    assert got[55:] == list(range(90, 110))         # clip a again


# ---------------------------------------------------------------- hostile file names

#: names that break a line-based format, XML, a shell or UTF-8 text (one clip each)
HOSTILE = ["new\nline.mp4", "car\rret.mp4", "tab\there.mp4", "single'q.mp4", 'double"q.mp4', "back\\slash.mp4",
           "$(touch x).mp4", "-i.mp4", "<lt>&amp.mp4", "pct%d%s.mp4", "star*.mp4", "co:lon.mp4", "ünï—日本.mp4",
           "L" * 251 + ".mp4", "esc\x1b[31m.mp4", "ls\u2028ps\u2029.mp4", "nel\x85.mp4", " lead and trail .mp4"]
#: names XML 1.0 cannot hold at all (a Kdenlive project cannot point at them)
NOT_XML = {"esc\x1b[31m.mp4"}
#: what the EDL reader strips from a comment
EDL_STRIPPED = {" lead and trail .mp4": "lead and trail .mp4"}


def _hostile_timeline(root: Path, names: list[str] = HOSTILE) -> otio.schema.Timeline:
    """One 25-frame clip per name (a dissolve after the third), music from a file whose name
    holds a newline, a title and a marker that try to inject EDL lines."""
    media = root / "media"
    media.mkdir(parents=True)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for i, name in enumerate(names):
        (media / name).write_bytes(b"")
        if i == 3:
            video.append(otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                                in_offset=RT(5, 25), out_offset=RT(5, 25)))
        video.append(otio.schema.Clip(name=f"{i:03d} {name}", source_range=TR(RT(20, 25), RT(25, 25)),
                                      media_reference=otio.schema.ExternalReference(
                                          target_url=str(media / name), available_range=TR(RT(0, 25), RT(100, 25)))))
    song = media / "mu\nsic.wav"
    song.write_bytes(b"")
    audio = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
    audio.append(otio.schema.Clip(name=f"music {song.name}", source_range=TR(RT(10, 25), video.duration()),
                                  media_reference=otio.schema.ExternalReference(
                                      target_url=str(song), available_range=TR(RT(0, 25), RT(2000, 25))),
                                  metadata={"montage_ai": {"role": "music", "fade_out_s": 1.0}}))
    tl = otio.schema.Timeline(name="Montage\n002  EVIL V C 00:00:00:00", global_start_time=RT(0, 25))
    tl.tracks.extend([video, audio])
    tl.tracks.markers.append(otio.schema.Marker(name="beat\n003  X V C", comment="a\rb",
                                                marked_range=TR(RT(30, 25), RT(0, 25))))
    tl.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": 25, "fps_den": 1}}
    return tl


def _clip_names(tl: otio.schema.Timeline) -> list[str]:
    return [c.name for c in tl.video_tracks()[0].find_clips()]


@pytest.mark.parametrize("fmt", _formats())
def test_hostile_names_round_trip(tmp_path, fmt):
    """The cut comes back to the frame with every path exact, and the names as the format keeps
    them: exact in OTIO and Kdenlive (a path XML cannot hold is a gap there, tested below), as
    file names in an EDL, without what XML 1.0 cannot hold in FCP7 XML and FCPXML."""
    names = [n for n in HOSTILE if fmt != "kdenlive" or n not in NOT_XML]
    tl = _hostile_timeline(tmp_path, names)
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=[fmt])
    back = read_timeline_file(res.paths[0])
    assert cut_list(back) == cut_list(tl)
    assert music(back) == music(tl)
    assert_same_render(tl, back)
    if fmt in ("otio", "kdenlive"):
        assert _clip_names(back) == _clip_names(tl)
    elif fmt == "edl":
        assert _clip_names(back) == [EDL_STRIPPED.get(n, n) for n in names]
    else:
        assert _clip_names(back) == [lowering.xml_safe(n) for n in _clip_names(tl)]


def test_xml_keeps_newline_tab_and_cr_in_names_and_paths(tmp_path):
    """A raw newline or tab in an attribute, or a raw CR anywhere, would come back changed
    (XML readers normalise them): the files hold character references or percent-encoding."""
    tl = _hostile_timeline(tmp_path, ["new\nline.mp4", "car\rret.mp4", "tab\there.mp4"])
    res = {r.format: r for r in export_timeline(tl, tmp_path / "out", "cut", formats=["kdenlive", "fcp7", "fcpxml"])}
    for fmt, r in res.items():
        text = r.paths[0].read_text(encoding="utf-8")
        assert "\r" not in text, fmt
        root = ET.parse(r.paths[0]).getroot()
        values = [v for el in root.iter() for v in [el.text or "", *el.attrib.values()]]
        for name in ("new\nline.mp4", "car\rret.mp4", "tab\there.mp4"):
            assert any(name in v for v in values), (fmt, name)
    fcpxml = ET.parse(res["fcpxml"].paths[0]).getroot()
    assert {a.get("name") for a in fcpxml.iter("asset")} >= {"new\nline.mp4", "car\rret.mp4", "tab\there.mp4"}
    urls = [e.text for e in ET.parse(res["fcp7"].paths[0]).getroot().iter("pathurl")]
    assert any("new%0Aline.mp4" in u for u in urls) and any("car%0Dret.mp4" in u for u in urls)


def test_edl_names_cannot_inject_lines(tmp_path):
    tl = _hostile_timeline(tmp_path)
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["edl"])
    edl, music_edl, sidecar = res.paths
    for path in (edl, music_edl):
        text = path.read_text(encoding="utf-8")
        assert text.splitlines() == text.split("\n")[:-1], path       # no line breaks but LF
        events = [line for line in text.splitlines() if re.match(r"^\d{3,4}\s", line)]
        others = [line for line in text.splitlines() if line not in events]
        assert all(line == "" or line.startswith(("TITLE:", "FCM:", "* ")) for line in others), others
    text = edl.read_text(encoding="utf-8")
    assert len([line for line in text.splitlines() if re.match(r"^\d{3}\s", line)]) == len(HOSTILE) + 1  # + dissolve
    assert "TITLE: Montage?002  EVIL V C 00:00:00:00" in text
    assert "* FROM CLIP NAME:  new?line.mp4" in text and "* FROM CLIP NAME:  back\\slash.mp4" in text
    assert f"* FROM CLIP: {tmp_path}/media/back?slash.mp4" in text      # cmx_3600 would make it back/slash.mp4
    media = json.loads(sidecar.read_text(encoding="utf-8"))["media"]
    assert {Path(m["path"]).name for m in media.values()} == {
        "new\nline.mp4", "car\rret.mp4", "tab\there.mp4", "back\\slash.mp4", "esc\x1b[31m.mp4",
        "ls\u2028ps\u2029.mp4", "nel\x85.mp4", "mu\nsic.wav"}
    assert any("sidecar maps them back" in n for n in res.notes)
    assert all("\n" not in n and "\r" not in n for n in res.notes)


def test_an_edl_relinked_in_an_editor_keeps_the_editor_s_file(tmp_path):
    """The sidecar puts a path back only where the event still names what was written."""
    tl = _hostile_timeline(tmp_path, ["new\nline.mp4", "b.mp4"])
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["edl"])
    other = tmp_path / "media" / "relinked.mp4"
    other.write_bytes(b"")
    edl = res.paths[0]
    edl.write_text(edl.read_text(encoding="utf-8").replace(f"{tmp_path}/media/new?line.mp4", str(other)),
                   encoding="utf-8")
    back = read_timeline_file(edl)
    assert [_path(c).name for c in back.video_tracks()[0].find_clips()] == ["relinked.mp4", "b.mp4"]


def test_kdenlive_cannot_point_at_a_path_xml_cannot_hold(tmp_path):
    tl = _hostile_timeline(tmp_path, ["a.mp4", "esc\x1b[31m.mp4", "b.mp4"])
    [res] = export_timeline(tl, tmp_path / "out", "cut", formats=["kdenlive"])
    ET.parse(res.paths[0])
    [note] = [n for n in res.notes if "skipped" in n]
    assert "esc\\x1b[31m.mp4" in note and "gap" in note and "\x1b" not in note
    back = read_timeline_file(res.paths[0])
    kinds = [type(i).__name__ for i in back.video_tracks()[0]]
    assert kinds == ["Clip", "Gap", "Clip"]
    assert back.duration() == tl.duration()
    with pytest.raises(otio.exceptions.NotSupportedError, match="cannot hold this path"):
        otio.adapters.write_to_string(tl, "montage_kdenlive")
