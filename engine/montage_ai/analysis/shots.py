"""Shot analysis: one low-resolution decode pass per clip -> ClipAnalysis.

Like PySceneDetect, detectors see frames (small numpy arrays), never files: the decode loop
streams frames from PyAV and feeds per-frame features; boundaries and scores are computed from
those feature arrays.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..media.probe import MediaInfo


class Shot(BaseModel):
    """A continuous shot inside one clip, in seconds of source time (relative to the file start)."""

    id: str                     # short stable ID, e.g. "c02s03": clip 2, shot 3 (used by directors)
    clip_index: int
    start_s: float
    end_s: float                # exclusive
    score: float                # mean usable-frame quality 0..1
    motion: float               # mean motion 0..1
    sharpness: float            # mean sharpness 0..1
    brightness: float           # mean luma 0..1
    usable_s: float             # seconds of usable (not black/frozen/blurred) material


class UnusableRange(BaseModel):
    start_s: float
    end_s: float
    reason: str                 # black | frozen | blurred


class ClipAnalysis(BaseModel):
    """Per-clip analysis. The per-frame arrays are sampled at `sample_times_s`."""

    media: MediaInfo
    analysis_version: int
    shots: list[Shot]
    unusable: list[UnusableRange]
    sample_times_s: list[float]
    motion: list[float]         # 0..1 per sample
    sharpness: list[float]      # 0..1 per sample
    brightness: list[float]     # 0..1 per sample
    quality: list[float]        # 0..1 per sample, 0 inside unusable ranges


def analyze_clip(media: MediaInfo, clip_index: int) -> ClipAnalysis:
    raise NotImplementedError
