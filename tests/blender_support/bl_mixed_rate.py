"""Inside Blender: import mixed-rate timelines with the add-on's operator, render every frame of
each from the VSE, export back (as imported, after an edit, and with the stored playback-rate
note removed so export has to ask Blender), and dump it all.

    .venv-bpy/bin/python bl_mixed_rate.py ARGS.json
ARGS: zip, timelines: [{"timeline": PATH, "out_dir": DIR}], percent (render size %)."""

from __future__ import annotations

import json
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
    strips_of,
    submodule,
)


def main() -> None:
    args = load_args()
    install_extension(args["zip"])
    compat = submodule("compat")
    for job in args["timelines"]:
        out = Path(job["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        result: dict = {}
        assert bpy.ops.montage_ai.import_otio(filepath=job["timeline"], target="NEW_SCENE") == {"FINISHED"}
        scene = bpy.context.window_manager.windows[0].scene
        editor = scene.sequence_editor
        result["scene"] = scene_facts(scene)
        result["strips"] = strips_of(scene)
        result["use_cache_raw"] = bool(editor.use_cache_raw)
        result["own_rate_probe"] = {s.name: compat.plays_at_own_rate(scene, s)
                                    for s in compat.top_strips(editor) if s.type == "MOVIE"}

        # every frame of the cut, rendered by Blender's sequencer, in playback order (the order
        # that exposed Blender's Raw-cache mix-up of rounded and truncated frame indexes)
        compat.set_image_output(scene)
        scene.render.resolution_percentage = int(args.get("percent", 50))
        rendered = {}
        t0 = time.perf_counter()
        for f in range(scene.frame_start, scene.frame_end + 1):
            scene.frame_set(f)
            scene.render.filepath = str(out / f"vse_{f:05d}.png")
            bpy.ops.render.render(write_still=True)
            rendered[f] = scene.render.filepath
        result["render_s"] = time.perf_counter() - t0
        result["rendered"] = rendered
        scene.render.resolution_percentage = 100

        assert bpy.ops.montage_ai.export_otio(filepath=str(out / "roundtrip.otio")) == {"FINISHED"}

        # without the note the import leaves on each strip, export asks Blender itself
        for s in compat.top_strips(editor):
            data = json.loads(s.get("montage_ai", "{}") or "{}")
            data.pop("own_rate", None)
            s["montage_ai"] = json.dumps(data)
        assert bpy.ops.montage_ai.export_otio(filepath=str(out / "probed.otio")) == {"FINISHED"}

        # an edit: trim 3 frames off the head of every movie strip, move the last one 5 later
        movies = sorted([s for s in compat.top_strips(editor) if s.type == "MOVIE"],
                        key=lambda s: compat.get_range(s)[1])
        for s in movies:
            c, left, right = compat.get_range(s)
            compat.place(s, int(c), int(left) + 3, int(right), s.channel)
        c, left, right = compat.get_range(movies[-1])
        compat.place(movies[-1], int(c) + 5, int(left) + 5, int(right) + 5, movies[-1].channel)
        result["edited_strips"] = strips_of(scene)
        assert bpy.ops.montage_ai.export_otio(filepath=str(out / "edited.otio")) == {"FINISHED"}
        dump(str(out / "result.json"), result)
    print("bl_mixed_rate: ok", flush=True)


if __name__ == "__main__":
    main()
