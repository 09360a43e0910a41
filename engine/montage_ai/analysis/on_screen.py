"""Text on screen over a clip: when to measure it, and where it is.

analysis/text.py measures one frame; this module decides which frames to measure (the
sampling policy, within the analysis pass) and turns the per-sample measures into ranges the
cutter can leave out (`TextRange`) and a text share per shot. Pure, apart from the detector
call in `TextSampler`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from .text import text_share

TEXT_EVERY_S = 2.0                  # one frame every 2 s is sampled for text (~33 ms each at 480 px)
TEXT_REFRESH_S = 6.0                # ...and measured again at least this often
TEXT_LOOK_CHANGE = 24               # ...or when some cell of the 16x9 look changed this much (0..255)
FLAT_CONTRAST = 2.0                 # luma variance (0..255 scale) of a frame of one flat colour
TEXT_MIN_SHARE = 0.003              # share of the frame in text lines that counts (a 'presents' line: ~0.009)
TEXT_SHOT = 0.5                     # a shot with text in this share of its samples (two at least) is a text shot
STAMP_SAMPLES = 5                   # a clip sampled at least this often...
STAMP_PRESENT = 0.8                 # ...with small text in this share of its samples...
STAMP_MAX_SHARE = 0.02              # ...never covering more of the frame: a burned-in clock or logo


class TextRange(BaseModel):
    """Where lines of rendered text are on screen (a title, credits, a lower third)."""

    start_s: float
    end_s: float
    share: float                # the largest share of the frame its lines covered


@dataclass
class TextSampler:
    """Measures the sampled frames of one pass, skipping those that cannot have changed."""

    last: tuple[float, np.ndarray, float] | None = None     # last measure: time, look, share

    def share(self, t: float, detail: np.ndarray, look: np.ndarray, contrast: float) -> float:
        """The text share of a sampled frame (`detail`, TEXT_WIDTH wide; `look` its 16x9
        signature): measured, or the last measure again where the picture has not changed
        anywhere since and it is recent (a still camera). A flat frame has no text."""
        if contrast < FLAT_CONTRAST:
            return 0.0
        look = look.astype(np.int16)
        last = self.last
        if last is not None and t - last[0] < TEXT_REFRESH_S and int(np.abs(look - last[1]).max()) < TEXT_LOOK_CHANGE:
            return last[2]
        share = text_share(detail)
        self.last = (t, look, share)
        return share


def burned_in(share: np.ndarray) -> bool:
    """Whether the text a clip shows is a burned-in stamp (a dashcam's or a security camera's
    clock, a channel logo): small and on nearly every sample of a clip long enough to tell.
    Taken as part of the picture; otherwise the whole clip would be left out."""
    sampled = share[~np.isnan(share)]
    if sampled.size < STAMP_SAMPLES:
        return False
    hits = sampled[sampled >= TEXT_MIN_SHARE]
    return hits.size >= STAMP_PRESENT * sampled.size and float(hits.max()) < STAMP_MAX_SHARE


def text_on_screen(spans: list[tuple[float, float]], times: np.ndarray, share: np.ndarray
                   ) -> tuple[list[float], list[TextRange]]:
    """For shots [start s, end s): each one's share of samples showing text, and the ranges
    with text: a whole shot where two or more and half of its samples show text (a title
    fading in is faint before it is found), else each run of samples with text widened by the
    sampling step on both sides (the text came up after the sample before and left before the
    sample after), kept inside the shot. NaN shares are samples not measured."""
    sampled = ~np.isnan(share)
    hits = sampled & (np.nan_to_num(share) >= TEXT_MIN_SHARE)
    ratios, ranges = [], []
    for start, end in spans:
        inside = (times >= start - 1e-6) & (times < end - 1e-6)
        order = np.flatnonzero(inside & sampled)
        found = np.flatnonzero(inside & hits)
        ratios.append(found.size / order.size if order.size else 0.0)
        if not found.size:
            continue
        if found.size >= 2 and ratios[-1] >= TEXT_SHOT:
            ranges.append(TextRange(start_s=start, end_s=end, share=_r(share[found].max())))
            continue
        position = {int(i): j for j, i in enumerate(order)}
        run = [int(found[0])]
        for i in [int(x) for x in found[1:]] + [None]:
            if i is not None and position[i] == position[run[-1]] + 1:
                run.append(i)
                continue
            ranges.append(TextRange(start_s=_r(max(start, times[run[0]] - TEXT_EVERY_S)),
                                    end_s=_r(min(end, times[run[-1]] + TEXT_EVERY_S)),
                                    share=_r(share[run].max())))
            if i is not None:
                run = [i]
    return ratios, ranges


def _r(x: float) -> float:
    return round(float(x), 4)
