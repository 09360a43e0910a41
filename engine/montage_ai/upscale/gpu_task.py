"""Upscaling as an executor Task for Ray GPU workers: one range per task, `num_gpus=1`.

The worker runs the same Real-ESRGAN ncnn path as this machine (`upscale_ncnn`: a child
process, bounded in time) on the GPU Ray gave it, into a temporary folder, and the lossless
intermediate comes back as bytes: only this machine writes the cache (apply.py). A worker that
cannot upscale (no ncnn there, a failing driver) answers Failed with its reason instead of
raising, so the message reaches the report whole and the range goes on down the chain; the
executor answers Failed too for what the cluster could not run (no GPU, a timeout, a lost node).
A worker whose ncnn sees only a software Vulkan device runs Real-ESRGAN on its CPU: the same
model, slower, and the device it ran on travels back with the bytes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NamedTuple

from ..errors import MontageError
from ..execute import Failed, Task
from ..media.fingerprint import fingerprint
from .local import PROBE_TIMEOUT_S, SOFTWARE_VULKAN, NcnnStatus, ncnn_status, ncnn_timeout, upscale_ncnn
from .ranges import UpscaleJob

RESULT_MARGIN_S = PROBE_TIMEOUT_S + 60.0   # beyond ncnn's own bound: the worker's probe, bytes back


class RayUpscaled(NamedTuple):
    """A range upscaled on a worker: the lossless intermediate, and what ncnn ran on there."""

    video: bytes
    device: str


def upscale_on_worker(job: UpscaleJob) -> RayUpscaled | Failed:
    """On the worker: Real-ESRGAN ncnn on the GPU Ray assigned, the intermediate's bytes back."""
    status = ncnn_status()
    if not status.available:
        return Failed(f"Real-ESRGAN ncnn cannot run on the worker: {status.reason}")
    gpuid, device = worker_device(status, _ray_gpu_ids())
    try:
        with tempfile.TemporaryDirectory(prefix="montage-upscale-") as folder:
            out = Path(folder) / "video.mkv"
            upscale_ncnn(job, out, gpuid=gpuid)
            return RayUpscaled(out.read_bytes(), device)
    except (MontageError, OSError) as exc:
        return Failed(f"Real-ESRGAN ncnn failed on the worker ({device}): {exc}")


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
    """ncnn's own bound on the CPU (generous for a GPU), plus the worker's probe and the return."""
    return ncnn_timeout(job) + RESULT_MARGIN_S


UPSCALE_GPU = Task("upscale", run=upscale_on_worker, files=_files, relocate=_relocate, timeout_s=_timeout_s,
                   gpus=1, here_on_failure=False)
