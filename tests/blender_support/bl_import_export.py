"""Inside Blender: install the extension, import a timeline with the add-on's operator, render
sampled frames from the VSE, export back (as imported, and after an edit) and dump it all.

    .venv-bpy/bin/python bl_import_export.py ARGS.json
ARGS: zip, timeline, out_dir, frames (VSE frames to render), percent (render size %), engine."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bpy
from bl_common import (
    dump,
    install_extension,
    load_args,
    scene_facts,
    set_engine,
    strips_of,
    submodule,
)


def main() -> None:
    args = load_args()
    out = Path(args["out_dir"])
    install_extension(args["zip"])
    set_engine(args.get("engine", ""))
    import opentimelineio

    result: dict = {"otio_from": opentimelineio.__file__}
    t0 = time.perf_counter()
    assert bpy.ops.montage_ai.import_otio(filepath=args["timeline"], target="CURRENT") == {"FINISHED"}
    result["import_s"] = time.perf_counter() - t0
    scene = bpy.context.scene
    result["scene"] = scene_facts(scene)
    result["strips"] = strips_of(scene)

    # sampled frames, rendered by Blender's own sequencer at a small size
    compat = submodule("compat")
    compat.set_image_output(scene)
    scene.render.resolution_percentage = int(args.get("percent", 25))
    t0 = time.perf_counter()
    rendered = {}
    for f in args["frames"]:
        scene.frame_set(int(f))
        scene.render.filepath = str(out / f"vse_{int(f):05d}.png")
        bpy.ops.render.render(write_still=True)
        rendered[int(f)] = scene.render.filepath
    result["render_s"] = time.perf_counter() - t0
    result["rendered"] = rendered
    scene.render.resolution_percentage = 100

    # export as imported: the same cut list must come back
    assert bpy.ops.montage_ai.export_otio(filepath=str(out / "roundtrip.otio")) == {"FINISHED"}
    # a kdenlive export goes through the engine's adapters
    if args.get("engine"):
        assert bpy.ops.montage_ai.export_otio(filepath=str(out / "roundtrip.kdenlive")) == {"FINISHED"}

    # an edit in the VSE: move the last clip 5 frames later, trim 3 frames off the first clip's head
    movies = sorted([s for s in compat.top_strips(scene.sequence_editor) if s.type == "MOVIE"],
                    key=lambda s: compat.get_range(s)[1])
    first, last = movies[0], movies[-1]
    c, l, r = compat.get_range(first)
    compat.place(first, int(c), int(l) + 3, int(r), first.channel)
    c, l, r = compat.get_range(last)
    compat.place(last, int(c) + 5, int(l) + 5, int(r) + 5, last.channel)
    result["edited"] = {"first": first.name, "last": last.name}
    result["edited_strips"] = strips_of(scene)
    assert bpy.ops.montage_ai.export_otio(filepath=str(out / "edited.otio")) == {"FINISHED"}

    # a timeline whose media is gone: placeholders that keep the path
    missing = bpy.data.scenes.new("missing")
    vse = submodule("vse_otio")
    timeline = opentimelineio.adapters.read_from_file(args["timeline"])
    for clip in timeline.find_clips():
        if clip.name == args.get("missing_clip"):
            clip.media_reference.target_url = "/nonexistent/folder/gone clip.mp4"
    layout = vse.import_timeline(missing, timeline)
    result["missing_strips"] = strips_of(missing)
    result["missing_warnings"] = layout.warnings
    exported, _ = vse.export_scene(missing)
    opentimelineio.adapters.write_to_file(exported, str(out / "missing_roundtrip.otio"))
    # the add-on unregisters cleanly and registers again
    import addon_utils
    from bl_common import PKG

    bpy.ops.preferences.addon_disable(module=PKG)
    result["after_disable"] = {"scene_prop": hasattr(bpy.types.Scene, "montage_ai"),
                               "operator": hasattr(bpy.types, "MONTAGE_AI_OT_generate"),
                               "panel": hasattr(bpy.types, "SEQUENCER_PT_montage_ai")}
    bpy.ops.preferences.addon_enable(module=PKG)
    result["reenabled"] = addon_utils.check(PKG)[1] and hasattr(bpy.types, "MONTAGE_AI_OT_generate")
    dump(str(out / "result.json"), result)
    print("bl_import_export: ok", flush=True)


if __name__ == "__main__":
    main()
