"""The panel's inputs, stored on the scene (saved with the .blend, undoable like any setting)."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

#: the engine's montage_ai/choices.json (the one definition), shipped beside this module because
#: the add-on runs the engine as a program and cannot import it
CHOICES = json.loads((Path(__file__).resolve().parent / "choices.json").read_text(encoding="utf-8"))
STYLES = [c["value"] for c in CHOICES["styles"]]
RESOLUTIONS = [c["value"] for c in CHOICES["resolutions"]]
ASPECTS = [(c["value"], c["value"], c["label"]) for c in CHOICES["aspects"]]
DEFAULTS = CHOICES["defaults"]


class MontageAISettings(bpy.types.PropertyGroup):
    """What "Generate Montage" sends to the engine."""

    clips_dir: StringProperty(name="Clips", subtype="DIR_PATH",
                              description="Folder of video clips the montage is cut from")
    music: StringProperty(name="Music", subtype="FILE_PATH",
                          description="The song the cuts follow (mp3, wav, ogg, flac, m4a, or a video's audio)")
    style: EnumProperty(name="Style", items=[(c["value"], c["label"], f"The {c['value']} style preset")
                                             for c in CHOICES["styles"]], default=DEFAULTS["style"])
    prompt: StringProperty(name="Brief", description="A plain-language brief for the Creative Director "
                           "(used by the LLM when enabled)")
    duration: FloatProperty(name="Duration", description="Target length in seconds (0: the whole song)",
                            default=0.0, min=0.0, soft_max=600.0, unit="TIME_ABSOLUTE")
    resolution: EnumProperty(name="Resolution", items=[(r, r, f"{r} output") for r in RESOLUTIONS],
                             default=DEFAULTS["resolution"])
    aspect: EnumProperty(name="Aspect", items=ASPECTS, default=DEFAULTS["aspect"])
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
