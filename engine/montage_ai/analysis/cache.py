"""On-disk cache of ClipAnalysis, so a clip is decoded once across runs, paths and machines.

The key is the file's content fingerprint (media/fingerprint.py) and ANALYSIS_VERSION (bumped
whenever detection changes): a clip renamed, moved, touched or copied to another node is a hit,
and a Ray worker's analysis is found by a later local run. Neither the path nor the clip index
is in the entry's identity: a hit is given the caller's MediaInfo and relabelled to its index.
Entries are JSON written to a temporary file and renamed into place, so a crash or a parallel
run never leaves a half-written entry; an unreadable entry is treated as a miss.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from .. import atomic
from ..media.fingerprint import fingerprint
from ..media.probe import MediaInfo
from .shots import ANALYSIS_VERSION, ClipAnalysis, analyze_clip, relabel


def cache_key(media: MediaInfo) -> str:
    """Hex digest of (content fingerprint, ANALYSIS_VERSION)."""
    ident = f"{fingerprint(media.path)}:{ANALYSIS_VERSION}"
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]


def cache_path(media: MediaInfo, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"shots-{cache_key(media)}.json"


def load(media: MediaInfo, clip_index: int, cache_dir: Path) -> ClipAnalysis | None:
    """The cached analysis of this content, as the analysis of `media` at `clip_index`."""
    try:
        analysis = ClipAnalysis.model_validate_json(cache_path(media, cache_dir).read_bytes())
    except (OSError, ValueError, ValidationError):
        return None
    if analysis.analysis_version != ANALYSIS_VERSION:
        return None
    return relabel(analysis.model_copy(update={"media": media}), clip_index)


def store(media: MediaInfo, analysis: ClipAnalysis, cache_dir: Path) -> None:
    path = cache_path(media, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, analysis.model_copy(update={"media": media}).model_dump_json())


def load_or_analyze(media: MediaInfo, clip_index: int, cache_dir: Path) -> tuple[ClipAnalysis, bool]:
    """The clip's analysis and whether it came from the cache."""
    cached = load(media, clip_index, cache_dir)
    if cached is not None:
        return cached, True
    analysis = analyze_clip(media, clip_index)
    store(media, analysis, cache_dir)
    return analysis, False
