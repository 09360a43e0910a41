"""Montage AI's timeline formats and OpenTimelineIO plugins.

The one home of every interchange format: `formats/` holds one module per format (otio,
kdenlive, fcp7, fcpxml, edl), each owning its lowering, writing, sidecar and read repairs, and
`registry.py` lists them. `vocab.py` is the timeline vocabulary the engine shares; nothing here
imports the engine (montage_ai): what a format must know about media comes through a probe the
caller passes (`media.py`). The Kdenlive adapter is also registered with OTIO through the
`opentimelineio.plugins` entry point and `plugin_manifest.json`, so `otioconvert`, `otiotool` and
any OTIO program see it.
"""
