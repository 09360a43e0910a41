"""Load the Blender extension's pure-Python modules (no bpy) in the engine's environment.

The extension's package is called `montage_ai` like the engine, and its `__init__` registers
Blender classes; so its folder is mounted as a bare package under another name and only the
modules asked for are imported."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parents[2] / "nle_addons" / "blender" / "montage_ai"
ALIAS = "montage_ai_blender_addon"


def addon_module(name: str) -> types.ModuleType:
    """`addon_module("cutlist")` -> nle_addons/blender/montage_ai/cutlist.py as a module."""
    if ALIAS not in sys.modules:
        pkg = types.ModuleType(ALIAS)
        pkg.__path__ = [str(ADDON_DIR)]  # type: ignore[attr-defined]
        sys.modules[ALIAS] = pkg
    return importlib.import_module(f"{ALIAS}.{name}")
