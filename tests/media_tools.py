"""Test-side media helpers: sources whose every frame says which frame it is, and readers
that recover that from a rendered file. Ground truth for frame-exactness checks."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from montage_ai.media.ffmpeg import ffmpeg_path

BITS = 10  # frame index coded in 10 black/white bars: up to 1024 frames


def make_counter_clip(path: Path, frames: int, fps: str = "25", width: int = 320, height: int = 180,
                      tint: tuple[int, int, int] = (0, 0, 0), rotate: int = 0, bar_rows: float = 0.5) -> Path:
    """An H.264 clip whose frame n shows n in Gray code as BITS vertical bars over the top
    `bar_rows` of the picture; the rest is `tint` so tests can also tell sources apart by colour.
    (A thin strip keeps shot detection from reading bit flips as cuts.)"""
    proc = subprocess.Popen(
        [ffmpeg_path(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
         "-r", fps, "-i", "pipe:0",
         "-c:v", "libx264", "-crf", "12", "-g", "30", "-pix_fmt", "yuv420p", str(path)],
        stdin=subprocess.PIPE,
    )
    bar_w = width // BITS
    for n in range(frames):
        img = np.zeros((height, width, 3), np.uint8)
        strip = int(height * bar_rows)
        img[strip:] = tint
        gray = n ^ (n >> 1)  # Gray code: one bar flips per frame, so no frame looks like a cut
        for b in range(BITS):
            if (gray >> b) & 1:
                img[:strip, b * bar_w:(b + 1) * bar_w] = 255
        assert proc.stdin is not None
        proc.stdin.write(img.tobytes())
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait() == 0
    if rotate:  # display rotation is metadata: remux with the matrix set, pixels untouched
        upright = path.with_name(f"upright-{path.name}")
        path.rename(upright)
        subprocess.run([ffmpeg_path(), "-loglevel", "error", "-y", "-display_rotation", str(rotate), "-i", str(upright),
                        "-c", "copy", str(path)], check=True)
    return path


def read_counter(img: np.ndarray, bar_rows: float = 0.5) -> int:
    """Decode the frame index from an RGB frame made by make_counter_clip (any scale)."""
    h, w, _ = img.shape
    h = int(h * bar_rows) * 2
    top = img[: h // 2].mean(axis=2)
    bar_w = w / BITS
    n = 0
    for b in range(BITS):
        x0, x1 = int(b * bar_w + bar_w * 0.3), int((b + 1) * bar_w - bar_w * 0.3)
        if top[h // 8: h * 3 // 8, x0:x1].mean() > 128:
            n |= 1 << b
    shift = n >> 1
    while shift:  # Gray code back to binary
        n ^= shift
        shift >>= 1
    return n


def decode_frames(path: Path, width: int | None = None, height: int | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24", width=width, height=height) if width else f.to_ndarray(format="rgb24")
                for f in c.decode(video=0)]


def median_colors(path: Path) -> np.ndarray:
    """Per-frame median RGB, shape (frames, 3), decoded at low resolution."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24", width=96, height=54)
            out.append(np.median(img.reshape(-1, 3), axis=0))
    return np.array(out)


def video_facts(path: Path) -> tuple[int, Fraction, float, float]:
    """(decoded frame count, frame rate, video duration s, audio duration s)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = Fraction(v.average_rate)
        n = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        a_dur = 0.0
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(fr.samples for fr in c.decode(audio=0))
            a_dur = samples / a.rate
    return n, rate, n / float(rate), a_dur


def decode_audio_mono(path: Path, sr: int = 8000) -> np.ndarray:
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks = []
        for fr in c.decode(audio=0):
            for o in res.resample(fr):
                chunks.append(o.to_ndarray().reshape(-1))
        for o in res.resample(None):
            chunks.append(o.to_ndarray().reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
