"""Add-on preferences: where the engine is, and how imported clips fill the frame."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from .engine import EngineNotFound, find_engine

FIT_MODES = [
    ("AUTO", "As rendered", "Follow the timeline: the engine's crop fills the frame (FILL), its pad "
     "letterboxes (FIT); FIT when the timeline does not say"),
    ("FIT", "Fit", "Letterbox: the whole source is visible"),
    ("FILL", "Fill", "Fill the frame and crop the overflow"),
    ("STRETCH", "Stretch", "Stretch to the frame size"),
]


class MontageAIPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_path: StringProperty(
        name="Engine", subtype="FILE_PATH", default="",
        description="The montage-ai executable, the project's montage-ai.sh, or the project folder. "
        "Empty: montage-ai on PATH, else $MONTAGE_AI_HOME/montage-ai.sh")
    fit_mode: EnumProperty(name="Fit", items=FIT_MODES, default="AUTO",
                           description="How imported movie strips fill the scene frame")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_path")
        try:
            layout.label(text="Runs: " + " ".join(find_engine(self.engine_path)), icon="CHECKMARK")
        except EngineNotFound as exc:
            layout.label(text=str(exc), icon="ERROR")
        layout.prop(self, "fit_mode")
        try:
            import opentimelineio

            layout.label(text=f"OpenTimelineIO {opentimelineio.__version__}", icon="CHECKMARK")
        except ImportError:
            layout.label(text="OpenTimelineIO is missing: install the extension package that bundles it "
                         "(see docs/blender.md)", icon="ERROR")


def prefs(context: bpy.types.Context | None = None) -> MontageAIPreferences | None:
    """This add-on's preferences (None when it runs unregistered, e.g. from a script)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def engine_argv(context: bpy.types.Context | None = None) -> list[str]:
    p = prefs(context)
    return find_engine(p.engine_path if p else "")


def register() -> None:
    bpy.utils.register_class(MontageAIPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(MontageAIPreferences)
