"""The one registry of interchange formats: name -> FormatSpec, in the order users see them.

Every format lives in its own module under montage_otio.formats; this is the only list of them.
Callers (the engine's facade, otioconvert through the kdenlive adapter) go through here.
"""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from montage_otio import sidecar
from montage_otio.errors import InterchangeError
from montage_otio.formats import edl, fcp7, fcpxml, kdenlive
from montage_otio.formats import otio as otio_format
from montage_otio.formats.base import ExportContext, FormatSpec, Written, adapter_can
from montage_otio.lowering import absolute_paths
from montage_otio.media import MediaCache, Probe

FORMATS: dict[str, FormatSpec] = {f.name: f for f in (
    otio_format.FORMAT, kdenlive.FORMAT, fcp7.FORMAT, fcpxml.FORMAT, edl.FORMAT)}

__all__ = ["FORMATS", "FormatSpec", "Written", "available", "export", "format_for", "paths", "read"]


def format_for(path: Path) -> FormatSpec:
    """The format a file name says (its suffix, or a bundle suffix such as .fcpxmld)."""
    name = path.name.lower()
    for fmt in FORMATS.values():
        if name.endswith(fmt.suffix) or any(name.endswith(s) for s in fmt.read_suffixes):
            return fmt
    raise InterchangeError(f"cannot read {path}: unknown timeline format (expected one of "
                           f"{', '.join(f.suffix for f in FORMATS.values())})")


def available(name: str) -> bool:
    """Whether format `name` can be written here (its adapter, ours or a PyPI one, is installed)."""
    return adapter_can(FORMATS[name].adapter, "write")


def export(name: str, timeline: otio.schema.Timeline, out: Path, base_dir: Path | None = None,
           probe: Probe | None = None, edl_source_timecode: str = "own") -> Written:
    """The texts of `timeline` in format `name` for `out` (nothing is written here)."""
    ctx = ExportContext(base_dir=base_dir, media=MediaCache(probe), edl_source_timecode=edl_source_timecode)
    return FORMATS[name].export(timeline, out, ctx)


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """A timeline file in any format, repaired and completed from its sidecar, with every media
    path a plain path resolved against the file's own folder (never the working directory)."""
    fmt = format_for(path)
    timeline = fmt.read(path, rate)
    if fmt.sidecar:
        sidecar.apply(timeline, sidecar.load(path, companion=fmt.name == "edl")[0])
    absolute_paths(timeline, path.absolute().parent)
    return timeline


def paths(name: str, out: Path, audio_tracks: int) -> list[Path]:
    return FORMATS[name].paths(out, audio_tracks)
