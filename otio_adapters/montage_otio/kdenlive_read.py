"""Kdenlive project (MLT 7 XML) -> OTIO Timeline.

Reads what `kdenlive_write` writes and Kdenlive's own documents of the same generation
(23.04+, sequences) as well as older single-timeline ones: the profile gives the rate and size,
the project tractor (or the active sequence, or the last tractor) gives the tracks, each track's
two playlists are merged back into one OTIO track in record order, same-track mixes become
Transitions centred where Kdenlive puts the cut (`kdenlive:mixcut`), blanks become Gaps and the
sequence guides become stack markers. Everything is at the profile's frame rate.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from montage_otio.vocab import META_KEY

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

_GUIDE_COLORS = [otio.schema.MarkerColor.PURPLE, otio.schema.MarkerColor.BLUE, otio.schema.MarkerColor.CYAN,
                 otio.schema.MarkerColor.GREEN, otio.schema.MarkerColor.YELLOW, otio.schema.MarkerColor.ORANGE,
                 otio.schema.MarkerColor.ORANGE, otio.schema.MarkerColor.PINK, otio.schema.MarkerColor.RED]
_SOURCE_ELEMENTS = ("producer", "chain")


@dataclass
class Placed:
    """An `<entry>` with its record position: frames, at the profile rate."""

    start: int
    src_in: int
    length: int
    producer: ET.Element
    props: dict[str, str]
    vis_start: int = 0
    vis_end: int = 0
    mix_in: tuple[int, int, dict[str, str]] | None = None    # (before, after, transition props)

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass
class Doc:
    """The parsed document and what every part of the reader needs from it."""

    root: ET.Element
    fps: Fraction
    width: int
    height: int
    base_dir: Path
    by_id: dict[str, ET.Element] = field(default_factory=dict)
    bin_names: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return float(self.fps)

    def rt(self, frames: int) -> otio.opentime.RationalTime:
        return RT(float(frames), self.rate)


# --------------------------------------------------------------------------- small parsers

def props(el: ET.Element) -> dict[str, str]:
    """An MLT element's `<property>` children as a dict."""
    return {p.get("name", ""): (p.text or "") for p in el.findall("property")}


def parse_frames(text: str | None, fps: Fraction, default: int = 0) -> int:
    """An MLT time: frames ("125"), clock ("00:00:05.000") or SMPTE ("00:00:05:00" / ";")."""
    if text is None or text.strip() == "":
        return default
    text = text.strip()
    if ":" not in text:
        return int(round(float(text)))
    if ";" not in text and ("." in text or text.count(":") == 2):
        h, m, s = text.split(":")
        return round((Fraction(int(h) * 3600 + int(m) * 60) + Fraction(s)) * fps)
    h, m, s, f = text.replace(";", ":").split(":")
    return (int(h) * 3600 + int(m) * 60 + int(s)) * round(fps) + int(f)


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _dict(value: Any) -> dict:
    """Metadata from a document property: a mapping, or nothing (a hand-edited file may hold anything)."""
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- document

def _doc(text: str, base_dir: Path | None) -> Doc:
    root = ET.fromstring(text)
    profile = root.find("profile")
    if profile is not None:
        fps = Fraction(int(profile.get("frame_rate_num", "25")), int(profile.get("frame_rate_den", "1") or 1))
        width, height = int(profile.get("width", "1920")), int(profile.get("height", "1080"))
    else:
        fps, width, height = Fraction(25), 1920, 1080
    mlt_root = root.get("root") or ""
    base = Path(mlt_root) if mlt_root and os.path.isabs(mlt_root) else (base_dir or Path.cwd())
    doc = Doc(root, fps, width, height, base)
    for el in root:
        if el.get("id"):
            doc.by_id[el.get("id")] = el
    main_bin = doc.by_id.get("main_bin")
    if main_bin is not None:
        for entry in main_bin.findall("entry"):
            src = doc.by_id.get(entry.get("producer", ""))
            if src is not None and src.tag in _SOURCE_ELEMENTS:
                p = props(src)
                if p.get("kdenlive:id") and p.get("kdenlive:clipname"):
                    doc.bin_names[p["kdenlive:id"]] = p["kdenlive:clipname"]
    return doc


def _sequence(doc: Doc) -> ET.Element:
    """The timeline to read: the project tractor's sequence, else the active one, else the last."""
    tractors = [el for el in doc.root if el.tag == "tractor"]
    if not tractors:
        raise otio.exceptions.OTIOError("not a Kdenlive/MLT timeline: no <tractor>")
    for t in tractors:
        if props(t).get("kdenlive:projectTractor") == "1":
            track = t.find("track")
            inner = doc.by_id.get(track.get("producer", "")) if track is not None else None
            if inner is not None and inner.tag == "tractor":
                return inner
    main_bin = doc.by_id.get("main_bin")
    active = props(main_bin).get("kdenlive:docproperties.activetimeline") if main_bin is not None else None
    if active:
        for t in tractors:
            if t.get("id") == active or props(t).get("kdenlive:uuid") == active:
                return t
    return tractors[-1]


def _is_black(el: ET.Element) -> bool:
    p = props(el)
    return el.get("id") == "black_track" or p.get("kdenlive:playlistid") == "black_track"


# --------------------------------------------------------------------------- tracks

def _placed(doc: Doc, playlist: ET.Element) -> list[Placed]:
    """Entries of one playlist with their record start frames."""
    out: list[Placed] = []
    pos = 0
    for child in playlist:
        if child.tag == "blank":
            pos += parse_frames(child.get("length"), doc.fps)
        elif child.tag == "entry":
            producer = doc.by_id.get(child.get("producer", ""))
            if producer is None:
                continue
            src_in = parse_frames(child.get("in") or producer.get("in"), doc.fps, 0)
            src_out = parse_frames(child.get("out") or producer.get("out"), doc.fps, src_in)
            length = src_out - src_in + 1
            if length > 0:
                out.append(Placed(pos, src_in, length, producer, props(child)))
            pos += max(length, 0)
    return out


def _mix_props(transitions: list[ET.Element], start: int, end: int, fps: Fraction) -> dict[str, str] | None:
    """The same-track transition covering the overlap [start, end), if any."""
    for t in transitions:
        t_in, t_out = parse_frames(t.get("in"), fps), parse_frames(t.get("out"), fps)
        if t_in < end and t_out >= start:
            return props(t)
    return None


def _resolve_overlaps(doc: Doc, placed: list[Placed], transitions: list[ET.Element]) -> list[Placed]:
    """Where two entries overlap (a mix), cut at `kdenlive:mixcut` frames into the overlap."""
    placed.sort(key=lambda p: (p.start, p.end))       # on a tie the outgoing clip ends first
    for p in placed:
        p.vis_start, p.vis_end = p.start, p.end
    for a, b in zip(placed, placed[1:]):
        overlap = a.end - b.start
        if overlap <= 0:
            continue
        mix = _mix_props(transitions, b.start, a.end, doc.fps)
        if mix is None:             # no mix: the later clip simply starts there
            a.vis_end = min(a.vis_end, b.start)
            continue
        cut = parse_frames(mix.get("kdenlive:mixcut"), doc.fps, overlap // 2)
        before = min(max(cut, 0), overlap)
        a.vis_end = b.start + before
        b.vis_start = b.start + before
        b.mix_in = (before, overlap - before, mix)
    return [p for p in placed if p.vis_end > p.vis_start]


def _transition(doc: Doc, before: int, after: int, mix: dict[str, str]) -> otio.schema.Transition:
    service = mix.get("mlt_service", "")
    kind = mix.get("montage_ai:transition_type")
    if not kind:
        dissolve = service == "mix" or (service == "luma" and not mix.get("resource"))
        kind = otio.schema.TransitionTypes.SMPTE_Dissolve if dissolve else otio.schema.TransitionTypes.Custom
    if "montage_ai:transition_type" in mix:
        meta = _json(mix.get("montage_ai:metadata"), {})
    else:
        meta = {"kdenlive": {k: v for k, v in mix.items() if k in ("mlt_service", "kdenlive_id", "resource")}}
    return otio.schema.Transition(name=mix.get("montage_ai:name", ""), transition_type=kind,
                                  in_offset=doc.rt(before), out_offset=doc.rt(after), metadata=meta)


def _reference(doc: Doc, producer: ET.Element, min_length: int) -> otio.core.MediaReference:
    p = props(producer)
    service = p.get("mlt_service", "")
    if producer.tag not in _SOURCE_ELEMENTS:
        return otio.schema.MissingReference(name=p.get("kdenlive:clipname", producer.get("id", "")),
                                            metadata={"kdenlive": {"sequence": producer.get("id", "")}})
    if service in ("color", "colour"):
        return otio.schema.GeneratorReference(generator_kind="SolidColor", parameters={"color": p.get("resource")})
    resource = p.get("kdenlive:originalurl") or p.get("warp_resource") or p.get("resource", "")
    if service == "timewarp" and ":" in resource and not p.get("warp_resource"):
        resource = resource.split(":", 1)[1]
    path = Path(resource)
    if not path.is_absolute():
        path = doc.base_dir / path
    length = max(parse_frames(p.get("length"), doc.fps, 0), min_length)
    return otio.schema.ExternalReference(target_url=os.path.normpath(str(path)),
                                         available_range=TR(doc.rt(0), doc.rt(length)),
                                         metadata=_dict(_json(p.get("montage_ai:media_metadata"), {})))


def _clip(doc: Doc, p: Placed) -> otio.schema.Clip:
    pp = props(p.producer)
    src_in = p.src_in + (p.vis_start - p.start)
    ref = _reference(doc, p.producer, p.src_in + p.length)
    name = (p.props.get("montage_ai:name") or doc.bin_names.get(p.props.get("kdenlive:id", ""))
            or pp.get("kdenlive:clipname")
            or (os.path.basename(ref.target_url) if isinstance(ref, otio.schema.ExternalReference) else ""))
    metadata = _json(p.props.get("montage_ai:metadata"), {})
    return otio.schema.Clip(name=name, media_reference=ref, metadata=metadata,
                            source_range=TR(doc.rt(src_in), doc.rt(p.vis_end - p.vis_start)))


def _track(doc: Doc, el: ET.Element, name: str, audio: bool, enabled: bool) -> otio.schema.Track:
    kind = otio.schema.TrackKind.Audio if audio else otio.schema.TrackKind.Video
    track = otio.schema.Track(name=name, kind=kind)
    track.enabled = enabled
    if el.tag == "tractor":
        playlists = [doc.by_id.get(t.get("producer", "")) for t in el.findall("track")]
        transitions = [t for t in el.findall("transition") if not props(t).get("internal_added")]
        extra = _json(props(el).get("montage_ai:track"), {})
        if extra.get("metadata"):
            track.metadata.update(extra["metadata"])
        for fx in extra.get("effects", []):
            track.effects.append(otio.adapters.otio_json.read_from_string(json.dumps(fx)))
    else:
        playlists, transitions = [el], []
    placed = [p for pl in playlists if pl is not None and pl.tag == "playlist" for p in _placed(doc, pl)]
    pos = 0
    for p in _resolve_overlaps(doc, placed, transitions):
        if p.vis_start > pos:
            track.append(otio.schema.Gap(source_range=TR(doc.rt(0), doc.rt(p.vis_start - pos))))
        if p.mix_in is not None and len(track) and isinstance(track[-1], otio.schema.Clip):
            track.append(_transition(doc, *p.mix_in))
        track.append(_clip(doc, p))
        pos = p.vis_end
    return track


def _is_audio(el: ET.Element) -> bool:
    p = props(el)
    if "kdenlive:audio_track" in p:
        return p["kdenlive:audio_track"] == "1"
    hides = [t.get("hide") for t in el.findall("track")]
    return bool(hides) and all(h == "video" for h in hides)


def _tracks(doc: Doc, sequence: ET.Element) -> list[otio.schema.Track]:
    """Video tracks bottom to top, then audio tracks A1, A2 ... (Kdenlive stacks them reversed)."""
    video: list[tuple[ET.Element, bool, str]] = []
    audio: list[tuple[ET.Element, bool, str]] = []
    for t in sequence.findall("track"):
        el = doc.by_id.get(t.get("producer", ""))
        if el is None or el.tag not in ("tractor", "playlist") or _is_black(el):
            continue
        is_audio = _is_audio(el)
        hide = t.get("hide") or ""
        enabled = not (hide == "both" or hide == ("audio" if is_audio else "video"))
        (audio if is_audio else video).append((el, enabled, props(el).get("kdenlive:track_name", "")))
    audio.reverse()
    out = [_track(doc, el, name or f"V{i}", False, en) for i, (el, en, name) in enumerate(video, 1)]
    out += [_track(doc, el, name or f"A{i}", True, en) for i, (el, en, name) in enumerate(audio, 1)]
    return out


# --------------------------------------------------------------------------- markers and metadata

def _markers(doc: Doc, sequence: ET.Element) -> list[otio.schema.Marker]:
    """Sequence guides as stack markers. Where our `montage_ai:markers` still match a guide
    (same frame, same joined comment) they restore every marker on it whole, in their order."""
    sp = props(sequence)
    guides_text = sp.get("kdenlive:sequenceproperties.guides")
    if guides_text is None and "main_bin" in doc.by_id:      # before sequences (document 1.0x)
        guides_text = props(doc.by_id["main_bin"]).get("kdenlive:docproperties.guides")
    extras: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for i, e in enumerate(_json(sp.get("montage_ai:markers"), [])):
        extras.setdefault(int(e.get("pos", -1)), []).append((i, e))
    ours: list[tuple[int, otio.schema.Marker]] = []
    theirs: list[otio.schema.Marker] = []
    for g in _json(guides_text, []):
        if not isinstance(g, dict) or "pos" not in g:
            continue
        pos, comment = int(g["pos"]), str(g.get("comment", ""))
        same = extras.get(pos, [])
        if same and " | ".join(e.get("comment") or e.get("name", "") for _, e in same) == comment:
            ours += [(i, _marker(doc, e, pos)) for i, e in same]
            continue
        kind = int(g.get("type", 0) or 0)
        color = _GUIDE_COLORS[kind if 0 <= kind < len(_GUIDE_COLORS) else 0]
        theirs.append(otio.schema.Marker(name=comment, comment=comment, color=color,
                                         marked_range=TR(doc.rt(pos), doc.rt(0))))
    return [m for _, m in sorted(ours, key=lambda x: x[0])] + theirs


def _marker(doc: Doc, e: dict[str, Any], pos: int) -> otio.schema.Marker:
    return otio.schema.Marker(name=e.get("name", ""), comment=e.get("comment", ""),
                              color=e.get("color") or otio.schema.MarkerColor.RED,
                              marked_range=TR(doc.rt(pos), doc.rt(int(e.get("duration", 0)))),
                              metadata=e.get("metadata") or {})


def _metadata(doc: Doc, sequence: ET.Element) -> dict[str, Any]:
    """Our metadata back, with the render size and rate taken from the profile."""
    meta = _json(props(sequence).get("montage_ai:metadata"), {})
    ours = meta.setdefault(META_KEY, {})
    render = ours.setdefault("render", {})
    render.update(width=doc.width, height=doc.height, fps_num=doc.fps.numerator, fps_den=doc.fps.denominator)
    return meta


def from_string(text: str, base_dir: Path | None = None) -> otio.schema.Timeline:
    """Parse a Kdenlive/MLT document; relative paths resolve against its `root`, else base_dir."""
    doc = _doc(text, base_dir)
    sequence = _sequence(doc)
    name = props(sequence).get("kdenlive:clipname") or "Kdenlive timeline"
    timeline = otio.schema.Timeline(name=name, global_start_time=doc.rt(0))
    for track in _tracks(doc, sequence):
        timeline.tracks.append(track)
    timeline.tracks.markers.extend(_markers(doc, sequence))
    timeline.metadata.update(_metadata(doc, sequence))
    return timeline
