"""What a format needs to know about a medium that a timeline may not say: its duration and its
own frame rate (an EDL source timecode and an FCP7 `<file>` are at the file's rate).

montage_otio does no probing of its own: the caller passes a `Probe` (the engine passes its
media probe), and without one the formats fall back to what the timeline holds.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

#: metadata[META_KEY] keys on an ExternalReference that name the medium's own rate
RATE_KEYS = ("fps_num", "fps_den")


class MediaFacts(BaseModel):
    """A medium as probed: duration in seconds, own frame rate (0 when it has no picture) and
    the number of frames when known."""

    model_config = ConfigDict(frozen=True)

    duration_s: float = Field(ge=0)
    fps_num: int = Field(0, ge=0)
    fps_den: int = Field(1, gt=0)
    frame_count: int = Field(0, ge=0)

    @property
    def fps(self) -> Fraction | None:
        return Fraction(self.fps_num, self.fps_den) if self.fps_num else None

    def frames_at(self, rate: Fraction) -> int:
        """Whole frames of the medium at `rate` (its own frame count at its own rate)."""
        if self.frame_count and self.fps == rate:
            return self.frame_count
        return int(self.duration_s * rate + Fraction(1, 10**6))


#: path -> facts, or None when the file is not there or cannot be read
Probe = Callable[[Path], "MediaFacts | None"]


def no_probe(path: Path) -> MediaFacts | None:
    """The probe used when the caller gives none: nothing is known beyond the timeline."""
    return None


class MediaCache:
    """One probe per file per export, whatever the number of clips using it."""

    def __init__(self, probe: Probe | None):
        self._probe = probe or no_probe
        self._seen: dict[str, MediaFacts | None] = {}

    def __call__(self, path: str) -> MediaFacts | None:
        if path not in self._seen:
            try:
                self._seen[path] = self._probe(Path(path)) if Path(path).is_file() else None
            except Exception:  # an unreadable file just has no known facts
                self._seen[path] = None
        return self._seen[path]
