"""A timeline into the VSE and back. The cut-list logic is in `cutlist` (no bpy); this module
only creates and reads strips, markers and scene settings.

What is kept for the way back: each strip's OTIO name, metadata and track in the custom
property `montage_ai` (JSON), the cross's cut position, and the timeline's own metadata, track
effects and markers on the scene, so an export writes the user's edit with everything the VSE
has no place for.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import bpy

from . import compat
from .cutlist import (
    FIRST_FRAME,
    CrossRecord,
    Layout,
    MarkerPlacement,
    SceneRecord,
    StripRecord,
    TrackInfo,
    blender_fps,
    layout_from_timeline,
    timeline_from_strips,
)

PROP = "montage_ai"
MISSING_COLOR = (1.0, 0.0, 1.0)   # magenta: "media offline", as in most editors
FIT_FOR_ENGINE = {"crop": "FILL", "pad": "FIT"}


def fit_method(preference: str, timeline_fit: str) -> str:
    """The VSE fit for a clip: the preference, or with AUTO the engine's own fit."""
    if preference and preference != "AUTO":
        return preference
    return FIT_FOR_ENGINE.get(timeline_fit, "FIT")


def _set_json(idblock: Any, data: dict[str, Any]) -> None:
    idblock[PROP] = json.dumps(data)


def _get_json(idblock: Any) -> dict[str, Any]:
    try:
        return json.loads(idblock.get(PROP, "") or "{}")
    except (TypeError, ValueError):
        return {}


def setup_scene(scene: bpy.types.Scene, layout: Layout) -> None:
    """Frame rate, size, range and a colour pipeline that shows video pixels as they are."""
    fps, base = blender_fps(layout.fps)
    scene.render.fps, scene.render.fps_base = fps, base
    scene.render.resolution_x, scene.render.resolution_y = layout.width, layout.height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.frame_start, scene.frame_end = layout.frame_start, layout.frame_end
    scene.render.use_sequencer = True
    # The VSE's default view transform (AgX/Filmic) would tone-map the footage.
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"


def _rate_differs(strip: Any, scene_fps: Fraction) -> bool:
    movie_fps = float(getattr(strip, "fps", 0.0) or 0.0)
    return movie_fps > 0 and abs(movie_fps - float(scene_fps)) >= 1e-3


def _movie_content_in(strip: Any, source_in: int, scene_fps: Fraction, own_rate: bool) -> int:
    """Where the content starts, counted back from the left handle. A strip that plays at its
    own rate counts content in scene frames, so the in-point (scene frames) is used as it is;
    one that plays frame for frame (the fallback) counts in the movie's own frames."""
    if own_rate or not _rate_differs(strip, scene_fps):
        return source_in
    return round(source_in * float(strip.fps) / float(scene_fps))


def _new_movie(scene: Any, editor: Any, p: Any, method: str, layout: Layout) -> tuple[Any, bool]:
    """(movie strip, plays at its own rate). A movie at the scene's rate plays frame for frame
    (exact); one at another rate gets Blender's playback-rate flag, so that scene frame k of the
    clip shows the movie frame nearest to in + k / scene rate (docs/frame-rule.md)."""
    strip = compat.new_movie(editor, p.name[:63], p.path, p.channel, p.start, method)
    if not _rate_differs(strip, layout.fps):
        return strip, False
    movie_fps = float(strip.fps)
    compat.remove(editor, strip)
    own = compat.new_movie_own_rate(scene, p.name[:63], p.path, p.channel, p.start, method)
    if own is not None:
        return own, True
    layout.warnings.append(f"{p.name}: {movie_fps:g} fps plays frame for frame at {float(layout.fps):g} fps "
                           "(Blender has no window to set its playback rate)")
    return compat.new_movie(editor, p.name[:63], p.path, p.channel, p.start, method), False


def import_layout(scene: bpy.types.Scene, layout: Layout, fit: str = "AUTO",
                  beat_markers: bool = True) -> list[Any]:
    """Create the strips and markers of `layout` in `scene` (which should have no strips)."""
    setup_scene(scene, layout)
    editor = scene.sequence_editor or scene.sequence_editor_create()
    method = fit_method(fit, layout.fit)
    made: list[Any] = []
    slower = False            # a movie slower than the scene, played at its own rate
    for p in layout.clips:
        data = {"clip_name": p.clip_name, "metadata": p.metadata, "track": p.track, "path": p.path,
                "source_in": p.source_in, "audio": p.audio}
        if p.kind == "movie":
            strip, own_rate = _new_movie(scene, editor, p, method, layout)
            content_in = _movie_content_in(strip, p.source_in, layout.fps, own_rate)
            data["own_rate"] = own_rate
            slower |= own_rate and float(strip.fps) < float(layout.fps)
        elif p.kind == "sound":
            strip = compat.new_sound(editor, p.name[:63], p.path, p.channel, p.start)
            content_in = p.source_in
        else:
            strip = compat.new_color(editor, ("MISSING " + p.name)[:63], p.channel, p.start, p.duration)
            strip.color = MISSING_COLOR
            data["missing"] = True
            content_in = 0
        if not compat.place(strip, p.start - content_in, p.start, p.end, p.channel):
            layout.warnings.append(f"{p.name}: Blender moved it to channel {strip.channel}")
        _set_json(strip, data)
        made.append(strip)
    if slower:
        compat.disable_raw_cache(editor)
    for x in layout.crosses:
        a, b = made[x.outgoing], made[x.incoming]
        start, end = max(compat.get_range(a)[1], compat.get_range(b)[1]), min(compat.get_range(a)[2],
                                                                               compat.get_range(b)[2])
        cross = compat.new_cross(editor, x.name[:63], x.channel, start, end - start, a, b)
        _set_json(cross, {"in_offset": x.in_offset, "out_offset": x.out_offset, "metadata": x.metadata,
                          "name": x.name})
    scene.timeline_markers.clear()
    kept = [m for m in layout.markers if beat_markers or not m.label.startswith(("beat", "downbeat"))]
    for m in kept:
        scene.timeline_markers.new(_marker_label(m)[:63], frame=m.frame)
    _set_json(scene, {
        "name": layout.name, "metadata": layout.metadata, "frame_offset": layout.frame_offset,
        "tracks": [t.__dict__ for t in layout.tracks],
        "markers": [dict(m.__dict__, label=_marker_label(m)[:63]) for m in kept],
    })
    return made


def _marker_label(m: MarkerPlacement) -> str:
    """What the timeline shows: the marker's comment (its text in Kdenlive too); a section's
    comment gets its 'section:' prefix back so sections stand out among the beats."""
    if m.name.startswith("section") and not m.label.startswith("section"):
        return f"section: {m.label}"
    return m.label


def import_timeline(scene: bpy.types.Scene, timeline: Any, fit: str = "AUTO", beat_markers: bool = True) -> Layout:
    layout = layout_from_timeline(timeline, FIRST_FRAME)
    clear_strips(scene)
    import_layout(scene, layout, fit, beat_markers)
    return layout


def clear_strips(scene: bpy.types.Scene) -> None:
    editor = scene.sequence_editor
    if editor is None:
        return
    strips = compat.top_strips(editor)
    for strip in list(strips):
        if strip.type in {"CROSS", "GAMMA_CROSS"}:
            compat.remove(editor, strip)
    for strip in list(strips):
        compat.remove(editor, strip)


# --- export ------------------------------------------------------------------------------------

def _abspath(path: str) -> str:
    return bpy.path.abspath(path) if path else ""


def scene_record(scene: bpy.types.Scene) -> SceneRecord:
    """The VSE as plain records: every top-level movie, sound, placeholder and cross strip."""
    stored = _get_json(scene)
    fps = Fraction(scene.render.fps) / Fraction(scene.render.fps_base).limit_denominator(1001)
    offset = int(stored.get("frame_offset", scene.frame_start))
    record = SceneRecord(
        name=stored.get("name") or scene.name, fps=fps, width=scene.render.resolution_x,
        height=scene.render.resolution_y, frame_offset=offset, metadata=stored.get("metadata") or {},
        tracks=[TrackInfo(**t) for t in stored.get("tracks", [])])
    editor = scene.sequence_editor
    for strip in (list(compat.top_strips(editor)) if editor else []):
        data = _get_json(strip)
        content, left, right = compat.get_range(strip)
        common = dict(name=strip.name, channel=strip.channel, start=int(left), end=int(right),
                      clip_name=data.get("clip_name", ""), metadata=data.get("metadata") or {},
                      track=data.get("track"), muted=bool(strip.mute))
        if strip.type == "MOVIE":
            # OTIO wants frames at the scene rate. A strip at another rate that plays at its own
            # rate already counts its content in scene frames; one that plays frame for frame
            # counts the movie's own frames.
            ratio = 1.0
            if _rate_differs(strip, fps):
                own = data.get("own_rate")
                if own is None:            # a strip added by hand: ask Blender
                    own = compat.plays_at_own_rate(scene, strip)
                ratio = 1.0 if own else float(fps) / float(strip.fps)
            record.strips.append(StripRecord(kind="movie", source_in=round((left - content) * ratio),
                                             path=_abspath(strip.filepath),
                                             available=round(strip.frame_duration * ratio), **common))
        elif strip.type == "SOUND":
            path = _abspath(strip.sound.filepath) if strip.sound else ""
            record.strips.append(StripRecord(kind="sound", source_in=int(round(left - content)), path=path, **common))
        elif strip.type == "COLOR" and data.get("missing"):
            # A colour strip has no media to slip: it keeps the in-point it was imported with.
            record.strips.append(StripRecord(kind="missing", source_in=int(data.get("source_in", 0)),
                                             path=data.get("path", ""), audio=bool(data.get("audio")), **common))
        elif strip.type in {"CROSS", "GAMMA_CROSS"}:
            a, b = compat.cross_inputs(strip)
            if a is not None and b is not None:
                record.crosses.append(CrossRecord(
                    channel=strip.channel, start=int(left), end=int(right), input1=a.name, input2=b.name,
                    in_offset=data.get("in_offset"), out_offset=data.get("out_offset"),
                    name=data.get("name", strip.name), metadata=data.get("metadata") or {}))
        else:
            record.warnings.append(f"{strip.name}: {strip.type.lower()} strips are not exported")
    record.markers = _markers_back(scene, stored.get("markers", []))
    return record


def _markers_back(scene: bpy.types.Scene, stored: list[dict[str, Any]]) -> list[MarkerPlacement]:
    """Timeline markers as OTIO markers. Ones that still match an imported marker (same frame
    and text) keep its name, colour, comment, metadata and order; new ones follow by frame."""
    current: dict[tuple[int, str], int] = {}
    for tm in scene.timeline_markers:
        current[(tm.frame, tm.name)] = current.get((tm.frame, tm.name), 0) + 1
    out = []
    for m in stored:
        key = (m["frame"], m["label"])
        if current.get(key, 0) > 0:
            current[key] -= 1
            out.append(MarkerPlacement(frame=m["frame"], label=m["label"], name=m.get("name", ""),
                                       color=m.get("color", ""), duration=m.get("duration", 0),
                                       metadata=m.get("metadata") or {}, comment=m.get("comment", "")))
    for (frame, label), n in sorted(current.items()):
        out += [MarkerPlacement(frame=frame, label=label, name=label) for _ in range(n)]
    return out


def export_scene(scene: bpy.types.Scene) -> tuple[Any, list[str]]:
    """(OTIO timeline, warnings) for what the scene's VSE holds now."""
    record = scene_record(scene)
    return timeline_from_strips(record), record.warnings
