"""Rendered text in a frame (titles, credits, cards, lower thirds, subtitles).

The analysis pass hands this module one frame a second, TEXT_WIDTH pixels wide, and keeps
the share of the frame covered by lines of text. The detector is PaddleOCR's PP-OCRv4 text
detection network (a DBNet, 4.7 MB, Apache-2.0; models/NOTICE.md) run by onnxruntime on one
thread: it answers, per pixel, how likely the pixel lies inside a line of text.

Why a learned detector: hand-made stroke and edge measures were measured on the same frames
(docs/craft.md). They found small type on plain backgrounds but missed titles set as a logo
(Big Buck Bunny's, letters touching, two lines fused) and fired on grass and leaves. The
network finds both; its own mistakes on real footage (a white car roof, a face, a patterned
floor) are blobs, not lines, so a region counts only when it is shaped like a line of text:
at least LINE_ASPECT times as wide as high and filling its box like a line does. The
analysis (shots.py) then asks for the text to stay on screen for more than one sample.

onnxruntime is imported on first use, in the analysis only.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import ndimage as ndi

TEXT_WIDTH = 480                # px: frames are measured at this width (small type stays ~6 px high)
MODEL = "models/text_detector_ppocrv4_det.onnx"
PIXEL_THRESHOLD = 0.3           # DBNet's usual binarisation of its probability map
LINE_MIN_SCORE = 0.7            # mean probability inside a region
LINE_ASPECT = 2.5               # width / height of a line of text, at least
LINE_MIN_FILL = 0.72            # share of its box a region covers (lines are rectangles)
LINE_MIN_HEIGHT = 3             # px at TEXT_WIDTH


@dataclass(frozen=True)
class TextLine:
    """One line of text: its box in the frame measured (pixels) and the network's mean score."""

    top: int
    left: int
    height: int
    width: int
    score: float


def text_share(rgb: np.ndarray) -> float:
    """Share (0..1) of the frame covered by the boxes of its lines of text; NaN where the
    detector cannot run here (`unavailable()` says why)."""
    h, w = rgb.shape[:2]
    if h < 8 or w < 8:
        return 0.0
    if unavailable():
        return math.nan
    return min(1.0, sum(line.height * line.width for line in text_lines(rgb)) / float(h * w))


def unavailable() -> str | None:
    """Why the text detector cannot run on this machine (onnxruntime missing or unusable), or None."""
    try:
        _Detector.get()
    except Exception as exc:   # ImportError, onnxruntime's own errors: the analysis goes on without text
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return None


def text_lines(rgb: np.ndarray) -> list[TextLine]:
    """Lines of text in an (h, w, 3) uint8 RGB frame (about TEXT_WIDTH wide)."""
    prob = _Detector.get().probability(rgb)
    labels, _ = ndi.label(prob > PIXEL_THRESHOLD)
    lines = []
    for i, (rows, cols) in enumerate(ndi.find_objects(labels), start=1):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if h < LINE_MIN_HEIGHT or w < LINE_ASPECT * h:
            continue
        inside = labels[rows, cols] == i
        score = float(prob[rows, cols][inside].mean())
        if score >= LINE_MIN_SCORE and inside.mean() >= LINE_MIN_FILL:
            lines.append(TextLine(rows.start, cols.start, h, w, round(score, 3)))
    return lines


class _Detector:
    """One onnxruntime session per process, made on first use; `run` is thread-safe."""

    _instance: _Detector | None = None
    _failure: Exception | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1        # the analysis is already parallel over clips and parts
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = (resources.files(__package__) / MODEL).read_bytes()
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    @classmethod
    def get(cls) -> _Detector:
        with cls._lock:
            if cls._failure is not None:
                raise cls._failure
            if cls._instance is None:
                try:
                    cls._instance = cls()
                except Exception as exc:
                    cls._failure = exc
                    raise
            return cls._instance

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """The network's per-pixel text probability for an RGB frame, same height and width.
        Input as PaddleOCR trains it: BGR, scaled to -1..1, padded to multiples of 32."""
        h, w = rgb.shape[:2]
        x = np.zeros((1, 3, (h + 31) // 32 * 32, (w + 31) // 32 * 32), np.float32)
        x[0, :, :h, :w] = rgb[..., ::-1].transpose(2, 0, 1) * np.float32(2.0 / 255.0) - np.float32(1.0)
        return self.session.run(None, {self.input: x})[0][0, 0, :h, :w]
