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

The per-format targets live in montage_otio.formats (one module per format); this module holds
the steps they share. Functions here never mutate their input and do no I/O: what a timeline does
not say about its media (duration, own rate) is asked through the caller's probe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from montage_otio.media import MediaCache
from montage_otio.names import one_line, xml_can_hold, xml_safe
from montage_otio.vocab import (
    META_KEY,
    absolute_path,
    exact_rate,
    path_to_url,
    plain_path,
)

__all__ = [
    "META_KEY",
    "Lowered",
    "MediaCache",
    "absolute_paths",
    "clean_texts",
    "drop_transitions",
    "ensure_available_ranges",
    "exact_rate",
    "external_only",
    "file_urls",
    "fps_text",
    "markers_onto_clips",
    "plain_paths",
    "primary_video",
    "retime",
    "stack_markers",
    "start",
    "transitions_need_clips",
    "video_rate",
    "xml_paths_only",
    "xml_safe",
]


RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

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
        notes.append(f"rescaled {len(changed)} item(s) to {fps_text(rate)} fps whole frames ({shown})")


def fps_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


# ---------------------------------------------------------------- media

def file_name(url: str) -> str:
    """A media file's name for a note: one line, whatever the name holds."""
    return one_line(Path(plain_path(url)).name)


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


def own_rate(ref: otio.schema.ExternalReference, media: MediaCache) -> Fraction | None:
    """The medium's own frame rate: from the reference's metadata[META_KEY] (fps_num/fps_den)
    when the timeline says it, else from the probe; None for audio or unknown media."""
    meta = ref.metadata.get(META_KEY) or {}
    if meta.get("fps_num"):
        return Fraction(int(meta["fps_num"]), int(meta.get("fps_den") or 1))
    facts = media(plain_path(ref.target_url))
    return facts.fps if facts is not None else None


def ensure_available_ranges(timeline: otio.schema.Timeline, rate: Fraction, notes: list[str],
                            media: MediaCache, own_rates: bool = False) -> None:
    """Every file has its real duration (asked from the media when missing) covering what the
    clips use: FCP XML writers need it and editors refuse clips running past their media. With
    `own_rates`, each file's range is at the file's own rate and length (FCP7 `<file>`), as far
    as the timeline or the probe knows it."""
    r = float(rate)
    unknown: list[str] = []
    odd: list[str] = []
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference):
            continue
        used = _range(_used_range(clip), r)
        facts = media(plain_path(ref.target_url))
        if ref.available_range is None:
            if facts is not None:
                ref.available_range = TR(RT(0, r), RT(float(facts.frames_at(rate)), r))
            else:
                ref.available_range = TR(RT(0, r), RT(used.end_time_exclusive().value, r))
                notes.append(f"{file_name(ref.target_url)}: media duration unknown; "
                             f"used the extent its clips use ({int(used.end_time_exclusive().value)} frames)")
        avail = ref.available_range
        if used.end_time_exclusive() > avail.end_time_exclusive():
            ref.available_range = TR(avail.start_time, used.end_time_exclusive() - avail.start_time)
            notes.append(f"{file_name(ref.target_url)}: clips use frames past the media's known "
                         f"end; available range extended to {int(ref.available_range.end_time_exclusive().value)}")
        if not own_rates or clip.parent() is None or clip.parent().kind != otio.schema.TrackKind.Video:
            continue
        src_rate = own_rate(ref, media)
        if src_rate is None:
            unknown.append(file_name(ref.target_url))
        elif src_rate != rate and not timebase_rate(src_rate):
            odd.append(f"{file_name(ref.target_url)} ({fps_text(src_rate)} fps)")
        elif src_rate != rate:
            ref.available_range = own_range(ref.available_range, src_rate, facts)
    if unknown:
        notes.append(f"own frame rate unknown for {', '.join(dict.fromkeys(unknown))}: written at the sequence rate")
    if odd:
        notes.append(f"no timebase for the rate of {', '.join(dict.fromkeys(odd))}: written at the sequence rate")


def timebase_rate(rate: Fraction) -> bool:
    """Whether a rate is one editors' timebases and SMPTE timecode can name: a whole number, or
    N x 1000/1001 (29.97, 23.976, 59.94); 12.5 or 179/6 (29.83) fps cannot be written as such."""
    return rate.denominator == 1 or (rate.denominator == 1001 and rate.numerator % 1000 == 0)


def own_range(avail: TR, src_rate: Fraction, facts: object | None) -> TR:
    """A media range at the medium's own rate: start on its frame grid, length its frame count
    (or the same duration, rounded down, when the probe does not know it)."""
    sr = float(src_rate)
    start = round(Fraction(avail.start_time.to_seconds()).limit_denominator(10**6) * src_rate)
    frames = facts.frames_at(src_rate) if facts is not None else \
        int(Fraction(avail.duration.to_seconds()).limit_denominator(10**6) * src_rate + Fraction(1, 10**6))
    return TR(RT(float(start), sr), RT(float(frames), sr))


def source_frame(media_time: Fraction, src_rate: Fraction) -> int:
    """The source frame docs/frame-rule.md names for a media time: nearest, ties to the later."""
    return (media_time * src_rate + Fraction(1, 2)).__floor__()


#: a URL that is not a local file (http://, s3://): left as it is
_OTHER_SCHEME = re.compile(r"^(?!file:)[A-Za-z][A-Za-z0-9+.-]*://")


def absolute_paths(timeline: otio.schema.Timeline, base_dir: Path | None) -> None:
    """Every media path absolute and plain, relative ones resolved against `base_dir` (the
    timeline file's folder): an export read from another folder must find the same files."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url and not _OTHER_SCHEME.match(ref.target_url):
            ref.target_url = absolute_path(ref.target_url, base_dir)


def file_urls(timeline: otio.schema.Timeline, base_dir: Path | None) -> None:
    """Absolute file:// URLs and a readable media name (the adapters name files from the
    URL, which would show %20 in an editor's bin)."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            ref.target_url = path_to_url(ref.target_url, base_dir)
            ref.name = Path(plain_path(ref.target_url)).name


def plain_paths(timeline: otio.schema.Timeline) -> None:
    """file:// URLs as plain paths (EDL comments and our reader want paths)."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            ref.target_url = plain_path(ref.target_url)


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
            if isinstance(ref, otio.schema.ExternalReference) and not xml_can_hold(plain_path(ref.target_url)):
                track[i] = otio.schema.Gap(source_range=TR(RT(0, item.duration().rate), item.duration()))
                notes.append(f"skipped {one_line(plain_path(ref.target_url))}: its path holds control characters "
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


def transitions_need_clips(track: otio.schema.Track, notes: list[str]) -> None:
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


# ---------------------------------------------------------------- first steps of every target

def start(timeline: otio.schema.Timeline, base_dir: Path | None = None) -> tuple[otio.schema.Timeline, Fraction, list[str]]:
    """The common first steps: a deep copy at the video rate with only file-backed clips, and,
    when the timeline came from a file (`base_dir`, its folder), every media path absolute:
    an export written elsewhere must name the same files."""
    out = timeline.deepcopy()
    notes: list[str] = []
    rate = video_rate(out)
    keep_own_rates(out, rate)
    retime(out, rate, notes)
    external_only(out, notes)
    if base_dir is not None:
        absolute_paths(out, base_dir)
    return out, rate, notes


def keep_own_rates(timeline: otio.schema.Timeline, rate: Fraction) -> None:
    """A picture file whose media range is at another timebase rate than the sequence (an
    FCP7 `<file>` read back, an editor's export) says its own rate: keep it in the reference's
    metadata before retime() puts every range at the sequence rate, so formats that carry it
    have it without probing the file."""
    for track in timeline.video_tracks():
        for clip in track.find_clips():
            ref = clip.media_reference
            avail = getattr(ref, "available_range", None)
            if not isinstance(ref, otio.schema.ExternalReference) or avail is None:
                continue
            own = exact_rate(avail.duration.rate)
            meta = dict(ref.metadata.get(META_KEY) or {})
            if own != rate and timebase_rate(own) and not meta.get("fps_num"):
                meta.update(fps_num=own.numerator, fps_den=own.denominator)
                ref.metadata[META_KEY] = meta


def primary_video(timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    """The first enabled video track: the one FCPXML's primary storyline and an EDL carry."""
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    return tracks[0] if tracks else None


def markers_back_to_stack(timeline: otio.schema.Timeline, track: otio.schema.Track,
                          record_time: bool = False) -> None:
    """Undo markers_onto_clips on reading: clip markers back to record time on the stack, text
    in comment. EDL LOC timecodes are record times already (`record_time`)."""
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Clip) or not len(item.markers):
            continue
        rng = track.range_of_child_at_index(i)
        for m in list(item.markers):
            at = m.marked_range.start_time if record_time else \
                rng.start_time + (m.marked_range.start_time - item.source_range.start_time)
            at = RT(float(round(at.value_rescaled_to(rng.start_time.rate))), rng.start_time.rate)
            timeline.tracks.markers.append(otio.schema.Marker(
                name=m.name, marked_range=TR(at, m.marked_range.duration), color=m.color,
                comment=m.comment or m.name, metadata=m.metadata))
        item.markers[:] = []
    ordered = sorted(timeline.tracks.markers, key=lambda m: m.marked_range.start_time.to_seconds())
    timeline.tracks.markers[:] = ordered
