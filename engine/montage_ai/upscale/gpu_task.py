"""Upscaling as an executor Task for Ray GPU workers: one range per task, `num_gpus=1`.

On the worker, Real-ESRGAN runs in PyTorch on CUDA where torch and realesrgan are installed
(the Colab script's torch engine, run there as a child process with the same manifest and
output lines, installing and patching nothing), else, or when that fails, through the same ncnn
path as this machine (`upscale_ncnn`), on the GPU Ray gave the task (CUDA_VISIBLE_DEVICES for
torch, the k-th Vulkan device for ncnn). Each is a child process bounded in time, writing into
a temporary folder, and the lossless intermediate comes back as bytes: only this machine writes
the cache (apply.py). The weights torch needs are fetched once per node into WEIGHTS_DIR (put
them there by hand on a node without internet). A worker that
cannot upscale (no ncnn there, a failing driver) answers Failed with its reason instead of
raising, so the message reaches the report whole and the range goes on down the chain; the
executor answers Failed too for what the cluster could not run (no GPU, a timeout, a lost node).
A worker whose ncnn sees only a software Vulkan device runs Real-ESRGAN on its CPU: the same
model, slower, and the device it ran on travels back with the bytes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from .. import procs
from ..atomic import write_text
from ..errors import MontageError
from ..execute import Failed, Task
from ..media.ffmpeg import ffmpeg_path
from ..media.fingerprint import fingerprint
from .cloud import REMOTE_SCRIPT, REMOTE_SCRIPT_NAME, SECONDS_PER_MEGAPIXEL, RemoteSaid, package_job, verify_video, \
    write_manifest
from .local import PROBE_TIMEOUT_S, SOFTWARE_VULKAN, NcnnStatus, ncnn_status, ncnn_timeout, upscale_ncnn
from .ranges import UpscaleError, UpscaleJob

RESULT_MARGIN_S = PROBE_TIMEOUT_S + 60.0   # beyond ncnn's own bound: the worker's probe, bytes back
WEIGHTS_DIR = "montage-ai-weights"         # under the worker's temporary folder: fetched once per node
WEIGHTS_FETCH_S = 300.0                    # torch's first run on a node: the weights (about 65 MB at most)


class RayUpscaled(NamedTuple):
    """A range upscaled on a worker: the lossless intermediate, the engine (ncnn, PyTorch) and
    what it ran on there."""

    video: bytes
    device: str
    engine: str = "ncnn"


def upscale_on_worker(job: UpscaleJob) -> RayUpscaled | Failed:
    """On the worker: PyTorch where installed, else (or when it fails) ncnn; the bytes back."""
    tried = []
    if torch_installed():
        try:
            with tempfile.TemporaryDirectory(prefix="montage-upscale-") as folder:
                out, said = upscale_by_script(job, Path(folder), "torch", torch_timeout(job))
                setup = f" ({'; '.join(said.setup)})" if said.setup else ""
                return RayUpscaled(out.read_bytes(), f"CUDA{setup}", "PyTorch")
        except (MontageError, OSError) as exc:
            tried.append(f"PyTorch failed: {exc}")
    status = ncnn_status()
    if not status.available:
        return Failed("; ".join([*tried, f"Real-ESRGAN ncnn cannot run on the worker: {status.reason}"]))
    gpuid, device = worker_device(status, _ray_gpu_ids())
    try:
        with tempfile.TemporaryDirectory(prefix="montage-upscale-") as folder:
            out = Path(folder) / "video.mkv"
            upscale_ncnn(job, out, gpuid=gpuid)
            return RayUpscaled(out.read_bytes(), "; ".join([device, *tried]))
    except (MontageError, OSError) as exc:
        return Failed("; ".join([*tried, f"Real-ESRGAN ncnn failed on the worker ({device}): {exc}"]))


def torch_installed() -> bool:
    """PyTorch and realesrgan importable here (whether CUDA answers, the script finds out)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "realesrgan"))


def upscale_by_script(job: UpscaleJob, folder: Path, engine: str, timeout_s: float) -> tuple[Path, RemoteSaid]:
    """The Colab script run here, in a child process within `timeout_s`: its engines, manifest
    and output lines, so torch Real-ESRGAN has one implementation. Nothing is installed or
    patched here (MONTAGE_REMOTE_KEEP_PACKAGES). Returns the verified output and what it said."""
    (part,) = package_job(job, folder, limit_bytes=1 << 62)
    part.local_input.rename(folder / part.input_name)
    manifest = write_manifest(folder, 0, [part], {job.key(): job}, engine, "ffv1", ffmpeg_path())
    write_text(folder / REMOTE_SCRIPT_NAME, REMOTE_SCRIPT)
    said = RemoteSaid(names={part.name}, total=part.frames, report=lambda *_: None)
    weights = Path(tempfile.gettempdir()) / WEIGHTS_DIR
    env = {**os.environ, "MONTAGE_REMOTE_KEEP_PACKAGES": "1", "MONTAGE_WEIGHTS_DIR": str(weights)}
    done = procs.run([sys.executable, REMOTE_SCRIPT_NAME, manifest.name], timeout_s=timeout_s,
                     on_stdout_line=said.take, env=env, cwd=folder)
    if done.timed_out:
        raise UpscaleError(f"{job.describe()}: Real-ESRGAN ({engine}) ran past {timeout_s:.0f} s")
    if done.returncode != 0:
        why = said.errors[-1] if said.errors else done.stderr_tail() or f"exit {done.returncode}"
        raise UpscaleError(f"{job.describe()}: Real-ESRGAN ({engine}) failed: {why}")
    out = folder / part.output_name
    verify_video(out, job.frames, job.out_width, job.out_height, job.fps)
    return out, said


def torch_timeout(job: UpscaleJob) -> float:
    """The weights once, then three times a T4's pessimistic rate for the output's megapixels."""
    megapixels = job.frames * job.out_width * job.out_height / 1e6
    return WEIGHTS_FETCH_S + 60.0 + 3 * megapixels * SECONDS_PER_MEGAPIXEL[job.model]


def worker_device(status: NcnnStatus, ray_gpus: list[int]) -> tuple[int, str]:
    """The ncnn device index and its description. With several hardware Vulkan GPUs on a node,
    Ray's k-th GPU is taken to be the k-th of them, so tasks Ray put on different GPUs do not
    share one; otherwise (one GPU, none, MONTAGE_UPSCALE_GPU set) it is ncnn_status's choice."""
    hardware = [i for i, name in enumerate(status.devices) if not SOFTWARE_VULKAN.search(name)]
    if status.gpuid >= 0 and len(hardware) > 1 and ray_gpus and not os.environ.get("MONTAGE_UPSCALE_GPU", "").strip():
        gpuid = hardware[ray_gpus[0] % len(hardware)]
        return gpuid, f"Vulkan GPU {gpuid}: {status.devices[gpuid]}"
    return status.gpuid, status.reason


def _ray_gpu_ids() -> list[int]:
    """The GPUs Ray assigned to this task (empty outside a Ray task)."""
    try:
        import ray

        return [int(i) for i in ray.get_gpu_ids()] if ray.is_initialized() else []
    except (ImportError, ValueError):
        return []


def _files(job: UpscaleJob) -> dict[Path, str]:
    return {job.source: fingerprint(job.source)}


def _relocate(job: UpscaleJob, moved: dict[Path, Path]) -> UpscaleJob:
    return job.model_copy(update={"source": moved.get(job.source, job.source)})


def _timeout_s(job: UpscaleJob) -> float:
    """PyTorch's bound (a worker may try it first), ncnn's own bound on the CPU (generous for a
    GPU), the worker's probe and the return."""
    return torch_timeout(job) + ncnn_timeout(job) + RESULT_MARGIN_S


UPSCALE_GPU = Task("upscale", run=upscale_on_worker, files=_files, relocate=_relocate, timeout_s=_timeout_s,
                   gpus=1, here_on_failure=False)
