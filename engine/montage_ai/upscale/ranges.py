"""Which source pixels a montage uses, and how much they need to grow.

Upscaling is the most expensive step of a render (about a second per frame on a CPU), so it
must touch only what the conform will show: the used time ranges of each source (merged, so a
range used by several cuts is upscaled once), only sources smaller than the output in the
dimension the fit mode scales, and only the part of the picture that the conform's crop keeps.
Everything here is pure: a RenderSpec and probed sizes in, an UpscalePlan out, and the
re-pointing of a RenderSpec at the upscaled intermediates.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import MontageError
from ..timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan

ModelName = Literal["realesr-animevideov3", "realesrgan-x4plus"]
MODEL_SCALES: dict[str, tuple[int, ...]] = {
    "realesr-animevideov3": (2, 3, 4),   # one ncnn/torch network per scale
    "realesrgan-x4plus": (4,),           # a x4 network only
}
UPSCALE_VERSION = 1   # bump when the frames an UpscaleJob produces change


class UpscaleError(MontageError):
    """Upscaling was asked for and cannot be done (bad options, every backend failed)."""

    exit_code = 3


class CropBox(BaseModel):
    """A window in display (upright) source pixels; even-aligned so 4:2:0 sources crop exactly."""

    model_config = ConfigDict(frozen=True)

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class SourceGeom(BaseModel):
    """The facts about a source that planning and decoding need (a subset of MediaInfo)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    width: int            # display size, after rotation
    height: int
    fps_num: int
    fps_den: int = 1
    duration_s: float
    rotation_deg: int = 0
    size_bytes: int = 0
    mtime_ns: int = 0
    has_audio: bool = False

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @classmethod
    def from_media(cls, info) -> "SourceGeom":
        """From a `montage_ai.media.probe.MediaInfo`."""
        return cls(path=info.path, width=info.width, height=info.height, fps_num=info.fps_num or 25,
                   fps_den=info.fps_den or 1, duration_s=info.duration_s, rotation_deg=info.rotation_deg,
                   size_bytes=info.size_bytes, mtime_ns=info.mtime_ns, has_audio=info.has_audio)


class UpscaleJob(BaseModel):
    """One merged source range to upscale: source frames [start_frame, end_frame) on the
    source's own frame grid, cropped, then scaled by `scale` with `model`."""

    model_config = ConfigDict(frozen=True)

    source: Path
    start_frame: int = Field(ge=0)
    end_frame: int
    fps_num: int
    fps_den: int = 1
    crop: CropBox
    scale: int
    model: ModelName
    rotation_deg: int = 0
    source_size: int = 0          # bytes and mtime: a changed source invalidates the cache
    source_mtime_ns: int = 0
    has_audio: bool = False

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def start_s(self) -> float:
        """Intermediate time 0 is this source time (seconds from the file's start)."""
        return float(self.start_frame / self.fps)

    @property
    def end_s(self) -> float:
        return float(self.end_frame / self.fps)

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def out_width(self) -> int:
        return self.crop.w * self.scale

    @property
    def out_height(self) -> int:
        return self.crop.h * self.scale

    def key(self) -> str:
        """Cache key: everything that determines the upscaled pixels, not the backend."""
        blob = json.dumps({
            "v": UPSCALE_VERSION, "src": [str(self.source), self.source_size, self.source_mtime_ns],
            "frames": [self.start_frame, self.end_frame, self.fps_num, self.fps_den],
            "crop": self.crop.model_dump(), "rot": self.rotation_deg, "scale": self.scale, "model": self.model,
        }, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def covers(self, path: Path, start_s: float) -> bool:
        """Whether a span starting at `start_s` in `path` reads from this range. Merged ranges
        do not overlap and each span's whole range was merged into the one holding its start."""
        eps = 0.25 / float(self.fps)
        return path == self.source and self.start_s - eps <= start_s < self.end_s

    def describe(self) -> str:
        c = self.crop
        return (f"{self.source.name} {self.start_s:.2f}-{self.end_s:.2f}s ({self.frames} frames) "
                f"crop {c.w}x{c.h}+{c.x}+{c.y} x{self.scale} -> {self.out_width}x{self.out_height}")


class SkippedSource(BaseModel):
    path: Path
    reason: str


class UpscalePlan(BaseModel):
    jobs: list[UpscaleJob]
    skipped: list[SkippedSource] = []

    @property
    def total_frames(self) -> int:
        return sum(j.frames for j in self.jobs)


# --------------------------------------------------------------------------- geometry


def fit_factor(src_w: int, src_h: int, s: RenderSettings) -> float:
    """How much the conform scales this source: `increase` (cover) for crop, `decrease` for pad."""
    fx, fy = s.width / src_w, s.height / src_h
    return max(fx, fy) if s.fit == "crop" else min(fx, fy)


def crop_window(src_w: int, src_h: int, s: RenderSettings) -> CropBox:
    """The source pixels the conform keeps. For fit=crop the centre window of the output's
    aspect ratio; for pad the whole frame. Sizes and offsets are even (4:2:0 chroma and H.264
    need it): windows grow outwards, an odd source loses its last row or column."""
    max_w, max_h = max(2, _even_down(src_w)), max(2, _even_down(src_h))
    if s.fit == "pad":
        return CropBox(x=0, y=0, w=max_w, h=max_h)
    f = fit_factor(src_w, src_h, s)
    w = min(max_w, _even_up(math.ceil(s.width / f - 1e-6)))
    h = min(max_h, _even_up(math.ceil(s.height / f - 1e-6)))
    return CropBox(x=_even_down((src_w - w) // 2), y=_even_down((src_h - h) // 2), w=w, h=h)


def choose_scale(factor: float, model: str, override: int | None = None) -> int:
    """The smallest model scale that reaches `factor` (the largest when none does)."""
    scales = MODEL_SCALES[model]
    if override is not None:
        if override not in scales:
            raise UpscaleError(f"upscale model {model} supports x{'/x'.join(map(str, scales))}, not x{override}")
        return override
    for k in scales:
        if k + 1e-9 >= factor:
            return k
    return scales[-1]


def _even_up(v: int) -> int:
    return v + (v & 1)


def _even_down(v: int) -> int:
    return v - (v & 1)


# --------------------------------------------------------------------------- ranges


def used_spans(spec: RenderSpec) -> list[tuple[Path, float, float]]:
    """(source, start s, end s) of every span the conform reads, dissolve sides included."""
    out: list[tuple[Path, float, float]] = []
    fps = float(spec.settings.fps)
    for p in spec.pieces:
        for span in (p.a, p.b):
            if span is not None and p.kind != "black":
                out.append((span.path, span.start_s, span.start_s + p.frames / fps))
    return out


def frame_range(start_s: float, end_s: float, geom: SourceGeom, out_fps: Fraction) -> tuple[int, int]:
    """Source frames [first, last) covering a span, with a frame of margin on each side: the
    conform seeks half an output frame early and its fps filter may take a neighbour frame."""
    rate = geom.fps
    margin = max(1 / float(rate), 1 / float(out_fps))
    first = max(0, math.floor((start_s - margin) * rate + 1e-6))
    last = math.ceil((end_s + margin) * rate - 1e-6) + 1
    total = max(1, math.ceil(geom.duration_s * rate - 1e-6)) if geom.duration_s > 0 else last
    return first, max(first + 1, min(last, total))


def merge_ranges(ranges: list[tuple[int, int]], gap_frames: int = 0) -> list[tuple[int, int]]:
    """Overlapping or adjacent (within `gap_frames`) frame ranges become one."""
    merged: list[list[int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + gap_frames:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def plan_upscale(spec: RenderSpec, geoms: Mapping[Path, SourceGeom], model: str = "realesr-animevideov3",
                 scale: int | None = None, gap_frames: int = 0) -> UpscalePlan:
    """The upscale jobs a spec needs: per source smaller than the output, its used ranges merged."""
    s = spec.settings
    by_source: dict[Path, list[tuple[float, float]]] = {}
    for path, a, b in used_spans(spec):
        by_source.setdefault(path, []).append((a, b))
    jobs: list[UpscaleJob] = []
    skipped: list[SkippedSource] = []
    for path, spans in by_source.items():
        geom = geoms.get(path)
        if geom is None:
            raise UpscaleError(f"{path}: no probe for an upscale plan")
        factor = fit_factor(geom.width, geom.height, s)
        if factor <= 1 + 1e-6:
            skipped.append(SkippedSource(path=path, reason=f"{geom.width}x{geom.height} already covers "
                                         f"{s.width}x{s.height} (fit={s.fit})"))
            continue
        k = choose_scale(factor, model, scale)
        crop = crop_window(geom.width, geom.height, s)
        frames = merge_ranges([frame_range(a, b, geom, s.fps) for a, b in spans], gap_frames)
        jobs += [UpscaleJob(source=path, start_frame=a, end_frame=b, fps_num=geom.fps_num, fps_den=geom.fps_den,
                            crop=crop, scale=k, model=model, rotation_deg=geom.rotation_deg,
                            source_size=geom.size_bytes, source_mtime_ns=geom.mtime_ns, has_audio=geom.has_audio)
                 for a, b in frames]
    return UpscalePlan(jobs=jobs, skipped=skipped)


# --------------------------------------------------------------------------- remapping


def remap_spec(spec: RenderSpec, plan: UpscalePlan, outputs: Mapping[str, Path]) -> RenderSpec:
    """The same spec with every span inside an upscaled range re-pointed at that range's
    intermediate (`outputs`: job key -> file), its start re-based so intermediate time 0 is
    the range start. Spans of sources that needed no upscale are left alone."""
    def move(span: SourceSpan | None) -> SourceSpan | None:
        if span is None:
            return None
        for job in plan.jobs:
            if job.covers(span.path, span.start_s) and job.key() in outputs:
                return SourceSpan(path=outputs[job.key()], start=max(Fraction(0), span.start - job.start_frame / job.fps))
        return span

    pieces: list[Piece] = [p.model_copy(update={"a": move(p.a), "b": move(p.b)})
                           for p in spec.pieces]
    return spec.model_copy(update={"pieces": pieces})
