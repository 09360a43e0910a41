"""Music analysis with librosa -> MusicAnalysis.

A functional numeric core: samples in, arrays out, units in parameter names, no hidden state.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class Section(BaseModel):
    """A structural part of the song, in seconds from the montage start."""

    start_s: float
    end_s: float
    label: str          # intro | verse | chorus | drop | bridge | outro (or low/high when unsure)
    energy: float       # mean normalised energy 0..1 over the section
    level: str          # low | mid | high: the planner's pacing key


class MusicAnalysis(BaseModel):
    """Everything the planner needs from the song. Times are seconds from the montage start,
    that is after `start_offset_s` into the file."""

    path: Path
    start_offset_s: float = 0.0
    duration_s: float                   # analysed length (file length minus the offset)
    file_duration_s: float
    tempo_bpm: float
    beat_times_s: list[float]
    downbeat_times_s: list[float]
    beats_per_bar: int = 4
    energy_hop_s: float                 # spacing of the energy curve samples
    energy: list[float]                 # normalised 0..1 RMS energy curve
    sections: list[Section]


def analyze_music(path: Path, start_offset_s: float = 0.0) -> MusicAnalysis:
    raise NotImplementedError
