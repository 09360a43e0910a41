"""What the renderer is asked to do, derived from any OTIO timeline.

RenderSpec is flat and explicit: pieces of picture in record order (a clip, a dissolve between
two sources, or black), the audio spans to mix, and the output format. It is the boundary
between reading a timeline and conforming it, so both sides can be tested alone.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

from montage_otio.vocab import LOOK_EFFECT, META_KEY  # the shared vocabulary, re-exported here
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..direct.plan import Look

X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
MAX_SIDE = 8192          # x264's level 6.2 limit is 8192x4320; bigger is a damaged timeline
MAX_FPS = 240


class RenderSettings(BaseModel):
    """Output format, stored in the timeline so a re-render matches the first render. A
    timeline can come from anywhere, so every value is bounded here, before ffmpeg sees it."""

    model_config = ConfigDict(allow_inf_nan=False)

    width: int = Field(ge=16, le=MAX_SIDE)
    height: int = Field(ge=16, le=MAX_SIDE)
    fps_num: int = Field(gt=0, le=MAX_FPS * 1001)
    fps_den: int = Field(1, gt=0, le=1001)
    fit: Literal["crop", "pad"] = "crop"
    keep_clip_audio: bool = False
    crf: int = Field(20, ge=0, le=51)
    preset: X264Preset = "veryfast"

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (H.264 in 4:2:0)")
        return value

    @model_validator(mode="after")
    def _sane_rate(self) -> "RenderSettings":
        if not 1 <= self.fps <= MAX_FPS:
            raise ValueError(f"frame rate {self.fps_num}/{self.fps_den} is outside 1-{MAX_FPS} fps")
        return self

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)


class SourceSpan(BaseModel):
    """Where a piece reads a source: `start` is a media time (docs/frame-rule.md: seconds from
    the first frame), exact, so the frame rule can be applied without float rounding."""

    path: Path
    start: Fraction = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_seconds(cls, data: object) -> object:
        """Callers holding float seconds may pass `start_s`; it is snapped to a microsecond grid."""
        if isinstance(data, dict) and "start_s" in data and "start" not in data:
            seconds = Fraction(float(data["start_s"])).limit_denominator(1_000_000)
            data = {k: v for k, v in data.items() if k != "start_s"} | {"start": seconds}
        return data

    @property
    def start_s(self) -> float:
        return float(self.start)


class Piece(BaseModel):
    """A run of output frames drawn from one source, a dissolve between two, or black."""

    kind: Literal["clip", "dissolve", "black"]
    record_start_frame: int
    frames: int = Field(gt=0)
    a: SourceSpan | None = None
    b: SourceSpan | None = None      # the incoming source of a dissolve


class AudioSpan(BaseModel):
    """A sound clip to mix: where it sits on the timeline and where it reads the file (seconds
    from its first sample), exact fractions rounded once to a sample by the mixer."""

    path: Path
    record_start: Fraction = Field(ge=0)
    source_start: Fraction = Field(ge=0)
    duration: Fraction = Field(gt=0)
    fade_out_s: float = Field(0.0, ge=0)

    @property
    def record_start_s(self) -> float:
        return float(self.record_start)

    @property
    def source_start_s(self) -> float:
        return float(self.source_start)

    @property
    def duration_s(self) -> float:
        return float(self.duration)


class RenderSpec(BaseModel):
    settings: RenderSettings
    total_frames: int
    pieces: list[Piece]
    audio: list[AudioSpan]
    look: Look | None = None

    @property
    def duration_s(self) -> float:
        return self.total_frames / float(self.settings.fps)
