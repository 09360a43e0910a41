"""One settings model for the whole engine.

Precedence, highest first: command-line flags > process environment > `.env` file > defaults.
The environment names are the ones the deployment guide documents (CGPU_*, MEMORY_LIMIT_GB,
MAX_PARALLEL_JOBS, OLLAMA_HOST); per-run choices (style, duration, ...) are flags that also
read MONTAGE_* variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from fractions import Fraction

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .choices import ASPECTS, EDL_SOURCE_TIMECODES, EXPORT_FORMATS, RESOLUTIONS, SHORT_SIDE, TITLES
from .errors import MontageError, plain_validation_message
from .timeline.model import X264Preset

Aspect = Literal[ASPECTS]           # the lists users choose from: montage_ai/choices.json
Resolution = Literal[RESOLUTIONS]
EdlSourceTimecode = Literal[EDL_SOURCE_TIMECODES]
Titles = Literal[TITLES]

_SHORT_SIDE = SHORT_SIDE


MIN_FPS, MAX_FPS = 1, 240


def parse_frame_rate(text: str) -> Fraction:
    """"25", "29.97" or "30000/1001" -> an exact rate within 1-240 fps, or ValueError saying why."""
    try:
        rate = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError("not a frame rate (use 25, 29.97 or 30000/1001)") from None
    if not MIN_FPS <= rate <= MAX_FPS:
        raise ValueError(f"outside {MIN_FPS}-{MAX_FPS} fps")
    return rate


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Engine configuration. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        allow_inf_nan=False,
        env_ignore_empty=True,   # VAR= (as compose passes an unset setting) keeps the default
    )

    # --- deployment (names fixed by the deployment guide) ---
    cgpu_enabled: bool = Field(False, validation_alias=_env("CGPU_ENABLED"), description="Use Gemini through `cgpu serve` as the Creative Director")
    cgpu_host: str = Field("127.0.0.1", validation_alias=_env("CGPU_HOST"), description="Host where `cgpu serve` listens (host.docker.internal from a container)")
    cgpu_port: int = Field(8080, validation_alias=_env("CGPU_PORT"), ge=1, le=65535, description="Port of `cgpu serve`")
    cgpu_bind: str = Field("", validation_alias=_env("CGPU_BIND"), description="Address `cgpu-start` binds to: empty = CGPU_HOST; `docker` = the Docker bridge (docker0), which containers reach as host.docker.internal and the network does not. cgpu serve has no authentication: never a public address")
    cgpu_model: str = Field("gemini-2.5-flash", validation_alias=_env("CGPU_MODEL"), description="Gemini model asked through cgpu serve")
    cgpu_gpu_enabled: bool = Field(False, validation_alias=_env("CGPU_GPU_ENABLED"), description="Run upscaling on a Colab GPU through `cgpu run`")
    cgpu_timeout: float = Field(1800.0, validation_alias=_env("CGPU_TIMEOUT"), gt=0, description="Seconds allowed for one cloud GPU job")
    memory_limit_gb: float = Field(8.0, validation_alias=_env("MEMORY_LIMIT_GB"), gt=0, description="Memory budget the engine keeps to (workers, ffmpeg threads)")
    ray_address: str = Field("", validation_alias=_env("RAY_ADDRESS"), max_length=500, description="A Ray cluster to send clip analysis, render chunks and upscaling (on its GPU nodes) to (host:port, or `auto` for one started on this machine); empty: this machine only. Needs `pip install 'montage-ai[ray]'`")
    max_parallel_jobs: int = Field(2, validation_alias=_env("MAX_PARALLEL_JOBS"), ge=1, description="Most ffmpeg/analysis jobs at once")
    ollama_host: str = Field("", validation_alias=_env("OLLAMA_HOST"), description="Ollama base URL; empty disables it")
    ollama_model: str = Field("llama3.1:8b", validation_alias=_env("OLLAMA_MODEL"), description="Model asked through Ollama")
    llm_timeout: float = Field(150.0, validation_alias=_env("LLM_TIMEOUT"), gt=0, description="Seconds to wait for one LLM reply (longer than cgpu serve's own 120 s)")
    llm_backoff: float = Field(1.0, validation_alias=_env("LLM_BACKOFF"), ge=0, description="First retry delay after a connection error or 5xx, seconds")
    openai_base_url: str = Field("", validation_alias=_env("OPENAI_BASE_URL"), description="Any OpenAI-compatible server; empty disables it")
    openai_api_key: str = Field("", validation_alias=_env("OPENAI_API_KEY"), description="API key for OPENAI_BASE_URL")
    openai_model: str = Field("", validation_alias=_env("OPENAI_MODEL"), description="Model name for OPENAI_BASE_URL")
    cache_dir: Path = Field(Path.home() / ".cache" / "montage-ai", validation_alias=_env("MONTAGE_CACHE_DIR"), description="Analysis and render caches")

    # --- per run ---
    clips: Path | None = Field(None, validation_alias=_env("MONTAGE_CLIPS"), description="Folder of video clips")
    music: Path | None = Field(None, validation_alias=_env("MONTAGE_MUSIC"), description="Music file")
    out: Path = Field(Path("output"), validation_alias=_env("MONTAGE_OUT"), description="Output folder")
    style: str = Field("dynamic", validation_alias=_env("MONTAGE_STYLE"), description="Style preset name")
    duration: float | None = Field(None, validation_alias=_env("MONTAGE_DURATION"), gt=0, description="Target length in seconds (default: the music)")
    music_start: float = Field(0.0, validation_alias=_env("MONTAGE_MUSIC_START"), ge=0, description="Start offset into the song, seconds")
    aspect: Aspect = Field("16:9", validation_alias=_env("MONTAGE_ASPECT"), description="Output aspect ratio")
    resolution: Resolution = Field("1080p", validation_alias=_env("MONTAGE_RESOLUTION"), description="Output size by its short side")
    fps: str | None = Field(None, validation_alias=_env("MONTAGE_FPS"), description="Output frame rate, e.g. 25 or 30000/1001 (default: the sources' most common)")
    fit: Literal["crop", "pad"] = Field("crop", validation_alias=_env("MONTAGE_FIT"), description="Fill the frame by cropping, or letterbox")
    seed: int = Field(0, ge=0, le=2**63 - 1, validation_alias=_env("MONTAGE_SEED"), description="Seed for deterministic shot choice")
    prompt: str = Field("", validation_alias=_env("MONTAGE_PROMPT"), max_length=4000, description="Plain-language brief for the Creative Director")
    variants: int = Field(1, validation_alias=_env("MONTAGE_VARIANTS"), ge=1, le=5, description="Plans asked for in one LLM request; each is rendered")
    upscale: bool = Field(False, validation_alias=_env("MONTAGE_UPSCALE"), description="Upscale low-resolution sources with Real-ESRGAN before the conform")
    upscale_model: Literal["realesr-animevideov3", "realesrgan-x4plus"] = Field("realesr-animevideov3", validation_alias=_env("MONTAGE_UPSCALE_MODEL"), description="Real-ESRGAN model")
    upscale_scale: Literal[2, 3, 4] | None = Field(None, validation_alias=_env("MONTAGE_UPSCALE_SCALE"), description="Upscale factor (default: the smallest that reaches the output size)")
    strict_cloud: bool = Field(False, validation_alias=_env("MONTAGE_STRICT_CLOUD"), description="A cloud GPU failure is an error instead of a fallback to local upscaling")
    preview: bool = Field(False, validation_alias=_env("MONTAGE_PREVIEW"), description="Fast low-resolution render of the same cut (montage-preview.mp4)")
    export: str = Field("", validation_alias=_env("MONTAGE_EXPORT"), description=f"Also write the timeline for other editors: {','.join(EXPORT_FORMATS)}")
    edl_source_timecode: EdlSourceTimecode = Field("own", validation_alias=_env("MONTAGE_EDL_SOURCE_TIMECODE"), description="Rate of an EDL's source timecodes: each file's own (conform by source timecode) or the sequence's (single-rate readers)")
    titles: Titles | None = Field(None, validation_alias=_env("MONTAGE_TITLES"), description="Text on screen (titles, credits) in the footage: avoid, open (open on a title) or allow (default: the plan's, which avoids it)")
    keep_clip_audio: bool = Field(False, validation_alias=_env("MONTAGE_KEEP_CLIP_AUDIO"), description="Mix the clips' own sound under the music")
    crf: int = Field(20, validation_alias=_env("MONTAGE_CRF"), ge=0, le=51, description="x264 quality of the single final encode")
    preset: X264Preset = Field("veryfast", validation_alias=_env("MONTAGE_X264_PRESET"), description="x264 speed preset of the final encode")
    force: bool = Field(False, validation_alias=_env("MONTAGE_FORCE"), description="Replace existing files in the output folder that montage-ai did not write (never an input)")

    @field_validator("fps")
    @classmethod
    def _valid_fps(cls, value: str | None) -> str | None:
        if value is not None:
            parse_frame_rate(value)
        return value

    def output_size(self) -> tuple[int, int]:
        """Width and height for the aspect and resolution, both even."""
        short = _SHORT_SIDE[self.resolution]
        a, b = (int(x) for x in self.aspect.split(":"))
        if a >= b:
            h, w = short, short * a / b
        else:
            w, h = short, short * b / a
        return int(round(w / 2)) * 2, int(round(h / 2)) * 2

    def worker_count(self, pixels: int | None = None) -> int:
        """Parallel ffmpeg/analysis jobs: MAX_PARALLEL_JOBS, capped by the cores and by
        MEMORY_LIMIT_GB at an estimated 0.3 GB per job at 1080p (more for bigger frames)."""
        w, h = self.output_size()
        scale = (pixels or w * h) / (1920 * 1080)
        per_job_gb = 0.15 + 0.15 * max(scale, 0.25)
        by_memory = max(1, int(self.memory_limit_gb / per_job_gb))
        return max(1, min(self.max_parallel_jobs, by_memory, os.cpu_count() or 1))

    def upscale_options(self):
        """The upscaler's options from these settings (imported lazily: an optional feature)."""
        from .upscale import UpscaleOptions

        return UpscaleOptions(enabled=self.upscale, model=self.upscale_model, scale=self.upscale_scale,
                              cloud=self.cgpu_gpu_enabled, strict_cloud=self.strict_cloud,
                              cgpu_timeout_s=self.cgpu_timeout, threads=self.encoder_threads())

    def encoder_threads(self) -> int:
        """Threads the render's encoders share: x264's frame buffers grow with its threads."""
        return max(1, min(os.cpu_count() or 1, int(self.memory_limit_gb * 2)))


class SettingsError(MontageError):
    """A setting's value is not allowed; the message names the flag or variable."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def explain_validation(exc: ValidationError, flags: dict[str, str], given: set[str]) -> str:
    """One line for the first invalid setting: the flag when the user gave one, else the
    environment variable (or .env entry) it was read from."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err.get("loc") else ""
    info = Settings.model_fields.get(field)
    if field in given:
        where = flags.get(field, "--" + field.replace("_", "-"))
    elif info is not None and isinstance(info.validation_alias, AliasChoices):
        where = str(info.validation_alias.choices[0])
    else:
        where = field or "settings"
    length = f" (it has {len(err['input']):,})" if "too_long" in str(err.get("type")) and hasattr(err.get("input"), "__len__") else ""
    return f"{where} {_shown(err.get('input'))}: {plain_validation_message(err)}{length}"


def load_settings(flags: dict[str, str] | None = None, **given: object) -> Settings:
    """Settings from flags (`given`), the environment and .env, or a SettingsError naming the
    first bad value and where it came from. `flags` maps field names to their flag spelling."""
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(explain_validation(exc, flags or {}, set(given))) from None
