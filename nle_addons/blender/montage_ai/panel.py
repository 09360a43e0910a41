"""The Sequencer sidebar tab: inputs, Generate / Cancel, progress and the engine's messages."""

from __future__ import annotations

import bpy

from .operators import active_job

MESSAGES_SHOWN = 6


class SEQUENCER_PT_montage_ai(bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Montage AI"
    bl_label = "Montage AI"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.montage_ai
        col = layout.column(align=False)
        col.prop(s, "clips_dir")
        col.prop(s, "music")
        col.prop(s, "style")
        col.prop(s, "prompt")
        col.prop(s, "duration")
        row = col.row(align=True)
        row.prop(s, "resolution", text="")
        row.prop(s, "aspect", text="")
        row = col.row(align=True)
        row.prop(s, "use_cgpu", toggle=True)
        row.prop(s, "use_upscale", toggle=True)
        col.prop(s, "out_dir")

        controller = active_job()
        running = controller is not None and controller.job.running
        row = layout.row(align=True)
        row.scale_y = 1.4
        sub = row.row(align=True)
        sub.enabled = not running
        sub.operator("montage_ai.generate", icon="SEQUENCE")
        if running:
            row.operator("montage_ai.cancel", icon="CANCEL")
        if controller is not None:
            self._draw_job(layout, controller)

        row = layout.row(align=True)
        row.operator("montage_ai.import_otio", icon="IMPORT")
        row.operator("montage_ai.export_otio", icon="EXPORT")

    def _draw_job(self, layout: bpy.types.UILayout, controller) -> None:
        box = layout.box()
        tracker = controller.job.tracker
        if controller.job.running and hasattr(box, "progress"):   # UILayout.progress: Blender 4.0+
            box.progress(factor=tracker.fraction, type="BAR", text=controller.status)
        else:
            failed = controller.job.state in {"failed", "cancelled"} or controller.import_error
            box.label(text=controller.status, icon="ERROR" if failed else "INFO")
        for line in tracker.last_messages(MESSAGES_SHOWN):
            box.label(text=line[:120])


CLASSES = (SEQUENCER_PT_montage_ai,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
