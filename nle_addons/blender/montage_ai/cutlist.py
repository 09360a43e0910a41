"""OpenTimelineIO timeline <-> a flat list of VSE placements, without bpy.

Import (`layout_from_timeline`): every OTIO clip becomes one placement (channel, record frame,
source in-point, length); OTIO transitions become A/B-roll overlaps with a cross strip above
them; stack markers become timeline markers. Export (`timeline_from_strips`): what is in the
VSE (possibly edited) goes back to tracks, clips, gaps and transitions. Kept free of bpy so the
cut-list logic is unit-tested in the engine's own environment.

Channel layout, bottom up: one channel per audio track, then three per video track (clips on
the first, a clip that dissolves in from the previous one on the second, the cross on the third).
Frames: OTIO record frame r is VSE frame r + frame_offset (1 by default, Blender's first frame).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import opentimelineio as otio

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange
META = "montage_ai"
FIRST_FRAME = 1

Kind = Literal["movie", "sound", "missing"]


@dataclass
class Placement:
    """One strip to create: `start` is the VSE frame of its first visible frame, `source_in`
    the frame of the media shown there (at the scene rate), `duration` in frames."""

    kind: Kind
    name: str
    path: str
    channel: int
    start: int
    duration: int
    source_in: int
    track: int                     # index into Layout.tracks
    clip_name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    record_start: int = 0          # OTIO record frame of the cut (without dissolve handles)
    record_duration: int = 0
    audio: bool = False            # on an audio track (a missing sound file is still audio)

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass
class CrossPlacement:
    """A dissolve between placements `outgoing` and `incoming` (indexes into Layout.clips);
    the cut sits `in_offset` frames after the start of their overlap."""

    channel: int
    outgoing: int
    incoming: int
    in_offset: int
    out_offset: int
    name: str = "Dissolve"
    transition_type: str = "SMPTE_Dissolve"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MarkerPlacement:
    frame: int
    label: str                     # what the user sees: the OTIO comment, else the name
    name: str = ""
    color: str = ""
    duration: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    comment: str = ""


@dataclass
class TrackInfo:
    name: str
    kind: str                      # otio.schema.TrackKind.Video / Audio
    metadata: dict[str, Any] = field(default_factory=dict)
    effects_json: list[str] = field(default_factory=list)
    enabled: bool = True


@dataclass
class Layout:
    """Everything the VSE needs to show one timeline."""

    name: str
    fps: Fraction
    width: int
    height: int
    frame_start: int
    frame_end: int                 # inclusive, as Blender's scene.frame_end
    frame_offset: int
    fit: str                       # the engine's fit: "crop" (fill) or "pad" (letterbox), "" unknown
    clips: list[Placement] = field(default_factory=list)
    crosses: list[CrossPlacement] = field(default_factory=list)
    markers: list[MarkerPlacement] = field(default_factory=list)
    tracks: list[TrackInfo] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def exact_fps(rate: float) -> Fraction:
    """29.97 -> 30000/1001: OTIO keeps rates as floats; Blender wants fps and fps_base."""
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001), (48000, 1001), (120000, 1001)):
        if abs(num / den - rate) < 0.005:
            return Fraction(num, den)
    return Fraction(rate).limit_denominator(1001)


def blender_fps(fps: Fraction) -> tuple[int, float]:
    """(scene.render.fps, scene.render.fps_base) for an exact rate: 30000/1001 -> (30, 1.001)."""
    whole = max(1, round(float(fps)))
    return whole, whole / float(fps)


def _frames(t: otio.opentime.RationalTime, rate: float) -> int:
    return int(round(t.rescaled_to(rate).value))


def _path_of(ref: otio.core.MediaReference) -> str:
    url = getattr(ref, "target_url", "") or ""
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path)
    return url


def _render_meta(tl: otio.schema.Timeline) -> dict[str, Any]:
    meta = tl.metadata.get(META) or {}
    return dict(meta.get("render") or {}) if hasattr(meta, "get") else {}


def _default(o: Any) -> Any:
    """json.dumps fallback for OTIO's AnyDictionary / AnyVector."""
    if hasattr(o, "keys"):
        return {k: o[k] for k in o.keys()}
    if hasattr(o, "__iter__"):
        return list(o)
    return str(o)


def _jsonable(value: Any) -> dict[str, Any]:
    """OTIO metadata as plain JSON-able Python (it is stored in Blender custom properties)."""
    return json.loads(json.dumps(value, default=_default))


def layout_from_timeline(tl: otio.schema.Timeline, frame_offset: int = FIRST_FRAME,
                         exists: Any = None) -> Layout:
    """Plan the VSE scene for `tl`. `exists(path) -> bool` decides missing media (default:
    os.path.isfile)."""
    exists = exists or os.path.isfile
    render = _render_meta(tl)
    if render.get("fps_num") and render.get("fps_den"):
        fps = Fraction(int(render["fps_num"]), int(render["fps_den"]))
    else:
        fps = exact_fps(tl.duration().rate if tl.duration().rate > 1 else 25.0)
    rate = float(fps)
    total = _frames(tl.duration(), rate)
    layout = Layout(name=tl.name or "Timeline", fps=fps, width=int(render.get("width") or 1920),
                    height=int(render.get("height") or 1080), frame_start=frame_offset,
                    frame_end=frame_offset + max(total, 1) - 1, frame_offset=frame_offset,
                    fit=str(render.get("fit") or ""), metadata=_jsonable(tl.metadata))
    audio = [t for t in tl.tracks if t.kind == otio.schema.TrackKind.Audio]
    video = [t for t in tl.tracks if t.kind == otio.schema.TrackKind.Video]
    channel_of: dict[int, int] = {}
    for k, track in enumerate(audio):
        channel_of[id(track)] = 1 + k
    for k, track in enumerate(video):
        channel_of[id(track)] = 1 + len(audio) + 3 * k
    for track in tl.tracks:
        if id(track) not in channel_of:
            continue
        layout.tracks.append(TrackInfo(
            name=track.name, kind=track.kind, enabled=track.enabled,
            metadata=_jsonable(track.metadata),
            effects_json=[otio.adapters.write_to_string(e, "otio_json") for e in track.effects]))
        _place_track(layout, track, len(layout.tracks) - 1, channel_of[id(track)], rate, frame_offset, exists)
    for m in tl.tracks.markers:
        label = (m.comment or m.name or "marker").strip()
        layout.markers.append(MarkerPlacement(
            frame=_frames(m.marked_range.start_time, rate) + frame_offset, label=label, name=m.name,
            color=str(m.color), duration=_frames(m.marked_range.duration, rate),
            metadata=_jsonable(m.metadata), comment=m.comment))
    return layout


def _place_track(layout: Layout, track: otio.schema.Track, track_index: int, base_channel: int,
                 rate: float, offset: int, exists: Any) -> None:
    is_audio = track.kind == otio.schema.TrackKind.Audio
    items = list(track)
    prev_clip: int | None = None          # index in layout.clips of the previous clip on this track
    prev_roll = 0
    for i, item in enumerate(items):
        if not isinstance(item, otio.schema.Clip):
            if not isinstance(item, otio.schema.Transition):
                prev_clip = None          # a gap breaks any A/B pairing
            continue
        rec = item.range_in_parent()
        rec_start, rec_dur = _frames(rec.start_time, rate), _frames(rec.duration, rate)
        src_in = _frames(item.source_range.start_time, rate) if item.source_range else 0
        before = items[i - 1] if i > 0 else None
        after = items[i + 1] if i + 1 < len(items) else None
        pre = _frames(before.in_offset, rate) if isinstance(before, otio.schema.Transition) else 0
        post = _frames(after.out_offset, rate) if isinstance(after, otio.schema.Transition) else 0
        if is_audio and (pre or post):
            # one channel per audio track: a crossfade becomes a hard cut at its cut point
            layout.warnings.append(f"{item.name}: audio crossfade imported as a cut")
            pre = post = 0
        roll = (1 - prev_roll) if (pre and prev_clip is not None and not is_audio) else 0
        path = _path_of(item.media_reference)
        kind: Kind = "sound" if is_audio else "movie"
        if isinstance(item.media_reference, otio.schema.MissingReference) or not path or not exists(path):
            kind = "missing"
            layout.warnings.append(f"missing media: {path or item.name}")
        channel = base_channel + (0 if is_audio else roll)
        layout.clips.append(Placement(
            kind=kind, name=item.name or os_basename(path), path=path, channel=channel,
            start=rec_start - pre + offset, duration=rec_dur + pre + post, source_in=src_in - pre,
            track=track_index, clip_name=item.name,
            metadata=_jsonable(item.metadata),
            record_start=rec_start, record_duration=rec_dur, audio=is_audio))
        here = len(layout.clips) - 1
        if pre and prev_clip is not None and not is_audio and isinstance(before, otio.schema.Transition):
            layout.crosses.append(CrossPlacement(
                channel=base_channel + 2, outgoing=prev_clip, incoming=here, in_offset=pre,
                out_offset=_frames(before.out_offset, rate), name=before.name or "Dissolve",
                transition_type=str(before.transition_type),
                metadata=_jsonable(before.metadata)))
        prev_clip, prev_roll = here, roll


def os_basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or "clip"


# --- export ------------------------------------------------------------------------------------

@dataclass
class StripRecord:
    """What export needs from one VSE strip (read by vse_otio, or made up in tests)."""

    kind: Kind                     # movie, sound, or a missing-media placeholder
    name: str
    channel: int
    start: int                     # left handle (first visible frame)
    end: int                       # right handle (exclusive)
    source_in: int                 # media frame shown at `start`
    path: str
    clip_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    track: int | None = None       # the OTIO track it came from, when imported
    available: int | None = None   # media length in frames, when known
    muted: bool = False
    audio: bool = False            # a placeholder standing in for a missing sound file


@dataclass
class CrossRecord:
    """A cross (dissolve) strip joining two strips by name."""

    channel: int
    start: int
    end: int
    input1: str
    input2: str
    in_offset: int | None = None   # stored at import: where the cut sits in the overlap
    out_offset: int | None = None
    name: str = "Dissolve"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SceneRecord:
    name: str
    fps: Fraction
    width: int
    height: int
    frame_offset: int = FIRST_FRAME
    strips: list[StripRecord] = field(default_factory=list)
    crosses: list[CrossRecord] = field(default_factory=list)
    markers: list[MarkerPlacement] = field(default_factory=list)
    tracks: list[TrackInfo] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def timeline_from_strips(scene: SceneRecord) -> otio.schema.Timeline:
    """The VSE as an OTIO timeline: same layering, cuts, in-points, dissolves and markers."""
    rate = float(scene.fps)
    tl = otio.schema.Timeline(name=scene.name)
    meta = copy.deepcopy(scene.metadata) if scene.metadata else {}
    mai = meta.setdefault(META, {})
    render = dict(mai.get("render", {}))
    render.update(width=scene.width, height=scene.height, fps_num=scene.fps.numerator, fps_den=scene.fps.denominator)
    mai["render"] = render
    tl.metadata.update(meta)
    tl.global_start_time = RT(0, rate)

    audio = [s for s in scene.strips if s.kind == "sound" or s.audio]
    visual = [s for s in scene.strips if not (s.kind == "sound" or s.audio)]
    for group in _audio_groups(audio):
        tl.tracks.append(_track(group, [], scene, rate, otio.schema.TrackKind.Audio))
    for group, crosses in _video_groups(visual, scene.crosses, scene.warnings):
        tl.tracks.append(_track(group, crosses, scene, rate, otio.schema.TrackKind.Video))
    # OTIO stacks tracks bottom-up like VSE channels; keep the engine's order: video, then audio.
    tl.tracks[:] = sorted(list(tl.tracks), key=lambda t: 0 if t.kind == otio.schema.TrackKind.Video else 1)
    for m in scene.markers:
        marker = otio.schema.Marker(
            name=m.name or m.label, marked_range=TR(RT(m.frame - scene.frame_offset, rate), RT(m.duration, rate)),
            color=m.color or _marker_color(m.label), metadata=m.metadata or {}, comment=m.comment or m.label)
        tl.tracks.markers.append(marker)
    return tl


def _marker_color(label: str) -> str:
    if label.startswith("downbeat"):
        return otio.schema.MarkerColor.RED
    if label.startswith("beat"):
        return otio.schema.MarkerColor.GREEN
    if label.startswith("section"):
        return otio.schema.MarkerColor.YELLOW
    return otio.schema.MarkerColor.PURPLE


def _audio_groups(strips: list[StripRecord]) -> list[list[StripRecord]]:
    """Sound strips: one track per channel (a channel cannot hold overlapping strips)."""
    by_channel: dict[int, list[StripRecord]] = {}
    for s in strips:
        by_channel.setdefault(s.channel, []).append(s)
    return [by_channel[c] for c in sorted(by_channel)]


def _video_groups(strips: list[StripRecord], crosses: list[CrossRecord],
                  warnings: list[str]) -> list[tuple[list[StripRecord], list[CrossRecord]]]:
    """Channels joined by cross strips form one track (A/B roll); other channels are tracks of
    their own. A joined group whose strips overlap without a cross is split back by channel."""
    names = {s.name: s for s in strips}
    parent: dict[int, int] = {s.channel: s.channel for s in strips}

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    usable = [x for x in crosses if x.input1 in names and x.input2 in names]
    for x in usable:
        a, b = root(names[x.input1].channel), root(names[x.input2].channel)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[StripRecord]] = {}
    for s in strips:
        groups.setdefault(root(s.channel), []).append(s)
    out: list[tuple[list[StripRecord], list[CrossRecord]]] = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda s: (s.start, s.channel))
        member_names = {s.name for s in members}
        xs = [x for x in usable if x.input1 in member_names and x.input2 in member_names]
        joined = {(x.input1, x.input2) for x in xs}
        clash = any(b.start < a.end and (a.name, b.name) not in joined
                    for a, b in zip(members, members[1:]))
        if clash and len({s.channel for s in members}) > 1:
            warnings.append(f"channels {sorted({s.channel for s in members})} overlap without a dissolve: "
                            "exported as separate tracks")
            for c in sorted({s.channel for s in members}):
                out.append(([s for s in members if s.channel == c], []))
        else:
            out.append((members, xs))
    return out


def _track(strips: list[StripRecord], crosses: list[CrossRecord], scene: SceneRecord, rate: float,
           kind: str) -> otio.schema.Track:
    strips = sorted(strips, key=lambda s: s.start)
    origin = _common_track(strips)
    info = scene.tracks[origin] if origin is not None and origin < len(scene.tracks) else None
    track = otio.schema.Track(name=info.name if info else ("V" if kind == otio.schema.TrackKind.Video else "A"),
                              kind=kind)
    if info:
        track.metadata.update(info.metadata)
        track.enabled = info.enabled
        for e in info.effects_json:
            track.effects.append(otio.adapters.read_from_string(e, "otio_json"))
    cross_for = {(x.input1, x.input2): x for x in crosses}
    # Cut points: where each dissolve's overlap is split between its two clips.
    cut_after: dict[str, tuple[int, CrossRecord]] = {}
    for x in crosses:
        total = x.end - x.start
        if x.in_offset is not None and x.out_offset is not None and x.in_offset + x.out_offset == total:
            cut = x.start + x.in_offset
        elif x.in_offset is not None and x.out_offset is not None and x.in_offset + x.out_offset > 0:
            cut = x.start + round(total * x.in_offset / (x.in_offset + x.out_offset))
        else:
            cut = x.start + total // 2
        cut_after[x.input1] = (cut, x)
    cursor = scene.frame_offset
    prev: StripRecord | None = None
    for s in strips:
        start, src_in = s.start, s.source_in
        join = cross_for.get((prev.name, s.name)) if prev else None
        if join is not None:
            cut, x = cut_after[prev.name]
            track.append(otio.schema.Transition(
                name=x.name, transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=RT(cut - x.start, rate), out_offset=RT(x.end - cut, rate), metadata=x.metadata or {}))
            src_in += cut - start
            start = cut
        elif start < cursor:
            # Overlap without a dissolve (same track after a user edit): the later strip wins.
            src_in += cursor - start
            start = cursor
        end = cut_after[s.name][0] if s.name in cut_after else s.end
        if end <= start:
            scene.warnings.append(f"{s.name}: nothing left after the overlap; dropped")
            continue
        if start > cursor:
            track.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(start - cursor, rate))))
        track.append(_clip(s, src_in, end - start, rate))
        cursor, prev = end, s
    return track


def _common_track(strips: list[StripRecord]) -> int | None:
    seen = [s.track for s in strips if s.track is not None]
    return max(set(seen), key=seen.count) if seen else None


def _clip(s: StripRecord, source_in: int, duration: int, rate: float) -> otio.schema.Clip:
    if s.path:
        ref: otio.core.MediaReference = otio.schema.ExternalReference(target_url=s.path)
        if s.available:
            ref.available_range = TR(RT(0, rate), RT(s.available, rate))
    else:
        ref = otio.schema.MissingReference()
    clip = otio.schema.Clip(name=s.clip_name or s.name, media_reference=ref,
                            source_range=TR(RT(source_in, rate), RT(duration, rate)))
    if s.metadata:
        clip.metadata.update(s.metadata)
    if s.muted:
        clip.enabled = False
    return clip


def cut_list(tl: otio.schema.Timeline) -> list[tuple[str, str, int, int, int]]:
    """(track kind, media path, record start, source in, duration) per clip, in frames at the
    timeline rate: what a round trip must keep."""
    render = _render_meta(tl)
    rate = render["fps_num"] / render["fps_den"] if render.get("fps_num") else tl.duration().rate
    out = []
    for track in tl.tracks:
        for clip in track.find_clips():
            rec = clip.range_in_parent()
            out.append((track.kind, _path_of(clip.media_reference), _frames(rec.start_time, rate),
                        _frames(clip.source_range.start_time, rate), _frames(clip.source_range.duration, rate)))
    return out


def transitions(tl: otio.schema.Timeline) -> list[tuple[int, int, int]]:
    """(cut frame, in_offset, out_offset) per transition."""
    render = _render_meta(tl)
    rate = render["fps_num"] / render["fps_den"] if render.get("fps_num") else tl.duration().rate
    out = []
    for track in tl.tracks:
        for item in track:
            if isinstance(item, otio.schema.Transition):
                cut = item.range_in_parent().start_time + item.in_offset
                out.append((_frames(cut, rate), _frames(item.in_offset, rate), _frames(item.out_offset, rate)))
    return out


__all__ = [
    "FIRST_FRAME",
    "CrossPlacement",
    "CrossRecord",
    "Layout",
    "MarkerPlacement",
    "Placement",
    "SceneRecord",
    "StripRecord",
    "TrackInfo",
    "blender_fps",
    "cut_list",
    "exact_fps",
    "layout_from_timeline",
    "timeline_from_strips",
    "transitions",
]
