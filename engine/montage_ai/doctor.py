"""`montage-ai doctor`: what this machine can do, and what is configured, in one screen."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
from pathlib import Path

import requests

from .media.ffmpeg import ffmpeg_encoders, ffmpeg_path, ffmpeg_version
from .settings import Settings

_PACKAGES = ["opentimelineio", "numpy", "librosa", "numba", "av", "imageio-ffmpeg", "openai", "pydantic", "pydantic-settings"]


def _dir_size(path: Path) -> str:
    if not path.exists():
        return "empty"
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{total / 1e6:.1f} MB"


def _reachable(url: str) -> str:
    try:
        r = requests.get(url, timeout=2)
        return f"reachable ({r.status_code})"
    except requests.RequestException as exc:
        return f"not reachable ({exc.__class__.__name__})"


def report(s: Settings) -> str:
    lines = []
    try:
        enc = ffmpeg_encoders()
        lines.append(f"ffmpeg     {ffmpeg_path()} - {ffmpeg_version()}")
        on_path = shutil.which("ffmpeg")
        if on_path and on_path != ffmpeg_path():
            lines.append(f"  note     {on_path} on PATH is older than ffmpeg 6 and is not used")
        for name in ("libx264", "aac"):
            lines.append(f"  encoder  {name}: {'ok' if name in enc else 'MISSING'}")
    except Exception as exc:  # doctor reports, it does not fail
        lines.append(f"ffmpeg     not usable: {exc}")
    for pkg in _PACKAGES:
        try:
            lines.append(f"package    {pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            lines.append(f"package    {pkg} MISSING")
    lines.append(f"cache      {s.cache_dir} ({_dir_size(s.cache_dir)})")
    lines.append(f"numba      NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR', '(unset: first analysis compiles for ~1 min)')}")
    lines.append(f"resources  MEMORY_LIMIT_GB={s.memory_limit_gb} MAX_PARALLEL_JOBS={s.max_parallel_jobs} -> {s.worker_count()} workers")
    from .remote.cgpu_serve import health

    ok, why = health(s.cgpu_host, s.cgpu_port)
    state = "healthy" if ok else why
    lines.append("director   offline styles: always available")
    lines.append(f"director   cgpu serve ({'enabled' if s.cgpu_enabled else 'disabled: --cgpu or CGPU_ENABLED=1'}) "
                 f"at {s.cgpu_host}:{s.cgpu_port}, model {s.cgpu_model}: {state}"
                 + ("" if ok else "; start it with ./montage-ai.sh cgpu-start"))
    lines.append(f"cgpu       cli {shutil.which('cgpu') or 'not installed (npm install -g cgpu, Node 18+)'}; "
                 f"gemini cli {shutil.which('gemini') or 'not installed (npm install -g @google/gemini-cli)'}")
    lines.append(f"director   ollama {'at ' + s.ollama_host + ': ' + _reachable(s.ollama_host.rstrip('/') + '/api/tags') if s.ollama_host else 'disabled (OLLAMA_HOST empty)'}")
    lines.append(f"director   openai-compatible {'at ' + s.openai_base_url if s.openai_base_url else 'disabled (OPENAI_BASE_URL empty)'}")
    from .upscale import doctor_line

    lines.append(doctor_line(s.cgpu_gpu_enabled, cgpu_timeout_s=s.cgpu_timeout))
    return "\n".join(lines)
