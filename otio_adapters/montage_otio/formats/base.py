"""What every format module provides, so the registry can treat them alike.

A format turns a timeline into file texts (nothing is written here: the caller writes them, the
engine atomically) and reads a file back into the timeline that was exported, undoing what its
adapter is known to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import opentimelineio as otio
from pydantic import BaseModel, ConfigDict

from montage_otio.errors import InterchangeError
from montage_otio.media import MediaCache
from montage_otio.sidecar import path_for as sidecar_path


@dataclass
class Written:
    """The texts one export produces, main file first, and what lowering changed for it."""

    files: dict[Path, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportContext:
    """What an export may need beyond the timeline: the folder relative media paths are
    relative to (the timeline file's), the caller's media probe, and the rate of an EDL's
    source timecodes ("own": each file's, for conforming by source timecode; "sequence": one
    rate, for single-rate readers)."""

    base_dir: Path | None = None
    media: MediaCache = field(default_factory=lambda: MediaCache(None))
    edl_source_timecode: str = "own"


Exporter = Callable[[otio.schema.Timeline, Path, ExportContext], Written]
Reader = Callable[[Path, "float | None"], otio.schema.Timeline]


class FormatSpec(BaseModel):
    """An interchange format: its name, file suffix, the OTIO adapter behind it, who reads it,
    whether a sidecar goes with it, and the module functions that write and read it."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    suffix: str
    adapter: str
    for_: str
    sidecar: bool = False
    audio_companions: bool = False           # one NAME.music.SUFFIX (NAME.audioN.SUFFIX) per audio track
    read_suffixes: tuple[str, ...] = ()
    export: Exporter
    read: Reader

    def paths(self, out: Path, audio_tracks: int) -> list[Path]:
        """Every file an export to `out` writes: the main file, audio companions, the sidecar."""
        paths = [out]
        if self.audio_companions:
            paths += [out.with_name(f"{out.stem}.{'music' if i == 0 else f'audio{i + 1}'}{out.suffix}")
                      for i in range(audio_tracks)]
        if self.sidecar:
            paths.append(sidecar_path(out))
        return paths


_FEATURES = {"write": ("write_to_file", "write_to_string"), "read": ("read_from_file", "read_from_string")}


def adapter(name: str) -> otio.adapters.Adapter | None:
    """An installed OTIO adapter by name, or None (a broken plugin is simply unavailable)."""
    try:
        return otio.adapters.from_name(name)
    except Exception:  # a broken plugin is simply unavailable
        return None


def adapter_can(name: str, what: str) -> bool:
    """Whether adapter `name` is installed and can 'write' or 'read' (by file or string)."""
    a = adapter(name)
    return a is not None and any(a.has_feature(f) for f in _FEATURES[what])


def need_adapter(name: str, path: Path, what: str = "write") -> otio.adapters.Adapter:
    a = adapter(name)
    if a is None:
        raise InterchangeError(f"cannot {what} {path.name}: OTIO adapter {name!r} is not installed")
    return a


def first_timeline(result: otio.core.SerializableObject, path: Path) -> otio.schema.Timeline:
    """The timeline in what an adapter read (a collection holds it somewhere inside)."""
    if isinstance(result, otio.schema.Timeline):
        return result
    found = list(result.find_children(descended_from_type=otio.schema.Timeline)) \
        if isinstance(result, otio.schema.SerializableCollection) else []
    if not found:
        raise InterchangeError(f"cannot read {path}: it holds no timeline")
    return found[0]
