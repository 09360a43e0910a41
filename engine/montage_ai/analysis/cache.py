"""On-disk cache of ClipAnalysis, so a clip is decoded once across runs.

The key is a hash of what makes an analysis stale: the file's absolute path, size and mtime,
and ANALYSIS_VERSION (bumped whenever detection changes). The clip index is not in the key:
it only names the shots, so a hit under another index is relabelled, not re-analysed.
Entries are JSON written to a temporary file and renamed into place, so a crash or a parallel
run never leaves a half-written entry; an unreadable entry is treated as a miss.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from .. import atomic
from ..media.probe import MediaInfo
from .shots import ANALYSIS_VERSION, ClipAnalysis, analyze_clip, relabel


def cache_key(media: MediaInfo) -> str:
    """Hex digest of (absolute path, size, mtime_ns, ANALYSIS_VERSION)."""
    ident = json.dumps([str(Path(media.path).absolute()), media.size_bytes, media.mtime_ns, ANALYSIS_VERSION])
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]


def cache_path(media: MediaInfo, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"shots-{cache_key(media)}.json"


def load_or_analyze(media: MediaInfo, clip_index: int, cache_dir: Path) -> tuple[ClipAnalysis, bool]:
    """The clip's analysis and whether it came from the cache."""
    path = cache_path(media, cache_dir)
    cached = _load(path)
    if cached is not None:
        return relabel(cached.model_copy(update={"media": media}), clip_index), True
    analysis = analyze_clip(media, clip_index)
    _store(path, analysis)
    return analysis, False


def _load(path: Path) -> ClipAnalysis | None:
    try:
        analysis = ClipAnalysis.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None
    return analysis if analysis.analysis_version == ANALYSIS_VERSION else None


def _store(path: Path, analysis: ClipAnalysis) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, analysis.model_dump_json())
