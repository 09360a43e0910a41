"""The one place that knows which Blender renamed what in the Sequencer API.

- 4.4: `bpy.types.Sequence` became `Strip`.
- 5.0: `sequence_editor.sequences` / `sequences_all` were removed (`strips` / `strips_all`).
- 5.1: `frame_start`, `frame_final_*`, `frame_offset_*` are deprecated in favour of
  `content_start`, `left_handle`, `right_handle`, `content_trim_start` / `_end`.
- 5.x: rendering a movie needs `image_settings.media_type = 'VIDEO'` before `'FFMPEG'`.
Everything else in the add-on goes through these helpers, so a rename is fixed here once.
"""

from __future__ import annotations

from typing import Any


def _has(obj: Any, prop: str) -> bool:
    try:
        return prop in obj.bl_rna.properties
    except AttributeError:
        return hasattr(obj, prop)


def strip_type() -> type:
    """`bpy.types.Strip` (4.4+) or `bpy.types.Sequence` (4.2, 4.3)."""
    import bpy

    return getattr(bpy.types, "Strip", None) or bpy.types.Sequence


def top_strips(editor: Any) -> Any:
    """The editor's top-level strip collection, where new strips are created."""
    return editor.strips if _has(editor, "strips") else editor.sequences


def all_strips(editor: Any) -> Any:
    """Every strip, inside meta strips too."""
    return editor.strips_all if _has(editor, "strips_all") else editor.sequences_all


def new_movie(editor: Any, name: str, path: str, channel: int, frame: int, fit: str) -> Any:
    return top_strips(editor).new_movie(name, path, channel, frame, fit_method=fit)


def new_movie_own_rate(scene: Any, name: str, path: str, channel: int, frame: int, fit: str) -> Any | None:
    """A movie strip that plays at the movie's own frame rate, or None where that cannot be made.

    Blender keeps a per-strip flag (`SEQ_AUTO_PLAYBACK_RATE`) that makes the VSE show, at scene
    frame T, movie frame round((T - content start) * movie fps / scene fps), and measure the
    content in scene frames. Python cannot set it: `strips.new_movie` never sets it and no RNA
    property exposes it. Only the Add Movie operator does (`adjust_playback_rate`, the UI's
    default), and it needs a Sequencer area; so this runs it in one, borrowing an area of the
    first window for the call when no Sequencer is open. `retiming_keys.add` would be the other
    way, but it crashes Blender 5.0. None when there is no window to borrow an area from."""
    import bpy

    before = {s.name for s in top_strips(scene.sequence_editor)}
    area, window, old_type = _sequencer_area()
    if area is None:
        return None
    try:
        region = next((r for r in area.regions if r.type == "WINDOW"), None)
        override = {"window": window, "area": area, "scene": scene, "sequencer_scene": scene}
        if region is not None:
            override["region"] = region
        with bpy.context.temp_override(**override):
            result = bpy.ops.sequencer.movie_strip_add(
                filepath=path, frame_start=frame, channel=channel, fit_method=fit, sound=False,
                adjust_playback_rate=True, use_framerate=False, set_view_transform=False, relative_path=False,
                overlap=True, move_strips=False, replace_sel=False, skip_locked_or_muted_channels=False)
    except (RuntimeError, TypeError):
        return None
    finally:
        if old_type is not None:
            area.type = old_type
    if result != {"FINISHED"}:
        return None
    made = [s for s in top_strips(scene.sequence_editor) if s.name not in before and s.type == "MOVIE"]
    if len(made) != 1:
        return None
    strip = made[0]
    strip.name = name
    return strip


def _sequencer_area() -> tuple[Any, Any, str | None]:
    """(area, window, type to restore afterwards or None): an open Sequencer, else the first
    window's first area switched to one for the duration of a call; (None, None, None) when
    Blender has no window."""
    import bpy

    wm = bpy.context.window_manager
    windows = list(wm.windows) if wm else []
    open_ = [(area, window) for window in windows for area in (window.screen.areas if window.screen else [])
             if area.type == "SEQUENCE_EDITOR"]
    open_.sort(key=lambda aw: getattr(aw[0].spaces.active, "view_type", "") == "PREVIEW")   # timelines first
    if open_:
        return open_[0][0], open_[0][1], None
    for window in windows:
        if window.screen and window.screen.areas:
            area = window.screen.areas[0]
            old = area.type
            area.type = "SEQUENCE_EDITOR"
            return area, window, old
    return None, None, None


def plays_at_own_rate(scene: Any, strip: Any) -> bool:
    """Whether a movie strip has Blender's playback-rate flag (see `new_movie_own_rate`). Not
    readable directly: a flagged strip's content length is in scene frames, so it changes with
    the scene's frame rate, and a frame-for-frame strip's does not."""
    render = scene.render
    before, base = strip.frame_duration, render.fps_base
    try:
        render.fps_base = base * 2.0
        after = strip.frame_duration
    finally:
        render.fps_base = base
    return after != before


def new_sound(editor: Any, name: str, path: str, channel: int, frame: int) -> Any:
    return top_strips(editor).new_sound(name, path, channel, frame)


def new_color(editor: Any, name: str, channel: int, frame: int, length: int) -> Any:
    strips = top_strips(editor)
    try:
        return strips.new_effect(name, "COLOR", channel, frame, length=length)
    except TypeError:  # 4.2-4.x: frame_end instead of length
        return strips.new_effect(name, "COLOR", channel, frame, frame_end=frame + length)


def new_cross(editor: Any, name: str, channel: int, frame: int, length: int, a: Any, b: Any) -> Any:
    strips = top_strips(editor)
    try:
        return strips.new_effect(name, "CROSS", channel, frame, length=length, input1=a, input2=b)
    except TypeError:
        return strips.new_effect(name, "CROSS", channel, frame, frame_end=frame + length, seq1=a, seq2=b)


def remove(editor: Any, strip: Any) -> None:
    top_strips(editor).remove(strip)


def cross_inputs(strip: Any) -> tuple[Any, Any]:
    if _has(strip, "input_1"):
        return strip.input_1, strip.input_2
    return strip.seq1, strip.seq2


def get_range(strip: Any) -> tuple[float, int, int]:
    """(content start, left handle, right handle (exclusive)) in scene frames."""
    if _has(strip, "left_handle"):
        return strip.content_start, strip.left_handle, strip.right_handle
    return strip.frame_start, strip.frame_final_start, strip.frame_final_end


def place(strip: Any, content_start: int, left: int, right: int, channel: int) -> bool:
    """The placement recipe: content start first (so the in-point is right), then the left and
    right handles, then the channel again, since Blender moves a strip that lands on another.
    Returns whether the strip ended where asked."""
    if _has(strip, "left_handle"):
        strip.content_start = content_start
        strip.left_handle = left
        strip.right_handle = right
    else:
        strip.frame_start = content_start
        strip.frame_final_start = left
        strip.frame_final_end = right
    if strip.channel != channel:
        strip.channel = channel
    return (get_range(strip)[1:], strip.channel) == ((left, right), channel)


def disable_raw_cache(editor: Any) -> None:
    """Turn off the VSE's source-image (Raw) cache. Blender 5.0 files a decoded movie frame
    under the truncated frame index but decodes the rounded one, so a movie played at its own,
    lower rate than the scene's showed the previous frame wherever two scene frames share the
    truncated index (1 scene frame in 6 for 25 fps in a 29.97 scene). The Final cache, by
    timeline frame, stays on."""
    if _has(editor, "use_cache_raw"):
        editor.use_cache_raw = False


def set_video_output(scene: Any, path: str) -> None:
    """H.264 MP4 render settings across versions (media_type first in 5.x)."""
    settings = scene.render.image_settings
    if _has(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MPEG4"
    scene.render.ffmpeg.codec = "H264"
    scene.render.filepath = path


def set_image_output(scene: Any) -> None:
    """PNG stills (for sampled frames)."""
    settings = scene.render.image_settings
    if _has(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
