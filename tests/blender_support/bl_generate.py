"""Inside Blender: "Generate Montage" against the real engine, driven by its timer function.

Headless Blender runs no event loop, so nothing calls the add-on's timer by itself: this loop
calls it, as Blender's would, and between calls does work of its own (counting), which shows
the caller keeps control while the engine runs. Then a second run is cancelled half-way.

    .venv-bpy/bin/python bl_generate.py ARGS.json
ARGS: zip, engine, clips, music, out_dir, cancel_out_dir, style, duration, resolution, timeout_s."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bpy
from bl_common import (
    draw_panel,
    dump,
    install_extension,
    load_args,
    scene_facts,
    set_engine,
    strips_of,
    submodule,
)


def drive(ops, timeout_s: float, stop_after_s: float | None = None) -> dict:
    """Call the add-on's timer callback like Blender's event loop would, until it unregisters."""
    controller = ops.active_job()
    ticks, busy_loops, tick_s, samples = 0, 0, [], []
    t0 = time.monotonic()
    next_tick = t0
    cancelled_at = None
    panel_running: list = []
    while time.monotonic() - t0 < timeout_s:
        now = time.monotonic()
        if now >= next_tick:
            s = time.perf_counter()
            delay = ops.timer_tick()
            tick_s.append(time.perf_counter() - s)
            ticks += 1
            tracker = controller.job.tracker
            samples.append((round(now - t0, 2), tracker.percent, tracker.stage))
            if delay is None:
                break
            if not panel_running and tracker.percent > 5:
                panel_running = draw_panel()       # what the sidebar shows mid-run
            next_tick = now + delay
        else:
            busy_loops += 1          # the "UI thread" doing other things between timer calls
            time.sleep(0.005)
        if stop_after_s is not None and cancelled_at is None and now - t0 >= stop_after_s:
            assert bpy.ops.montage_ai.cancel() == {"FINISHED"}
            cancelled_at = now - t0
    return {"ticks": ticks, "busy_loops": busy_loops, "tick_s": tick_s, "samples": samples,
            "elapsed_s": time.monotonic() - t0, "cancelled_at_s": cancelled_at,
            "state": controller.job.state, "status": controller.status,
            "messages": list(controller.job.tracker.messages), "argv": controller.job.argv,
            "returncode": controller.job.returncode, "result_scene": controller.result_scene,
            "import_error": controller.import_error, "pid": controller.job._proc.pid if controller.job._proc else None,
            "timer_registered": bpy.app.timers.is_registered(ops.timer_tick),
            "panel_running": panel_running, "panel_after": draw_panel()}


def main() -> None:
    args = load_args()
    install_extension(args["zip"])
    set_engine(args["engine"])
    ops = submodule("operators")
    s = bpy.context.scene.montage_ai
    s.clips_dir, s.music, s.style = args["clips"], args["music"], args["style"]
    s.duration, s.resolution, s.out_dir = float(args["duration"]), args["resolution"], args["out_dir"]
    s.prompt = "quick test cut"
    result: dict = {}

    assert bpy.ops.montage_ai.generate() == {"FINISHED"}, "generate did not start"
    assert bpy.app.timers.is_registered(ops.timer_tick), "no timer registered"
    run = drive(ops, float(args["timeout_s"]))
    result["run"] = run
    if run["result_scene"]:
        scene = bpy.data.scenes[run["result_scene"]]
        result["scene"] = scene_facts(scene)
        result["strips"] = strips_of(scene)
        result["source"] = scene.get("montage_ai_source", "")

    # a second run, cancelled while the engine works (from the scene the UI would show now)
    s = bpy.context.scene.montage_ai
    s.clips_dir, s.music, s.out_dir = args["clips"], args["music"], args["cancel_out_dir"]
    assert bpy.ops.montage_ai.generate() == {"FINISHED"}
    cancel = drive(ops, float(args["timeout_s"]), stop_after_s=float(args.get("cancel_after_s", 1.5)))
    pid = cancel["pid"]
    try:
        os.kill(pid, 0)
        cancel["process_gone"] = False
    except ProcessLookupError:
        cancel["process_gone"] = True
    result["cancel"] = cancel
    dump(str(Path(args["out_dir"]).parent / "generate_result.json"), result)
    print("bl_generate: ok", flush=True)


if __name__ == "__main__":
    main()
