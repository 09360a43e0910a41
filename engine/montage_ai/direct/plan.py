"""EditPlan: the one model every director produces.

Style presets, the offline director and (later) LLM directors all end in an EditPlan; the
cutter consumes nothing else. Every field is bounded, and every field changes the cut, so a
preset or an LLM cannot set a knob that silently does nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EnergyLevel = Literal["low", "mid", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BeatRange(_Strict):
    """Cut length in grid units (beats, or bars when cutting on downbeats)."""

    min_beats: int = Field(ge=1, le=32)
    max_beats: int = Field(ge=1, le=32)

    @model_validator(mode="after")
    def _ordered(self) -> "BeatRange":
        if self.max_beats < self.min_beats:
            raise ValueError(f"max_beats {self.max_beats} < min_beats {self.min_beats}")
        return self


class Pacing(_Strict):
    """Cut lengths by section energy: short where the music is loud, long where it is calm."""

    low: BeatRange
    mid: BeatRange
    high: BeatRange

    def for_level(self, level: str) -> BeatRange:
        return getattr(self, level if level in ("low", "mid", "high") else "mid")


class TransitionStyle(_Strict):
    """Where dissolves go. They are centred on the cut, so cuts stay on the beat."""

    kind: Literal["cut", "dissolve"] = "cut"
    duration_beats: float = Field(1.0, ge=0.25, le=4.0)
    at: Literal["sections", "any"] = "sections"     # only at section changes, or at any cut
    probability: float = Field(1.0, ge=0.0, le=1.0)  # chance per eligible cut


class ShotWeights(_Strict):
    """How shot features add up to a shot's appeal for this style."""

    quality: float = Field(1.0, ge=0.0, le=3.0)      # the analyser's overall usable-frame score
    motion: float = Field(0.5, ge=-2.0, le=3.0)      # negative favours still, calm shots
    sharpness: float = Field(0.5, ge=0.0, le=3.0)
    brightness: float = Field(0.0, ge=-2.0, le=2.0)  # positive favours bright shots


class Look(_Strict):
    """A global grade applied in the single encode (ffmpeg eq)."""

    contrast: float = Field(1.0, ge=0.5, le=2.0)
    saturation: float = Field(1.0, ge=0.0, le=3.0)
    brightness: float = Field(0.0, ge=-0.3, le=0.3)

    def is_neutral(self) -> bool:
        return self.contrast == 1.0 and self.saturation == 1.0 and self.brightness == 0.0


class EditPlan(_Strict):
    """A complete, validated edit plan."""

    style: str
    description: str = ""
    pacing: Pacing
    section_pacing: dict[str, BeatRange] = Field(default_factory=dict)  # override by section label
    cut_on: Literal["beat", "downbeat"] = "beat"
    bar_aligned_section_changes: bool = True   # a change of pace waits for the section's first downbeat
    energy_match: float = Field(0.5, ge=0.0, le=1.0)  # high-motion shots for high-energy music
    weights: ShotWeights = Field(default_factory=ShotWeights)
    min_quality: float = Field(0.15, ge=0.0, le=1.0)  # below it a shot is used only when nothing else is left
    reuse_gap: int = Field(4, ge=1, le=100)     # segments before the same shot may return
    jump_cuts: bool = False                     # consecutive segments may come from one moment of a clip
    titles: Literal["avoid", "open", "allow"] = "avoid"  # text on screen (titles, credits): never, to open on, like footage
    transitions: TransitionStyle = Field(default_factory=TransitionStyle)
    look: Look = Field(default_factory=Look)
    music_fade_out_s: float = Field(1.5, ge=0.0, le=10.0)
    target_duration_s: float | None = Field(None, gt=0)
    favor_shots: list[str] = Field(default_factory=list)
    avoid_shots: list[str] = Field(default_factory=list)
    rationale: list[str] = Field(default_factory=list)
    director: str = "offline"

    def pacing_for(self, level: str, label: str) -> BeatRange:
        return self.section_pacing.get(label) or self.pacing.for_level(level)
