"""The timeline vocabulary the engine and the format plugins share.

The engine writes timelines and the plugins read and write them for editors; both must agree on
where our metadata lives, what the grade is called, what 29.97 means exactly and how a media URL
becomes a path. This module is that agreement, with no dependency on either side, so the
dependency runs one way: montage_ai imports montage_otio, never the reverse.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

#: the metadata key under which our timeline, clip and marker data lives
META_KEY = "montage_ai"
#: the effect name of the grade (an Effect on the video track; its metadata[META_KEY] is the look)
LOOK_EFFECT = "montage_ai.look"

_COMMON_RATES = [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(24),
                 Fraction(25), Fraction(30), Fraction(48), Fraction(50), Fraction(60)]


def exact_rate(rate: float) -> Fraction:
    """29.97 -> 30000/1001: OTIO stores rates as floats, frame arithmetic wants exact fractions."""
    for r in _COMMON_RATES:
        if abs(float(r) - rate) < 0.005:
            return r
    return Fraction(rate).limit_denominator(1001)


def url_to_path(url: str, base_dir: Path | None = None) -> Path:
    """An ExternalReference URL (plain path or file://) as a local path; relative to base_dir."""
    if url.startswith("file:"):
        path = Path(unquote(urlparse(url).path))
    else:
        path = Path(url)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def plain_path(url: str) -> str:
    """A target_url as the plain path text our timelines store: a local file:// URL decoded,
    anything else (a relative path, another scheme) unchanged."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc in ("", "localhost"):
            return unquote(parsed.path)
    return url


def absolute_path(url: str, base_dir: Path | None) -> str:
    """A plain absolute, normalised path for a path or file:// URL: a relative one resolves
    against `base_dir` (the timeline file's folder), never the process's working directory
    unless no folder is known."""
    path = Path(plain_path(url))
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return os.path.normpath(path)


def path_to_url(url: str, base_dir: Path | None = None) -> str:
    """An absolute, percent-encoded file:// URL for a path or URL (relative -> base_dir)."""
    return Path(absolute_path(url, base_dir)).as_uri()
