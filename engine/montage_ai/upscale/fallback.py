"""The upscaler of last resort: ffmpeg Lanczos with light sharpening.

It runs wherever ffmpeg does, in about real time, so a montage with `--upscale` always renders
even when neither Real-ESRGAN backend can. Frames come from the same decoder as the other
backends (same frame selection, rotation and crop), so the intermediates are interchangeable.
Lanczos alone looks soft next to Real-ESRGAN; a 5x5 unsharp mask on luma (amount 0.5) restores
some edge contrast without ringing.
"""

from __future__ import annotations

from pathlib import Path

from .local import LosslessWriter, Progress, iter_job_frames
from .ranges import UpscaleJob

SHARPEN = "unsharp=luma_msize_x=5:luma_msize_y=5:luma_amount=0.5:chroma_msize_x=5:chroma_msize_y=5:chroma_amount=0"


def lanczos_filter(width: int, height: int, sharpen: bool = True) -> str:
    chain = f"scale={width}:{height}:flags=lanczos+accurate_rnd+full_chroma_int,format=yuv444p"
    return f"{chain},{SHARPEN}" if sharpen else chain


def upscale_lanczos(job: UpscaleJob, out: Path, *, sharpen: bool = True, threads: int | None = None,
                    progress: Progress | None = None) -> str:
    """Write job's frames scaled by job.scale with Lanczos (+ unsharp) to a lossless `out`."""
    w, h = job.out_width, job.out_height
    with LosslessWriter(out, job.crop.w, job.crop.h, job.fps, vf=lanczos_filter(w, h, sharpen),
                        pix_fmt="yuv444p", threads=threads) as writer:
        for i, img in enumerate(iter_job_frames(job), start=1):
            writer.write(img)
            if progress is not None and (i % 8 == 0 or i == job.frames):
                progress(i, job.frames)
    return "ffmpeg lanczos" + (" + unsharp" if sharpen else "")
