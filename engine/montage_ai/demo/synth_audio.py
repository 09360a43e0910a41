"""Synthesized drum tracks with exact ground truth (beats, downbeats, energy sections).

Used by tests, the demo and benchmarks: real music has no exact answer, a track we synthesize
does. A 4/4 groove: kick on every beat (stronger on downbeats), snare on 2 and 4, hi-hats on
8ths. "low" sections carry only a soft kick and soft hats; "high" sections carry the full kit
plus a bass line and a noise layer. Beat k starts at exactly `first_beat_s + k * 60 / bpm`
(rounded to the nearest sample); nothing sounds before the first beat.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import BaseModel

BEATS_PER_BAR = 4
_SOUNDFILE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
_FFMPEG_CODECS = {".mp3": ["-c:a", "libmp3lame", "-b:a", "192k"], ".m4a": ["-c:a", "aac", "-b:a", "192k"]}
_BASS_ROOTS_HZ = (55.0, 43.65, 65.41, 49.0)  # A1 F1 C2 G1, one per bar


class SectionTruth(BaseModel):
    start_s: float
    end_s: float
    level: str  # low | high


class DrumTrackTruth(BaseModel):
    """What the analysis should find in a track written by `make_drum_track`."""

    path: Path
    bpm: float
    duration_s: float
    sample_rate: int
    first_beat_s: float
    beat_times_s: list[float]
    downbeat_times_s: list[float]
    sections: list[SectionTruth]

    @property
    def section_boundaries_s(self) -> list[float]:
        """Interior boundaries between consecutive sections."""
        return [s.start_s for s in self.sections[1:]]

    def level_at(self, time_s: float) -> str:
        for s in self.sections:
            if s.start_s <= time_s < s.end_s:
                return s.level
        return self.sections[-1].level


class BeatScores(BaseModel):
    """How well detected beats match true ones (a true beat is found when a detection is within
    the tolerance)."""

    found_fraction: float
    median_abs_error_s: float       # over found beats
    median_signed_error_s: float    # detected minus true: a systematic lag shows here
    extra: int                      # detections matching no true beat


def score_beats(truth_s: list[float], detected_s: list[float], tolerance_s: float = 0.07) -> BeatScores:
    """Match every true beat to its nearest detection and summarise the errors."""
    truth = np.asarray(truth_s, dtype=float)
    found = np.asarray(detected_s, dtype=float)
    if truth.size == 0 or found.size == 0:
        return BeatScores(found_fraction=0.0, median_abs_error_s=float("inf"),
                          median_signed_error_s=float("inf"), extra=int(found.size))
    signed = found[None, :] - truth[:, None]
    nearest = signed[np.arange(truth.size), np.abs(signed).argmin(axis=1)]
    ok = np.abs(nearest) <= tolerance_s
    matched = (np.abs(signed) <= tolerance_s).any(axis=0)
    return BeatScores(
        found_fraction=float(ok.mean()),
        median_abs_error_s=float(np.median(np.abs(nearest[ok]))) if ok.any() else float("inf"),
        median_signed_error_s=float(np.median(nearest[ok])) if ok.any() else float("inf"),
        extra=int((~matched).sum()),
    )


# --- instrument voices: pure functions of (sample rate, amplitude, rng) -> samples ---------------


def kick(sample_rate: int, amplitude: float) -> np.ndarray:
    """A pitch-swept sine (150 -> 50 Hz) with a short click, so the attack is sharp."""
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    freq_hz = 50.0 + 100.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq_hz) / sample_rate
    body = np.sin(phase) * np.exp(-t / 0.12)
    click = np.exp(-t / 0.002) * 0.4
    return amplitude * (body + click)


def snare(sample_rate: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A 190 Hz body plus high-passed noise."""
    t = np.arange(int(0.2 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(t.size + 1)) * 0.5
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    return amplitude * (0.6 * body + noise * np.exp(-t / 0.07))


def hat(sample_rate: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Twice-differenced white noise with a 15 ms decay: energy mostly above 5 kHz."""
    t = np.arange(int(0.06 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(t.size + 2), n=2) * 0.35
    return amplitude * noise * np.exp(-t / 0.015)


def bass_note(sample_rate: int, freq_hz: float, duration_s: float, amplitude: float) -> np.ndarray:
    """A plucked sine with its 2nd harmonic, decaying over the beat."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    tone = np.sin(2 * np.pi * freq_hz * t) + 0.4 * np.sin(4 * np.pi * freq_hz * t)
    attack = np.minimum(t / 0.005, 1.0)
    return amplitude * tone * attack * np.exp(-t / 0.25)


def _add(out: np.ndarray, start: int, voice: np.ndarray) -> None:
    end = min(out.size, start + voice.size)
    if start < end:
        out[start:end] += voice[: end - start]


# --- layout --------------------------------------------------------------------------------------


def default_sections(duration_s: float, bpm: float, first_beat_s: float) -> list[tuple[float, str]]:
    """low-high-low-high in quarters snapped to downbeats for tracks >= 24 s, else all high."""
    if duration_s < 24.0:
        return [(0.0, "high")]
    bar_s = BEATS_PER_BAR * 60.0 / bpm
    starts = [0.0]
    for k in (1, 2, 3):
        bars = round((duration_s * k / 4 - first_beat_s) / bar_s)
        starts.append(first_beat_s + bars * bar_s)
    return list(zip(starts, ["low", "high", "low", "high"]))


def section_truths(sections: list[tuple[float, str]], duration_s: float) -> list[SectionTruth]:
    ordered = sorted(sections)
    if not ordered or ordered[0][0] > 0.0:
        ordered.insert(0, (0.0, ordered[0][1] if ordered else "high"))
    out = []
    for i, (start_s, level) in enumerate(ordered):
        if level not in ("low", "high"):
            raise ValueError(f"section level must be low or high, not {level!r}")
        end_s = ordered[i + 1][0] if i + 1 < len(ordered) else duration_s
        if end_s > start_s:
            out.append(SectionTruth(start_s=start_s, end_s=min(end_s, duration_s), level=level))
    return out


def synth_drums(
    bpm: float,
    duration_s: float,
    sample_rate: int,
    first_beat_s: float,
    sections: list[SectionTruth],
    seed: int,
    beat_times_s: list[float] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Render the groove -> (mono float32 samples peaking at 0.9, beat times in seconds).
    `beat_times_s`, when given, replaces the steady `bpm` grid (a tempo that changes)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    if beat_times_s is not None:
        beats = [t for t in beat_times_s if 0 <= t < duration_s - 0.05]
    else:
        beats = []
        k = 0
        while first_beat_s + k * 60.0 / bpm < duration_s - 0.05:
            beats.append(first_beat_s + k * 60.0 / bpm)
            k += 1

    def level_at(t: float) -> str:
        for s in sections:
            if s.start_s <= t < s.end_s:
                return s.level
        return sections[-1].level

    for k, t in enumerate(beats):
        beat_s = (beats[k + 1] - t) if k + 1 < len(beats) else (t - beats[k - 1] if k else 60.0 / bpm)
        start = int(round(t * sample_rate))
        high = level_at(t) == "high"
        in_bar = k % BEATS_PER_BAR
        _add(out, start, kick(sample_rate, (1.0 if in_bar == 0 else 0.6) * (1.0 if high else 0.55)))
        if high and in_bar in (1, 3):
            _add(out, start, snare(sample_rate, 0.55, rng))
        for eighth in (0, 1):
            h_start = int(round((t + eighth * beat_s / 2) * sample_rate))
            _add(out, h_start, hat(sample_rate, 0.3 if high else 0.12, rng))
        if high:
            root = _BASS_ROOTS_HZ[(k // BEATS_PER_BAR) % len(_BASS_ROOTS_HZ)]
            _add(out, start, bass_note(sample_rate, root, beat_s, 0.35 if in_bar == 0 else 0.25))

    # a steady noise layer under the high sections (raises their energy without new onsets)
    for s in sections:
        if s.level == "high":
            a, b = int(round(max(s.start_s, first_beat_s) * sample_rate)), int(round(s.end_s * sample_rate))
            if b > a:
                noise = np.cumsum(rng.standard_normal(b - a))  # brown-ish noise, low-heavy
                noise -= np.convolve(noise, np.ones(256) / 256, mode="same")
                out[a:b] += 0.04 * noise / (np.std(noise) + 1e-12)

    peak = float(np.max(np.abs(out))) or 1.0
    return (out * (0.9 / peak)).astype(np.float32), beats


# --- files ---------------------------------------------------------------------------------------


def write_audio(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono samples as .wav/.flac/.ogg (soundfile) or .mp3/.m4a (ffmpeg)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _SOUNDFILE_FORMATS:
        fmt, subtype = _SOUNDFILE_FORMATS[suffix]
        sf.write(path, samples, sample_rate, format=fmt, subtype=subtype)
        return path
    if suffix in _FFMPEG_CODECS:
        from ..media.ffmpeg import run_ffmpeg

        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "in.wav"
            sf.write(wav, samples, sample_rate, subtype="PCM_16")
            run_ffmpeg(["-i", os.fspath(wav), *_FFMPEG_CODECS[suffix], os.fspath(path)],
                       what=f"encoding {path.name}", timeout_s=600)
        return path
    raise ValueError(f"{path}: unsupported audio suffix {suffix!r}")


def write_video(path: Path, duration_s: float, audio_path: Path | None = None) -> Path:
    """A small test-pattern video (lavfi), muxed with `audio_path` when given (AAC in mp4)."""
    from ..media.ffmpeg import run_ffmpeg

    argv = ["-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=24:duration={duration_s}"]
    if audio_path is not None:
        argv += ["-i", os.fspath(audio_path), "-c:a", "aac", "-b:a", "160k", "-shortest"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", os.fspath(path)]
    run_ffmpeg(argv, what=f"writing {Path(path).name}", timeout_s=600)
    return Path(path)


def beats_for_tempo(bpm_at: Callable[[float], float], duration_s: float, first_beat_s: float = 0.0) -> list[float]:
    """Beat times of a tempo that changes: each beat one period of the tempo at the previous one."""
    beats = [first_beat_s]
    while True:
        nxt = beats[-1] + 60.0 / bpm_at(beats[-1])
        if nxt >= duration_s - 0.05:
            return beats
        beats.append(nxt)


def make_tempo_track(path: Path, bpm_at: Callable[[float], float], duration_s: float = 40.0,
                     sample_rate: int = 44100, first_beat_s: float = 0.0, seed: int = 0) -> DrumTrackTruth:
    """A drum track whose tempo follows `bpm_at` (a ramp, a sudden change), one high section;
    its truth's `bpm` is the mean tempo."""
    beats = beats_for_tempo(bpm_at, duration_s, first_beat_s)
    truths = section_truths([(0.0, "high")], duration_s)
    mean_bpm = 60.0 * (len(beats) - 1) / (beats[-1] - beats[0])
    samples, beats = synth_drums(mean_bpm, duration_s, sample_rate, first_beat_s, truths, seed, beat_times_s=beats)
    write_audio(Path(path), samples, sample_rate)
    return DrumTrackTruth(path=Path(path), bpm=mean_bpm, duration_s=duration_s, sample_rate=sample_rate,
                          first_beat_s=first_beat_s, beat_times_s=beats, downbeat_times_s=beats[::BEATS_PER_BAR],
                          sections=truths)


def make_drum_track(
    path: Path,
    bpm: float = 120.0,
    duration_s: float = 30.0,
    sample_rate: int = 44100,
    first_beat_s: float = 0.0,
    sections: list[tuple[float, str]] | None = None,
    seed: int = 0,
) -> DrumTrackTruth:
    """Write a synthesized 4/4 drum track to `path` (format by suffix) and return its truth.

    `sections` lists (start_s, level) pairs, level "low" or "high"; by default a
    low-high-low-high layout for tracks of 24 s or more, else one high section.
    """
    if sections is None:
        sections = default_sections(duration_s, bpm, first_beat_s)
    truths = section_truths(list(sections), duration_s)
    samples, beats = synth_drums(bpm, duration_s, sample_rate, first_beat_s, truths, seed)
    write_audio(Path(path), samples, sample_rate)
    return DrumTrackTruth(
        path=Path(path),
        bpm=bpm,
        duration_s=duration_s,
        sample_rate=sample_rate,
        first_beat_s=first_beat_s,
        beat_times_s=beats,
        downbeat_times_s=beats[::BEATS_PER_BAR],
        sections=truths,
    )
