"""OpenTimelineIO adapter `montage_kdenlive`: Kdenlive projects (`.kdenlive`, MLT 7 XML).

Writes the structure current Kdenlive (23.04+, document version 1.1) saves, at the timeline's own
size and exact frame rate, with bounded tractors so `melt FILE.kdenlive` renders exactly the
timeline; reads such documents (ours, and Kdenlive's own of the same structure) back into an OTIO
Timeline. The work is in `kdenlive_write` and `kdenlive_read`; this module is the adapter surface
OTIO's plugin system calls (`otioconvert -i cut.otio -o cut.kdenlive`, `-A width=1280` ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import opentimelineio as otio

from montage_otio.kdenlive_read import from_string
from montage_otio.kdenlive_write import to_string


def write_to_string(input_otio: otio.schema.Timeline, width: Any = None, height: Any = None,
                    rate: Any = None, root: str | None = None) -> str:
    """The timeline as a Kdenlive document. width/height/rate override what the timeline says
    (our render metadata, else the clips' rate and 1920x1080); `root` is the project folder
    (default: the current directory) that relative media paths resolve against."""
    return to_string(_as_timeline(input_otio), width=width, height=height, rate=rate, root=root)


def write_to_file(input_otio: otio.schema.Timeline, filepath: str, width: Any = None, height: Any = None,
                  rate: Any = None, root: str | None = None) -> None:
    """Write the document; its folder becomes the project root, as when Kdenlive saves it."""
    folder = root or os.path.dirname(os.path.abspath(filepath))
    text = write_to_string(input_otio, width=width, height=height, rate=rate, root=folder)
    Path(filepath).write_text(text, encoding="utf-8")


def read_from_string(input_str: str) -> otio.schema.Timeline:
    """A Kdenlive/MLT document as a Timeline; relative paths resolve against its `root`
    (else the current directory)."""
    return from_string(input_str, base_dir=None)


def read_from_file(filepath: str) -> otio.schema.Timeline:
    """Read a `.kdenlive` file; relative paths resolve against its `root`, else its folder."""
    path = Path(filepath)
    return from_string(path.read_text(encoding="utf-8"), base_dir=path.resolve().parent)


def _as_timeline(obj: Any) -> otio.schema.Timeline:
    """otioconvert may hand over a bare Track or Stack; wrap it the way Kdenlive needs."""
    if isinstance(obj, otio.schema.Timeline):
        return obj
    timeline = otio.schema.Timeline(name=getattr(obj, "name", "") or "Sequence 1")
    if isinstance(obj, otio.schema.Stack):
        timeline.tracks = obj.deepcopy()
    elif isinstance(obj, otio.schema.Track):
        timeline.tracks.append(obj.deepcopy())
    else:
        raise otio.exceptions.NotSupportedError(f"cannot write {type(obj).__name__} as a Kdenlive project")
    return timeline
