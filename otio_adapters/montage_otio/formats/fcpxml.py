"""FCPXML (`.fcpxml`, Final Cut Pro), through small subclasses of the `fcpx_xml` adapter.

The stock adapter does its time arithmetic with integer frame rates and truncation (every NTSC
time and about one in twenty 25 fps times come back a frame off), writes no frame duration for
NTSC rates and skips transitions; the subclasses keep its structure but use exact rational time,
add Final Cut's Cross Dissolves to the primary storyline, size the project format and serialise
with ElementTree. They override the adapter's private methods, so pyproject.toml bounds the
adapter below its next major version and tests/test_interchange.py fails if one is renamed; a
writer and reader of our own would end that dependency (not done yet).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree as ET

import opentimelineio as otio

from montage_otio import lowering as low
from montage_otio import sidecar
from montage_otio.errors import InterchangeError
from montage_otio.formats.base import ExportContext, FormatSpec, Written, first_timeline
from montage_otio.names import keep_carriage_returns
from montage_otio.vocab import exact_rate

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

#: rates Final Cut Pro offers for projects
FCP_RATES = {Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
             Fraction(50), Fraction(60000, 1001), Fraction(60)}


def lower(timeline: otio.schema.Timeline, base_dir: Path | None = None, media: low.MediaCache | None = None) -> low.Lowered:
    """FCPXML for Final Cut Pro: absolute file:// URLs, exact rational frame times, media with
    their real durations, markers on the clips under them (the adapter writes no timeline
    markers). Transitions stay in the copy: the adapter drops them, our writer adds them."""
    out, rate, notes = low.start(timeline, base_dir)
    low.stack_markers(out)
    low.file_urls(out, base_dir)
    low.ensure_available_ranges(out, rate, notes, media or low.MediaCache(None))
    low.clean_texts(out, notes)
    video = low.primary_video(out)
    if video is not None:
        low.markers_onto_clips(out, video, notes, "FCPXML has no timeline markers")
        _fcp_marker_style(video, notes)
        low.transitions_need_clips(video, notes)
        _cover_connected_clips(out, video, notes)
    for track in out.tracks[1:]:
        if track is not video:
            low.drop_transitions(track, notes, "FCPXML transitions are written on the primary storyline only")
    if rate not in FCP_RATES:
        notes.append(f"{low.fps_text(rate)} fps is not a Final Cut Pro project rate; FCP will conform it")
    notes.append("fcpx_xml reads tracks back reordered (audio lanes first); read_timeline_file sorts them back")
    return low.Lowered(out, notes)


def _fcp_marker_style(track: otio.schema.Track, notes: list[str]) -> None:
    """Final Cut Pro markers are at least one frame long and have no colours; fcpx_xml would
    turn RED and GREEN markers into to-do items."""
    widened, recoloured = 0, 0
    for clip in track.find_clips():
        for m in clip.markers:
            rate = m.marked_range.start_time.rate
            if m.marked_range.duration.value < 1:
                m.marked_range = TR(m.marked_range.start_time, RT(1, rate))
                widened += 1
            if m.color in (otio.schema.MarkerColor.RED, otio.schema.MarkerColor.GREEN):
                m.color = otio.schema.MarkerColor.PURPLE
                recoloured += 1
    if widened:
        notes.append(f"{widened} point marker(s) written one frame long, as Final Cut Pro writes them")
    if recoloured:
        notes.append(f"{recoloured} red/green marker(s) written as standard markers (FCPXML has no marker colours)")


def _cover_connected_clips(timeline: otio.schema.Timeline, video: otio.schema.Track, notes: list[str]) -> None:
    """Other tracks are connected to primary-storyline items in FCPXML: pad the storyline with
    a gap when another track runs past its end."""
    end = max((t.duration() for t in timeline.tracks if t is not video and len(t)), default=None)
    if end is not None and end > video.duration():
        pad = end - video.duration()
        video.append(otio.schema.Gap(source_range=TR(RT(0, pad.rate), pad)))
        notes.append(f"padded the picture with {int(round(pad.value))} frame(s) of gap to carry the longer audio")


def _seconds(value: str | None) -> Fraction:
    """An FCPXML time ('0s', '46/25s', '3600s', '1.5s') as exact seconds."""
    if not value or value == "0s":
        return Fraction(0)
    v = value.strip().rstrip("s")
    if "/" in v:
        a, b = v.split("/")
        return Fraction(a) / Fraction(b)
    return Fraction(v)


def _fcpx_time(frames: int, rate: Fraction) -> str:
    if not frames:
        return "0s"
    s = Fraction(frames) / rate
    return f"{s.numerator}s" if s.denominator == 1 else f"{s.numerator}/{s.denominator}s"


def _rt_seconds(t: RT) -> Fraction:
    return Fraction(round(t.value)) / exact_rate(t.rate)


try:  # the adapter is a dependency, but keep the engine importable without it
    from otio_fcpx_xml_adapter import fcpx_xml as _fcpx
except ImportError:  # pragma: no cover
    _fcpx = None

CROSS_DISSOLVE_UID = "FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"   # Final Cut Pro's Cross Dissolve


if _fcpx is not None:
    class _FcpxWriter(_fcpx.FcpxOtio):
        """fcpx_xml's writer with exact frame durations, exact connected-clip offsets, XPath-safe
        name lookups, spine transitions and a sized project format."""

        def __init__(self, timeline: otio.schema.Timeline, rate: Fraction, size: tuple[int, int] | None):
            super().__init__(timeline)
            self.rate = rate
            self.size = size
            self._dissolve_id: str | None = None

        @staticmethod
        def _framerate_to_frame_duration(framerate: float) -> str:
            r = exact_rate(framerate)
            return f"{r.denominator}/{r.numerator}s"

        def to_xml(self) -> str:
            """The adapter's document, serialised by ElementTree: the adapter pretty-prints with
            minidom, which (before Python 3.13) writes a newline or tab in an attribute raw, and
            XML readers turn those into spaces (a file or clip name would come back changed)."""
            super().to_xml()
            ET.indent(self.fcpx_xml, space="    ")
            body = ET.tostring(self.fcpx_xml, encoding="unicode")
            return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + keep_carriage_returns(body) + "\n"

        def _clip_format_name(self, clip: otio.core.Item) -> str:
            return ""   # the adapter would run ffprobe and build a name FCP does not know

        def _asset_by_path(self, path: str):
            return next((a for a in self.resource_element.findall("./asset") if a.get("src") == path), None)

        def _asset_clip_by_name(self, name: str):
            return next((a for a in self.event_resource.findall("./asset-clip") if a.get("name") == name), None)

        def _create_asset_element(self, clip: otio.schema.Clip, format_element: ET.Element):
            asset = super()._create_asset_element(clip, format_element)
            if getattr(clip.media_reference, "name", None):   # the file's name in FCP's browser
                asset.set("name", clip.media_reference.name)
            return asset

        def _media_by_name(self, name: str):
            return next((m for m in self.resource_element.findall("./media") if m.get("name") == name), None)

        def _find_parent_element(self, spine: ET.Element, trimmed_range: RT, format_id: str):
            t = _rt_seconds(trimmed_range)
            for item in spine.iter():
                if item.tag not in ("clip", "asset-clip", "gap", "ref-clip") or item.get("lane") is not None:
                    continue
                if item.tag == "gap" and item.find("./audio") is not None:
                    continue
                offset = _seconds(item.get("offset"))
                if offset <= t < offset + _seconds(item.get("duration")):
                    return item
            raise ValueError(f"nothing on the primary storyline at {float(t):.3f}s to connect a clip to")

        def _offset_based_on_parent(self, child: ET.Element, parent: ET.Element, default_format_id: str) -> RT:
            s = _seconds(child.get("offset")) - _seconds(parent.get("offset")) + _seconds(parent.get("start"))
            return RT(float(s * self.rate), float(self.rate))

        def _stack_to_sequence(self, stack: otio.schema.Stack, compound_clip: bool = False) -> ET.Element:
            sequence = super()._stack_to_sequence(stack, compound_clip)
            if compound_clip:
                return sequence
            videos = [t for t in stack if t.kind == otio.schema.TrackKind.Video]
            if videos:
                self._add_transitions(sequence.find("./spine"), videos[0])
            self._project_format(sequence)
            return sequence

        def _project_format(self, sequence: ET.Element) -> None:
            for fmt in self.resource_element.findall("./format"):
                if not fmt.get("name"):
                    fmt.attrib.pop("name", None)
            sequence.set("tcStart", "0s")
            sequence.set("tcFormat", "NDF")
            if self.size is None:
                return
            fmt = ET.SubElement(self.resource_element, "format", {
                "id": self._resource_id_generator(), "frameDuration": self._framerate_to_frame_duration(float(self.rate)),
                "width": str(self.size[0]), "height": str(self.size[1])})
            sequence.set("format", fmt.get("id"))

        def _dissolve_effect(self) -> str:
            if self._dissolve_id is None:
                self._dissolve_id = self._resource_id_generator()
                ET.SubElement(self.resource_element, "effect",
                              {"id": self._dissolve_id, "name": "Cross Dissolve", "uid": CROSS_DISSOLVE_UID})
            return self._dissolve_id

        def _add_transitions(self, spine: ET.Element, track: otio.schema.Track) -> None:
            """The adapter writes the primary storyline's clips and gaps in track order and skips
            transitions; put each back between its clips (offset = cut - in_offset)."""
            elements = list(spine)
            items = [i for i in track if isinstance(i, (otio.schema.Clip, otio.schema.Gap, otio.schema.Stack))]
            if len(elements) != len(items) or not any(isinstance(i, otio.schema.Transition) for i in track):
                return
            ordered: list[ET.Element] = []
            it = iter(elements)
            for index, item in enumerate(track):
                if not isinstance(item, otio.schema.Transition):
                    ordered.append(next(it))
                    continue
                cut = track.range_of_child_at_index(index + 1).start_time
                start = int(round(cut.value - item.in_offset.value))
                frames = int(round(item.in_offset.value + item.out_offset.value))
                t = ET.Element("transition", {"name": "Cross Dissolve", "offset": _fcpx_time(start, self.rate),
                                              "duration": _fcpx_time(frames, self.rate)})
                ET.SubElement(t, "filter-video", {"ref": self._dissolve_effect(), "name": "Cross Dissolve"})
                ordered.append(t)
            spine[:] = ordered

    class _FcpxReader(_fcpx.FcpxXml):
        """fcpx_xml's reader with exact rational rates and rounding instead of truncation, plus
        what it skips: spine transitions, the project size, track order and timeline markers."""

        def _format_fraction(self, format_id: str) -> Fraction:
            total, rate = self._format_frame_duration(format_id)
            return Fraction(rate) / Fraction(total)

        def _format_frame_rate(self, format_id: str) -> float:
            return float(self._format_fraction(format_id))

        def _number_of_frames(self, time_value: str | None, format_id: str) -> int:
            return round(_seconds(time_value) * self._format_fraction(format_id))

        def _rt(self, value: str | None, fps: Fraction) -> RT:
            return RT(float(round(_seconds(value) * fps)), float(fps))

        def _time_range(self, element: ET.Element, format_id: str) -> TR:
            fps = self._format_fraction(format_id)
            return TR(self._rt(element.get("start", "0s"), fps), self._rt(element.get("duration"), fps))

        def _reference_from_id(self, asset_id: str, default_format: str) -> otio.core.MediaReference:
            asset = self._asset_by_id(asset_id)
            src = asset.get("src", "") or next((r.get("src", "") for r in asset.findall("./media-rep")), "")
            if not src:
                return otio.schema.MissingReference()
            fps = self._format_fraction(asset.get("format") or default_format)
            asset_clip = self._assetclip_by_ref(asset_id)
            return otio.schema.ExternalReference(
                target_url=src, available_range=TR(self._rt(asset.get("start"), fps), self._rt(asset.get("duration"), fps)),
                metadata={"fcpx": self._create_metadta(asset_clip) if asset_clip is not None else {}})

        def _from_project(self, project_element: ET.Element) -> otio.schema.Timeline:
            timeline = super()._from_project(project_element)
            sequence = project_element.find("./sequence")
            fmt = self._format_by_id(sequence.get("format"))
            fps = self._format_fraction(sequence.get("format"))
            _sort_fcpx_tracks(timeline)
            primary = next(iter(timeline.video_tracks()), None)
            if primary is not None:
                _fcpx_transitions(primary, sequence.find("./spine"), fps)
                low.markers_back_to_stack(timeline, primary)
            if fmt is not None and fmt.get("width") and fmt.get("height"):
                sidecar.set_render_meta(timeline, width=int(fmt.get("width")), height=int(fmt.get("height")),
                                 fps_num=fps.numerator, fps_den=fps.denominator)
            return timeline


def _lane(track: otio.schema.Track) -> int:
    try:
        return int(track.name)
    except ValueError:
        return 0


def _sort_fcpx_tracks(timeline: otio.schema.Timeline) -> None:
    """fcpx_xml names tracks by lane and sorts the names as text ('-1' before '0'): put the
    video tracks first from the primary storyline up, then audio from lane -1 down."""
    tracks = list(timeline.tracks)
    ordered = sorted(tracks, key=lambda t: (t.kind != otio.schema.TrackKind.Video,
                                            _lane(t) if t.kind == otio.schema.TrackKind.Video else -_lane(t)))
    timeline.tracks[:] = []
    for track in ordered:
        timeline.tracks.append(track)


def _fcpx_transitions(track: otio.schema.Track, spine: ET.Element | None, fps: Fraction) -> None:
    """Spine <transition>s back into the track between the clips whose cut they cover."""
    if spine is None:
        return
    for t in spine.findall("./transition"):
        start = round(_seconds(t.get("offset")) * fps)
        end = start + round(_seconds(t.get("duration")) * fps)
        for i in range(1, len(track)):
            prev, item = track[i - 1], track[i]
            if not (isinstance(prev, otio.schema.Clip) and isinstance(item, otio.schema.Clip)):
                continue
            cut = round(track.range_of_child_at_index(i).start_time.value)
            if start <= cut <= end:
                track.insert(i, otio.schema.Transition(
                    name=t.get("name", "Cross Dissolve"), transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=RT(float(cut - start), float(fps)), out_offset=RT(float(end - cut), float(fps))))
                break


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """FCPXML (or an .fcpxmld bundle) through the exact reader, tracks in our order."""
    if _fcpx is None:
        raise InterchangeError(f"cannot read {path}: the otio-fcpx-xml-adapter package is not installed")
    source = path / "Info.fcpxml" if path.is_dir() else path
    return first_timeline(_FcpxReader(source.read_text(encoding="utf-8")).to_otio(), path)


def export(timeline: otio.schema.Timeline, out: Path, ctx: ExportContext) -> Written:
    if _fcpx is None:
        raise InterchangeError(f"cannot write {out.name}: the otio-fcpx-xml-adapter package is not installed")
    lowered = lower(timeline, ctx.base_dir, ctx.media)
    rate = low.video_rate(lowered.timeline)
    render = sidecar.render_meta(lowered.timeline)
    size = (int(render["width"]), int(render["height"])) if render.get("width") and render.get("height") else None
    original = low.video_rate(timeline)
    return Written({out: _FcpxWriter(lowered.timeline, rate, size).to_xml(),
                    sidecar.path_for(out): sidecar.text(out, timeline, original.numerator, original.denominator)},
                   lowered.notes)


FORMAT = FormatSpec(name="fcpxml", suffix=".fcpxml", adapter="fcpx_xml", for_="Final Cut Pro", sidecar=True,
                    read_suffixes=(".fcpxmld",), export=export, read=read)
