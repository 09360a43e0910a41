"""Timelines in and out of editors: the engine's facade over montage_otio's format registry.

Every format (OTIO, Kdenlive, FCP7 XML, FCPXML, CMX 3600 EDL) lives in montage_otio.formats,
one module each, listed once in montage_otio.registry; docs/interchange.md says what each keeps.
This module adds what is the engine's business: atomic writes, the media probe the formats may
ask, bounds on untrusted OTIO JSON, and turning plugin errors into one-line MontageErrors.
"""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
from montage_otio import registry
from montage_otio.errors import InterchangeError
from montage_otio.formats.base import FormatSpec, adapter_can
from montage_otio.media import MediaFacts
from pydantic import BaseModel

from .atomic import write_text
from .bounded import BoundsError, check_json_text
from .errors import MediaError, MontageError

__all__ = ["FORMATS", "ExportResult", "Format", "adapter_can", "export_paths", "export_timeline", "read_timeline_file"]

Format = FormatSpec
FORMATS: dict[str, FormatSpec] = registry.FORMATS
SIDECAR_FORMATS = {name for name, f in FORMATS.items() if f.sidecar}
MAX_TIMELINE_BYTES = 256 * 1024 * 1024
MAX_TIMELINE_DEPTH = 256   # OTIO's C++ JSON reader recurses and crashes the process near 100000


class ExportResult(BaseModel):
    """What one format export wrote, and what lowering changed to make it fit."""

    format: str
    paths: list[Path]
    notes: list[str]


def media_facts(path: Path) -> MediaFacts | None:
    """The engine's probe as montage_otio asks it: duration and own rate, None if unreadable."""
    from .media.probe import probe

    try:
        info = probe(path)
    except MediaError:
        return None
    return MediaFacts(duration_s=max(info.duration_s, 0.0), fps_num=info.fps_num if info.has_video else 0,
                      fps_den=info.fps_den or 1, frame_count=info.frame_count if info.has_video else 0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def export_timeline(timeline: otio.schema.Timeline, out_dir: Path, basename: str = "montage",
                    formats: list[str] | None = None, base_dir: Path | None = None,
                    edl_source_timecode: str = "own") -> list[ExportResult]:
    """Write `timeline` once per format into out_dir as BASENAME.SUFFIX, each lowered for its
    target first. Without `formats`, every format that can be written (an unavailable one is
    reported, not raised); an unavailable or unknown one asked for raises MontageError.
    `base_dir` is the folder relative media paths are relative to (the timeline file's);
    `edl_source_timecode` "own" or "sequence" (docs/interchange.md, edl)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = list(formats) if formats else list(FORMATS)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise MontageError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    results: list[ExportResult] = []
    for name in wanted:
        out = out_dir / f"{basename}{FORMATS[name].suffix}"
        if not formats and not registry.available(name):
            results.append(ExportResult(format=name, paths=[], notes=[f"skipped: adapter {FORMATS[name].adapter!r} cannot write"]))
            continue
        try:
            written = registry.export(name, timeline, out, base_dir=base_dir, probe=media_facts,
                                      edl_source_timecode=edl_source_timecode)
        except InterchangeError as exc:
            raise MontageError(str(exc)) from exc
        except Exception as exc:
            raise MontageError(f"cannot write {out}: {_one_line(exc)}") from exc
        for path, text in written.files.items():
            write_text(path, text)
        results.append(ExportResult(format=name, paths=list(written.files), notes=written.notes))
    return results


def _check_otio_json(path: Path) -> None:
    """A damaged or hostile .otio must end in a one-line error, not a crash in the C++ reader."""
    if path.stat().st_size > MAX_TIMELINE_BYTES:
        raise MontageError(f"cannot read {path}: larger than {MAX_TIMELINE_BYTES // 2**20} MiB")
    try:
        check_json_text(path.read_text(encoding="utf-8", errors="replace"), what="it",
                        max_chars=MAX_TIMELINE_BYTES, max_depth=MAX_TIMELINE_DEPTH)
    except BoundsError as exc:
        raise MontageError(f"cannot read {path}: {exc}") from None


def read_timeline_file(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """Read a timeline in any FORMATS format, undoing what its adapter is known to change, with
    media paths resolved against the file's folder. EDLs need the frame rate: `rate`, else the
    sidecar written at export (for NAME.music.edl, NAME.edl's), else MontageError."""
    path = Path(path)
    if not path.exists():
        raise MontageError(f"cannot read {path}: no such file")
    try:
        if registry.format_for(path).name == "otio":
            _check_otio_json(path)
        return registry.read(path, rate)
    except MontageError:
        raise
    except InterchangeError as exc:
        raise MontageError(str(exc)) from exc
    except Exception as exc:
        raise MontageError(f"cannot read {path}: {_one_line(exc)}") from exc


def export_paths(timeline: otio.schema.Timeline | None, out_dir: Path, basename: str,
                 formats: list[str]) -> list[Path]:
    """Every file `export_timeline` writes for these formats, so callers can check them before
    any is written. Without a timeline, one audio track (the engine's music) is assumed."""
    audio = 1 if timeline is None else sum(1 for t in timeline.audio_tracks() if t.enabled and len(t))
    return [p for name in formats for p in registry.paths(name, Path(out_dir) / f"{basename}{FORMATS[name].suffix}", audio)]
