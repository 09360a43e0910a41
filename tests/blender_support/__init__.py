"""Helpers for the Blender add-on tests: loading its pure-Python modules without bpy, and the
scripts that run inside `.venv-bpy` (Blender as a Python module)."""
