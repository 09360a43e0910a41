"""The renderer against sources whose frames carry their own index: frame-exact trims,
rate conversion, dissolves, gaps, fit modes, audio placement, caching and atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from media_tools import decode_audio_mono, decode_frames, make_counter_clip, read_counter, video_facts
from montage_ai.errors import MontageError
from montage_ai.media.ffmpeg import run_ffmpeg
from montage_ai.render.conform import plan_chunks, render
from montage_ai.timeline.read import read_timeline

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("render-media")
    return {
        "c25": make_counter_clip(d / "c25.mp4", 200, fps="25", tint=(200, 30, 30)),
        "g25": make_counter_clip(d / "g25.mp4", 200, fps="25", tint=(30, 200, 30)),
        "ntsc": make_counter_clip(d / "ntsc.mp4", 200, fps="30000/1001", tint=(30, 30, 200)),
        "rot": make_counter_clip(d / "rot.mp4", 60, fps="25", width=320, height=180, rotate=90),
        "tone": _tone(d / "tone.wav"),
    }


def _tone(path: Path) -> Path:
    # clicks every 0.5 s on silence: easy to locate by cross-correlation
    run_ffmpeg(["-f", "lavfi", "-i", "aevalsrc='if(lt(mod(t,0.5),0.01),sin(2*PI*1000*t),0)':s=48000:d=20",
                "-c:a", "pcm_s16le", str(path)], what="tone")
    return path


def _clip(path: Path, start: int, dur: int, rate: float) -> otio.schema.Clip:
    return otio.schema.Clip(name=path.name, media_reference=otio.schema.ExternalReference(target_url=str(path)),
                            source_range=TR(RT(start, rate), RT(dur, rate)))


def _timeline(items, rate: float, w=320, h=180, fps=(25, 1), audio=None, fit="crop") -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name="t")
    v = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for it in items:
        v.append(it)
    tl.tracks.append(v)
    if audio:
        a = otio.schema.Track(kind=otio.schema.TrackKind.Audio)
        for it in audio:
            a.append(it)
        tl.tracks.append(a)
    tl.metadata["montage_ai"] = {"render": {"width": w, "height": h, "fps_num": fps[0], "fps_den": fps[1], "fit": fit}}
    return tl


def _render(tl, tmp_path: Path, name="out.mp4") -> Path:
    out = tmp_path / name
    render(read_timeline(tl), out, tmp_path / "cache", workers=2, progress=False)
    return out


def test_trims_are_frame_exact(media, tmp_path):
    tl = _timeline([_clip(media["c25"], 17, 10, 25), _clip(media["c25"], 101, 7, 25), _clip(media["c25"], 0, 5, 25)], 25)
    out = _render(tl, tmp_path)
    got = [read_counter(f) for f in decode_frames(out)]
    assert got == list(range(17, 27)) + list(range(101, 108)) + list(range(0, 5))


def test_ntsc_source_into_24fps_output_shows_the_right_frames(media, tmp_path):
    # 24 fps timeline; source at 30000/1001: output frame k shows the source frame at time (in + k)/24
    tl = _timeline([_clip(media["ntsc"], 24, 24, 24)], 24, fps=(24, 1))
    out = _render(tl, tmp_path)
    got = [read_counter(f) for f in decode_frames(out)]
    ntsc = 30000 / 1001
    want = [int(round((24 + k) / 24 * ntsc)) for k in range(24)]
    assert len(got) == 24
    assert all(abs(g - w) <= 1 for g, w in zip(got, want)), (got, want)
    assert got[0] == want[0]


def test_dissolve_gap_and_total_length(media, tmp_path):
    items = [
        _clip(media["c25"], 10, 20, 25),
        otio.schema.Transition(in_offset=RT(4, 25), out_offset=RT(4, 25)),
        _clip(media["g25"], 50, 20, 25),
        otio.schema.Gap(source_range=TR(RT(0, 25), RT(5, 25))),
    ]
    out = _render(_timeline(items, 25), tmp_path)
    frames = decode_frames(out)
    n, rate, vdur, _ = video_facts(out)
    assert n == 45 and rate == 25
    counters = [read_counter(f) for f in frames]
    # before the dissolve: the first clip frame for frame
    assert counters[:16] == list(range(10, 26))
    # after it: the second clip from its in-point + 4 (the dissolve covered 4 frames of it)
    assert counters[24:40] == list(range(54, 70))
    # the dissolve itself blends red into green over 8 frames, centred on the cut at frame 20
    bottoms = np.array([f[135:, :, :].reshape(-1, 3).mean(axis=0) for f in frames[16:24]])
    assert np.all(np.diff(bottoms[:, 0]) < 0) and np.all(np.diff(bottoms[:, 1]) > 0)
    # the gap renders black
    assert all(f.mean() < 20 for f in frames[40:])


def test_rotation_and_fit(media, tmp_path):
    out = _render(_timeline([_clip(media["rot"], 0, 10, 25)], 25, w=320, h=180, fit="pad"), tmp_path)
    f = decode_frames(out)[0]
    assert f.shape[:2] == (180, 320)
    # a 90-degree rotated 320x180 source is portrait: padded at both sides
    assert f[:, :40].mean() < 10 and f[:, -40:].mean() < 10


def test_music_is_placed_at_its_offset(media, tmp_path):
    # music clip starting 3.2 s into the tone file; clicks every 0.5 s => first click in the
    # output at 0.3 s (3.5 - 3.2)
    music = _clip(media["tone"], 80, 100, 25)  # 80 frames @25 = 3.2 s
    out = _render(_timeline([_clip(media["c25"], 0, 100, 25)], 25, audio=[music]), tmp_path)
    n, _, vdur, adur = video_facts(out)
    assert n == 100
    assert abs(adur - vdur) < 1 / 25
    sig = np.abs(decode_audio_mono(out, 8000))
    first = np.argmax(sig > 0.2 * sig.max()) / 8000
    assert abs(first - 0.3) < 1 / 25, first


def test_pieces_are_cached_and_output_is_atomic(media, tmp_path):
    tl = _timeline([_clip(media["c25"], 0, 10, 25), _clip(media["g25"], 0, 10, 25)], 25)
    spec = read_timeline(tl)
    first = render(spec, tmp_path / "a.mp4", tmp_path / "cache", progress=False)
    second = render(spec, tmp_path / "b.mp4", tmp_path / "cache", progress=False)
    assert first.chunks_rendered >= 1 and second.chunks_cached == first.chunks_rendered and second.chunks_rendered == 0
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_the_old_lossless_pieces_cache_is_removed(media, tmp_path):
    """Engines before the chunked render kept lossless pieces in cache/render/pieces, never read
    now: a render removes them (gigabytes on a long cut) and nothing else in the cache."""
    old = tmp_path / "cache" / "pieces"
    old.mkdir(parents=True)
    (old / "0123abcd.mkv").write_bytes(b"\x00" * 4096)
    (tmp_path / "cache" / "keep.txt").write_text("not ours to judge")
    render(read_timeline(_timeline([_clip(media["c25"], 0, 5, 25)], 25)), tmp_path / "a.mp4", tmp_path / "cache",
           progress=False)
    assert not old.exists() and (tmp_path / "cache" / "keep.txt").exists()


def test_failed_render_leaves_no_output(media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 5000)
    tl = _timeline([_clip(broken, 0, 10, 25)], 25)
    with pytest.raises(MontageError):
        render(read_timeline(tl), tmp_path / "out.mp4", tmp_path / "cache", progress=False)
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_missing_media_is_listed_and_relinked(media, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "c25.mp4").write_bytes(media["c25"].read_bytes())
    tl = _timeline([_clip(Path("/nowhere/c25.mp4"), 0, 5, 25), _clip(Path("/nowhere/gone.mp4"), 0, 5, 25)], 25)
    with pytest.raises(MontageError, match="gone.mp4"):
        read_timeline(tl, search_dirs=[moved])
    tl = _timeline([_clip(Path("/nowhere/c25.mp4"), 0, 5, 25)], 25)
    spec = read_timeline(tl, search_dirs=[moved])
    assert spec.pieces[0].a.path == (moved / "c25.mp4").resolve()


def test_a_killed_render_resumes_from_its_finished_chunks(media, tmp_path):
    """SIGKILL mid-render (no cleanup runs), render again: finished chunks are reused, the
    rest rendered, and every frame is right."""
    import os
    import signal
    import subprocess
    import sys
    import time

    items = [_clip(media["c25"], 5 * i, 50, 25) for i in range(3)] + [_clip(media["g25"], 7 * i, 50, 25) for i in range(3)]
    tl = _timeline(items, 25)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    cache = tmp_path / "cache"
    code = ("import sys, opentimelineio as otio; from pathlib import Path; "
            "from montage_ai.render.conform import render; from montage_ai.timeline.read import read_timeline; "
            "render(read_timeline(otio.adapters.read_from_file(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]), "
            "workers=1, progress=False, encoder_threads=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(tmp_path / "killed.mp4"), str(cache)])
    deadline = time.monotonic() + 60
    def finished() -> int:   # chunk files in place (not the hidden temporary one being written)
        return len([p for p in (cache / "chunks").glob("*.mp4") if not p.name.startswith(".")])

    while time.monotonic() < deadline and not finished():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done, total = finished(), len(plan_chunks(read_timeline(tl)))
    assert 1 <= done < total and not (tmp_path / "killed.mp4").exists()
    result = render(read_timeline(tl), tmp_path / "out.mp4", cache, workers=2, progress=False)
    assert result.chunks_cached == done and result.chunks_rendered == total - done
    got = [read_counter(f) for f in decode_frames(tmp_path / "out.mp4")]
    assert got == [n for i in range(3) for n in range(5 * i, 5 * i + 50)] + [n for i in range(3) for n in range(7 * i, 7 * i + 50)]


def _limited_range_luma(frame) -> np.ndarray:
    """A decoded frame's luma plane as 8-bit limited-range levels, whatever its depth and range."""
    y = frame.to_ndarray()
    y = (y[0] if y.ndim == 3 and y.shape[0] == 3 else y[: frame.height]).astype(float)
    if "10" in frame.format.name:
        y /= 4
    if frame.format.name.startswith("yuvj"):
        y = 16 + y * 219 / 255
    return y


@pytest.mark.parametrize("pix_fmt", ["yuvj420p", "yuv420p10le", "yuv444p"])
def test_full_range_ten_bit_and_444_sources_keep_their_picture(tmp_path, pix_fmt):
    """A phone's full-range clip, a 10-bit and a 4:4:4 camera file look as they decode: the
    output is limited-range 8-bit 4:2:0 with the same colours (within rounding) and the same
    brightness. Brightness is compared on the luma planes: converters' RGB paths for 4:4:4 and
    4:2:0 differ by about one level, which would measure the converter, not the render."""
    import av

    src = tmp_path / f"{pix_fmt}.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "gradients=s=320x180:d=2:r=25:seed=7", "-pix_fmt", pix_fmt, "-c:v", "libx264",
                "-crf", "8", src], what="source")
    out = _render(_timeline([_clip(src, 5, 10, 25)], 25), tmp_path)
    with av.open(str(src)) as c:
        source_frame = [f for f in c.decode(video=0)][5]
    with av.open(str(out)) as c:
        out_frame = next(c.decode(video=0))
    assert out_frame.format.name == "yuv420p"
    got = out_frame.to_ndarray(format="rgb24").astype(int)
    assert np.abs(source_frame.to_ndarray(format="rgb24").astype(int) - got).mean() < 2.5
    assert abs(_limited_range_luma(source_frame).mean() - _limited_range_luma(out_frame).mean()) < 0.5
