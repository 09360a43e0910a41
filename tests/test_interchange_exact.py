"""Exports of real, mixed-rate footage: own-rate source timecodes and file rates, black (a lifted
head shot and an inner gap) kept to the frame, and media paths relative to the timeline's own
folder, exported and rendered from other working directories. Plus the package boundary:
montage_otio imports nothing from the engine.

Sources are frame-index-coded clips (each frame shows its own index) at 25, 24 and 29.97 fps,
cut into timelines at 29.97 and 25 fps; the expected source frame of every output frame is
docs/frame-rule.md's: floor((in + k/R) * r + 1/2).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree as ET

import opentimelineio as otio
import pytest
from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.interchange import FORMATS, export_timeline, read_timeline_file
from montage_otio import vocab
from montage_otio.formats.edl import timecode

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
ROOT = Path(__file__).resolve().parents[1]
NTSC = Fraction(30000, 1001)
SOURCES = {"c25": ("25", 241), "c24": ("24", 200), "c2997": ("30000/1001", 240)}
#: (source, in-point in timeline frames, length), with 18 frames of black at the head and 9 between
#: the first and second clip
CUT = [("c25", 37, 40), ("c24", 41, 36), ("c2997", 13, 30)]
HEAD, INNER = 18, 9
SEQ_RATES = {"29.97": NTSC, "25": Fraction(25)}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {name: make_counter_clip(folder / f"{name}.mp4", frames, fps=fps) for name, (fps, frames) in SOURCES.items()}


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    return make_drum_track(tmp_path_factory.mktemp("music") / "drums.wav", bpm=120, duration_s=10).path


def own_rate(name: str) -> Fraction:
    return Fraction(SOURCES[name][0])


def timeline(paths: dict[str, str], rate: Fraction, music: Path | None = None) -> otio.schema.Timeline:
    """The cut as build.py writes it: whole frames at the output rate, media ranges at that rate."""
    r = float(rate)
    tl = otio.schema.Timeline(name="mixed", global_start_time=RT(0, r))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    video.append(otio.schema.Gap(source_range=TR(RT(0, r), RT(HEAD, r))))
    for i, (name, src_in, frames) in enumerate(CUT):
        if i == 1:
            video.append(otio.schema.Gap(source_range=TR(RT(0, r), RT(INNER, r))))
        seconds = Fraction(SOURCES[name][1]) / own_rate(name)
        video.append(otio.schema.Clip(
            name=name, source_range=TR(RT(src_in, r), RT(frames, r)),
            media_reference=otio.schema.ExternalReference(
                target_url=paths[name], available_range=TR(RT(0, r), RT(int(seconds * rate), r)))))
    tl.tracks.append(video)
    if music is not None:
        audio = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
        total = int(video.duration().value)
        audio.append(otio.schema.Clip(name="music", source_range=TR(RT(0, r), RT(total, r)),
                                      media_reference=otio.schema.ExternalReference(
                                          target_url=str(music), available_range=TR(RT(0, r), RT(total * 2, r))),
                                      metadata={vocab.META_KEY: {"role": "music", "fade_out_s": 0.0}}))
        tl.tracks.append(audio)
    tl.metadata[vocab.META_KEY] = {"render": {"width": 320, "height": 180, "fps_num": rate.numerator,
                                              "fps_den": rate.denominator}}
    return tl


def items(tl: otio.schema.Timeline, rate: Fraction) -> list[tuple]:
    """Every item of the picture: (kind, record start, length, file name, in-point), in frames
    at the sequence rate."""
    track = tl.video_tracks()[0]
    out = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            continue
        rng = track.range_of_child_at_index(i)
        frames = (round(rng.start_time.value_rescaled_to(float(rate))), round(rng.duration.value_rescaled_to(float(rate))))
        if isinstance(item, otio.schema.Clip):
            ref = item.media_reference
            offset = ref.available_range.start_time if ref.available_range else RT(0, float(rate))
            src = round((item.source_range.start_time - offset).value_rescaled_to(float(rate)))
            out.append(("clip", *frames, Path(vocab.url_to_path(ref.target_url)).name, src))
        else:
            out.append(("black", *frames, None, None))
    return out


def rule_frame(src_in: int, k: int, seq: Fraction, own: Fraction) -> int:
    """docs/frame-rule.md for a constant-rate source: floor((in + k/R) * r + 1/2)."""
    return int((Fraction(src_in + k) / seq * own + Fraction(1, 2)).__floor__())


def expected(rate: Fraction) -> list[tuple]:
    out, at = [("black", 0, HEAD, None, None)], HEAD
    for i, (name, src_in, frames) in enumerate(CUT):
        if i == 1:
            out.append(("black", at, INNER, None, None))
            at += INNER
        out.append(("clip", at, frames, f"{name}.mp4", src_in))
        at += frames
    return out


def cli(*args: object, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "engine"), str(ROOT / "otio_adapters")])}
    return subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


# --------------------------------------------------------------------------- the package boundary

def test_montage_otio_imports_nothing_from_the_engine():
    """The dependency runs one way: loading every montage_otio module (the registry, each
    format, the OTIO plugin) loads no montage_ai module, and no source line imports one."""
    code = ("import sys, pkgutil, importlib, montage_otio\n"
            "for m in pkgutil.walk_packages(montage_otio.__path__, 'montage_otio.'): importlib.import_module(m.name)\n"
            "import opentimelineio as otio; otio.adapters.from_name('montage_kdenlive').module()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'montage_ai'))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "otio_adapters")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    sources = list((ROOT / "otio_adapters" / "montage_otio").rglob("*.py"))
    assert len(sources) >= 10
    offenders = [f"{p.name}: {line.strip()}" for p in sources for line in p.read_text().splitlines()
                 if re.match(r"\s*(from|import)\s+montage_ai\b", line)]
    assert offenders == []


def test_the_vocabulary_has_one_definition():
    from montage_ai.timeline import model, read

    assert read.exact_rate is vocab.exact_rate and read.url_to_path is vocab.url_to_path
    assert model.META_KEY is vocab.META_KEY and model.LOOK_EFFECT is vocab.LOOK_EFFECT
    assert vocab.exact_rate(29.97) == NTSC and vocab.exact_rate(23.976) == Fraction(24000, 1001)
    assert vocab.url_to_path("file:///a%20b/c.mp4") == Path("/a b/c.mp4")
    assert vocab.url_to_path("m/c.mp4", Path("/x")) == Path("/x/m/c.mp4")


def test_the_facade_is_small_and_has_one_registry():
    lines = (ROOT / "engine" / "montage_ai" / "interchange.py").read_text().splitlines()
    assert len(lines) <= 130
    from montage_otio import registry
    assert FORMATS is registry.FORMATS and list(FORMATS) == ["otio", "kdenlive", "fcp7", "fcpxml", "edl"]
    manifest = json.loads((ROOT / "otio_adapters" / "montage_otio" / "plugin_manifest.json").read_text())
    assert {a["name"] for a in manifest["adapters"]} >= {"montage_kdenlive"}


# --------------------------------------------------------------------------- mixed rates

@pytest.mark.parametrize("seq", list(SEQ_RATES))
def test_edl_source_timecodes_are_at_each_files_own_rate(media, tmp_path, seq):
    rate = SEQ_RATES[seq]
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["edl"])
    events = [line.split() for line in res.paths[0].read_text().splitlines() if re.match(r"^\d{3}\s", line)]
    records = {e[3].split(".")[0]: e[1] for e in expected(rate) if e[0] == "clip"}
    assert [e[1] for e in events] == ["C25", "C24", "C2997"]
    for (name, src_in, frames), event in zip(CUT, events, strict=True):
        own = own_rate(name)
        first, end = rule_frame(src_in, 0, rate, own), rule_frame(src_in, frames, rate, own)
        assert event[-4:-2] == [timecode(first, own), timecode(end, own)], (name, event)
        assert event[-2:] == [timecode(records[name], rate), timecode(records[name] + frames, rate)]
    side = json.loads(res.paths[-1].read_text())
    assert {r: Fraction(v["fps_num"], v["fps_den"]) for r, v in side["sources"].items()} == \
        {reel: own_rate(n) for reel, n in (("C25", "c25"), ("C24", "c24"), ("C2997", "c2997")) if own_rate(n) != rate}
    if rate == NTSC:   # the issue's example: 25 fps source timecode, not 29.97 drop-frame
        assert ";" not in " ".join(events[0][-4:-2]) and ";" in events[2][-4]


@pytest.mark.parametrize("seq", list(SEQ_RATES))
def test_fcp7_files_carry_their_own_rate_and_length(media, tmp_path, seq):
    rate = SEQ_RATES[seq]
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["fcp7"])
    root = ET.parse(res.paths[0]).getroot()
    files = {Path(f.findtext("pathurl")).name: f for f in root.iter("file") if f.find("pathurl") is not None}
    for name, (fps, frames) in SOURCES.items():
        f = files[f"{name}.mp4"]
        own = own_rate(name)
        assert int(f.findtext("rate/timebase")) == round(own)
        assert (f.findtext("rate/ntsc") == "TRUE") == (own.denominator == 1001)
        assert int(f.findtext("duration")) == frames
    for item in root.iter("clipitem"):   # clip in/out stay at the sequence rate
        assert int(item.findtext("rate/timebase")) == round(rate)


FORMAT_NAMES = ["otio", "kdenlive", "fcp7", "fcpxml", "edl"]


@pytest.mark.parametrize("seq", list(SEQ_RATES))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_round_trip_keeps_black_record_positions_and_source_frames(media, tmp_path, fmt, seq):
    """Export, read back with our reader: the lifted head (18 frames of black), the inner gap and
    every clip at the same record frame, each showing the same source frames."""
    rate = SEQ_RATES[seq]
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=[fmt])
    back = read_timeline_file(res.paths[0])
    assert items(back, rate) == expected(rate)


def with_dissolves(paths: dict[str, str], rate: Fraction) -> otio.schema.Timeline:
    """The cut without gaps and with a dissolve at each cut (8 and 6 frames, centred)."""
    tl = timeline(paths, rate)
    track = tl.video_tracks()[0]
    clips = [item.deepcopy() for item in track if isinstance(item, otio.schema.Clip)]
    track[:] = []
    r = float(rate)
    for i, clip in enumerate(clips):
        if i:
            frames = 8 if i == 1 else 6
            track.append(otio.schema.Transition(name=f"dissolve {i}", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                                in_offset=RT(frames // 2, r), out_offset=RT(frames - frames // 2, r)))
        track.append(clip)
    return tl


def transitions(tl: otio.schema.Timeline, rate: Fraction) -> list[tuple[int, int, int]]:
    track = tl.video_tracks()[0]
    return [(round(track.range_of_child_at_index(i + 1).start_time.value_rescaled_to(float(rate))),
             round(t.in_offset.value_rescaled_to(float(rate))), round(t.out_offset.value_rescaled_to(float(rate))))
            for i, t in enumerate(track) if isinstance(t, otio.schema.Transition)]


@pytest.mark.parametrize("seq", list(SEQ_RATES))
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_mixed_rate_dissolves_round_trip(media, tmp_path, fmt, seq):
    """Dissolves between sources at other rates: an EDL's dissolve events carry own-rate
    source timecode too, and every format reads back the same cuts, dissolves and in-points."""
    rate = SEQ_RATES[seq]
    tl = with_dissolves({k: str(p) for k, p in media.items()}, rate)
    [res] = export_timeline(tl, tmp_path, "cut", formats=[fmt])
    back = read_timeline_file(res.paths[0])
    assert items(back, rate) == items(tl, rate)
    assert transitions(back, rate) == transitions(tl, rate) == [(40, 4, 4), (76, 3, 3)]
    if fmt == "edl":
        text = res.paths[0].read_text()
        assert sum(" D " in line for line in text.splitlines()) == 2
        for name, src_in, _ in CUT[1:]:   # each incoming clip's dissolve event, from in - in_offset
            half = 4 if name == "c24" else 3
            assert timecode(rule_frame(src_in - half, 0, rate, own_rate(name)), own_rate(name)) in text, name


@pytest.mark.parametrize("seq", list(SEQ_RATES))
def test_stock_fcp_xml_reads_the_same_source_frames(media, tmp_path, seq):
    """Premiere's and Resolve's format, read by the stock adapter alone (no repairs of ours)."""
    rate = SEQ_RATES[seq]
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["fcp7"])
    stock = otio.adapters.read_from_file(str(res.paths[0]), adapter_name="fcp_xml")
    assert items(stock, rate) == expected(rate)
    for clip in stock.find_clips():   # and each file at its own rate and length
        own = own_rate(clip.name.split(".")[0])
        assert vocab.exact_rate(clip.media_reference.available_range.duration.rate) == own


def test_the_issues_example(media, tmp_path):
    """A 25 fps, 241-frame file cut at 29.97 fps frame 148 (4.938 s): it was written as source
    timecode 00:00:04;28 and `<rate>` 30 NTSC with 288 frames; now 25 fps frame 123 and 241."""
    r = float(NTSC)
    tl = otio.schema.Timeline(name="one", global_start_time=RT(0, r))
    tl.tracks.append(otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video))
    tl.tracks[0].append(otio.schema.Clip(name="c25", source_range=TR(RT(148, r), RT(30, r)),
                                         media_reference=otio.schema.ExternalReference(target_url=str(media["c25"]))))
    res = {x.format: x for x in export_timeline(tl, tmp_path, "one", formats=["edl", "fcp7"])}
    [event] = [line.split() for line in res["edl"].paths[0].read_text().splitlines() if line.startswith("001")]
    assert event[-4] == "00:00:04:23" == timecode(rule_frame(148, 0, NTSC, Fraction(25)), Fraction(25))
    f = next(f for f in ET.parse(res["fcp7"].paths[0]).getroot().iter("file") if f.find("pathurl") is not None)
    assert (f.findtext("rate/timebase"), f.findtext("rate/ntsc"), f.findtext("duration")) == ("25", "FALSE", "241")


def test_an_edl_event_changed_in_an_editor_is_read_at_its_sources_rate(media, tmp_path):
    """An editor slips the 25 fps clip by 5 of its own frames in the EDL: our reader converts
    that source timecode from 25 fps (not the sequence's 29.97) to the in-point showing it."""
    rate = NTSC
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["edl"])
    edl = res.paths[0]
    first, end = rule_frame(37, 0, rate, Fraction(25)), rule_frame(37, 40, rate, Fraction(25))
    old = f" {timecode(first, Fraction(25))} {timecode(end, Fraction(25))} "
    text = edl.read_text()
    assert text.count(old) == 1
    edl.write_text(text.replace(old, f" {timecode(first + 5, Fraction(25))} {timecode(end + 5, Fraction(25))} "))
    back = read_timeline_file(edl)
    [clip] = [c for c in back.find_clips() if c.name == "c25.mp4"]
    src_in = round(clip.source_range.start_time.value_rescaled_to(float(rate)))
    assert src_in == round(Fraction(first + 5, 25) * rate)
    assert rule_frame(src_in, 0, rate, Fraction(25)) == first + 5
    assert items(back, rate)[1][:3] == ("clip", HEAD, CUT[0][2])   # the record side is untouched


def test_own_rates_survive_a_round_trip_without_the_media(media, tmp_path):
    """FCP7 read back carries each file's own rate in its media range: exported again (to an
    EDL) with the media gone, the source timecodes are still at each file's own rate."""
    rate = NTSC
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path / "a", "cut",
                            formats=["fcp7", "edl"])[:1]
    back = read_timeline_file(res.paths[0])
    for clip in back.find_clips():
        clip.media_reference.target_url = str(tmp_path / "gone" / Path(clip.media_reference.target_url).name)
    [again] = export_timeline(back, tmp_path / "b", "cut", formats=["edl"])
    first = [line.split() for line in again.paths[0].read_text().splitlines() if line.startswith("001")][0]
    assert first[-4] == timecode(rule_frame(37, 0, rate, Fraction(25)), Fraction(25))
    # a range at the sequence rate says nothing about the file's own rate: only c2997 (29.97,
    # as the sequence) is unknown without its file, and its timecode is right either way
    assert [n for n in again.notes if "unknown" in n] == ["own frame rate unknown for c2997.mp4: source timecode at "
                                                         "the sequence rate"]
    assert items(read_timeline_file(again.paths[0]), rate) == expected(rate)


def test_stock_cmx_3600_refuses_rather_than_misplaces(media, tmp_path):
    """The stock EDL reader reads every timecode at one rate: it refuses an event whose source
    timecode is at another rate (source and record lengths differ) instead of misplacing it;
    told to ignore that, it gets sources at the sequence's rate exactly and reads the others'
    timecodes as if they were at the sequence rate (docs/interchange.md). Editors that conform
    by source timecode (Avid, Resolve) read each source's timecode at its own rate."""
    rate = NTSC
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["edl"])
    text = res.paths[0].read_text()
    with pytest.raises(otio.exceptions.OTIOError, match="duration"):
        otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(rate))
    stock = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(rate), ignore_timecode_mismatch=True)
    ins = {c.name: round(c.source_range.start_time.value) for c in stock.find_clips()}
    assert ins["c2997.mp4"] == 13
    own = rule_frame(37, 0, rate, Fraction(25))          # 25 fps frame 31 is 00:00:01:06 ...
    assert ins["c25.mp4"] == own // 25 * 30 + own % 25   # ... which it counts as 29.97 frame 36


@pytest.mark.parametrize("seq", SEQ_RATES)
def test_sequence_rate_edl_reads_the_same_source_frames_in_the_stock_reader(media, tmp_path, seq):
    """For single-rate readers the EDL's source timecodes can be written at the sequence rate
    (--edl-source-timecode sequence): OpenTimelineIO's stock cmx_3600 reader then reads every
    event, with no mismatch to ignore, to the same source frames as our reader and the engine's
    timeline (the picture starts at the first event in the stock reader: black before it is ours)."""
    rate = SEQ_RATES[seq]
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path, "cut", formats=["edl"],
                            edl_source_timecode="sequence")
    others = [n.upper() for n, _, _ in CUT if own_rate(n) != rate]   # in timeline order
    assert [n for n in res.notes if "sequence rate" in n] == [
        "source timecodes at the sequence rate, for single-rate EDL readers; an editor that conforms by source "
        f"timecode misplaces 2 reel(s) at another rate ({', '.join(others)})"]
    assert not json.loads(res.paths[-1].read_text()).get("sources")
    stock = otio.adapters.read_from_string(res.paths[0].read_text(), adapter_name="cmx_3600", rate=float(rate))
    clips = [i for i in expected(rate) if i[0] == "clip"]
    got = [i for i in items(stock, rate) if i[0] == "clip"]
    assert [(n, src, length, at - got[0][1]) for _, at, length, n, src in got] == \
        [(n, src, length, at - HEAD) for _, at, length, n, src in clips]
    assert items(read_timeline_file(res.paths[0]), rate) == expected(rate)
    # the default stays each file's own rate, for editors that conform by source timecode
    [own] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate), tmp_path / "own", "cut",
                            formats=["edl"])
    assert own.paths[0].read_text() != res.paths[0].read_text()


def test_export_command_chooses_the_edl_source_timecode_rate(media, tmp_path):
    """`montage-ai export --edl-source-timecode sequence` reaches the writer; a wrong value is
    one line naming the choices."""
    tl_path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline({k: str(p) for k, p in media.items()}, NTSC), str(tl_path))
    cmd = [sys.executable, "-m", "montage_ai.cli", "export", str(tl_path), "--to", "edl"]
    done = subprocess.run(cmd + ["--edl-source-timecode", "sequence"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "source timecodes at the sequence rate" in done.stdout
    otio.adapters.read_from_file(str(tmp_path / "cut.edl"), adapter_name="cmx_3600", rate=float(NTSC))
    bad = subprocess.run(cmd + ["--edl-source-timecode", "film"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "own" in bad.stderr and "sequence" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_real_footage_at_rates_a_timecode_cannot_name(shared_media, tmp_path):
    """Real clips: Big Buck Bunny (24 fps) gets 24 fps source timecode and a 24 fps <file>;
    car-detection (12.5 fps) and bottle-detection (179/6, 29.83 fps) have no SMPTE or FCP7
    timebase, so they stay at the sequence rate, with a note saying so; every format still
    reads back the same in-points."""
    rate = Fraction(25)
    r = float(rate)
    files = [("big_buck_bunny_2s.mp4", 11, 30), ("car-detection.mp4", 40, 25), ("bottle-detection.mp4", 7, 20)]
    tl = otio.schema.Timeline(name="real", global_start_time=RT(0, r))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, src_in, frames in files:
        video.append(otio.schema.Clip(name=name, source_range=TR(RT(src_in, r), RT(frames, r)),
                                      media_reference=otio.schema.ExternalReference(target_url=str(shared_media / name))))
    tl.tracks.append(video)
    results = {res.format: res for res in export_timeline(tl, tmp_path, "real", formats=FORMAT_NAMES)}
    edl = [line.split() for line in results["edl"].paths[0].read_text().splitlines() if re.match(r"^\d{3}\s", line)]
    assert edl[0][-4] == timecode(rule_frame(11, 0, rate, Fraction(24)), Fraction(24))
    assert edl[1][-4] == timecode(40, rate) and edl[2][-4] == timecode(7, rate)
    assert any("SMPTE timecode has no rate" in n and "car-detection" in n and "bottle-detection" in n
               for n in results["edl"].notes)
    xml = ET.parse(results["fcp7"].paths[0]).getroot()
    rates = {Path(f.findtext("pathurl")).name: int(f.findtext("rate/timebase")) for f in xml.iter("file")
             if f.find("pathurl") is not None}
    assert rates == {"big_buck_bunny_2s.mp4": 24, "car-detection.mp4": 25, "bottle-detection.mp4": 25}
    assert any("no timebase" in n for n in results["fcp7"].notes)
    for fmt, res in results.items():
        back = read_timeline_file(res.paths[0])
        got = [(Path(vocab.url_to_path(c.media_reference.target_url)).name,
                round(c.source_range.start_time.value_rescaled_to(r)), round(c.source_range.duration.value_rescaled_to(r)))
               for c in back.find_clips()]
        assert got == files, fmt


# --------------------------------------------------------------------------- renders

def frame_indices(video: Path, at: list[int]) -> dict[int, int | None]:
    """The source index shown at each output frame (None where the picture is black)."""
    frames = decode_frames(video)
    out: dict[int, int | None] = {}
    for k in at:
        img = frames[k]
        out[k] = None if img.mean() < 12 else read_counter(img)
    return out


def probes(rate: Fraction) -> dict[int, int | None]:
    """Output frame -> the index the rule predicts: the black, each clip's first and last frame."""
    want: dict[int, int | None] = {0: None, HEAD - 1: None}
    for kind, start, frames, name, src_in in expected(rate):
        if kind == "black":
            want[start] = want[start + frames - 1] = None
            continue
        own = own_rate(name.split(".")[0])
        for k in (0, 1, frames - 1):
            want[start + k] = rule_frame(src_in, k, rate, own)
    return want


@pytest.mark.slow
def test_reread_edl_renders_the_black_then_the_picture(media, song, tmp_path):
    """The issue's case: the lifted head shot made the re-read EDL play everything 18 frames
    early. Rendered through the command line from the EDL alone (with its sidecar)."""
    rate = Fraction(25)
    [res] = export_timeline(timeline({k: str(p) for k, p in media.items()}, rate, music=song), tmp_path / "x",
                            "cut", formats=["edl"])
    out = tmp_path / "edl.mp4"
    proc = cli("render", res.paths[0], "-o", out, cwd=tmp_path, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = probes(rate)
    assert frame_indices(out, sorted(want)) == want


@pytest.mark.slow
def test_relative_paths_export_and_render_from_other_folders(media, tmp_path):
    """A timeline in folder X naming its media relative to X, exported beside itself with
    `montage-ai export` run from folder Y, every export rendered with `montage-ai render` from
    folder Z (and the .kdenlive with melt from Z): no export names Y, every one points into X,
    the project's root is X, and every render shows the cut."""
    x, y, z = tmp_path / "x", tmp_path / "y", tmp_path / "z"
    for folder in (x / "media", y, z):
        folder.mkdir(parents=True)
    for name, path in media.items():
        shutil.copy(path, x / "media" / path.name)
    rate = NTSC
    otio.adapters.write_to_file(timeline({k: f"media/{k}.mp4" for k in media}, rate), str(x / "cut.otio"))
    proc = cli("export", "../x/cut.otio", "--to", ",".join(FORMAT_NAMES), cwd=y, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    exports = {fmt: x / f"cut.export{FORMATS[fmt].suffix}" for fmt in FORMAT_NAMES}
    media_dir = (x / "media").resolve()
    for fmt, path in exports.items():
        text = path.read_text()
        assert str(y) not in text, fmt   # nothing resolved against the working directory
        assert str(media_dir) in text or media_dir.as_uri() in text, fmt
    assert ET.parse(exports["kdenlive"]).getroot().get("root") == str(x.resolve())
    want = probes(rate)
    for fmt, path in exports.items():
        out = z / f"{fmt}.mp4"
        proc = cli("render", path, "-o", out, cwd=z, cache=tmp_path / "cache")
        assert proc.returncode == 0, (fmt, proc.stderr[-2000:])
        assert frame_indices(out, sorted(want)) == want, fmt
    melt = shutil.which("melt")
    if melt is None:
        pytest.skip("melt not installed: apt-get install melt")
    out = z / "melt.mp4"
    proc = subprocess.run([melt, str(exports["kdenlive"]), "-consumer", f"avformat:{out}", "vcodec=libx264", "an=1"],
                          capture_output=True, text=True, timeout=180, cwd=z)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    assert frame_indices(out, sorted(want)) == want
    assert len(decode_frames(out)) == expected(rate)[-1][1] + expected(rate)[-1][2]
