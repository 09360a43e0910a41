"""What the renderer is asked to do, derived from any OTIO timeline.

RenderSpec is flat and explicit: pieces of picture in record order (a clip, a dissolve between
two sources, or black), the audio spans to mix, and the output format. It is the boundary
between reading a timeline and conforming it, so both sides can be tested alone.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..direct.plan import Look

META_KEY = "montage_ai"
LOOK_EFFECT = "montage_ai.look"


class RenderSettings(BaseModel):
    """Output format, stored in the timeline so a re-render matches the first render."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps_num: int = Field(gt=0)
    fps_den: int = Field(1, gt=0)
    fit: Literal["crop", "pad"] = "crop"
    keep_clip_audio: bool = False
    crf: int = 20
    preset: str = "veryfast"

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)


class SourceSpan(BaseModel):
    path: Path
    start_s: float          # seconds from the file's start


class Piece(BaseModel):
    """A run of output frames drawn from one source, a dissolve between two, or black."""

    kind: Literal["clip", "dissolve", "black"]
    record_start_frame: int
    frames: int = Field(gt=0)
    a: SourceSpan | None = None
    b: SourceSpan | None = None      # the incoming source of a dissolve


class AudioSpan(BaseModel):
    path: Path
    record_start_s: float
    source_start_s: float
    duration_s: float
    fade_out_s: float = 0.0


class RenderSpec(BaseModel):
    settings: RenderSettings
    total_frames: int
    pieces: list[Piece]
    audio: list[AudioSpan]
    look: Look | None = None

    @property
    def duration_s(self) -> float:
        return self.total_frames / float(self.settings.fps)
