"""probe(): exact frame rates, rotation, VFR, audio facts, cover art, bad files."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest

from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip
from montage_ai.errors import MediaError
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.media.probe import is_variable_rate, probe, pts_steps, snap_rate


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("probe")
    color = distinct_colors(1)[0]
    out: dict[str, Path] = {}
    for name, fps in (("p25", "25"), ("p24", "24"), ("ntsc", "30000/1001")):
        out[name] = make_clip(root / f"{name}.mp4", [ShotSpec(duration_s=1.0, color=color)],
                              width=160, height=90, fps=fps, audio_tone_hz=440.0 if name == "p25" else None).path
    out["rot"] = root / "rot90.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", out["p24"], "-c", "copy", out["rot"]], what="rotate")
    out["vfr"] = root / "vfr.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=160x90:r=30:d=3,select='not(between(mod(n\\,10)\\,3\\,6))'",
                "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", out["vfr"]], what="vfr")
    out["cover"] = root / "cover.mp3"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.04",
                "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "mjpeg", "-frames:v", "1",
                "-disposition:v:0", "attached_pic", out["cover"]], what="cover art")
    return out


@pytest.mark.parametrize("name,fps,frames", [("p25", Fraction(25), 25), ("p24", Fraction(24), 24),
                                             ("ntsc", Fraction(30000, 1001), 30)])
def test_exact_frame_rate(clips, name, fps, frames):
    info = probe(clips[name])
    assert (info.fps_num, info.fps_den) == (fps.numerator, fps.denominator)
    assert info.fps == fps
    assert info.frame_count == frames
    assert info.duration_s == pytest.approx(frames / fps, abs=0.05)
    assert (info.width, info.height) == (160, 90)
    assert info.has_video and info.video_codec == "h264"
    assert not info.variable_frame_rate
    assert info.rotation_deg == 0


def test_audio_facts(clips):
    with_audio, silent = probe(clips["p25"]), probe(clips["p24"])
    assert with_audio.has_audio and with_audio.audio_codec == "aac"
    assert with_audio.audio_sample_rate == 48000 and with_audio.audio_channels == 1
    assert not silent.has_audio and silent.audio_codec == "" and silent.audio_sample_rate == 0


def test_rotation_swaps_display_size(clips):
    info = probe(clips["rot"])
    assert info.rotation_deg == 90
    assert (info.width, info.height) == (90, 160)
    assert (info.coded_width, info.coded_height) == (160, 90)
    assert info.fps == 24


def test_variable_frame_rate(clips):
    info = probe(clips["vfr"])
    assert info.variable_frame_rate
    assert info.fps == 18  # 6 of every 10 frames at 30 fps: the average rate
    assert info.frame_count == 54


def test_vfr_rule_on_timestamps():
    assert not is_variable_rate(pts_steps(list(range(0, 512 * 100, 512))))
    # 30000/1001 in a 1/1000 timebase alternates 33 and 34 ticks: still constant
    assert not is_variable_rate(pts_steps([round(i * 1001 / 30) for i in range(100)]))
    dropped = [i * 100 for i in range(100) if i % 10 not in (3, 4, 5, 6)]
    assert is_variable_rate(pts_steps(dropped))


def test_snap_rate_keeps_exact_rates():
    assert snap_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert snap_rate(Fraction(24)) == 24
    assert snap_rate(Fraction(2997, 100)) == Fraction(30000, 1001)
    assert snap_rate(Fraction(12345, 1000)).denominator <= 1001


def test_cover_art_is_not_video(clips):
    info = probe(clips["cover"])
    assert not info.has_video and info.has_audio
    assert info.width == 0 and info.fps_num == 0


def test_real_cover_art_ogg(shared_media):
    info = probe(shared_media / "vibe_ace.ogg")
    assert not info.has_video
    assert info.has_audio and info.audio_codec == "vorbis" and info.audio_sample_rate == 22050
    assert info.duration_s == pytest.approx(61.46, abs=0.1)


def test_real_webm(shared_media):
    info = probe(shared_media / "big_buck_bunny_0_30.webm")
    assert info.fps == 24 and (info.width, info.height) == (1280, 720)
    assert info.video_codec == "vp8" and info.audio_codec == "vorbis"
    assert info.frame_count == pytest.approx(720, abs=2)


def test_absolute_path_and_file_facts(clips, monkeypatch):
    monkeypatch.chdir(clips["p25"].parent)
    info = probe(Path(clips["p25"].name))
    assert info.path.is_absolute() and info.path == clips["p25"]
    st = clips["p25"].stat()
    assert info.size_bytes == st.st_size and info.mtime_ns == st.st_mtime_ns


def _bad_files(root: Path, good: Path) -> dict[str, Path]:
    files = {"garbage": root / "garbage.mp4", "empty": root / "empty.mp4", "headless": root / "headless.mp4"}
    files["garbage"].write_bytes(os.urandom(5000))
    files["empty"].write_bytes(b"")
    files["headless"].write_bytes(good.read_bytes()[-4000:])  # the tail of an mp4: no header
    files["missing"] = root / "missing.mp4"
    files["folder"] = root
    return files


@pytest.mark.parametrize("kind", ["garbage", "empty", "headless", "missing", "folder"])
def test_bad_files_raise_media_error(clips, tmp_path, kind):
    path = _bad_files(tmp_path, clips["p25"])[kind]
    with pytest.raises(MediaError) as err:
        probe(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_a_name_that_is_not_utf8_is_refused_naming_it_on_one_line(clips, tmp_path):
    path = os.fsencode(tmp_path) + b"/\xff\xfe clip.mp4"
    with open(path, "wb") as fh:
        fh.write(clips["p25"].read_bytes())
    with pytest.raises(MediaError) as err:
        probe(Path(os.fsdecode(path)))
    message = str(err.value)
    assert "\\xff\\xfe clip.mp4" in message and "not valid UTF-8" in message
    message.encode("utf-8")                     # printable anywhere: no lone surrogates


def test_a_newline_in_a_name_is_read_and_shown_on_one_line(clips, tmp_path):
    good = tmp_path / "new\nline.mp4"
    good.write_bytes(clips["p25"].read_bytes())
    assert probe(good).frame_count == 25
    bad = tmp_path / "bad\nname\x1b.mp4"
    bad.write_bytes(os.urandom(3000))
    with pytest.raises(MediaError) as err:
        probe(bad)
    assert "bad\\nname\\x1b.mp4" in str(err.value) and "\n" not in str(err.value)
