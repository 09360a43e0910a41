"""The panel's inputs, stored on the scene (saved with the .blend, undoable like any setting)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

STYLES = ["dynamic", "fast", "action", "suspense", "documentary", "wedding", "minimal", "vlog"]
RESOLUTIONS = ["360p", "480p", "720p", "1080p", "2160p"]
ASPECTS = [("16:9", "16:9", "Landscape"), ("9:16", "9:16", "Portrait (phones)"), ("1:1", "1:1", "Square"),
           ("4:5", "4:5", "Portrait 4:5")]


class MontageAISettings(bpy.types.PropertyGroup):
    """What "Generate Montage" sends to the engine."""

    clips_dir: StringProperty(name="Clips", subtype="DIR_PATH",
                              description="Folder of video clips the montage is cut from")
    music: StringProperty(name="Music", subtype="FILE_PATH",
                          description="The song the cuts follow (mp3, wav, ogg, flac, m4a, or a video's audio)")
    style: EnumProperty(name="Style", items=[(s, s.title(), f"The {s} style preset") for s in STYLES],
                        default="dynamic")
    prompt: StringProperty(name="Brief", description="A plain-language brief for the Creative Director "
                           "(used by the LLM when enabled)")
    duration: FloatProperty(name="Duration", description="Target length in seconds (0: the whole song)",
                            default=0.0, min=0.0, soft_max=600.0, unit="TIME_ABSOLUTE")
    resolution: EnumProperty(name="Resolution", items=[(r, r, f"{r} output") for r in RESOLUTIONS],
                             default="1080p")
    aspect: EnumProperty(name="Aspect", items=ASPECTS, default="16:9")
    use_cgpu: BoolProperty(name="LLM director (cgpu)", default=False,
                           description="Ask Gemini through `cgpu serve` for the edit plan (falls back "
                           "to the offline director when it is not reachable)")
    use_upscale: BoolProperty(name="Upscale", default=False,
                              description="Upscale low-resolution sources with Real-ESRGAN (engine --upscale)")
    out_dir: StringProperty(name="Output", subtype="DIR_PATH", default="",
                            description="Folder for montage.mp4, montage.otio and plan.json "
                            "(empty: a montage_ai folder beside the .blend, or a temporary folder)")


def register() -> None:
    bpy.utils.register_class(MontageAISettings)
    bpy.types.Scene.montage_ai = bpy.props.PointerProperty(type=MontageAISettings)


def unregister() -> None:
    del bpy.types.Scene.montage_ai
    bpy.utils.unregister_class(MontageAISettings)
