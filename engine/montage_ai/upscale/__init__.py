"""Real-ESRGAN upscaling of the source ranges a montage uses, before the conform.

`upscale_spec(spec, options, cache_dir)` returns the RenderSpec re-pointed at upscaled
intermediates plus a report; backends, in order: Ray GPU workers (gpu_task.py), Colab GPU
through cgpu (cloud.py), local ncnn (local.py), ffmpeg Lanczos (fallback.py). Planning is
pure (ranges.py).
"""

from .apply import UpscaleEntry, UpscaleOptions, UpscaleReport, chain_line, doctor_line, upscale_spec
from .ranges import UpscaleError, UpscaleJob, UpscalePlan, plan_upscale, remap_spec

__all__ = ["UpscaleEntry", "UpscaleError", "UpscaleJob", "UpscaleOptions", "UpscalePlan", "UpscaleReport",
           "chain_line", "doctor_line", "plan_upscale", "remap_spec", "upscale_spec"]
