"""`.otio` (OTIO JSON): carries everything; lowered for Kdenlive 25.04+'s native importer."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from montage_otio import lowering as low
from montage_otio.formats.base import ExportContext, FormatSpec, Written, first_timeline


def lower(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> low.Lowered:
    """Every time at the video rate (the importer takes the project rate from
    `timeline.duration()`), markers on the stack with the label in `comment` (shown as guides),
    only ExternalReference clips."""
    out, rate, notes = low.start(timeline, base_dir)
    low.stack_markers(out)
    if out.global_start_time is None:
        out.global_start_time = otio.opentime.RationalTime(0, float(rate))
    return low.Lowered(out, notes)


def export(timeline: otio.schema.Timeline, out: Path, ctx: ExportContext) -> Written:
    lowered = lower(timeline, ctx.base_dir)
    text = otio.adapters.write_to_string(lowered.timeline, adapter_name="otio_json")
    return Written({out: text}, lowered.notes)


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    text = path.read_text(encoding="utf-8", errors="replace")
    return first_timeline(otio.adapters.read_from_string(text, adapter_name="otio_json"), path)


FORMAT = FormatSpec(name="otio", suffix=".otio", adapter="otio_json",
                    for_="OTIO tools, Kdenlive 25.04+ (native import), Resolve", export=export, read=read)
