"""Valid but unusual media: files whose container declares no duration.

A WebM or Matroska file written to a pipe (or by a live recorder) never gets its duration
filled in; PyAV reports `container.duration` None and no stream duration either. Such files
must be probed with their real duration (measured from the packets), analysed and rendered
like any other, a variable-rate one with its real frame count, and an ordinary MP4 must not
pay for the measurement.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import opentimelineio as otio
import pytest

from hostile import assert_clean, cli, sha256_tree
from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.analysis.shots import analyze_clip
from montage_ai.demo.synth_audio import make_drum_track
from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.media import probe as probe_module
from montage_ai.media.ffmpeg import ffmpeg_path
from montage_ai.media.probe import probe
from montage_ai.render.conform import render
from montage_ai.timeline.read import read_timeline
from montage_ai.interchange import media_facts
from montage_otio.formats import fcp7
from montage_otio.media import MediaCache

VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-pix_fmt", "yuv420p"]


def piped(path: Path, *args: str) -> Path:
    """ffmpeg writing WebM to a pipe redirected into `path`: a non-seekable output, so the
    muxer cannot go back to write the duration (or the cues)."""
    with open(path, "wb") as fh:
        subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-nostdin", *args, "-f", "webm", "pipe:1"],
                       stdout=fh, check=True, timeout=120)
    return path


def declared_duration(path: Path) -> tuple[int | None, list[int | None]]:
    with av.open(str(path)) as c:
        return c.duration, [s.duration for s in c.streams]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nodur")
    out = {"root": root}
    # 5 s of moving picture at 25 fps with an Opus track
    out["cfr"] = piped(root / "piped.webm", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=5", "-f", "lavfi",
                       "-i", "sine=frequency=440:duration=5", *VP9, "-c:a", "libopus")
    # variable rate: 40 frames at 25 fps (1.6 s), then every other frame (12.5 fps) to 5 s
    out["vfr"] = piped(root / "vfr.webm", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=5",
                       "-vf", "select='lt(n\\,40)+not(mod(n\\,2))'", "-fps_mode", "vfr", *VP9)
    out["audio"] = piped(root / "song.webm", "-f", "lavfi", "-i", "sine=frequency=330:duration=4", "-c:a", "libopus")
    out["mp4"] = make_clip(root / "ok.mp4", [ShotSpec(duration_s=2, color=distinct_colors(1)[0])],
                           width=320, height=180).path
    return out


def test_the_files_really_declare_no_duration(media):
    for key in ("cfr", "vfr", "audio"):
        container, streams = declared_duration(media[key])
        assert container is None and all(d is None for d in streams), key


def test_piped_webm_gets_its_real_duration(media):
    info = probe(media["cfr"])
    assert info.has_video and info.video_codec == "vp9" and info.has_audio and info.audio_codec == "opus"
    assert info.duration_s == pytest.approx(5.0, abs=0.05)
    assert info.frame_count == 125 and info.fps == 25 and not info.variable_frame_rate


def test_variable_rate_webm_gets_its_duration_and_real_frame_count(media):
    info = probe(media["vfr"])
    assert info.variable_frame_rate
    assert info.duration_s == pytest.approx(5.0, abs=0.1)
    assert info.frame_count == 40 + 43        # counted packets (duration x rate would say 125)


def test_audio_only_webm_gets_its_duration(media):
    info = probe(media["audio"])
    assert not info.has_video and info.has_audio
    assert info.duration_s == pytest.approx(4.0, abs=0.05)


def test_a_declared_duration_is_not_measured(media, monkeypatch):
    def never(*_a, **_k):
        raise AssertionError("an MP4 with a duration must not be scanned")

    monkeypatch.setattr(probe_module, "scan_packets", never)
    info = probe(media["mp4"])
    assert info.duration_s == pytest.approx(2.0, abs=0.05) and info.frame_count == 50


def test_the_scan_is_bounded(media):
    with av.open(str(media["cfr"])) as c:
        scan = probe_module.scan_packets(c, c.streams.video[0], max_packets=10)
    assert not scan.complete and scan.packets == 10
    assert scan.end_s == pytest.approx(10 / 25, abs=0.001)


@pytest.mark.parametrize("key,frames", [("cfr", 125), ("vfr", 83)])
def test_analysis_reads_every_frame_without_a_truncation_warning(media, key, frames):
    analysis = analyze_clip(probe(media[key]), 0)
    assert analysis.frames_analyzed == frames
    assert analysis.shots and analysis.shots[-1].end_s == pytest.approx(5.0, abs=0.1)
    assert not analysis.warnings


@pytest.mark.slow
def test_a_run_uses_webm_without_duration_end_to_end(media, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for key in ("cfr", "vfr"):
        (clips / media[key].name).write_bytes(media[key].read_bytes())
    music = make_drum_track(tmp_path / "drums.wav", bpm=120, duration_s=10).path
    before = sha256_tree(clips, music)
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = cli("run", "--clips", clips, "--music", music, "--out", out, "--resolution", "360p", "--duration", "4",
                 cache=cache)
    assert_clean(result, ok=True, written=(out, cache), sources=before)
    assert "skipping" not in result.stderr and "no video stream" not in result.stderr + result.stdout
    with av.open(str(out / "montage.mp4")) as c:
        assert c.streams.video[0].frames == 100          # 4 s at the sources' 25 fps
    plan = (out / "plan.json").read_text(encoding="utf-8")
    assert "piped.webm" in plan or "vfr.webm" in plan


def test_export_finds_the_duration_a_webm_does_not_declare(media):
    """Editors refuse clips past their media's end, so FCP XML needs each file's duration."""
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    video.append(otio.schema.Clip(name="piped", source_range=tr(rt(10, 25), rt(50, 25)),
                                  media_reference=otio.schema.ExternalReference(target_url=str(media["cfr"]))))
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(video)
    lowered = fcp7.lower(timeline, media=MediaCache(media_facts))
    [clip] = lowered.timeline.find_clips()
    assert clip.media_reference.available_range.duration == rt(125, 25)
    assert not any("unknown" in n for n in lowered.notes)


def test_render_cuts_a_webm_without_duration_or_cues_at_the_right_frames(tmp_path):
    """Piped WebM has no cues (no seek index) either: the accurate seek must still land on the
    in-point. Every source frame shows its own number."""
    counter = make_counter_clip(tmp_path / "counter.mp4", 100, fps="25")
    webm = piped(tmp_path / "counter.webm", "-i", str(counter), "-c:v", "libvpx-vp9", "-deadline", "realtime",
                 "-cpu-used", "8", "-crf", "10", "-b:v", "0", "-g", "50")
    assert declared_duration(webm)[0] is None
    assert probe(webm).duration_s == pytest.approx(4.0, abs=0.05)
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for start, length in ((63, 20), (5, 15)):
        video.append(otio.schema.Clip(name="counter", source_range=tr(rt(start, 25), rt(length, 25)),
                                      media_reference=otio.schema.ExternalReference(target_url=str(webm))))
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(video)
    timeline.metadata["montage_ai"] = {"render": {"width": 320, "height": 180, "fps_num": 25, "fps_den": 1}}
    out = tmp_path / "cut.mp4"
    render(read_timeline(timeline), out, tmp_path / "cache", workers=2, progress=False)
    assert [read_counter(f) for f in decode_frames(out)] == [*range(63, 83), *range(5, 20)]
