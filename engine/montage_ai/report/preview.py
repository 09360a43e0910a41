"""--preview: the same cut, rendered fast and small, to check before the full render.

Only the output format changes: the frame rate, the frame count and every piece's record and
source range stay as they are, so the preview shows exactly the frames the full render will
(a quarter or less of the pixels, at most 360 lines, dimensions even for yuv420p), and x264's
fastest preset with a higher CRF does the final encode. The render cache keys include the
size, so preview pieces never stand in for full ones.
"""

from __future__ import annotations

from ..timeline.model import RenderSettings, RenderSpec

PREVIEW_SHORT_SIDE = 360
PREVIEW_MIN_SHORT_SIDE = 144
PREVIEW_PRESET = "ultrafast"
PREVIEW_CRF = 30
PREVIEW_NAME = "montage-preview.mp4"


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def preview_size(width: int, height: int, short_side: int = PREVIEW_SHORT_SIDE) -> tuple[int, int]:
    """At most `short_side` on the short side and at most a quarter of the pixels, aspect kept,
    but never below 144 lines (or the original, if smaller): a preview must stay legible."""
    short = min(width, height)
    target = max(min(short * 0.5, short_side), min(short, PREVIEW_MIN_SHORT_SIDE))
    scale = target / short
    return _even(width * scale), _even(height * scale)


def preview_settings(render_settings: RenderSettings, short_side: int = PREVIEW_SHORT_SIDE) -> RenderSettings:
    """The preview's output format: small, ultrafast, CRF >= 30; same rate, fit and audio."""
    w, h = preview_size(render_settings.width, render_settings.height, short_side)
    return RenderSettings(**{**render_settings.model_dump(), "width": w, "height": h,
                             "preset": PREVIEW_PRESET, "crf": max(render_settings.crf, PREVIEW_CRF)})


def preview_spec(spec: RenderSpec, short_side: int = PREVIEW_SHORT_SIDE) -> RenderSpec:
    """`spec` with the preview format; pieces, audio, look and frame count untouched."""
    return spec.model_copy(update={"settings": preview_settings(spec.settings, short_side)})
