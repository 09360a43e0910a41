"""Decoded frame -> output picture: upright, scaled to cover (crop) or fit (pad) the output,
as one I420 (yuv420p, limited range) buffer of exactly width x height. Also black and the
dissolve blend. Arrays in, arrays out: no files, no processes.

Scaling runs in libswscale (PyAV's reformat, bicubic, as the old ffmpeg filter chain did);
rotation, crop and pad are plane slicing in NumPy on the scaled picture, so they cost little.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import av.video.reformatter
import numpy as np

from ..timeline.model import RenderSettings


@dataclass(frozen=True)
class Planes:
    """An I420 picture as three planes (Y full size, U and V half size each way)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The planes as contiguous arrays, to write to a pipe as they are: joining them into one
        bytes object first costs a fresh 1.4 MB allocation and two copies per 720p frame."""
        return np.ascontiguousarray(self.y), np.ascontiguousarray(self.u), np.ascontiguousarray(self.v)

    def tobytes(self) -> bytes:
        return b"".join(p.tobytes() for p in self.buffers())


def _even(v: float) -> int:
    return max(2, int(round(v / 2)) * 2)


def scaled_size(display_w: int, display_h: int, s: RenderSettings) -> tuple[int, int]:
    """The upright size the picture is scaled to: covering the output (crop) or inside it (pad),
    aspect kept, even, never off by more than a pixel pair from exact."""
    cover = s.fit != "pad"
    factor = (max if cover else min)(s.width / display_w, s.height / display_h)
    w, h = _even(display_w * factor), _even(display_h * factor)
    if cover:
        w, h = max(w, s.width), max(h, s.height)
    else:
        w, h = min(w, s.width), min(h, s.height)
    return w, h


def black(s: RenderSettings) -> Planes:
    return Planes(np.full((s.height, s.width), 16, np.uint8),
                  np.full((s.height // 2, s.width // 2), 128, np.uint8),
                  np.full((s.height // 2, s.width // 2), 128, np.uint8))


def _planes(frame: av.VideoFrame) -> Planes:
    w, h = frame.width, frame.height
    flat = frame.to_ndarray().reshape(-1)
    y = flat[: w * h].reshape(h, w)
    c = (w // 2) * (h // 2)
    u = flat[w * h: w * h + c].reshape(h // 2, w // 2)
    v = flat[w * h + c: w * h + 2 * c].reshape(h // 2, w // 2)
    return Planes(y, u, v)


def source_range(frame: av.VideoFrame) -> str:
    """"JPEG" (full range: phones' and webcams' yuvj, many MJPEG files) or "MPEG" (limited)."""
    full = int(frame.color_range) == 2 or frame.format.name.startswith("yuvj")
    return "JPEG" if full else "MPEG"


def conform(frame: av.VideoFrame, rotation_deg: int, s: RenderSettings,
            scaler: av.video.reformatter.VideoReformatter | None = None) -> Planes:
    """One source frame as the output picture: limited-range yuv420p whatever the source's range
    and depth (a full-range phone clip would otherwise come out too bright and too contrasty).
    `scaler` keeps one swscale context per span."""
    quarter_turns = (rotation_deg // 90) % 4
    sideways = quarter_turns % 2 == 1
    disp_w, disp_h = (frame.height, frame.width) if sideways else (frame.width, frame.height)
    sw, sh = scaled_size(disp_w, disp_h, s)
    coded_w, coded_h = (sh, sw) if sideways else (sw, sh)
    scaled = (scaler or av.video.reformatter.VideoReformatter()).reformat(
        frame, width=coded_w, height=coded_h, format="yuv420p", interpolation="BICUBIC",
        src_color_range=source_range(frame), dst_color_range="MPEG")
    p = _planes(scaled)
    if quarter_turns:
        p = Planes(*(np.rot90(x, quarter_turns) for x in (p.y, p.u, p.v)))   # counter-clockwise, as the matrix
    return _place(p, sw, sh, s)


def _place(p: Planes, sw: int, sh: int, s: RenderSettings) -> Planes:
    """Crop the centre of a covering picture, or centre a fitting one on black."""
    if s.fit != "pad":
        x0, y0 = ((sw - s.width) // 4) * 2, ((sh - s.height) // 4) * 2
        return Planes(p.y[y0:y0 + s.height, x0:x0 + s.width],
                      p.u[y0 // 2:(y0 + s.height) // 2, x0 // 2:(x0 + s.width) // 2],
                      p.v[y0 // 2:(y0 + s.height) // 2, x0 // 2:(x0 + s.width) // 2])
    out = black(s)
    x0, y0 = ((s.width - sw) // 4) * 2, ((s.height - sh) // 4) * 2
    out.y[y0:y0 + sh, x0:x0 + sw] = p.y
    out.u[y0 // 2:(y0 + sh) // 2, x0 // 2:(x0 + sw) // 2] = p.u
    out.v[y0 // 2:(y0 + sh) // 2, x0 // 2:(x0 + sw) // 2] = p.v
    return out


def blend(a: Planes, b: Planes, weight_b: float) -> Planes:
    """A dissolve frame: (1 - w) * a + w * b, rounded (xfade's `fade` at progress 1 - w)."""
    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x * (1.0 - weight_b) + y * weight_b), 0, 255).astype(np.uint8)

    return Planes(mix(a.y, b.y), mix(a.u, b.u), mix(a.v, b.v))
