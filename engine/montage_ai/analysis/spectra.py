"""Spectral features of a song computed block by block, so memory does not grow with its length.

The music analysis needs, per analysis frame, a mel spectrum, chroma, low-band power and RMS
(2048-sample centred frames, hop 256) and a short-window mel spectrum (512 / hop 128) for the
attacks. Computing them from one whole-song STFT held a 1025 x frames complex matrix: 0.4 GB
for 10 minutes, 2.5 GB for an hour. Here samples arrive in blocks (a streaming decoder); each
`Framer` cuts exactly the frames `librosa.stft(center=True)` would (same window, same zero
padding at both ends), transforms a block of them and keeps only the small per-frame results.
The dB conversions that need the whole song's maximum (librosa's `ref=np.max`) are applied
once at the end, in place, on the kept mel arrays (128 and 40 rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

FRAMES_PER_BLOCK = 2048          # ~24 s of coarse frames per transform: bounded, still vectorised
AMIN = 1e-10                     # librosa.power_to_db's floor
TOP_DB = 80.0


class Framer:
    """Cuts centred frames (frame k centred on sample k*hop of the signal, zero padded at both
    ends, as librosa's center=True) from samples that arrive in pieces.

    `prepad` zeros go before the signal (part of it, not padding); the last `fade` samples of
    the signal fade linearly to 0 (held back until the end is known)."""

    def __init__(self, n_fft: int, hop: int, prepad: int = 0, fade: int = 0, batch: int = 1) -> None:
        self.n_fft, self.hop, self.fade, self.batch = n_fft, hop, fade, batch
        self._buf = np.zeros(n_fft // 2 + prepad, np.float32)   # the left centre pad, then the signal
        self._signal = prepad
        self._next = 0                 # index of the next frame; the buffer starts at its first sample
        self._pending: list[np.ndarray] = []   # blocks not yet joined to the buffer
        self._pending_n = 0

    def push(self, samples: np.ndarray) -> np.ndarray | None:
        """Add samples; return the frames (n_fft x m) that are complete and outside the fade, once
        there are at least `batch` of them (a decoder's small blocks are gathered first)."""
        self._pending.append(samples.astype(np.float32, copy=False))
        self._pending_n += samples.size
        self._signal += samples.size
        need = (self.batch - 1) * self.hop + self.n_fft + self.fade
        if self._buf.size + self._pending_n < need:
            return None
        self._gather()
        m = (self._buf.size - self.fade - self.n_fft) // self.hop + 1
        return self._take(m) if m >= self.batch else None

    def finish(self) -> np.ndarray | None:
        """The remaining frames, after the fade and the right centre pad."""
        self._gather()
        if self.fade:
            f = min(self.fade, self._signal, self._buf.size)
            if f > 0:
                self._buf[-f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
        total_frames = 1 + self._signal // self.hop
        m = total_frames - self._next
        self._buf = np.concatenate([self._buf, np.zeros(self.n_fft // 2 + self.hop, np.float32)])
        return self._take(m) if m > 0 else None

    def _gather(self) -> None:
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending, self._pending_n = [], 0

    def _take(self, m: int) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(self._buf, self.n_fft)[: m * self.hop: self.hop].T
        out = np.ascontiguousarray(frames)
        self._buf = self._buf[m * self.hop:]
        self._next += m
        return out


def _hann(n: int) -> np.ndarray:
    """librosa's default window: periodic Hann (scipy.signal.get_window('hann', n, fftbins=True))."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def power_spectrum(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(frames * window[:, None], axis=0)
    return (spec.real ** 2 + spec.imag ** 2).astype(np.float32)


@dataclass
class SongSpectra:
    """Per-frame features of the whole song (columns: frames; frame k at k * hop / sr)."""

    mel_db: np.ndarray           # (128, F) dB relative to the song's maximum, floored at -80
    chroma: np.ndarray           # (12, F)
    low_band_db: np.ndarray      # (F,) power below 150 Hz, dB
    rms: np.ndarray              # (F,)
    fine_mel_db: np.ndarray      # (40, Ff) short-window mel, dB relative to its maximum, floored
    samples: int                 # signal length (after any padding to one window)


class _Grow:
    """An append-only column store that doubles its capacity: no list of blocks to concatenate
    (which would briefly need twice the memory) at the end."""

    def __init__(self, rows: int, expected: int = 0) -> None:
        self._a = np.zeros((rows, max(1024, expected)), np.float32)
        self.n = 0

    def add(self, cols: np.ndarray) -> None:
        cols = cols.reshape(self._a.shape[0], -1)
        need = self.n + cols.shape[1]
        if need > self._a.shape[1]:
            grown = np.zeros((self._a.shape[0], max(need, self._a.shape[1] * 3 // 2)), np.float32)
            grown[:, : self.n] = self._a[:, : self.n]
            self._a = grown
        self._a[:, self.n: need] = cols
        self.n = need

    def array(self) -> np.ndarray:
        return self._a[:, : self.n]


def song_spectra(blocks: Iterable[np.ndarray], sr: int, n_fft: int, hop: int, n_mels: int,
                 fine_n_fft: int, fine_hop: int, fine_n_mels: int, low_band_hz: float,
                 fine_prepad: int, fine_fade: int, min_samples: int, expected_samples: int = 0) -> SongSpectra:
    """Run every block of samples through both framers and keep the per-frame features.
    `expected_samples` (the container's duration, when known) sizes the stores once, so a long
    song's features are not copied while they grow."""
    import librosa

    mel_fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    fine_fb = librosa.filters.mel(sr=sr, n_fft=fine_n_fft, n_mels=fine_n_mels).astype(np.float32)
    low_rows = librosa.mel_frequencies(n_mels=n_mels, fmax=sr / 2) <= low_band_hz
    win, fine_win = _hann(n_fft), _hann(fine_n_fft)
    chroma_fb = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=12).astype(np.float32)
    coarse = Framer(n_fft, hop, batch=FRAMES_PER_BLOCK)
    fine = Framer(fine_n_fft, fine_hop, prepad=fine_prepad, fade=fine_fade, batch=4 * FRAMES_PER_BLOCK)
    frames = expected_samples // hop + 2
    fine_frames = (expected_samples + fine_prepad) // fine_hop + 2
    mel, chroma, low, rms = _Grow(n_mels, frames), _Grow(12, frames), _Grow(1, frames), _Grow(1, frames)
    fine_mel = _Grow(fine_n_mels, fine_frames)

    def coarse_block(frames: np.ndarray | None) -> None:
        for a in range(0, 0 if frames is None else frames.shape[1], FRAMES_PER_BLOCK):
            part = frames[:, a:a + FRAMES_PER_BLOCK]
            power = power_spectrum(part, win)
            m = mel_fb @ power
            mel.add(10.0 * np.log10(np.maximum(m, AMIN)))
            low.add(10.0 * np.log10(m[low_rows].sum(axis=0) + 1e-10))
            # librosa.feature.chroma_stft(S=power, tuning=0.0): the filter bank, then each frame / its max
            chroma.add(librosa.util.normalize(chroma_fb @ power, norm=np.inf, axis=0))
            rms.add(np.sqrt(np.mean(part.astype(np.float64) ** 2, axis=0)))

    def fine_block(frames: np.ndarray | None) -> None:
        for a in range(0, 0 if frames is None else frames.shape[1], 4 * FRAMES_PER_BLOCK):
            power = power_spectrum(frames[:, a:a + 4 * FRAMES_PER_BLOCK], fine_win)
            fine_mel.add(10.0 * np.log10(np.maximum(fine_fb @ power, AMIN)))

    total = 0
    step = FRAMES_PER_BLOCK * hop          # a whole song handed over at once is still cut small
    for whole in blocks:
        for a in range(0, whole.size, step):
            block = whole[a:a + step]
            total += block.size
            coarse_block(coarse.push(block))
            fine_block(fine.push(block))
    if total < min_samples:       # a fraction of a second: padded so every frame is well defined
        pad = np.zeros(min_samples - total, np.float32)
        coarse_block(coarse.push(pad))
        fine_block(fine.push(pad))
        total = min_samples
    coarse_block(coarse.finish())
    fine_block(fine.finish())
    return SongSpectra(mel_db=_relative_db(mel.array()), chroma=chroma.array(), low_band_db=low.array()[0],
                       rms=rms.array()[0], fine_mel_db=_relative_db(fine_mel.array()), samples=total)


def _relative_db(db: np.ndarray) -> np.ndarray:
    """librosa.power_to_db(S, ref=np.max, top_db=80) from 10*log10(max(S, amin)), in place."""
    if db.size:
        db -= db.max()
        np.maximum(db, -TOP_DB, out=db)
    return db


def mean_tempogram(onset_env: np.ndarray, win_length: int, block: int = 4096) -> np.ndarray:
    """librosa.feature.tempogram(onset_envelope=..., win_length=..., center=True).mean(axis=1),
    block by block: the full tempogram and its FFT buffers are win_length x frames (about 1 GB
    for 10 minutes of music); its mean over time, which is all the tempo estimate uses, is not."""
    n = onset_env.size
    half = win_length // 2
    padded = np.pad(onset_env.astype(np.float64), (half, half), mode="linear_ramp", end_values=(0, 0))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    frames_all = np.lib.stride_tricks.sliding_window_view(padded, win_length)[:n]
    total = np.zeros(win_length)
    n_pad = 2 * win_length - 1
    tiny = np.finfo(np.float64).tiny
    for a in range(0, n, block):
        frames = frames_all[a:a + block].T * window[:, None]
        power = np.abs(np.fft.rfft(frames, n=n_pad, axis=0)) ** 2
        ac = np.fft.irfft(power, n=n_pad, axis=0)[:win_length]
        peak = np.abs(ac).max(axis=0)
        peak[peak < tiny] = 1.0
        total += (ac / peak).sum(axis=1)
    return total / max(1, n)


def positive_flux(db: np.ndarray, block: int = 8192) -> np.ndarray:
    """mean over rows of max(0, db[:, k+1] - db[:, k]) for each k (F - 1 values), block by block
    so no second frames-sized matrix is made."""
    n = db.shape[1]
    out = np.zeros(max(0, n - 1), np.float32)
    for a in range(0, n - 1, block):
        b = min(n - 1, a + block)
        out[a:b] = np.maximum(0.0, db[:, a + 1:b + 1] - db[:, a:b]).mean(axis=0)
    return out


def onset_strength(mel_db: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """librosa.onset.onset_strength(S=mel_db, n_fft=n_fft, hop_length=hop) (lag 1, mean over
    bands, centred), without its frames-sized temporaries."""
    n = mel_db.shape[1]
    pad = 1 + n_fft // (2 * hop)
    return np.concatenate([np.zeros(pad, np.float32), positive_flux(mel_db)])[:n]


def mfcc(mel_db: np.ndarray, n_mfcc: int, block: int = 8192) -> np.ndarray:
    """librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc) (DCT-II, orthonormal), block by block."""
    import scipy.fft

    out = np.zeros((n_mfcc, mel_db.shape[1]), np.float32)
    for a in range(0, mel_db.shape[1], block):
        out[:, a:a + block] = scipy.fft.dct(mel_db[:, a:a + block], axis=0, type=2, norm="ortho")[:n_mfcc]
    return out


def tempogram_every(onset_env: np.ndarray, win_length: int, step: int, block: int = 512
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The tempogram (autocorrelation of the onset envelope in a Hann window, each column
    normalised to its peak, as librosa.feature.tempogram) at every `step`-th frame only ->
    (centre frames, win_length x centres). A local tempo needs a value every second, not every
    11.6 ms, so an hour of music takes a few MB instead of gigabytes."""
    n = onset_env.size
    half = win_length // 2
    padded = np.pad(onset_env.astype(np.float64), (half, half), mode="linear_ramp", end_values=(0, 0))
    centres = np.arange(0, max(1, n), max(1, step))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    views = np.lib.stride_tricks.sliding_window_view(padded, win_length)
    n_pad = 2 * win_length - 1
    out = np.empty((win_length, centres.size), np.float32)
    for a in range(0, centres.size, block):
        frames = views[centres[a:a + block]].T * window[:, None]
        power = np.abs(np.fft.rfft(frames, n=n_pad, axis=0)) ** 2
        ac = np.fft.irfft(power, n=n_pad, axis=0)[:win_length]
        peak = np.abs(ac).max(axis=0)
        peak[peak < np.finfo(np.float64).tiny] = 1.0
        out[:, a:a + block] = ac / peak
    return centres, out
