"""Clip analysis as an executor Task: one clip per item, on this machine or a Ray worker.

The item carries everything the worker needs (the clip's MediaInfo and index) and the name to
report errors by, so a worker analysing a shipped copy still names the user's file. The cache is
not touched here: the driver looks entries up before and stores results after (analysis/cache.py),
so a worker needs no access to the cache folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..errors import MediaError
from ..execute import Task
from ..media.fingerprint import fingerprint
from ..media.probe import MediaInfo
from .shots import ClipAnalysis, analyze_clip

# generous: 4K HEVC on one slow core analyses at about real time
BASE_TIMEOUT_S, TIMEOUT_PER_SECOND = 300.0, 10.0


class ClipItem(NamedTuple):
    index: int
    media: MediaInfo
    label: str                  # the user's path, for messages


class ClipResult(NamedTuple):
    analysis: ClipAnalysis | None
    error: str | None


def analyze_item(item: ClipItem) -> ClipResult:
    try:
        return ClipResult(analyze_clip(item.media, item.index), None)
    except MediaError as exc:
        return ClipResult(None, str(exc).replace(str(item.media.path), item.label))


def _files(item: ClipItem) -> dict[Path, str]:
    return {Path(item.media.path): fingerprint(item.media.path)}


def _relocate(item: ClipItem, moved: dict[Path, Path]) -> ClipItem:
    path = Path(item.media.path)
    return item._replace(media=item.media.model_copy(update={"path": moved.get(path, path)}))


def _timeout_s(item: ClipItem) -> float:
    return BASE_TIMEOUT_S + TIMEOUT_PER_SECOND * max(item.media.duration_s, 0.0)


ANALYSIS = Task("analysis", run=analyze_item, files=_files, relocate=_relocate, timeout_s=_timeout_s)
