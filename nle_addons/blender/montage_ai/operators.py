"""Generate Montage (engine in the background, polled by a timer), Cancel, Import and Export.

Generate never blocks Blender: the engine is a child process (argument list, no shell) whose
output two reader threads queue up; a timer calls `JobController.tick()` a few times a second,
which takes what is queued, updates the panel and returns at once. From the UI the timer is a
modal operator's window timer (Esc cancels); from a script or headless Blender it is a
`bpy.app.timers` function, which a test can also call directly.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .engine import EngineJob, EngineNotFound, EngineRequest
from .preferences import engine_argv, prefs

TICK_S = 0.2
FILTER = "*.otio;*.otioz;*.kdenlive;*.xml;*.fcpxml;*.edl"


class JobController:
    """One Generate run: the engine job, the tick count, and the import when it succeeds."""

    def __init__(self, job: EngineJob, style: str, fit: str, source_scene: str = "") -> None:
        self.job = job
        self.style = style
        self.source_scene = source_scene
        self.fit = fit
        self.ticks = 0
        self.result_scene = ""
        self.import_error = ""
        self.finished = False

    @property
    def status(self) -> str:
        if self.import_error:
            return f"failed: {self.import_error}"
        state = self.job.state
        if state == "running":
            stage = self.job.tracker.stage
            return f"{stage or 'starting'}… {self.job.tracker.percent}%"
        if state == "done":
            return f"done: {self.result_scene}" if self.result_scene else "done"
        if state == "failed":
            return f"failed: {self.job.tracker.error}"
        return state

    def tick(self) -> bool:
        """Poll the engine once; True while it still runs. Never waits on the engine."""
        self.ticks += 1
        state = self.job.poll()
        _redraw()
        if state == "running":
            return True
        if not self.finished:
            self.finished = True
            if state == "done":
                self._import_result()
            _redraw()
        return False

    def _import_result(self) -> None:
        from .timeline_io import read_timeline
        from .vse_otio import import_timeline

        path = self.job.timeline
        if path is None:
            self.import_error = "the engine finished but wrote no montage.otio"
            return
        try:
            timeline = read_timeline(path)
            scene = bpy.data.scenes.new(f"Montage {self.style}")
            layout = import_timeline(scene, timeline, self.fit)
            scene[PROP_SOURCE] = str(path)
            _copy_settings(bpy.data.scenes.get(self.source_scene), scene)
            self.result_scene = scene.name
            for warning in layout.warnings:
                self.job.tracker.messages.append(f"import: {warning}")
            _show_scene(scene)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never raised into a timer
            self.import_error = f"import of {path} failed: {exc}"


PROP_SOURCE = "montage_ai_source"
_ACTIVE: JobController | None = None     # the running (or last) Generate job


def active_job() -> JobController | None:
    return _ACTIVE


def timer_tick() -> float | None:
    """The `bpy.app.timers` callback: seconds until the next call, None when the job ended."""
    controller = _ACTIVE
    if controller is None or controller.finished:
        return None
    return TICK_S if controller.tick() else None


def _copy_settings(src: bpy.types.Scene | None, dst: bpy.types.Scene) -> None:
    """The new scene's panel shows the inputs that made it (and is ready for another run)."""
    if src is None:
        return
    for key in src.montage_ai.bl_rna.properties.keys():
        if key not in {"rna_type", "name"}:
            setattr(dst.montage_ai, key, getattr(src.montage_ai, key))


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in (wm.windows if wm else []):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def _show_scene(scene: bpy.types.Scene) -> None:
    wm = bpy.context.window_manager
    for window in (wm.windows if wm else []):
        window.scene = scene
        break


def _output_dir(settings: Any) -> Path:
    """The panel's output folder, else montage_ai/<time> beside the saved .blend, else a temp folder."""
    if settings.out_dir.strip():
        return Path(bpy.path.abspath(settings.out_dir))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//montage_ai")) / stamp
    return Path(tempfile.mkdtemp(prefix=f"montage-ai-{stamp}-"))


def start_generate(context: bpy.types.Context) -> str:
    """Start the engine for the scene's settings. Returns an error message, or "" when started."""
    global _ACTIVE
    if _ACTIVE is not None and _ACTIVE.job.running:
        return "a montage is already being generated"
    s = context.scene.montage_ai
    clips, music = bpy.path.abspath(s.clips_dir), bpy.path.abspath(s.music)
    if not s.clips_dir or not os.path.isdir(clips):
        return f"clips folder not found: {clips or '(not set)'}"
    if not s.music or not os.path.isfile(music):
        return f"music file not found: {music or '(not set)'}"
    try:
        argv = engine_argv(context)
    except EngineNotFound as exc:
        return str(exc)
    request = EngineRequest(clips=Path(clips), music=Path(music), out=_output_dir(s), style=s.style,
                            prompt=s.prompt, duration=s.duration, resolution=s.resolution, aspect=s.aspect,
                            cgpu=s.use_cgpu, upscale=s.use_upscale)
    p = prefs(context)
    try:
        job = EngineJob(engine=argv, request=request).start()
    except OSError as exc:
        return f"could not start the engine {' '.join(argv)}: {exc}"
    _ACTIVE = JobController(job, s.style, p.fit_mode if p else "AUTO", context.scene.name)
    return ""


class MONTAGE_AI_OT_generate(bpy.types.Operator):
    """Run the Montage AI engine on the clips and music, then import the cut as a new scene"""

    bl_idname = "montage_ai.generate"
    bl_label = "Generate Montage"
    bl_options = {"REGISTER"}

    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _ACTIVE is None or not _ACTIVE.job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Scripts and headless Blender: an app timer polls the engine."""
        error = start_generate(context)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        if not bpy.app.timers.is_registered(timer_tick):
            bpy.app.timers.register(timer_tick, first_interval=TICK_S)
        self.report({"INFO"}, "Montage AI: generating in the background")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        """The UI: a modal operator with a window timer; Esc cancels."""
        error = start_generate(context)
        if error:
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        controller = _ACTIVE
        if controller is None:
            return self._end(context, {"CANCELLED"})
        if event.type == "ESC" and event.value == "PRESS":
            controller.job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if controller.tick():
            return {"PASS_THROUGH"}
        ok = controller.job.state == "done" and not controller.import_error
        self.report({"INFO"} if ok else {"WARNING"}, f"Montage AI: {controller.status}")
        return self._end(context, {"FINISHED"} if ok else {"CANCELLED"})

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return result


class MONTAGE_AI_OT_cancel(bpy.types.Operator):
    """Stop the running engine (finished pieces stay cached: running it again resumes)"""

    bl_idname = "montage_ai.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _ACTIVE is not None and _ACTIVE.job.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        if _ACTIVE is not None:
            _ACTIVE.job.cancel()
        return {"FINISHED"}


def _engine_or_none(context: bpy.types.Context) -> list[str] | None:
    try:
        return engine_argv(context)
    except EngineNotFound:
        return None


class MONTAGE_AI_OT_import_otio(bpy.types.Operator, ImportHelper):
    """Import a timeline (.otio; .kdenlive, FCP7 .xml, .fcpxml and .edl through the engine) into the VSE"""

    bl_idname = "montage_ai.import_otio"
    bl_label = "Import OTIO"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default=FILTER, options={"HIDDEN"})
    target: EnumProperty(name="Into", default="NEW_SCENE", items=[
        ("NEW_SCENE", "New scene", "Create a scene named after the timeline"),
        ("CURRENT", "This scene", "Replace this scene's strips and markers")])
    beat_markers: BoolProperty(name="Beat markers", default=True,
                               description="Also add a marker on every beat and downbeat (sections always)")
    fps: StringProperty(name="EDL frame rate", default="",
                        description="Only for an EDL without its .json sidecar, e.g. 25 or 30000/1001")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            from .timeline_io import read_timeline
            from .vse_otio import import_timeline

            timeline = read_timeline(self.filepath, _engine_or_none(context), self.fps)
        except ImportError as exc:
            self.report({"ERROR"}, f"OpenTimelineIO is missing ({exc}); see docs/blender.md")
            return {"CANCELLED"}
        except Exception as exc:  # noqa: BLE001 - one line for the user
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        scene = context.scene if self.target == "CURRENT" else bpy.data.scenes.new(timeline.name or "Timeline")
        p = prefs(context)
        layout = import_timeline(scene, timeline, p.fit_mode if p else "AUTO", self.beat_markers)
        scene[PROP_SOURCE] = self.filepath
        if self.target != "CURRENT":
            _show_scene(scene)
        for warning in layout.warnings[:10]:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"imported {len(layout.clips)} clips into scene {scene.name!r}")
        return {"FINISHED"}


class MONTAGE_AI_OT_export_otio(bpy.types.Operator, ExportHelper):
    """Write this scene's VSE edit as a timeline (.otio; other formats through the engine)"""

    bl_idname = "montage_ai.export_otio"
    bl_label = "Export to OTIO"

    filename_ext = ".otio"
    check_extension = None        # keep .kdenlive/.xml/.fcpxml/.edl when typed
    filter_glob: StringProperty(default=FILTER, options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            from .timeline_io import write_timeline
            from .vse_otio import export_scene

            timeline, warnings = export_scene(context.scene)
            written = write_timeline(timeline, self.filepath, _engine_or_none(context))
        except ImportError as exc:
            self.report({"ERROR"}, f"OpenTimelineIO is missing ({exc}); see docs/blender.md")
            return {"CANCELLED"}
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in warnings[:10]:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, "wrote " + ", ".join(str(p) for p in written))
        return {"FINISHED"}


CLASSES = (MONTAGE_AI_OT_generate, MONTAGE_AI_OT_cancel, MONTAGE_AI_OT_import_otio, MONTAGE_AI_OT_export_otio)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    global _ACTIVE
    if _ACTIVE is not None and _ACTIVE.job.running:
        _ACTIVE.job.cancel()
    if bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.unregister(timer_tick)
    _ACTIVE = None
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
