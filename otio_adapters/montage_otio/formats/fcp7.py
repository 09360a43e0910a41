"""FCP7 XML (`.xml`, Premiere Pro and DaVinci Resolve), through the `fcp_xml` adapter.

Each `<file>` carries the medium's own rate and length (a 25 fps file in a 29.97 sequence is
`<rate>` 25 with its 25 fps frame count); clip in/out points stay at the sequence rate, as FCP7
XML defines them. The document is the adapter's own (its public write_to_string), serialised
again with ElementTree: the adapter pretty-prints through minidom, whose parser turns a CR in a
name into LF, so a CR crosses it as a private-use character and is written back as `&#13;`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree as ET

import opentimelineio as otio

from montage_otio import lowering as low
from montage_otio import sidecar
from montage_otio.formats.base import (
    ExportContext,
    FormatSpec,
    Written,
    first_timeline,
    need_adapter,
)
from montage_otio.names import keep_carriage_returns
from montage_otio.vocab import META_KEY, exact_rate

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def lower(timeline: otio.schema.Timeline, base_dir: Path | None = None, media: low.MediaCache | None = None) -> low.Lowered:
    """Absolute percent-encoded file:// URLs, media with their real durations at their own
    rates, sequence markers with the label in `<comment>`, the frame size in the sequence
    format, text XML can hold. NTSC: timebase 30 with ntsc TRUE for 30000/1001."""
    out, rate, notes = low.start(timeline, base_dir)
    low.stack_markers(out)
    low.file_urls(out, base_dir)
    low.ensure_available_ranges(out, rate, notes, media or low.MediaCache(None), own_rates=True)
    low.clean_texts(out, notes)
    for m in out.tracks.markers:
        meta = dict(m.metadata.get("fcp_xml", {}) or {})
        meta["comment"] = m.comment
        m.metadata["fcp_xml"] = meta
    render = (out.metadata.get(META_KEY) or {}).get("render") or {}
    if render.get("width") and render.get("height"):
        fcp = dict(out.metadata.get("fcp_xml", {}) or {})
        fcp["media"] = {"video": {"format": {"samplecharacteristics": {
            "width": int(render["width"]), "height": int(render["height"]), "pixelaspectratio": "square",
            "rate": {"timebase": int(-(-rate.numerator // rate.denominator)),
                     "ntsc": "TRUE" if rate.denominator != 1 else "FALSE"}}}}}
        out.metadata["fcp_xml"] = fcp
    for track in out.tracks:
        for item in track:
            if isinstance(item, otio.schema.Transition) and item.in_offset != item.out_offset and \
                    abs(item.in_offset.value - item.out_offset.value) > 1:
                notes.append(f"transition {item.name!r} is off-centre; FCP7 XML stores it centred on the cut")
    return low.Lowered(out, notes)


#: what a CR in a name travels as through the adapter's minidom round trip (a private-use
#: character no file name or label is expected to hold; lowering leaves no other control there)
_CR = "\ue00d"


def _hide_carriage_returns(timeline: otio.schema.Timeline) -> None:
    """Every name and marker text with CR as _CR: minidom's parser turns a CR into LF."""
    objs = [timeline, timeline.tracks, *timeline.tracks.find_children()]
    objs += [c.media_reference for c in timeline.find_clips() if c.media_reference is not None]
    for obj in objs:
        if getattr(obj, "name", None) and "\r" in obj.name:
            obj.name = obj.name.replace("\r", _CR)
        for m in getattr(obj, "markers", []):
            m.name, m.comment = (t.replace("\r", _CR) if t else t for t in (m.name, m.comment))
            comment = (m.metadata.get("fcp_xml") or {}).get("comment")
            if comment:
                m.metadata["fcp_xml"]["comment"] = str(comment).replace("\r", _CR)


def document(timeline: otio.schema.Timeline, out: Path) -> str:
    """The fcp_xml adapter's own document (its public write_to_string), re-serialised by
    ElementTree with each CR written as `&#13;` (see the module doc)."""
    copy = timeline.deepcopy()
    if copy.global_start_time is None:
        copy.global_start_time = RT(0, float(low.video_rate(copy)))
    _hide_carriage_returns(copy)
    root = ET.fromstring(need_adapter("fcp_xml", out).write_to_string(copy))
    for el in root.iter():
        if el.text and _CR in el.text:
            el.text = el.text.replace(_CR, "\r")
    ET.indent(root, space="    ")
    return '<?xml version="1.0" ?>\n' + keep_carriage_returns(ET.tostring(root, encoding="unicode")) + "\n"


def export(timeline: otio.schema.Timeline, out: Path, ctx: ExportContext) -> Written:
    lowered = lower(timeline, ctx.base_dir, ctx.media)
    rate = low.video_rate(timeline)
    return Written({out: document(lowered.timeline, out),
                    sidecar.path_for(out): sidecar.text(out, timeline, rate.numerator, rate.denominator)},
                   lowered.notes)


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """The adapter's reading plus what it keeps only as metadata: marker comments and the
    sequence's size and exact rate."""
    timeline = first_timeline(need_adapter("fcp_xml", path, "read").read_from_file(str(path)), path)
    for m in timeline.tracks.markers:
        comment = (m.metadata.get("fcp_xml") or {}).get("comment")
        if comment and not m.comment:
            m.comment = str(comment)
    fcp = timeline.metadata.get("fcp_xml") or {}
    chars = (((fcp.get("media") or {}).get("video") or {}).get("format") or {}).get("samplecharacteristics") or {}
    seq_rate = fcp.get("rate") or {}
    fps: Fraction | None = None
    if seq_rate.get("timebase"):   # the sequence's own rate: timebase 30 + ntsc TRUE is 30000/1001
        base = float(seq_rate["timebase"])
        fps = exact_rate(base * 1000 / 1001 if str(seq_rate.get("ntsc", "")).upper() == "TRUE" else base)
    if chars.get("width") and chars.get("height") and fps is not None:
        sidecar.set_render_meta(timeline, width=int(chars["width"]), height=int(chars["height"]),
                                fps_num=fps.numerator, fps_den=fps.denominator)
    return timeline


FORMAT = FormatSpec(name="fcp7", suffix=".xml", adapter="fcp_xml", for_="Premiere Pro, DaVinci Resolve (FCP7 XML)",
                    sidecar=True, export=export, read=read)
