"""OTIO Timeline -> Kdenlive project (MLT 7 XML, Kdenlive document version 1.1).

Laid out the way Kdenlive 23.04+ saves a project, so Kdenlive reads it like one of its own and
`melt` renders it headless: the profile at the timeline's own size and exact rate, one bin `<chain>` per
source listed in the `main_bin` playlist, per-track `<chain>` instances used by the timeline, one
tractor per track holding two playlists (the second takes the incoming clip of a same-track mix,
as Kdenlive does), dissolves as `luma` mixes between those playlists, a sequence tractor with
`kdenlive:uuid`, the guides and the internal audio-mix / compositing transitions, and the
`kdenlive:projectTractor` wrapper last. Every tractor is bounded (`in="0" out="N-1"`) so a plain
`melt FILE.kdenlive` stops at the end instead of running for minutes.

All positions are written as whole frames at the profile rate (MLT reads them exactly, unlike
clock strings at 30000/1001). What Kdenlive cannot hold (clip names per use, OTIO metadata, ranged
markers) rides along in `montage_ai:*` properties, which MLT and Kdenlive ignore.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from montage_otio.names import keep_carriage_returns, one_line, xml_can_hold, xml_safe
from montage_otio.vocab import LOOK_EFFECT, META_KEY, exact_rate, url_to_path

MLT_VERSION = "7.28.0"          # the MLT generation current Kdenlive (24.12-25.x) ships with
KDENLIVE_VERSION = "24.12.0"
DOC_VERSION = "1.1"             # Kdenlive document format since 23.04 (sequences)
INTERNAL = "237"                # Kdenlive's marker for transitions/filters it manages itself
BIG_LENGTH = "2147483647"

# Kdenlive's nine guide categories (index = "type" in the guides JSON).
GUIDE_COLORS = ["#9b59b6", "#3daee9", "#1abc9c", "#1cdc9a", "#c9ce3b",
                "#fdbc4b", "#f39c1f", "#f47750", "#da4453"]
MARKER_TYPE = {
    otio.schema.MarkerColor.PURPLE: 0, otio.schema.MarkerColor.BLUE: 1, otio.schema.MarkerColor.CYAN: 2,
    otio.schema.MarkerColor.GREEN: 3, otio.schema.MarkerColor.YELLOW: 4, otio.schema.MarkerColor.ORANGE: 5,
    otio.schema.MarkerColor.MAGENTA: 7, otio.schema.MarkerColor.PINK: 7, otio.schema.MarkerColor.RED: 8,
}

_PROFILE_SIZES = {(1920, 1080): "atsc_1080p", (1280, 720): "atsc_720p", (2560, 1440): "qhd_1440p",
                  (3840, 2160): "uhd_2160p"}
_PROFILE_RATES = {Fraction(24000, 1001): "2398", Fraction(24): "24", Fraction(25): "25",
                  Fraction(30000, 1001): "2997", Fraction(30): "30", Fraction(50): "50",
                  Fraction(60000, 1001): "5994", Fraction(60): "60"}


@dataclass
class Format:
    """The project profile: what Kdenlive and melt render at."""

    width: int
    height: int
    fps: Fraction

    def frames(self, t: otio.opentime.RationalTime) -> int:
        """A time as whole frames at the profile rate (30000/1001 stays exact)."""
        return round(Fraction(t.value) / Fraction(t.rate) * self.fps) if t.rate else 0


@dataclass
class Entry:
    """One clip as placed on a track playlist, including the handles a mix needs."""

    clip: otio.schema.Clip
    resource: str
    start: int              # record frame of the visible part
    length: int             # visible frames
    src_in: int             # source frame shown at `start`
    before: int = 0         # frames shown before `start` (incoming side of a mix)
    after: int = 0          # frames shown after the visible end (outgoing side of a mix)
    mixed_in: int = -1      # frames of the mix into this clip that lie on its visible part; -1: none
    sub: int = 0            # which of the track's two playlists


@dataclass
class Mix:
    """A same-track transition: a luma (video) or mix (audio) between the two playlists."""

    transition: otio.schema.Transition
    start: int
    before: int
    after: int
    out_sub: int            # the playlist of the outgoing clip


@dataclass
class TrackPlan:
    track: otio.schema.Track
    audio: bool
    entries: list[Entry] = field(default_factory=list)
    mixes: list[Mix] = field(default_factory=list)

    @property
    def end(self) -> int:
        return max((e.start + e.length for e in self.entries), default=0)


class _Ids:
    """Kdenlive-style element ids: producer0, chain3, playlist5, tractor2, transition7 ..."""

    def __init__(self) -> None:
        self._n: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        n = self._n.get(kind, 0)
        self._n[kind] = n + 1
        return f"{kind}{n}"


# --------------------------------------------------------------------------- format and paths

def _parse_rate(rate: Any) -> Fraction | None:
    """`rate` option from code (float, Fraction) or otioconvert (-a rate=30000/1001 or 29.97)."""
    if rate in (None, ""):
        return None
    if isinstance(rate, str) and "/" in rate:
        return exact_rate(float(Fraction(rate)))
    return exact_rate(float(rate))


def choose_format(timeline: otio.schema.Timeline, width: Any = None, height: Any = None,
                  rate: Any = None) -> Format:
    """Size and rate: caller's options, then our render metadata, then the clips, then 1080p."""
    render = dict((timeline.metadata.get(META_KEY) or {}).get("render") or {})
    fps = _parse_rate(rate)
    if fps is None and render.get("fps_num"):
        fps = Fraction(int(render["fps_num"]), int(render.get("fps_den") or 1))
    if fps is None:
        clip = next(iter(timeline.find_clips()), None)
        fps = exact_rate(clip.trimmed_range().duration.rate) if clip else Fraction(25)
    w = int(width or render.get("width") or 1920)
    h = int(height or render.get("height") or 1080)
    return Format(w, h, fps)


def profile_name(fmt: Format) -> str:
    """The MLT/Kdenlive profile name when one matches, else a descriptive custom one."""
    size, rate = _PROFILE_SIZES.get((fmt.width, fmt.height)), _PROFILE_RATES.get(fmt.fps)
    if size and rate:
        return f"{size}_{rate}"
    return f"montage_{fmt.width}x{fmt.height}_{fmt.fps.numerator}_{fmt.fps.denominator}"


def _fps_text(fps: Fraction) -> str:
    return f"{float(fps):.2f}".rstrip("0").rstrip(".")


def _resource(clip: otio.schema.Clip) -> str | None:
    """The file a clip plays, as MLT wants it: a plain path (file:// URLs decoded). A path
    holding a character XML 1.0 cannot hold cannot be written at all (montage_otio.lowering
    turns such clips into gaps before they get here)."""
    ref = clip.media_reference
    if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
        return None
    path = str(url_to_path(ref.target_url, None))
    if not xml_can_hold(path):
        raise otio.exceptions.NotSupportedError(
            f"{one_line(path)}: a Kdenlive project cannot hold this path (control characters XML cannot carry)")
    return path


def _media_start(clip: otio.schema.Clip, fmt: Format) -> int:
    """Media that starts at a timecode: MLT in-points count from the file's first frame."""
    avail = getattr(clip.media_reference, "available_range", None)
    return fmt.frames(avail.start_time) if avail is not None else 0


def plain(value: Any) -> Any:
    """OTIO metadata (AnyDictionary, AnyVector, schema objects) as plain JSON-able values."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, otio.core.SerializableObject):
        return json.loads(otio.adapters.otio_json.write_to_string(value))
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
        return [plain(v) for v in value]
    return str(value)


def _json(value: Any, **kw: Any) -> str:
    return json.dumps(plain(value), sort_keys=True, ensure_ascii=False, **kw)


def _clock(frames: int, fps: Fraction) -> str:
    """Kdenlive's clock-style duration text (HH:MM:SS.mmm)."""
    ms = round(Fraction(frames) / fps * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# --------------------------------------------------------------------------- planning

def _place_clips(track: otio.schema.Track, fmt: Format) -> dict[int, Entry]:
    """Every playable clip by child index, with record start, length and in-point in frames.
    Gaps, disabled clips and clips without a file (generators, missing media) become blanks."""
    placed: dict[int, Entry] = {}
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Clip) or not item.enabled:
            continue
        resource = _resource(item)
        if resource is None:
            continue
        rng = track.range_of_child_at_index(i)
        start, end = fmt.frames(rng.start_time), fmt.frames(rng.end_time_exclusive())
        if end > start:
            src_in = fmt.frames(item.trimmed_range().start_time) - _media_start(item, fmt)
            placed[i] = Entry(item, resource, start, end - start, max(src_in, 0))
    return placed


def _place_mixes(track: otio.schema.Track, placed: dict[int, Entry], fmt: Format) -> list[Mix]:
    """Each transition between two placed clips as a mix over their overlap: the outgoing clip
    runs `out_offset` frames past the cut, the incoming one starts `in_offset` frames early.
    Handles are clamped to what the media and the neighbouring mixes leave."""
    mixes = []
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Transition):
            continue
        a, b = placed.get(i - 1), placed.get(i + 1)
        if a is None or b is None or a.start + a.length != b.start:
            continue
        before = min(fmt.frames(item.in_offset), b.src_in, a.length - max(a.mixed_in, 0))
        after = min(fmt.frames(item.out_offset), b.length)
        if before < 0 or after < 0 or before + after <= 0:
            continue
        a.after, b.before, b.mixed_in = after, before, after
        mixes.append(Mix(item, b.start - before, before, after, out_sub=0))
    return mixes


def _plan_track(track: otio.schema.Track, fmt: Format) -> TrackPlan:
    """Clips, mixes, and the playlist each clip goes to: the incoming clip of a mix sits on
    the other playlist than the outgoing one (alternating along a chain of mixes), every
    other clip on the first, as Kdenlive lays them out."""
    plan = TrackPlan(track, track.kind == otio.schema.TrackKind.Audio)
    placed = _place_clips(track, fmt)
    plan.mixes = _place_mixes(track, placed, fmt)
    prev: Entry | None = None
    for i in sorted(placed):
        e = placed[i]
        e.sub = 1 - prev.sub if (prev is not None and e.mixed_in >= 0) else 0
        prev = e
        plan.entries.append(e)
    by_start = {e.start: e for e in plan.entries}
    for m in plan.mixes:
        m.out_sub = 1 - by_start[m.start + m.before].sub
    return plan


# --------------------------------------------------------------------------- XML building

def _prop(parent: ET.Element, name: str, value: Any) -> ET.Element:
    """A `<property>`; names and other text lose what XML cannot hold (paths were checked)."""
    el = ET.SubElement(parent, "property", name=name)
    el.text = "" if value is None else xml_safe(str(value))
    return el


def _props(parent: ET.Element, values: dict[str, Any]) -> None:
    for k, v in values.items():
        _prop(parent, k, v)


class _Writer:
    """Builds the document in the order Kdenlive saves it."""

    def __init__(self, timeline: otio.schema.Timeline, fmt: Format, root: str) -> None:
        self.timeline, self.fmt, self.root = timeline, fmt, root
        self.ids = _Ids()
        self.doc_uuid = "{" + str(uuid.uuid4()) + "}"
        self.bin: dict[str, tuple[str, int, str]] = {}   # resource -> (bin chain id, kdenlive id, control uuid)
        self.lengths: dict[str, int] = {}                 # resource -> frames the chain must cover
        self.clip_types: dict[str, int] = {}              # resource -> 0 AV, 1 audio, 2 video
        self.names: dict[str, str] = {}
        self.media_metadata: dict[str, Any] = {}          # resource -> the media reference's metadata

    # ---- bin
    def _collect_sources(self, plans: list[TrackPlan]) -> None:
        next_id = 2                   # Kdenlive numbers bin clips from 2 (1 is the root folder)
        for plan in plans:
            for e in plan.entries:
                need = e.src_in + e.length + e.after
                avail = getattr(e.clip.media_reference, "available_range", None)
                if avail is not None:
                    need = max(need, self.fmt.frames(avail.end_time_exclusive()) - _media_start(e.clip, self.fmt))
                self.lengths[e.resource] = max(self.lengths.get(e.resource, 0), need)
                kind = 1 if plan.audio else 2
                self.clip_types[e.resource] = kind if self.clip_types.get(e.resource, kind) == kind else 0
                if e.resource not in self.bin:
                    self.bin[e.resource] = ("", next_id, "{" + str(uuid.uuid4()) + "}")
                    self.names[e.resource] = os.path.basename(e.resource)
                    next_id += 1
                ref_meta = getattr(e.clip.media_reference, "metadata", None)
                if ref_meta and e.resource not in self.media_metadata:
                    self.media_metadata[e.resource] = ref_meta   # the file's own rate, kept for the way back
        self.sequence_id = next_id

    def _chain(self, parent: ET.Element, cid: str, resource: str) -> ET.Element:
        length = self.lengths[resource]
        _, kid, control = self.bin[resource]
        chain = ET.SubElement(parent, "chain", id=cid, out=str(length - 1))
        _props(chain, {
            "length": length, "eof": "pause", "resource": resource,
            "mlt_service": "avformat-novalidate", "seekable": 1,
            "kdenlive:clipname": self.names[resource], "kdenlive:clip_type": self.clip_types[resource],
            "kdenlive:folderid": -1, "kdenlive:id": kid, "kdenlive:control_uuid": control,
        })
        if resource in self.media_metadata:
            _prop(chain, "montage_ai:media_metadata", _json(self.media_metadata[resource]))
        return chain

    def _bin_chains(self, mlt: ET.Element) -> None:
        for resource, (_, kid, control) in list(self.bin.items()):
            cid = self.ids("chain")
            self._chain(mlt, cid, resource)
            self.bin[resource] = (cid, kid, control)

    # ---- tracks
    def _black(self, mlt: ET.Element, total: int) -> str:
        pid = self.ids("producer")
        black = ET.SubElement(mlt, "producer", id=pid, **{"in": "0", "out": str(max(total - 1, 0))})
        _props(black, {"length": BIG_LENGTH, "eof": "continue", "resource": "black", "aspect_ratio": 1,
                       "mlt_service": "color", "kdenlive:playlistid": "black_track",
                       "mlt_image_format": "rgba", "set.test_audio": 0})
        return pid

    def _track_producers(self, mlt: ET.Element, plan: TrackPlan) -> dict[str, str]:
        """One timeline chain per source used on this track, as Kdenlive keeps them."""
        ids: dict[str, str] = {}
        for e in plan.entries:
            if e.resource in ids:
                continue
            cid = self.ids("chain")
            chain = self._chain(mlt, cid, e.resource)
            if plan.audio:
                _props(chain, {"set.test_audio": 0, "set.test_image": 1})
            else:
                _props(chain, {"set.test_audio": 1, "set.test_image": 0})
            ids[e.resource] = cid
        return ids

    def _playlist(self, mlt: ET.Element, plan: TrackPlan, sub: int, producers: dict[str, str]) -> str:
        pid = self.ids("playlist")
        pl = ET.SubElement(mlt, "playlist", id=pid)
        if plan.audio:
            _prop(pl, "kdenlive:audio_track", 1)
        pos = 0
        for e in sorted((e for e in plan.entries if e.sub == sub), key=lambda e: e.start):
            first, src_in = e.start - e.before, e.src_in - e.before
            if first < pos:        # a transition longer than the clip between two mixes
                src_in += pos - first
                first = pos
            last_src = e.src_in + e.length + e.after - 1
            if last_src < src_in:
                continue
            if first > pos:
                ET.SubElement(pl, "blank", length=str(first - pos))
            entry = ET.SubElement(pl, "entry", producer=producers[e.resource],
                                  **{"in": str(src_in), "out": str(last_src)})
            _prop(entry, "kdenlive:id", self.bin[e.resource][1])
            _prop(entry, "montage_ai:name", e.clip.name)
            if e.clip.metadata:
                _prop(entry, "montage_ai:metadata", _json(e.clip.metadata))
            length = last_src - src_in + 1
            if plan.audio:
                self._fade_out(entry, e, length)
            pos = first + length
        return pid

    def _track_tractor(self, mlt: ET.Element, plan: TrackPlan, total: int) -> str:
        """A Kdenlive track: a tractor over two playlists, with the track's mixes."""
        producers = self._track_producers(mlt, plan)
        pls = [self._playlist(mlt, plan, sub, producers) for sub in (0, 1)]
        tid = self.ids("tractor")
        tr = ET.SubElement(mlt, "tractor", id=tid, **{"in": "0", "out": str(max(total - 1, 0))})
        props: dict[str, Any] = {}
        if plan.audio:
            props["kdenlive:audio_track"] = 1
        props.update({"kdenlive:trackheight": 67, "kdenlive:timeline_active": 1, "kdenlive:collapsed": 0,
                      "kdenlive:track_name": plan.track.name, "kdenlive:thumbs_format": "",
                      "kdenlive:audio_rec": ""})
        _props(tr, props)
        if plan.track.effects or plan.track.metadata:
            _prop(tr, "montage_ai:track", _json({"metadata": plan.track.metadata,
                                                 "effects": list(plan.track.effects)}))
        hide = "video" if plan.audio else "audio"
        for pl in pls:
            ET.SubElement(tr, "track", hide=hide, producer=pl)
        for m in plan.mixes:
            self._mix(tr, plan, m)
        if not plan.audio:
            self._look(tr, plan.track)
        return tid

    def _fade_out(self, entry: ET.Element, e: Entry, length: int) -> None:
        """Our music fade (`fade_out_s` in the clip metadata) as Kdenlive's audio fade-out effect:
        a `volume` filter on the clip going from gain 1 to 0 over its last frames."""
        seconds = float(((e.clip.metadata.get(META_KEY) or {}).get("fade_out_s")) or 0.0)
        frames = min(round(Fraction(seconds) * self.fmt.fps), length) if seconds > 0 else 0
        if frames <= 0:
            return
        fx = ET.SubElement(entry, "filter", id=self.ids("filter"),
                           **{"in": str(length - frames), "out": str(length - 1)})
        _props(fx, {"window": 75, "max_gain": "20dB", "mlt_service": "volume", "kdenlive_id": "fadeout",
                    "gain": 1, "end": 0, "kdenlive:collapsed": 0})

    def _look(self, tractor: ET.Element, track: otio.schema.Track) -> None:
        """Our grade (an OTIO Effect holding ffmpeg eq values) as the same eq filter on the track,
        so melt and Kdenlive show the colours the engine rendered."""
        for fx in track.effects:
            if fx.effect_name != LOOK_EFFECT:
                continue
            look = plain(fx.metadata.get(META_KEY) or {})
            f = ET.SubElement(tractor, "filter", id=self.ids("filter"))
            _props(f, {"mlt_service": "avfilter.eq", "kdenlive_id": "avfilter.eq",
                       "av.contrast": look.get("contrast", 1.0), "av.saturation": look.get("saturation", 1.0),
                       "av.brightness": look.get("brightness", 0.0), "montage_ai:effect": LOOK_EFFECT})

    def _mix(self, tractor: ET.Element, plan: TrackPlan, m: Mix) -> None:
        """A same-track mix the way Kdenlive stores it: a transition from playlist 0 to 1
        over the overlap, reversed when the outgoing clip sits on playlist 1."""
        length = m.before + m.after
        tr = ET.SubElement(tractor, "transition", id=self.ids("transition"),
                           **{"in": str(m.start), "out": str(m.start + length - 1)})
        props: dict[str, Any] = {"a_track": 0, "b_track": 1}
        if plan.audio:
            props.update({"mlt_service": "mix", "kdenlive_id": "mix", "start": 0, "end": 1})
        else:
            props.update({"factory": "loader", "resource": "", "mlt_service": "luma", "kdenlive_id": "luma",
                          "softness": 0, "alpha_over": 1, "invert": 0})
        props["kdenlive:mixcut"] = m.before
        props["reverse"] = 1 if m.out_sub == 1 else 0
        if m.transition.name:
            props["montage_ai:name"] = m.transition.name
        if m.transition.metadata:
            props["montage_ai:metadata"] = _json(m.transition.metadata)
        props["montage_ai:transition_type"] = m.transition.transition_type
        _props(tr, props)

    # ---- sequence and project
    def _guides(self) -> tuple[str, str]:
        """Kdenlive keeps one guide per frame, so markers on the same frame share a guide
        (comments joined with " | "); `montage_ai:markers` keeps every marker whole."""
        by_pos: dict[int, list[otio.schema.Marker]] = {}
        extra = []
        for marker in self.timeline.tracks.markers:
            pos = self.fmt.frames(marker.marked_range.start_time)
            by_pos.setdefault(pos, []).append(marker)
            extra.append({"pos": pos, "comment": marker.comment, "name": marker.name, "color": marker.color,
                          "duration": self.fmt.frames(marker.marked_range.duration), "metadata": marker.metadata})
        guides = [{"comment": guide_comment(ms), "pos": pos, "type": MARKER_TYPE.get(ms[0].color, 0)}
                  for pos, ms in sorted(by_pos.items())]
        return json.dumps(guides, indent=4, ensure_ascii=False) + "\n", _json(extra)

    def _sequence(self, mlt: ET.Element, plans: list[TrackPlan], total: int) -> None:
        black = self._black(mlt, total)
        audio = [p for p in plans if p.audio][::-1]        # A1 sits next to the video tracks
        video = [p for p in plans if not p.audio]
        order = audio + video
        track_ids = [self._track_tractor(mlt, p, total) for p in order]
        seq = ET.SubElement(mlt, "tractor", id=self.doc_uuid, **{"in": "0", "out": str(max(total - 1, 0))})
        guides, extra = self._guides()
        _props(seq, {
            "kdenlive:uuid": self.doc_uuid, "kdenlive:clipname": self.timeline.name or "Sequence 1",
            "kdenlive:sequenceproperties.hasAudio": int(bool(audio)),
            "kdenlive:sequenceproperties.hasVideo": int(bool(video)),
            "kdenlive:sequenceproperties.activeTrack": len(audio) if video else 0,
            "kdenlive:sequenceproperties.tracksCount": len(order),
            "kdenlive:sequenceproperties.documentuuid": self.doc_uuid,
            "kdenlive:duration": _clock(total, self.fmt.fps), "kdenlive:maxduration": total,
            "kdenlive:producer_type": 17, "kdenlive:id": self.sequence_id, "kdenlive:clip_type": 0,
            "kdenlive:folderid": -1,
            "kdenlive:sequenceproperties.audioTarget": len(audio) - 1 if audio else -1,
            "kdenlive:sequenceproperties.videoTarget": len(audio) if video else -1,
            "kdenlive:sequenceproperties.tracks": len(order),
            "kdenlive:sequenceproperties.verticalzoom": 1, "kdenlive:sequenceproperties.zonein": 0,
            "kdenlive:sequenceproperties.zoneout": total, "kdenlive:sequenceproperties.zoom": 8,
            "kdenlive:sequenceproperties.groups": "[\n]\n",
            "kdenlive:sequenceproperties.guides": guides,
            "kdenlive:sequenceproperties.position": 0, "kdenlive:sequenceproperties.scrollPos": 0,
            "kdenlive:sequenceproperties.disablepreview": 0,
            "montage_ai:markers": extra,
        })
        if self.timeline.metadata:
            _prop(seq, "montage_ai:metadata", _json(self.timeline.metadata))
        ET.SubElement(seq, "track", producer=black)
        for tid, p in zip(track_ids, order):
            hide = {} if p.track.enabled else {"hide": "both"}    # a hidden/muted track
            ET.SubElement(seq, "track", producer=tid, **hide)
        lowest_video = len(audio) + 1
        for i, p in enumerate(order, start=1):
            if not p.audio and i == lowest_video:
                continue    # nothing under it but black: Kdenlive adds its own on load, and
                            # headless melt 7.12 cannot load qtblend (it wants an X display)
            tr = ET.SubElement(seq, "transition", id=self.ids("transition"))
            if p.audio:
                _props(tr, {"a_track": 0, "b_track": i, "mlt_service": "mix", "kdenlive_id": "mix",
                            "internal_added": INTERNAL, "always_active": 1, "accepts_blanks": 1, "sum": 1})
            else:
                _props(tr, {"a_track": 0, "b_track": i, "compositing": 0, "distort": 0, "rotate_center": 0,
                            "mlt_service": "qtblend", "kdenlive_id": "qtblend", "internal_added": INTERNAL,
                            "always_active": 1})

    def _main_bin(self, mlt: ET.Element) -> None:
        pl = ET.SubElement(mlt, "playlist", id="main_bin")
        categories = [{"color": c, "comment": f"Category {i + 1}", "index": i} for i, c in enumerate(GUIDE_COLORS)]
        _props(pl, {
            "kdenlive:sequenceFolder": -1,
            "kdenlive:docproperties.audioChannels": 2, "kdenlive:docproperties.binsort": 100,
            "kdenlive:docproperties.compositing": 1,
            "kdenlive:docproperties.documentid": int(time.time() * 1000),
            "kdenlive:docproperties.enableTimelineZone": 0, "kdenlive:docproperties.enableexternalproxy": 0,
            "kdenlive:docproperties.enableproxy": 0, "kdenlive:docproperties.externalproxyparams": "",
            "kdenlive:docproperties.generateimageproxy": 0, "kdenlive:docproperties.generateproxy": 0,
            "kdenlive:docproperties.guidesCategories": json.dumps(categories, indent=4) + "\n",
            "kdenlive:docproperties.kdenliveversion": KDENLIVE_VERSION,
            "kdenlive:docproperties.previewextension": "", "kdenlive:docproperties.previewparameters": "",
            "kdenlive:docproperties.profile": profile_name(self.fmt),
            "kdenlive:docproperties.proxyextension": "", "kdenlive:docproperties.proxyimageminsize": 2000,
            "kdenlive:docproperties.proxyimagesize": 800, "kdenlive:docproperties.proxyminsize": 1000,
            "kdenlive:docproperties.proxyparams": "", "kdenlive:docproperties.proxyresize": 640,
            "kdenlive:docproperties.seekOffset": 30000,
            "kdenlive:docproperties.uuid": self.doc_uuid, "kdenlive:docproperties.version": DOC_VERSION,
            "kdenlive:expandedFolders": "", "kdenlive:binZoom": 4, "kdenlive:documentnotes": "",
            "kdenlive:docproperties.opensequences": self.doc_uuid,
            "kdenlive:docproperties.activetimeline": self.doc_uuid,
            "xml_retain": 1,
        })
        for resource, (cid, _, _) in self.bin.items():
            ET.SubElement(pl, "entry", producer=cid, **{"in": "0", "out": str(self.lengths[resource] - 1)})
        ET.SubElement(pl, "entry", producer=self.doc_uuid, **{"in": "0", "out": "0"})

    def build(self) -> ET.Element:
        fmt = self.fmt
        plans = [_plan_track(t, fmt) for t in self.timeline.tracks if isinstance(t, otio.schema.Track)]
        total = max([p.end for p in plans] + [fmt.frames(self.timeline.tracks.duration())] + [1])
        self._collect_sources(plans)
        mlt = ET.Element("mlt", {"LC_NUMERIC": "C", "producer": "main_bin", "version": MLT_VERSION,
                                 "root": xml_safe(self.root)})
        ET.SubElement(mlt, "profile", {
            "description": f"{fmt.width}x{fmt.height} {_fps_text(fmt.fps)} fps",
            "width": str(fmt.width), "height": str(fmt.height), "progressive": "1",
            "sample_aspect_num": "1", "sample_aspect_den": "1",
            "display_aspect_num": str(fmt.width // _gcd(fmt.width, fmt.height)),
            "display_aspect_den": str(fmt.height // _gcd(fmt.width, fmt.height)),
            "frame_rate_num": str(fmt.fps.numerator), "frame_rate_den": str(fmt.fps.denominator),
            "colorspace": "709",
        })
        self._sequence(mlt, plans, total)
        self._bin_chains(mlt)
        self._main_bin(mlt)
        project = ET.SubElement(mlt, "tractor", id=self.ids("tractor"),
                                **{"in": "0", "out": str(total - 1)})
        _prop(project, "kdenlive:projectTractor", 1)
        ET.SubElement(project, "track", producer=self.doc_uuid, **{"in": "0", "out": str(total - 1)})
        return mlt


def guide_comment(markers: list[otio.schema.Marker]) -> str:
    """The text Kdenlive shows for the markers on one frame (it shows `comment`, not `name`)."""
    return " | ".join(m.comment or m.name for m in markers)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a or 1


def to_string(timeline: otio.schema.Timeline, width: Any = None, height: Any = None, rate: Any = None,
              root: str | os.PathLike[str] | None = None) -> str:
    """The Kdenlive document text. `root` is the project folder MLT resolves relative paths in."""
    fmt = choose_format(timeline, width, height, rate)
    root_text = str(Path(root).resolve()) if root else os.getcwd()
    mlt = _Writer(timeline, fmt, root_text).build()
    ET.indent(mlt, space=" ")
    return "<?xml version='1.0' encoding='utf-8'?>\n" + keep_carriage_returns(ET.tostring(mlt, encoding="unicode")) + "\n"
