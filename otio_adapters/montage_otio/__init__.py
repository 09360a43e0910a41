"""Montage AI's OpenTimelineIO plugins.

Registered through the `opentimelineio.plugins` entry point with `plugin_manifest.json`, so
`otioconvert`, `otiotool` and any OTIO program see these adapters, the way OTIO keeps its
core apart from its format plugins. The per-target lowering helpers live in `lowering.py`.
"""
