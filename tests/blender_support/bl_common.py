"""Shared by the scripts that run inside Blender (`.venv-bpy/bin/python SCRIPT ARGS.json`).

Blender's user folders must point at a temporary folder before bpy is imported
(BLENDER_USER_RESOURCES, set by the test), so installing the extension never touches the
user's own Blender. The extension is installed the way a user installs it: from the built zip,
through Blender's extension system, which also unpacks the bundled OpenTimelineIO wheel.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import bpy

PKG = "bl_ext.user_default.montage_ai"


def load_args() -> dict[str, Any]:
    return json.loads(Path(sys.argv[-1]).read_text())


def install_extension(zip_path: str) -> Any:
    """Install and enable the extension zip in the user_default repository; returns its module."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}, result
    loaded, enabled = addon_utils.check(PKG)
    assert enabled, f"{PKG} not enabled after install (loaded={loaded})"
    print(f"bl_common: installed {zip_path} in {time.perf_counter() - t0:.2f} s", flush=True)
    return sys.modules[PKG]


def submodule(name: str) -> Any:
    import importlib

    return importlib.import_module(f"{PKG}.{name}")


def set_engine(argv0: str) -> None:
    bpy.context.preferences.addons[PKG].preferences.engine_path = argv0


def strips_of(scene: bpy.types.Scene) -> list[dict[str, Any]]:
    """Every top-level strip as plain data (what the test compares with the OTIO clips)."""
    compat = submodule("compat")
    out = []
    editor = scene.sequence_editor
    for s in (compat.top_strips(editor) if editor else []):
        content, left, right = compat.get_range(s)
        item: dict[str, Any] = {"name": s.name, "type": s.type, "channel": s.channel, "content_start": content,
                                "left": left, "right": right, "props": s.get("montage_ai", "")}
        if s.type == "MOVIE":
            item.update(path=bpy.path.abspath(s.filepath), fps=s.fps, scale=(s.transform.scale_x, s.transform.scale_y),
                        frame_duration=s.frame_duration)
        elif s.type == "SOUND":
            item.update(path=bpy.path.abspath(s.sound.filepath))
        elif s.type in {"CROSS", "GAMMA_CROSS"}:
            a, b = compat.cross_inputs(s)
            item.update(input1=a.name, input2=b.name)
        out.append(item)
    return out


def scene_facts(scene: bpy.types.Scene) -> dict[str, Any]:
    r = scene.render
    return {"name": scene.name, "fps": r.fps, "fps_base": r.fps_base, "width": r.resolution_x,
            "height": r.resolution_y, "frame_start": scene.frame_start, "frame_end": scene.frame_end,
            "view_transform": scene.view_settings.view_transform,
            "markers": sorted([(m.frame, m.name) for m in scene.timeline_markers])}


def dump(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=str))


class StubLayout:
    """Stands in for UILayout so the panel's draw() runs headless; checks that every property
    and operator it names exists, and records what it would show."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.enabled = True
        self.scale_y = 1.0

    def column(self, **_kw: Any) -> StubLayout:
        return self

    row = box = column

    def prop(self, data: Any, name: str, **_kw: Any) -> None:
        assert name in data.bl_rna.properties, f"panel draws a missing property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname: str, **_kw: Any) -> None:
        mod, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, mod), op), f"panel draws a missing operator {idname!r}"
        self.log.append(("operator", idname))

    def label(self, text: str = "", **_kw: Any) -> None:
        self.log.append(("label", text))

    def progress(self, factor: float = 0.0, type: str = "", text: str = "") -> None:
        self.log.append(("progress", factor, text))


def draw_panel() -> list:
    """Run the Montage AI panel's draw() against the current context; returns what it showed."""
    import types

    cls = submodule("panel").SEQUENCER_PT_montage_ai
    log: list = []
    ns = types.SimpleNamespace(layout=StubLayout(log))
    ns._draw_job = lambda layout, controller: cls._draw_job(ns, layout, controller)
    cls.draw(ns, bpy.context)
    return log
