"""Montage AI for Blender's Video Sequence Editor.

A Sequencer sidebar tab that runs the Montage AI engine in the background and imports the
beat-cut timeline as strips, plus Import/Export of OpenTimelineIO timelines. The modules that
need no bpy (engine, progress, cutlist, timeline_io) are importable and tested outside Blender;
the bpy ones are imported only at register time, so importing this package has no side effects.
"""

from __future__ import annotations

_MODULES = ("props", "preferences", "operators", "panel")


def _modules():
    import importlib

    return [importlib.import_module(f"{__package__}.{name}") for name in _MODULES]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
