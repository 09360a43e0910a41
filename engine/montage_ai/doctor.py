"""`montage-ai doctor`: what this machine can do, and what is configured, in one screen.

The LLM lines say what they checked. cgpu serve's `/health` never runs gemini, so it proves
only that the proxy listens; Ollama's `/api/tags` only that the server answers. `--probe`
(`report(s, probe=True)`) sends one tiny request through each configured backend, with a short
timeout, and says whether a real answer came back: it costs one request of quota each.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import time
from pathlib import Path

import requests

from .direct.backends import Backend, Exchange, LLMError, configured_backends, ollama_base_url, one_line
from .media.ffmpeg import ffmpeg_encoders, ffmpeg_path, ffmpeg_version
from .settings import Settings

PROBE_TIMEOUT_S = 60.0   # a cold gemini CLI start plus a one-word answer takes 5-20 s
PROBE_INSTRUCTIONS = 'Reply with exactly {"ok": true} and nothing else.'
PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}}

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


def probe_line(backend: Backend) -> str:
    """Send one tiny request through `backend`; say in one line whether a real answer came back."""
    t0 = time.monotonic()
    try:
        text = backend.complete(Exchange(instructions=PROBE_INSTRUCTIONS, input_text="ping"), PROBE_SCHEMA)
    except LLMError as exc:
        return f"  probe    {backend.name}: FAILED after {time.monotonic() - t0:.1f} s: {exc.kind}: {exc}"
    except Exception as exc:  # doctor reports, it does not fail
        return f"  probe    {backend.name}: FAILED: {type(exc).__name__}: {one_line(str(exc), 200)}"
    took = time.monotonic() - t0
    if not text.strip():
        return f"  probe    {backend.name}: {backend.where()} answered in {took:.1f} s, but with no text"
    return (f"  probe    {backend.name}: ok, {backend.model} answered in {took:.1f} s "
            f"through {backend.where()}: {one_line(text, 60)!r}")


def in_container() -> bool:
    return Path("/.dockerenv").exists()


HOST_CGPU_ENV = "MONTAGE_HOST_CGPU"   # `--docker` passes the host's view: "running ADDR:PORT" or "stopped"


def _cgpu_hint(host_state: str | None = None) -> str:
    """What to do when cgpu serve does not answer: on the host, start it; in a container, say
    which of "not running" and "not reachable from here" it is, when the launcher told us."""
    if not in_container():
        return "start it with ./montage-ai.sh cgpu-start"
    state = os.environ.get(HOST_CGPU_ENV, "") if host_state is None else host_state
    fix = "on the host run `./montage-ai.sh cgpu-stop`, then `CGPU_BIND=docker ./montage-ai.sh cgpu-start`"
    if state.startswith("running "):
        return (f"cgpu serve runs on the host but listens on {state.split(' ', 1)[1]}, which a container cannot "
                f"reach; {fix}")
    if state == "stopped":
        return "cgpu serve is not running on the host; start it there with `CGPU_BIND=docker ./montage-ai.sh cgpu-start`"
    return ("from this container: cgpu serve is either not running on the host or listening only on the host's "
            f"127.0.0.1 (`./montage-ai.sh cgpu-status` on the host tells which); {fix}")


def _llm_lines(s: Settings, probe: bool) -> list[str]:
    """The director lines; with `probe`, each configured backend's probe line under its own."""
    from .remote.cgpu_serve import health

    ok, why = health(s.cgpu_host, s.cgpu_port)
    probes: dict[str, str] = {}
    if probe:
        quick = s.model_copy(update={"llm_timeout": min(s.llm_timeout, PROBE_TIMEOUT_S)})
        probes = {b.name: probe_line(b) for b in configured_backends(quick, include_cgpu=s.cgpu_enabled or ok)}
    if ok:
        state = ("listening (its /health answers, but /health never runs gemini: it does not prove that "
                 "gemini answers" + (")" if probe else "; `montage-ai doctor --probe` sends one real request)"))
    else:
        state = f"{why}; {_cgpu_hint()}"
    lines = ["director   offline styles: always available",
             f"director   cgpu serve ({'enabled' if s.cgpu_enabled else 'disabled: --cgpu or CGPU_ENABLED=1'}) "
             f"at {s.cgpu_host}:{s.cgpu_port}, model {s.cgpu_model}: {state}"]
    lines += [probes["cgpu"]] if "cgpu" in probes else []
    lines.append(f"cgpu       cli {shutil.which('cgpu') or 'not installed (npm install -g cgpu, Node 18+)'}; "
                 f"gemini cli {shutil.which('gemini') or 'not installed (npm install -g @google/gemini-cli)'}")
    if s.ollama_host.strip():
        root = ollama_base_url(s.ollama_host)
        lines.append(f"director   ollama at {root} (OLLAMA_HOST={s.ollama_host}): {_reachable(root + '/api/tags')}")
        lines += [probes["ollama"]] if "ollama" in probes else []
    else:
        lines.append("director   ollama disabled (OLLAMA_HOST empty)")
    lines.append(f"director   openai-compatible {'at ' + s.openai_base_url if s.openai_base_url else 'disabled (OPENAI_BASE_URL empty)'}")
    lines += [probes["openai-compatible"]] if "openai-compatible" in probes else []
    if probe and not probes:
        lines.append("  probe    no LLM backend configured: nothing to probe")
    return lines


def report(s: Settings, probe: bool = False) -> str:
    """The doctor screen; with `probe`, one real request per configured LLM backend."""
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
    lines += _llm_lines(s, probe)
    from .upscale import chain_line, doctor_line

    lines.append(doctor_line(s.cgpu_gpu_enabled, cgpu_timeout_s=s.cgpu_timeout))
    lines.append(chain_line(s.cgpu_gpu_enabled, s.ray_address))
    return "\n".join(lines)
