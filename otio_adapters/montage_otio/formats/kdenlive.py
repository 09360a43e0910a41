"""`.kdenlive` (MLT XML): the `.otio` lowering plus what an XML document with plain paths cannot
hold; written and read by our own adapter (montage_otio.kdenlive, registered with OTIO as
`montage_kdenlive` in plugin_manifest.json)."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from montage_otio import kdenlive_read, kdenlive_write
from montage_otio import lowering as low
from montage_otio.formats import otio as otio_format
from montage_otio.formats.base import ExportContext, FormatSpec, Written


def lower(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> low.Lowered:
    """Names lose control characters XML cannot carry, and a clip whose path holds one becomes
    a gap (noted, naming the file)."""
    lowered = otio_format.lower(timeline, base_dir)
    low.xml_paths_only(lowered.timeline, lowered.notes)
    low.clean_texts(lowered.timeline, lowered.notes)
    return lowered


def export(timeline: otio.schema.Timeline, out: Path, ctx: ExportContext) -> Written:
    """The project's root is its own folder, as when Kdenlive saves it; media paths are
    absolute (relative ones resolved against the timeline's folder by lowering)."""
    lowered = lower(timeline, ctx.base_dir)
    text = kdenlive_write.to_string(lowered.timeline, root=out.parent.absolute())
    return Written({out: text}, lowered.notes)


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    return kdenlive_read.from_string(path.read_text(encoding="utf-8"), base_dir=path.resolve().parent)


FORMAT = FormatSpec(name="kdenlive", suffix=".kdenlive", adapter="montage_kdenlive",
                    for_="Kdenlive project file", export=export, read=read)
