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
