"""Per-target lowering: one timeline in, a copy shaped for one interchange format out.

Each editor format carries a different subset of OTIO, and the adapters drop what they cannot
write without a word (cmx_3600 drops every audio track, fcpx_xml drops transitions and stack
markers). So before writing we rewrite a deep copy into what the target *can* carry, and say in
plain language what changed, instead of letting the adapter decide silently:

- every time at the video rate, in whole frames (editors derive the project rate from it);
- only ExternalReference clips (other media becomes gaps);
- per target: file URLs, reel names, markers moved onto clips, transitions lowered;
- text each target can hold (montage_otio.names): XML drops the control characters XML 1.0
  cannot hold, a Kdenlive project cannot point at a path holding one (that clip becomes a gap),
  and an EDL, read line by line, gets names and paths on one line with the originals in its
  sidecar.

Functions here never mutate their input and do no I/O except reading a media file's duration
when a reference lacks one.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from montage_ai.errors import MediaError
from montage_ai.media.probe import probe
from montage_ai.timeline.read import exact_rate  # one definition of 29.97 -> 30000/1001 (used here and by interchange)
from montage_otio.names import one_line, xml_can_hold, xml_safe


RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

META_KEY = "montage_ai"
#: where a clip marker that came from the stack says so, so readers can move it back
MARKER_ORIGIN_KEY = "montage_otio"

#: rates Final Cut Pro offers for projects
FCP_RATES = {Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
             Fraction(50), Fraction(60000, 1001), Fraction(60)}
_RESERVED_REELS = {"AX", "BL", "BLACK", "BARS"}
#: what an EDL gets for each character that would break its line (ASCII, and not in file names
#: on Windows, so no reader mistakes it for a real file)
EDL_REPLACEMENT = "?"


@dataclass
class Lowered:
    """A lowered copy plus what was changed. `companions` are extra timelines the target needs
    written beside the main file (key -> e.g. `NAME.<key>.edl`), such as the EDL's music track;
    `sidecar` what the target's sidecar must carry to undo a change on reading."""

    timeline: otio.schema.Timeline
    notes: list[str] = field(default_factory=list)
    companions: dict[str, otio.schema.Timeline] = field(default_factory=dict)
    sidecar: dict[str, object] = field(default_factory=dict)


# ---------------------------------------------------------------- rates and times

def video_rate(timeline: otio.schema.Timeline) -> Fraction:
    """The output rate: from our render metadata, else the first video clip, else the duration."""
    render = (timeline.metadata.get(META_KEY) or {}).get("render") or {}
    if render.get("fps_num"):
        return Fraction(int(render["fps_num"]), int(render.get("fps_den", 1)))
    for track in timeline.video_tracks():
        for clip in track.find_clips():
            return exact_rate(clip.trimmed_range().duration.rate)
    return exact_rate(timeline.duration().rate or 24.0)


def _whole(t: RT, rate: float) -> RT:
    return RT(float(round(t.value_rescaled_to(rate))), rate)


def _range(r: TR, rate: float) -> TR:
    """Rescale a range to `rate`, rounding both ends to whole frames (so ends stay put)."""
    start = round(r.start_time.value_rescaled_to(rate))
    end = round(r.end_time_exclusive().value_rescaled_to(rate))
    return TR(RT(float(start), rate), RT(float(end - start), rate))


def _key(t: TR | RT) -> tuple[float, ...]:
    """Value and rate exactly (OTIO's == compares seconds, so 25@25 equals 48000@48000)."""
    if isinstance(t, TR):
        return (*_key(t.start_time), *_key(t.duration))
    return (t.value, t.rate)


def _differs(a: TR | RT, b: TR | RT) -> bool:
    return _key(a) != _key(b)


def retime(timeline: otio.schema.Timeline, rate: Fraction, notes: list[str]) -> None:
    """Every time in the timeline at `rate` in whole frames: clips, media, gaps, transitions,
    markers. In place, on a copy. A music clip at 48000 would make importers pick 48000 fps."""
    r = float(rate)
    changed: list[str] = []
    if timeline.global_start_time is not None:
        timeline.global_start_time = _whole(timeline.global_start_time, r)
    for item in [timeline.tracks, *timeline.tracks.find_children()]:
        name = getattr(item, "name", "") or type(item).__name__
        if isinstance(item, otio.schema.Transition):
            new_in, new_out = _whole(item.in_offset, r), _whole(item.out_offset, r)
            if _differs(item.in_offset, new_in) or _differs(item.out_offset, new_out):
                changed.append(name)
            item.in_offset, item.out_offset = new_in, new_out
            continue
        if getattr(item, "source_range", None) is not None:
            new = _range(item.source_range, r)
            if _differs(item.source_range, new):
                changed.append(name)
            item.source_range = new
        ref = getattr(item, "media_reference", None)
        if ref is not None and ref.available_range is not None:
            ref.available_range = _range(ref.available_range, r)
        for m in item.markers:
            m.marked_range = _range(m.marked_range, r)
    if changed:
        shown = ", ".join(dict.fromkeys(changed[:3])) + (" ..." if len(changed) > 3 else "")
        notes.append(f"rescaled {len(changed)} item(s) to {_fps_text(rate)} fps whole frames ({shown})")


def _fps_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


# ---------------------------------------------------------------- media

def url_to_path(url: str) -> str:
    """A plain path for a target_url (file:// decoded, anything else unchanged)."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc in ("", "localhost"):
            return unquote(parsed.path)
    return url


def path_to_url(url: str, base_dir: Path | None = None) -> str:
    """An absolute, percent-encoded file:// URL for a path or URL (relative -> base_dir)."""
    path = Path(url_to_path(url))
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return Path(os.path.normpath(path)).as_uri()


def _media_seconds(url: str) -> float | None:
    """The media's duration, when the file is there to ask: the engine's probe, which also
    measures files that declare none (a WebM written to a pipe)."""
    path = url_to_path(url)
    if not os.path.isfile(path):
        return None
    try:
        return probe(Path(path)).duration_s or None
    except MediaError:   # an unreadable file just has no known duration
        return None


def _file_name(url: str) -> str:
    """A media file's name for a note: one line, whatever the name holds."""
    return one_line(Path(url_to_path(url)).name)


def external_only(timeline: otio.schema.Timeline, notes: list[str]) -> None:
    """Clips without an ExternalReference (missing media, generators) become gaps: targets
    such as Kdenlive's importer accept only file-backed clips."""
    for track in timeline.tracks:
        for i, item in enumerate(list(track)):
            if isinstance(item, otio.schema.Clip) and not isinstance(item.media_reference, otio.schema.ExternalReference):
                track[i] = otio.schema.Gap(source_range=TR(RT(0, item.duration().rate), item.duration()))
                notes.append(f"clip {item.name!r} has no file ({type(item.media_reference).__name__}): replaced by a gap")


def _used_range(clip: otio.schema.Clip) -> TR:
    """The clip's source range including the handles the transitions around it read."""
    rng = clip.source_range or clip.trimmed_range()
    parent = clip.parent()
    if parent is None:
        return rng
    before, after = parent.neighbors_of(clip)
    head = before.in_offset if isinstance(before, otio.schema.Transition) else RT(0, rng.start_time.rate)
    tail = after.out_offset if isinstance(after, otio.schema.Transition) else RT(0, rng.start_time.rate)
    return TR(rng.start_time - head, rng.duration + head + tail)


def ensure_available_ranges(timeline: otio.schema.Timeline, rate: Fraction, notes: list[str]) -> None:
    """Every file has its real duration (asked from the media when missing) covering what the
    clips use: FCP XML writers need it and editors refuse clips running past their media."""
    r = float(rate)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference):
            continue
        used = _range(_used_range(clip), r)
        if ref.available_range is None:
            seconds = _media_seconds(ref.target_url)
            if seconds is not None:
                ref.available_range = TR(RT(0, r), RT(float(int(seconds * r + 1e-6)), r))
            else:
                ref.available_range = TR(RT(0, r), RT(used.end_time_exclusive().value, r))
                notes.append(f"{_file_name(ref.target_url)}: media duration unknown; "
                             f"used the extent its clips use ({int(used.end_time_exclusive().value)} frames)")
        avail = ref.available_range
        if used.end_time_exclusive() > avail.end_time_exclusive():
            ref.available_range = TR(avail.start_time, used.end_time_exclusive() - avail.start_time)
            notes.append(f"{_file_name(ref.target_url)}: clips use frames past the media's known "
                         f"end; available range extended to {int(ref.available_range.end_time_exclusive().value)}")


def file_urls(timeline: otio.schema.Timeline, base_dir: Path | None) -> None:
    """Absolute file:// URLs and a readable media name (the adapters name files from the
    URL, which would show %20 in an editor's bin)."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            ref.target_url = path_to_url(ref.target_url, base_dir)
            ref.name = Path(url_to_path(ref.target_url)).name


def plain_paths(timeline: otio.schema.Timeline) -> None:
    """file:// URLs as plain paths (EDL comments and our reader want paths)."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            ref.target_url = url_to_path(ref.target_url)


# ---------------------------------------------------------------- text

def clean_texts(timeline: otio.schema.Timeline, notes: list[str], clean: Callable[[str], str] = xml_safe,
                note: str = "removed control characters XML cannot carry from {n} name(s)") -> None:
    """Every name (timeline, tracks, items, media references) and marker text through `clean`;
    `note` (with {n}, how many changed) is added when any did."""
    objs = [timeline, timeline.tracks, *timeline.tracks.find_children()]
    objs += [c.media_reference for c in timeline.find_clips() if c.media_reference is not None]
    changed = 0
    for obj in objs:
        changed += _clean_attr(obj, "name", clean)
        for m in getattr(obj, "markers", []):
            changed += _clean_attr(m, "name", clean) + _clean_attr(m, "comment", clean)
    if changed:
        notes.append(note.format(n=changed))


def _clean_attr(obj: object, attr: str, clean: Callable[[str], str]) -> int:
    """Set obj.attr to clean(obj.attr); 1 if that changed it."""
    old = getattr(obj, attr, None)
    new = clean(old) if old else old
    if new == old:
        return 0
    setattr(obj, attr, new)
    return 1


def xml_paths_only(timeline: otio.schema.Timeline, notes: list[str]) -> None:
    """Clips whose file path holds a character XML 1.0 cannot hold become gaps: a format that
    stores plain paths (a Kdenlive project) cannot point at that file at all."""
    for track in timeline.tracks:
        for i, item in enumerate(list(track)):
            ref = getattr(item, "media_reference", None)
            if isinstance(ref, otio.schema.ExternalReference) and not xml_can_hold(url_to_path(ref.target_url)):
                track[i] = otio.schema.Gap(source_range=TR(RT(0, item.duration().rate), item.duration()))
                notes.append(f"skipped {one_line(url_to_path(ref.target_url))}: its path holds control characters "
                             "XML cannot carry; replaced by a gap")


def edl_text(text: str) -> str:
    """A name on one EDL line: each line break or control character becomes EDL_REPLACEMENT."""
    return one_line(text, EDL_REPLACEMENT)


def edl_path(path: str) -> str:
    """A path as an EDL `FROM CLIP` comment can carry it: on one line, without backslashes
    (cmx_3600 turns them into slashes, which would name another file) and, as readers strip
    the line, without surrounding spaces."""
    return edl_text(path).replace("\\", EDL_REPLACEMENT).strip()


# ---------------------------------------------------------------- markers

def label(marker: otio.schema.Marker) -> str:
    """The text a user sees: the comment (our label) or else the name."""
    return marker.comment or marker.name or ""


def stack_markers(timeline: otio.schema.Timeline) -> None:
    """Track markers onto the stack (tracks start at 0, so the times hold), label in `comment`."""
    for track in timeline.tracks:
        offset = track.source_range.start_time if track.source_range else None
        while len(track.markers):
            m = track.markers.pop(0)
            if offset is not None:
                m.marked_range = TR(m.marked_range.start_time - offset, m.marked_range.duration)
            timeline.tracks.markers.append(m)
    for m in timeline.tracks.markers:
        if not m.comment:
            m.comment = m.name


def markers_onto_clips(timeline: otio.schema.Timeline, track: otio.schema.Track, notes: list[str],
                       why: str, keep_duration: bool = True, record_time: bool = False) -> None:
    """Stack markers onto the clip under them, named with their label: for formats that only
    carry clip markers. FCPXML places them in the clip's source time; an EDL `LOC` holds the
    record timecode (Avid's convention, OTIO issue #169), so `record_time` keeps that."""
    spans = [(track.range_of_child_at_index(i), item) for i, item in enumerate(track)
             if isinstance(item, otio.schema.Clip)]
    moved, lost, durations = 0, 0, 0
    for m in list(timeline.tracks.markers):
        start = m.marked_range.start_time
        hit = next(((rng, clip) for rng, clip in spans
                    if rng.start_time <= start < rng.end_time_exclusive()), None)
        if hit is None:
            lost += 1
            continue
        rng, clip = hit
        src = start if record_time else clip.source_range.start_time + (start - rng.start_time)
        dur = m.marked_range.duration if keep_duration else RT(0, start.rate)
        durations += int(not keep_duration and m.marked_range.duration.value > 0)
        meta = dict(m.metadata)
        meta[MARKER_ORIGIN_KEY] = {"from": "stack"}
        clip.markers.append(otio.schema.Marker(name=label(m), marked_range=TR(src, dur), color=m.color,
                                               comment=m.comment, metadata=meta))
        moved += 1
    timeline.tracks.markers[:] = []
    if moved:
        notes.append(f"moved {moved} timeline marker(s) onto the clips under them ({why})")
    if durations:
        notes.append(f"{durations} marker(s) lost their duration (the format stores points)")
    if lost:
        notes.append(f"dropped {lost} marker(s) that lie on no clip")


# ---------------------------------------------------------------- transitions

def drop_transitions(track: otio.schema.Track, notes: list[str], why: str) -> None:
    """Transitions out: the clips keep their record ranges, so each dissolve becomes a cut at
    its cut point."""
    n = 0
    for i in reversed(range(len(track))):
        if isinstance(track[i], otio.schema.Transition):
            del track[i]
            n += 1
    if n:
        notes.append(f"lowered {n} dissolve(s) to cuts at the same cut points ({why})")


def _transitions_need_clips(track: otio.schema.Track, notes: list[str]) -> None:
    """A transition must sit between two clips with enough source handles, else it is a cut."""
    for i in reversed(range(len(track))):
        item = track[i]
        if not isinstance(item, otio.schema.Transition):
            continue
        before = track[i - 1] if i else None
        after = track[i + 1] if i + 1 < len(track) else None
        ok = isinstance(before, otio.schema.Clip) and isinstance(after, otio.schema.Clip)
        if ok and after.source_range.start_time - item.in_offset < RT(0, item.in_offset.rate):
            ok = False
        if not ok:
            del track[i]
            notes.append(f"transition {item.name!r} is not between two clips with handles: lowered to a cut")
        elif item.transition_type != otio.schema.TransitionTypes.SMPTE_Dissolve:
            notes.append(f"transition {item.name!r} ({item.transition_type}) written as a dissolve")
            item.transition_type = otio.schema.TransitionTypes.SMPTE_Dissolve


# ---------------------------------------------------------------- targets

def _start(timeline: otio.schema.Timeline) -> tuple[otio.schema.Timeline, Fraction, list[str]]:
    """The common first steps: a deep copy at the video rate with only file-backed clips."""
    out = timeline.deepcopy()
    notes: list[str] = []
    rate = video_rate(out)
    retime(out, rate, notes)
    external_only(out, notes)
    return out, rate, notes


def _primary_video(timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    return tracks[0] if tracks else None


def for_otio_native(timeline: otio.schema.Timeline) -> Lowered:
    """`.otio` for Kdenlive 25.04+ and other OTIO readers: every time at the video rate (the
    importer takes the project rate from `timeline.duration()`), markers on the stack with the
    label in `comment` (shown as guides), only ExternalReference clips."""
    out, rate, notes = _start(timeline)
    stack_markers(out)
    if out.global_start_time is None:
        out.global_start_time = RT(0, float(rate))
    return Lowered(out, notes)


def for_kdenlive(timeline: otio.schema.Timeline) -> Lowered:
    """A Kdenlive project: the `.otio` lowering, plus what an XML document with plain paths
    cannot hold: names lose control characters XML cannot carry, and a clip whose path holds
    one becomes a gap (noted, naming the file)."""
    lowered = for_otio_native(timeline)
    xml_paths_only(lowered.timeline, lowered.notes)
    clean_texts(lowered.timeline, lowered.notes)
    return lowered


def for_fcp7(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> Lowered:
    """FCP7 XML for Premiere and Resolve: absolute percent-encoded file:// URLs, media with
    their real durations, sequence markers with the label in `<comment>`, the frame size in
    the sequence format, text XML can hold. NTSC rates: the adapter writes timebase 30 with
    ntsc TRUE for 30000/1001 from the float rate, which is what editors expect."""
    out, rate, notes = _start(timeline)
    stack_markers(out)
    file_urls(out, base_dir)
    ensure_available_ranges(out, rate, notes)
    clean_texts(out, notes)
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
    return Lowered(out, notes)


def for_fcpxml(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> Lowered:
    """FCPXML for Final Cut Pro: absolute file:// URLs, exact rational frame times, media with
    their real durations, markers on the clips under them (the adapter writes no timeline
    markers). Transitions stay in the copy: the adapter drops them, our writer adds them."""
    out, rate, notes = _start(timeline)
    stack_markers(out)
    file_urls(out, base_dir)
    ensure_available_ranges(out, rate, notes)
    clean_texts(out, notes)
    video = _primary_video(out)
    if video is not None:
        markers_onto_clips(out, video, notes, "FCPXML has no timeline markers")
        _fcp_marker_style(video, notes)
        _transitions_need_clips(video, notes)
        _cover_connected_clips(out, video, notes)
    for track in out.tracks[1:]:
        if track is not video:
            drop_transitions(track, notes, "FCPXML transitions are written on the primary storyline only")
    if rate not in FCP_RATES:
        notes.append(f"{_fps_text(rate)} fps is not a Final Cut Pro project rate; FCP will conform it")
    notes.append("fcpx_xml reads tracks back reordered (audio lanes first); read_timeline_file sorts them back")
    return Lowered(out, notes)


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


def reel_names(paths: list[str], length: int = 8) -> dict[str, str]:
    """One valid CMX reel name per source file: letters and digits only, at most `length`
    characters, derived from the file name, unique (a counter replaces the tail on clashes)."""
    used = set(_RESERVED_REELS)
    out: dict[str, str] = {}
    for p in dict.fromkeys(paths):
        stem = Path(url_to_path(p)).stem
        ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
        base = re.sub(r"[^A-Z0-9]", "", ascii_stem.upper()) or "REEL"
        name, n = base[:length], 1
        while name in used:
            n += 1
            suffix = str(n)
            name = base[: length - len(suffix)] + suffix
        used.add(name)
        out[p] = name
    return out


def _edl_sources(timeline: otio.schema.Timeline) -> list[str]:
    return [c.media_reference.target_url for c in timeline.find_clips()
            if isinstance(c.media_reference, otio.schema.ExternalReference)]


def _name_for_edl(clip: otio.schema.Clip, reels: dict[str, str], media: dict[str, dict[str, str]]) -> None:
    """Reel, `FROM CLIP NAME` (the file name) and `FROM CLIP` (the path) of one event, each on
    one line; a path that had to change is recorded in `media` by reel, for the sidecar."""
    url = clip.media_reference.target_url
    reel = reels[url]
    clip.metadata.setdefault("cmx_3600", {})
    clip.metadata["cmx_3600"]["reel"] = reel
    written = edl_path(url)
    if written != url:
        clip.media_reference.target_url = written
        media[reel] = {"written": written, "path": url}
    clip.name = edl_text(Path(url).name)


def for_edl(timeline: otio.schema.Timeline) -> Lowered:
    """CMX 3600 EDL: one video track in the main EDL and the music (every audio track) in
    companion EDLs instead of the adapter dropping it; one valid unique reel per file, the file
    name as `FROM CLIP NAME` and its path as `FROM CLIP`; dissolves kept as EDL dissolves;
    markers as `LOC` comments on the clip under them (points, upper case); every name and path
    on one line (edl_text, edl_path), with the paths that changed in the sidecar."""
    out, rate, notes = _start(timeline)
    stack_markers(out)
    plain_paths(out)
    reels = reel_names(_edl_sources(out))
    media: dict[str, dict[str, str]] = {}
    for clip in out.find_clips():
        if isinstance(clip.media_reference, otio.schema.ExternalReference):
            _name_for_edl(clip, reels, media)
    clean_texts(out, notes, edl_text, f"replaced line breaks and control characters in {{n}} name(s) with "
                                      f"{EDL_REPLACEMENT!r} (an EDL is read line by line)")
    renamed = [f"{_file_name(u)} -> {r}" for u, r in reels.items() if r != Path(u).stem[:8].upper()]
    if renamed:
        notes.append("reel names made valid and unique: " + ", ".join(renamed))
    if media:
        notes.append(f"{len(media)} path(s) written with {EDL_REPLACEMENT!r} for line breaks, control characters or "
                     f"backslashes an EDL line cannot hold ({', '.join(_file_name(m['path']) for m in media.values())}); "
                     "the sidecar maps them back")
    videos = [t for t in out.video_tracks() if t.enabled]
    if len(videos) > 1:
        flat = otio.algorithms.flatten_stack(videos)
        notes.append(f"flattened {len(videos)} video tracks into one (an EDL has one)")
        videos = [flat]
    video = videos[0] if videos else otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    video = video.deepcopy() if video.parent() is not None else video
    _transitions_need_clips(video, notes)
    events = sum(1 for c in video if isinstance(c, otio.schema.Clip))
    if events > 999:
        notes.append(f"{events} events: CMX 3600 numbers up to 999, later events get four digits")
    audio = [t.deepcopy() for t in out.audio_tracks() if t.enabled and len(t)]
    main = otio.schema.Timeline(name=out.name, global_start_time=out.global_start_time,
                                metadata=out.metadata)
    main.tracks.markers.extend(m.deepcopy() for m in out.tracks.markers)
    main.tracks.append(video)
    markers_onto_clips(main, video, notes, "EDL markers are LOC comments on events", keep_duration=False,
                       record_time=True)
    if any(m.name != m.name.upper() for c in video.find_clips() for m in c.markers):
        notes.append("marker text is written in upper case (cmx_3600 LOC style)")
    companions: dict[str, otio.schema.Timeline] = {}
    for i, track in enumerate(audio):
        key = "music" if i == 0 else f"audio{i + 1}"
        companions[key] = _audio_edl_timeline(out, track, key)
        notes.append(f"audio track {track.name!r} written as its own EDL ({key}); the main EDL is picture only")
    return Lowered(main, notes, companions, sidecar={"media": media} if media else {})


def _audio_edl_timeline(source: otio.schema.Timeline, track: otio.schema.Track, key: str) -> otio.schema.Timeline:
    """A timeline the cmx_3600 writer accepts for an audio EDL: it writes the first track and
    insists on exactly one video track, so the audio track goes first and an empty video
    track second."""
    tl = otio.schema.Timeline(name=f"{source.name} ({key})", global_start_time=source.global_start_time)
    tl.tracks.append(track)
    tl.tracks.append(otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video))
    return tl
