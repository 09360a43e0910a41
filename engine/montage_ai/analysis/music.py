"""Music analysis with librosa -> MusicAnalysis.

A functional numeric core: samples in, arrays out, units in parameter names, no hidden state.

Pipeline (all at 22050 Hz mono, which is plenty for rhythm and timbre):
  decode (PyAV, first audio stream, any container) -> samples from the start offset on
  STFT (2048 / hop 256 = 11.6 ms) -> log-mel onset envelope -> librosa tempo + beat tracker
      (coarse beats, quantised to 11.6 ms and late by about 20 ms); where the tempo changes
      (a ramp, rubato, a DJ transition) the tracker is given the local tempo of every frame,
      estimated each second over 8 s windows (local_tempo_bpm); a steady song keeps one tempo
  fine onset envelope (512-sample window, hop 128 = 5.8 ms) -> snap each beat to its onset
      peak with parabolic sub-frame interpolation, corrected for the envelope's known lead
  drop unsupported beats at the ends, extend the grid to both ends while onsets confirm it,
      fill skipped beats -> beats; tempo = slope of beat time against beat number
  low-band (< 150 Hz) energy per bar phase -> downbeats (4/4)
  RMS -> smoothed, normalised energy curve on a 50 ms grid
  bar-averaged MFCC + chroma + loudness -> two-window novelty -> section boundaries on
      downbeats (>= 4 bars apart) -> levels and labels from section energy

Measured on synthesized drum tracks (demo/synth_audio.py): tempo within 0.01 %, every beat
found, median beat error about 1-2 ms, for wav/flac/ogg/mp3/m4a and audio in mp4; on tracks
whose tempo ramps 90 -> 130 BPM or jumps 100 -> 140 / 128 -> 96 BPM, 99-100 % of beats found,
median error about 2 ms (tests/test_music.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

if TYPE_CHECKING:
    import av

from ..errors import MediaError
from ..media.audio_blocks import drop_leading, resampled
from .spectra import SongSpectra, mean_tempogram, mfcc, onset_strength, positive_flux, song_spectra, tempogram_every

SAMPLE_RATE_HZ = 22050
HOP = 256                      # coarse analysis hop: 11.6 ms
N_FFT = 2048
N_MELS = 128
FINE_HOP = 128                 # refinement hop: 5.8 ms
FINE_N_FFT = 512               # short window: the onset peak sits close to the true attack
FINE_N_MELS = 40
FINE_ONSET_LEAD_S = 0.008      # log-flux on centred 512-sample frames peaks this much before the attack
                               # (measured: 7 ms for a kick, 10 ms for a click)
COARSE_LAG_S = 0.02            # librosa's centred onset envelope puts beats this much after the attack
LOW_BAND_HZ = 150.0            # kick and bass: the downbeat accent
ENERGY_HOP_S = 0.05
ENERGY_SMOOTH_S = 0.4
LEVEL_SMOOTH_S = 2.0            # levels compare passages, not beats: smooth the beat ripple away first
BEATS_PER_BAR = 4
MIN_SECTION_BARS = 4
MIN_END_SECTION_BARS = 2
NOVELTY_WINDOW_BARS = 4
START_TOLERANCE_S = 0.015      # timing precision of a refined beat
SEEK_MIN_OFFSET_S = 10.0       # below this, decoding from the start is cheaper than seeking safely
SEEK_MARGIN_S = 2.0
TEMPO_WINDOW_S = 8.0           # librosa.feature.tempo's ac_size: the autocorrelation window
LOCAL_TEMPO_STEP_S = 1.0       # a local tempo estimate every second...
LOCAL_TEMPO_SMOOTH = 5         # ...median of this many
STEADY_TEMPO_TOLERANCE = 0.04  # local tempi all within 4 % of the global one: a steady song
GLOBAL_TEMPO_SUPPORT = 0.7     # a window keeps the global tempo while its lag has this share of the best's support


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


# --- decoding -----------------------------------------------------------------------------------


def _open_audio(path: Path) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream]:
    """Open `path` with PyAV -> (container, first audio stream); MediaError naming the file."""
    import av

    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read media ({_reason(exc)})") from exc
    if not container.streams.audio:
        container.close()
        raise MediaError(f"{path}: no audio stream")
    return container, container.streams.audio[0]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SongReader:
    """Mono samples of a song's first audio stream from an offset on, in blocks, so a long
    song never sits in memory whole. After the blocks are read, `file_duration_s` holds the
    file's length and `samples` how many were given.

    Sample 0 of the file is the first decoded sample. Long offsets seek (to a point before the
    target) and then drop samples counted from the decoded frame's timestamp, measured against
    the first frame's timestamp so each container's timestamp convention cancels out.
    """

    def __init__(self, path: Path, start_offset_s: float = 0.0, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.path = Path(path)
        if start_offset_s < 0:
            raise MediaError(f"{self.path}: start offset {start_offset_s} s is negative")
        self.start_offset_s, self.rate = start_offset_s, sample_rate_hz
        self.file_duration_s = 0.0
        self.samples = 0

    def expected_samples(self) -> int:
        """About how many samples blocks() will give, from the container's duration (0: unknown)."""
        container, _ = _open_audio(self.path)
        with container:
            seconds = container.duration / 1_000_000 if container.duration else 0.0
        return max(0, int((seconds - self.start_offset_s) * self.rate))

    def blocks(self) -> Iterator[np.ndarray]:
        import av

        container, stream = _open_audio(self.path)
        with container:
            frames, skipped_s = self._positioned(container, stream)
            drop = int(round((self.start_offset_s - skipped_s) * self.rate))
            decoded = 0

            def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
                nonlocal decoded
                for block in blocks:
                    decoded += block.size
                    yield block

            try:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
                for block in drop_leading(counted(resampled(frames, resampler, 1)), drop):
                    self.samples += block.size
                    yield block
            except (av.FFmpegError, OSError, ValueError) as exc:
                # a damaged tail: keep what decoded when it is substantial, else report the file
                if decoded < self.rate:
                    raise MediaError(f"{self.path}: cannot decode audio ({_reason(exc)})") from exc
            self.file_duration_s = skipped_s + decoded / self.rate
        if decoded == 0:
            raise MediaError(f"{self.path}: the audio stream holds no samples")
        if self.samples == 0:
            raise MediaError(f"{self.path}: start offset {self.start_offset_s:.2f} s is beyond the end of the "
                             f"audio ({self.file_duration_s:.2f} s)")

    def _positioned(self, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
                    ) -> tuple[Iterator[av.AudioFrame], float]:
        """The frames to decode and the seconds of file before the first of them: from a seek
        to shortly before a long offset when the container's timestamps allow, else from 0."""
        import av

        if self.start_offset_s >= SEEK_MIN_OFFSET_S:
            try:
                anchor = next(iter(container.decode(stream))).time  # time of file sample 0
                if anchor is not None and stream.time_base is not None:
                    target_s = anchor + self.start_offset_s - SEEK_MARGIN_S
                    container.seek(int(target_s / stream.time_base), stream=stream, backward=True)
                    frames = iter(container.decode(stream))
                    first = next(frames)
                    skipped_s = first.time - anchor if first.time is not None else -1.0
                    if 0 <= skipped_s <= self.start_offset_s:
                        return itertools.chain([first], frames), round(skipped_s * self.rate) / self.rate
            except (av.FFmpegError, OSError, ValueError, StopIteration):
                pass
            container.seek(0, stream=stream, backward=True)
        return iter(container.decode(stream)), 0.0


def decode_audio(path: Path, start_offset_s: float = 0.0, sample_rate_hz: int = SAMPLE_RATE_HZ
                 ) -> tuple[np.ndarray, float]:
    """The whole song from the offset on as one array -> (samples, file duration s). For tests
    and short clips; the analysis itself reads blocks (SongReader)."""
    reader = SongReader(path, start_offset_s, sample_rate_hz)
    blocks = list(reader.blocks())
    return np.concatenate(blocks).astype(np.float32, copy=False), reader.file_duration_s


# --- spectra and onset envelopes ----------------------------------------------------------------


def mel_power(samples: np.ndarray, sample_rate_hz: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """Mel power spectrogram with centred frames (frame k centred at k * hop samples)."""
    import librosa

    return librosa.feature.melspectrogram(
        y=samples, sr=sample_rate_hz, n_fft=n_fft, hop_length=hop, n_mels=n_mels, center=True
    )


def log_flux(mel_db: np.ndarray, hop: int, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean positive log-mel difference between consecutive frames -> (envelope, times s).

    Value k compares frames k and k+1, so it is stamped halfway between their centres.
    """
    flux = positive_flux(mel_db)
    times_s = (np.arange(flux.size) + 0.5) * hop / sample_rate_hz
    return flux, times_s


def fine_onset_envelope(samples: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """A short-window onset envelope for locating attacks to a few milliseconds.

    Silence is prepended so an attack at 0 s still rises out of something, and the last 20 ms
    fade out so an abrupt end of file does not read as an onset.
    """
    import librosa

    pad = FINE_N_FFT
    fade = min(samples.size, int(0.02 * sample_rate_hz))
    padded = np.concatenate([np.zeros(pad, dtype=np.float32), samples])
    if fade > 0:
        padded[-fade:] = padded[-fade:] * np.linspace(1.0, 0.0, fade, dtype=np.float32)
    mel = mel_power(padded, sample_rate_hz, FINE_N_FFT, FINE_HOP, FINE_N_MELS)
    flux, times_s = log_flux(librosa.power_to_db(mel, ref=np.max, top_db=80.0), FINE_HOP, sample_rate_hz)
    # the peak leads the attack: stamp it at the attack
    return flux, times_s - pad / sample_rate_hz + FINE_ONSET_LEAD_S


# --- beats ---------------------------------------------------------------------------------------


def coarse_beats(onset_env: np.ndarray, sample_rate_hz: int, hop: int) -> tuple[np.ndarray, float]:
    """librosa's dynamic-programming tracker -> (beat times s, tempo estimate bpm).

    trim=False keeps the weak beats at the start and end (the refinement judges them).
    """
    import librosa

    sparse = sparse_tempogram(onset_env, sample_rate_hz, hop)
    tempo_bpm = global_tempo_bpm(onset_env, sample_rate_hz, hop, sparse)
    local = local_tempo_bpm(onset_env, sample_rate_hz, hop, tempo_bpm, sparse)
    _, frames = librosa.beat.beat_track(
        onset_envelope=onset_env, sr=sample_rate_hz, hop_length=hop, trim=False,
        bpm=tempo_bpm if local is None else local,
    )
    beats_s = librosa.frames_to_time(np.asarray(frames), sr=sample_rate_hz, hop_length=hop) - COARSE_LAG_S
    return np.asarray(beats_s, dtype=np.float64), tempo_bpm


def sparse_tempogram(onset_env: np.ndarray, sample_rate_hz: int, hop: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(centre frames, tempogram) every LOCAL_TEMPO_STEP_S over TEMPO_WINDOW_S windows, made
    once for the main and the local tempo; None for a song shorter than two windows."""
    import librosa

    win = int(librosa.time_to_frames(TEMPO_WINDOW_S, sr=sample_rate_hz, hop_length=hop))
    step = max(1, int(round(LOCAL_TEMPO_STEP_S * sample_rate_hz / hop)))
    return tempogram_every(onset_env, win, step) if onset_env.size >= 2 * win else None


def global_tempo_bpm(onset_env: np.ndarray, sample_rate_hz: int, hop: int,
                     sparse: tuple[np.ndarray, np.ndarray] | None) -> float:
    """The song's main tempo: the tempo most of its seconds have (librosa's estimate in each
    TEMPO_WINDOW_S window, its usual prior). A song in two tempi (a DJ mix, a live medley) gets
    the one heard longest, where the tempogram averaged over the whole song would give a
    compromise neither part has (117.5 and 129 BPM spliced read as 172). A song shorter than
    two windows: the averaged tempogram."""
    import librosa

    if sparse is not None:
        local = np.atleast_1d(librosa.feature.tempo(tg=sparse[1], sr=sample_rate_hz, hop_length=hop, aggregate=None))
        local = np.round(local[local > 0], 3)
        if local.size:
            values, counts = np.unique(local, return_counts=True)
            return float(values[np.argmax(counts)])
    win = int(librosa.time_to_frames(TEMPO_WINDOW_S, sr=sample_rate_hz, hop_length=hop))
    tempo = librosa.feature.tempo(tg=mean_tempogram(onset_env, win)[:, None], sr=sample_rate_hz, hop_length=hop)
    return float(np.atleast_1d(tempo)[0])


def local_tempo_bpm(onset_env: np.ndarray, sample_rate_hz: int, hop: int, global_bpm: float,
                    sparse: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray | None:
    """The tempo at every onset frame where it changes within the song (a ramp, rubato, a DJ
    transition), else None (a steady song keeps the one tempo). Estimated every
    LOCAL_TEMPO_STEP_S over TEMPO_WINDOW_S windows, with librosa's log-normal prior centred on
    the global tempo and folded to within half an octave of it (so a bar of half-time is not
    a new tempo), median-smoothed, and interpolated to the frames."""
    import librosa
    from scipy.ndimage import median_filter

    if sparse is None or global_bpm <= 0:
        return None
    centres, tg = sparse
    local = np.atleast_1d(librosa.feature.tempo(tg=tg, sr=sample_rate_hz, hop_length=hop, start_bpm=global_bpm,
                                                aggregate=None)).astype(np.float64)
    local = np.where(local > 0, local, global_bpm)
    local = local / 2.0 ** np.round(np.log2(local / global_bpm))
    # where the global tempo still explains the window nearly as well (swing, a dotted figure,
    # a fill), it stands: only a window that has left it gets its own tempo
    local = np.where(_lag_support(tg, global_bpm, sample_rate_hz, hop)
                     >= GLOBAL_TEMPO_SUPPORT * _lag_support(tg, local, sample_rate_hz, hop), global_bpm, local)
    local = median_filter(local, size=LOCAL_TEMPO_SMOOTH, mode="nearest")
    if np.all(np.abs(local / global_bpm - 1.0) <= STEADY_TEMPO_TOLERANCE):
        return None
    return np.interp(np.arange(onset_env.size), centres, local)


def _lag_support(tg: np.ndarray, bpm: float | np.ndarray, sample_rate_hz: int, hop: int) -> np.ndarray:
    """Per tempogram column: its strongest autocorrelation within 3 % of the lag of `bpm` (one
    tempo for all columns, or one per column)."""
    lag = 60.0 * sample_rate_hz / hop / np.broadcast_to(np.asarray(bpm, dtype=np.float64), (tg.shape[1],))
    lo = np.clip(np.floor(lag * 0.97).astype(int), 1, tg.shape[0] - 1)
    hi = np.clip(np.ceil(lag * 1.03).astype(int), 1, tg.shape[0] - 1)
    return np.array([tg[a:b + 1, k].max() for k, (a, b) in enumerate(zip(lo, hi))])


def peak_near(env: np.ndarray, times_s: np.ndarray, center_s: float, half_width_s: float
              ) -> tuple[float, float] | None:
    """The strongest envelope peak within center +- half width -> (time s, strength), sub-frame.

    None when the maximum sits on the window edge (the onset is outside the window).
    """
    step_s = times_s[1] - times_s[0]
    lo = int(np.ceil((center_s - half_width_s - times_s[0]) / step_s))
    hi = int(np.floor((center_s + half_width_s - times_s[0]) / step_s)) + 1
    lo, hi = max(lo, 1), min(hi, env.size - 1)
    if hi - lo < 3:
        return None
    i = lo + int(np.argmax(env[lo:hi]))
    if i == lo or i == hi - 1:
        return None
    a, b, c = env[i - 1], env[i], env[i + 1]
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(times_s[i] + offset * step_s), float(b - 0.25 * (a - c) * offset)


def snap_half_width_s(period_s: float) -> float:
    """Search radius for snapping: wide enough for tracker jitter, narrow enough to miss 16ths."""
    return float(min(0.05, 0.15 * period_s))


def snap_beats(beats_s: np.ndarray, env: np.ndarray, times_s: np.ndarray, period_s: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Move each beat onto the attack of its onset -> (beat times s, onset strengths).

    A beat without a clear peak nearby (a rest, a pad) keeps its tracked time, strength 0.
    """
    half = snap_half_width_s(period_s)
    out = beats_s.copy()
    strength = np.zeros(beats_s.size)
    for k, t in enumerate(beats_s):
        found = peak_near(env, times_s, t, half)
        if found is not None:
            out[k], strength[k] = found
    return out, strength


def local_period_s(beats_s: np.ndarray, index: int, span: int = 8) -> float:
    """Median beat interval around beat `index`."""
    lo, hi = max(0, index - span), min(beats_s.size, index + span + 1)
    ibi = np.diff(beats_s[lo:hi])
    return float(np.median(ibi)) if ibi.size else 0.5


def fill_gaps(beats_s: np.ndarray, env: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Insert evenly spaced beats where the tracker skipped one or more (intervals near 2x, 3x ...)."""
    if beats_s.size < 3:
        return beats_s
    out = [beats_s[0]]
    for k in range(1, beats_s.size):
        gap = beats_s[k] - beats_s[k - 1]
        period = local_period_s(beats_s, k)
        n = int(round(gap / period))
        if n >= 2 and abs(gap / n - period) < 0.15 * period:
            for j in range(1, n):
                t = beats_s[k - 1] + gap * j / n
                found = peak_near(env, times_s, t, snap_half_width_s(period))
                out.append(found[0] if found else t)
        out.append(beats_s[k])
    return np.asarray(out)


def extend_beats(beats_s: np.ndarray, strength: np.ndarray, env: np.ndarray, times_s: np.ndarray,
                 duration_s: float) -> np.ndarray:
    """Continue the grid to the start and the end while onsets keep confirming it.

    The tracker often starts a beat late and stops early; a step of one local period is added
    when an onset at least a third as strong as a typical beat sits there.
    """
    if beats_s.size < 4:
        return beats_s
    typical = float(np.median(strength[strength > 0])) if np.any(strength > 0) else 0.0
    if typical <= 0:
        return beats_s
    need = typical / 3
    head: list[float] = []
    first, period = beats_s[0], local_period_s(beats_s, 0)
    while first - period > -snap_half_width_s(period):
        found = peak_near(env, times_s, first - period, snap_half_width_s(period))
        if found is None or found[1] < need:
            break
        first = found[0]
        head.append(first)
    tail: list[float] = []
    last, period = beats_s[-1], local_period_s(beats_s, beats_s.size - 1)
    while last + period < duration_s + snap_half_width_s(period):
        found = peak_near(env, times_s, last + period, snap_half_width_s(period))
        if found is None or found[1] < need:
            break
        last = found[0]
        tail.append(last)
    return np.concatenate([np.asarray(head[::-1]), beats_s, np.asarray(tail)])


def clean_beats(beats_s: np.ndarray, duration_s: float) -> np.ndarray:
    """Sorted, inside [0, duration), no two closer than 40% of the median interval.

    A beat found a few milliseconds before 0 is the beat at 0 (an attack at the very start).
    """
    beats_s = np.where((beats_s < 0) & (beats_s > -START_TOLERANCE_S), 0.0, beats_s)
    beats_s = np.sort(beats_s[(beats_s >= 0) & (beats_s < duration_s)])
    if beats_s.size < 3:
        return beats_s
    min_gap = 0.4 * float(np.median(np.diff(beats_s)))
    keep = [beats_s[0]]
    for t in beats_s[1:]:
        if t - keep[-1] >= min_gap:
            keep.append(t)
    return np.asarray(keep)


def beat_indices(beats_s: np.ndarray) -> np.ndarray:
    """Integer beat numbers for the beats, counting any remaining skipped beat as a step of 2+."""
    ibi = np.diff(beats_s)
    steps = np.maximum(1, np.round(ibi / np.median(ibi)))
    return np.concatenate([[0.0], np.cumsum(steps)])


def tempo_from_beats(beats_s: np.ndarray, fallback_bpm: float, window_beats: int = 8) -> float:
    """The tempo the beats actually keep.

    A steady track: the slope of beat time against beat number (least squares over all beats,
    so onset jitter averages out). A track whose beats stray from one straight line by more
    than a tenth of a beat (tempo drift, expressive timing): the median of the same slope over
    windows of `window_beats` beats, which is less sensitive to single-beat jitter than the
    median inter-beat interval.
    """
    if beats_s.size < 3:
        return float(fallback_bpm)
    median_s = float(np.median(np.diff(beats_s)))
    index = beat_indices(beats_s)
    slope_s, intercept_s = np.polyfit(index, beats_s, 1)
    residual_s = float(np.std(beats_s - (slope_s * index + intercept_s)))
    if residual_s < 0.1 * median_s and slope_s > 0:
        return float(60.0 / slope_s)
    if beats_s.size <= window_beats:
        return float(60.0 / median_s)
    slopes = [np.polyfit(index[k:k + window_beats], beats_s[k:k + window_beats], 1)[0]
              for k in range(beats_s.size - window_beats + 1)]
    return float(60.0 / np.median(slopes))


def trim_unsupported(beats_s: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop leading and trailing beats without an onset a third as strong as a typical beat.

    The tracker runs its grid to both ends of the file; silence or a fade there is no beat.
    """
    if not np.any(strength > 0):
        return beats_s, strength
    need = float(np.median(strength[strength > 0])) / 3
    ok = np.flatnonzero(strength >= need)
    a, b = int(ok[0]), int(ok[-1]) + 1
    return beats_s[a:b], strength[a:b]


def refine_beats(coarse_s: np.ndarray, env: np.ndarray, times_s: np.ndarray, duration_s: float
                 ) -> np.ndarray:
    """Coarse tracker beats -> beats on the attacks, covering the whole track."""
    if coarse_s.size == 0:
        return coarse_s
    period = float(np.median(np.diff(coarse_s))) if coarse_s.size > 1 else 0.5
    snapped, strength = snap_beats(coarse_s, env, times_s, period)
    snapped, strength = trim_unsupported(snapped, strength)
    extended = extend_beats(snapped, strength, env, times_s, duration_s)
    return clean_beats(fill_gaps(extended, env, times_s), duration_s)


# --- downbeats -----------------------------------------------------------------------------------


def low_band_db(mel_power_: np.ndarray, sample_rate_hz: int, max_hz: float = LOW_BAND_HZ) -> np.ndarray:
    """Power below max_hz per frame, in dB: kick drums and bass notes."""
    import librosa

    freqs_hz = librosa.mel_frequencies(n_mels=mel_power_.shape[0], fmax=sample_rate_hz / 2)
    return 10.0 * np.log10(mel_power_[freqs_hz <= max_hz].sum(axis=0) + 1e-10)


def accent_at(beats_s: np.ndarray, curve: np.ndarray, times_s: np.ndarray,
              before_s: float = 0.03, after_s: float = 0.1) -> np.ndarray:
    """Maximum of `curve` around each beat: the attack and body of what sounds on it."""
    lo = np.searchsorted(times_s, beats_s - before_s, side="left")
    hi = np.searchsorted(times_s, beats_s + after_s, side="right")
    return np.array([curve[a:b].max() if b > a else 0.0 for a, b in zip(lo, hi)])


def downbeat_phase(accents: np.ndarray, beats_per_bar: int = BEATS_PER_BAR) -> int:
    """The bar phase (0..beats_per_bar-1) whose beats carry the largest mean low-band accent:
    in 4/4 pop and dance music the kick and the bass change land hardest on beat 1."""
    if accents.size < beats_per_bar:
        return 0
    scores = [float(np.mean(accents[p::beats_per_bar])) for p in range(beats_per_bar)]
    return int(np.argmax(scores))


# --- energy --------------------------------------------------------------------------------------


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Hann-weighted moving average, edges renormalised."""
    if width <= 1 or values.size == 0:
        return values
    kernel = np.hanning(width + 2)[1:-1]
    num = np.convolve(values, kernel, mode="same")
    den = np.convolve(np.ones_like(values), kernel, mode="same")
    return num / den


def energy_curve(samples: np.ndarray, sample_rate_hz: int, hop_s: float = ENERGY_HOP_S,
                 smooth_s: float = ENERGY_SMOOTH_S) -> np.ndarray:
    """RMS in 2048-sample frames resampled to a hop_s grid, smoothed, divided by its 99th percentile."""
    import librosa

    rms = librosa.feature.rms(y=samples, frame_length=N_FFT, hop_length=HOP, center=True)[0]
    return energy_from_rms(rms, samples.size, sample_rate_hz, hop_s, smooth_s)


def energy_from_rms(rms: np.ndarray, n_samples: int, sample_rate_hz: int, hop_s: float = ENERGY_HOP_S,
                    smooth_s: float = ENERGY_SMOOTH_S) -> np.ndarray:
    """The energy curve from per-frame RMS (frames every HOP samples) of a signal of n_samples."""
    rms_times_s = np.arange(rms.size) * HOP / sample_rate_hz
    n = max(1, int(np.floor(n_samples / sample_rate_hz / hop_s)) + 1)
    grid = np.interp(np.arange(n) * hop_s, rms_times_s, rms)
    grid = smooth(grid, int(round(smooth_s / hop_s)))
    ref = float(np.percentile(grid, 99)) if grid.size else 0.0
    return np.clip(grid / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(grid)


def mean_over(curve: np.ndarray, hop_s: float, start_s: float, end_s: float) -> float:
    """Mean of a uniformly sampled curve over [start, end)."""
    a = int(np.floor(start_s / hop_s))
    b = max(a + 1, int(np.ceil(end_s / hop_s)))
    part = curve[a:b]
    return float(part.mean()) if part.size else 0.0


# --- sections ------------------------------------------------------------------------------------


def bar_features(features: np.ndarray, frame_times_s: np.ndarray, bar_starts_s: np.ndarray,
                 duration_s: float) -> np.ndarray:
    """Mean feature vector per bar (rows: bars [start_k, start_k+1), the last ends at duration)."""
    edges = np.append(bar_starts_s, duration_s)
    idx = np.searchsorted(frame_times_s, edges)
    rows = []
    for a, b in zip(idx[:-1], idx[1:]):
        rows.append(features[:, a:max(b, a + 1)].mean(axis=1))
    return np.asarray(rows)


def normalise_groups(bars: np.ndarray, groups: list[tuple[slice, float]]) -> np.ndarray:
    """Centre each feature group and scale it by its overall spread times a weight.

    One scale per group (not per dimension) so a dimension that is flat except for noise is not
    blown up to unit variance.
    """
    out = np.zeros_like(bars)
    for sl, weight in groups:
        part = bars[:, sl] - bars[:, sl].mean(axis=0)
        spread = float(np.sqrt((part ** 2).sum(axis=1).mean()))
        out[:, sl] = weight * part / spread if spread > 1e-9 else 0.0
    return out


def two_window_novelty(bars: np.ndarray, window_bars: int = NOVELTY_WINDOW_BARS) -> np.ndarray:
    """novelty[k]: distance between the mean of the bars before bar k and of those from bar k on.

    The same contrast a checkerboard kernel measures on a self-similarity matrix, computed
    directly. novelty[0] is 0 (no boundary at the start).
    """
    n = bars.shape[0]
    out = np.zeros(n)
    for k in range(1, n):
        before = bars[max(0, k - window_bars):k]
        after = bars[k:k + window_bars]
        # fewer than 2 bars on a side: a weaker estimate, weighted down
        weight = min(before.shape[0], after.shape[0], 2) / 2
        out[k] = weight * float(np.linalg.norm(before.mean(axis=0) - after.mean(axis=0)))
    return out


def pick_boundaries(novelty: np.ndarray, min_bars: int = MIN_SECTION_BARS,
                    min_end_bars: int = MIN_END_SECTION_BARS) -> list[int]:
    """Bar indices where sections start: strong novelty peaks, at least min_bars apart.

    A peak counts when it is a local maximum, above the mean plus half a standard deviation and
    above a quarter of the strongest; peaks are taken strongest first.
    """
    n = novelty.size
    if n < 2 * min_end_bars:
        return []
    threshold = max(float(novelty.mean() + 0.5 * novelty.std()), 0.25 * float(novelty.max()))
    candidates = []
    for k in range(min_end_bars, n - min_end_bars + 1):
        lo, hi = max(0, k - min_bars + 1), min(n, k + min_bars)
        if novelty[k] >= threshold and novelty[k] == novelty[lo:hi].max() and novelty[k] > 0:
            candidates.append(k)
    chosen: list[int] = []
    for k in sorted(candidates, key=lambda k: (-novelty[k], k)):
        if all(abs(k - c) >= min_bars for c in chosen):
            chosen.append(k)
    return sorted(chosen)


def level_thresholds(energy: np.ndarray, min_span: float = 0.25) -> tuple[float, float]:
    """(low/mid, mid/high) energy thresholds: thirds of the song's 10th..90th percentile range,
    widened around its middle to min_span so a flat song comes out mid throughout."""
    if energy.size == 0:
        return 1 / 3, 2 / 3
    lo, hi = float(np.percentile(energy, 10)), float(np.percentile(energy, 90))
    mid, span = (lo + hi) / 2, max(hi - lo, min_span)
    return max(mid - span / 6, 0.02), max(mid + span / 6, 0.04)  # silence stays low


def level_of(energy: float, thresholds: tuple[float, float]) -> str:
    return "low" if energy < thresholds[0] else "high" if energy > thresholds[1] else "mid"


def section_labels(levels: list[str], energies: list[float], drop_jump: float = 0.35) -> list[str]:
    """intro/outro for low sections at the ends, drop for a big low->high jump, chorus for high,
    bridge for low in the middle, verse for mid."""
    labels = []
    n = len(levels)
    for k, level in enumerate(levels):
        if level == "low":
            label = "intro" if k == 0 else "outro" if k == n - 1 else "bridge"
        elif level == "high":
            jump = k > 0 and levels[k - 1] == "low" and energies[k] - energies[k - 1] >= drop_jump
            label = "drop" if jump else "chorus"
        else:
            label = "verse"
        labels.append(label)
    return labels


def build_sections(boundaries_s: list[float], duration_s: float, energy: np.ndarray, hop_s: float
                   ) -> list[Section]:
    """Contiguous sections over [0, duration] with energy, level and label."""
    edges = [0.0, *boundaries_s, duration_s]
    spans = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    energies = [mean_over(energy, hop_s, a, b) for a, b in spans]
    thresholds = level_thresholds(smooth(energy, int(round(LEVEL_SMOOTH_S / hop_s))))
    levels = [level_of(e, thresholds) for e in energies]
    labels = section_labels(levels, energies)
    return [
        Section(start_s=round(a, 4), end_s=round(b, 4), label=lab, energy=round(e, 4), level=lev)
        for (a, b), e, lev, lab in zip(spans, energies, levels, labels)
    ]


def section_boundaries(mel_db: np.ndarray, chroma: np.ndarray, energy: np.ndarray, frame_times_s: np.ndarray,
                       downbeats_s: np.ndarray, duration_s: float, hop_s: float) -> list[float]:
    """Downbeat times where the timbre, harmony or loudness changes."""
    import librosa

    if downbeats_s.size < 2 * MIN_END_SECTION_BARS + 1:
        return []
    coefficients = mfcc(mel_db, n_mfcc=13)[1:]
    loud = np.interp(frame_times_s, np.arange(energy.size) * hop_s, energy)[None, :]
    features = np.vstack([coefficients, chroma, loud])
    bars = bar_features(features, frame_times_s, downbeats_s, duration_s)
    bars = normalise_groups(bars, [(slice(0, 12), 1.0), (slice(12, 24), 0.7), (slice(24, 25), 1.5)])
    novelty = two_window_novelty(bars)
    return [float(downbeats_s[k]) for k in pick_boundaries(novelty)]


# --- entry point ---------------------------------------------------------------------------------


def song_features(blocks: Iterable[np.ndarray], sample_rate_hz: int = SAMPLE_RATE_HZ,
                  expected_samples: int = 0) -> SongSpectra:
    """Every per-frame feature the analysis uses, computed block by block (spectra.py)."""
    return song_spectra(blocks, sample_rate_hz, N_FFT, HOP, N_MELS, FINE_N_FFT, FINE_HOP, FINE_N_MELS, LOW_BAND_HZ,
                        fine_prepad=FINE_N_FFT, fine_fade=int(0.02 * sample_rate_hz), min_samples=N_FFT,
                        expected_samples=expected_samples)


def analyze_samples(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict:
    """The numeric core on mono samples -> the MusicAnalysis fields that depend on them."""
    return analyze_features(song_features([samples], sample_rate_hz), samples.size / sample_rate_hz, sample_rate_hz)


def analyze_features(f: SongSpectra, duration_s: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict:
    """Tempo, beats, downbeats, energy and sections from the song's per-frame features."""
    import librosa

    onset_env = onset_strength(f.mel_db, N_FFT, HOP)
    frame_times_s = np.arange(f.mel_db.shape[1]) * HOP / sample_rate_hz

    coarse_s, tempo_estimate = coarse_beats(onset_env, sample_rate_hz, HOP)
    fine_env, fine_times_s = log_flux(f.fine_mel_db, FINE_HOP, sample_rate_hz)
    fine_times_s = fine_times_s - FINE_N_FFT / sample_rate_hz + FINE_ONSET_LEAD_S   # the peak leads the attack
    beats_s = refine_beats(coarse_s, fine_env, fine_times_s, duration_s)
    tempo_bpm = tempo_from_beats(beats_s, tempo_estimate)

    phase = downbeat_phase(accent_at(beats_s, f.low_band_db, frame_times_s))
    downbeats_s = beats_s[phase::BEATS_PER_BAR]

    energy = energy_from_rms(f.rms, f.samples, sample_rate_hz)[: int(duration_s / ENERGY_HOP_S) + 1]
    boundaries = section_boundaries(f.mel_db, f.chroma, energy, frame_times_s, downbeats_s, duration_s, ENERGY_HOP_S)
    return dict(
        duration_s=duration_s,
        tempo_bpm=round(tempo_bpm, 3),
        beat_times_s=[round(float(t), 4) for t in beats_s],
        downbeat_times_s=[round(float(t), 4) for t in downbeats_s],
        beats_per_bar=BEATS_PER_BAR,
        energy_hop_s=ENERGY_HOP_S,
        energy=[round(float(e), 4) for e in energy],
        sections=build_sections(boundaries, duration_s, energy, ENERGY_HOP_S),
    )


def analyze_music(path: Path, start_offset_s: float = 0.0) -> MusicAnalysis:
    """Decode `path` from `start_offset_s` on and find tempo, beats, downbeats, energy and sections.
    The song streams through the analysis in blocks: memory stays flat for an hour-long mix.

    Raises MediaError (one line, naming the file) for a missing or unreadable file, a file
    without audio, or an offset beyond its end.
    """
    path = Path(path)
    reader = SongReader(path, start_offset_s, SAMPLE_RATE_HZ)
    features = song_features(reader.blocks(), SAMPLE_RATE_HZ, reader.expected_samples())
    fields = analyze_features(features, reader.samples / SAMPLE_RATE_HZ, SAMPLE_RATE_HZ)
    return MusicAnalysis(path=path, start_offset_s=start_offset_s, file_duration_s=reader.file_duration_s, **fields)
