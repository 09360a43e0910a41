"""Reading and writing timelines in any format the project's adapters handle, without bpy.

Blender gets only OpenTimelineIO itself (bundled wheel): `.otio`, `.otioz`, `.otiod` are read
and written directly. Other formats (`.kdenlive`, FCP7 `.xml`, `.fcpxml`, `.edl`) go through
the engine's `export` command, which owns those adapters and undoes what each format loses
(its sidecars), so the add-on does not have to carry the engine's dependencies into Blender.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import opentimelineio as otio

NATIVE = {".otio", ".otioz", ".otiod"}
ENGINE_FORMATS = {".kdenlive": "kdenlive", ".xml": "fcp7", ".fcpxml": "fcpxml", ".edl": "edl"}
READ_SUFFIXES = sorted(NATIVE | set(ENGINE_FORMATS))
CONVERT_TIMEOUT_S = 120.0


class TimelineIOError(RuntimeError):
    """A timeline could not be read or written; the message names the file and the reason."""


def _engine_export(engine: list[str], src: Path, fmt: str, out_dir: Path, fps: str = "") -> Path:
    argv = [*engine, "export", str(src), "--to", fmt, "--out-dir", str(out_dir)]
    if fps:
        argv += ["--fps", fps]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TimelineIOError(f"{src}: the engine could not convert it ({exc})") from exc
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
        raise TimelineIOError(lines[-1] if lines else f"{src}: engine export failed ({proc.returncode})")
    made = sorted(p for p in out_dir.iterdir() if p.is_file() and not p.name.endswith(".json")
                  and not p.name.startswith("."))
    if not made:
        raise TimelineIOError(f"{src}: the engine wrote no {fmt} file")
    return made[0]


def read_timeline(path: str | Path, engine: list[str] | None = None, fps: str = "") -> otio.schema.Timeline:
    """Any supported file as an OTIO timeline. `engine` (argv prefix) converts non-OTIO formats;
    `fps` is only needed for EDLs exported without their sidecar."""
    path = Path(path)
    if not path.exists():
        raise TimelineIOError(f"{path}: no such file")
    if path.suffix.lower() in NATIVE:
        return otio.adapters.read_from_file(str(path))
    try:  # an OTIO plugin installed in Blender's Python can read it directly
        return otio.adapters.read_from_file(str(path))
    except Exception as direct_error:
        if not engine:
            raise TimelineIOError(f"{path}: OpenTimelineIO in Blender has no reader for {path.suffix} "
                                  f"and no engine is configured to convert it ({direct_error})") from direct_error
    with tempfile.TemporaryDirectory(prefix="montage-ai-import-") as tmp:
        made = _engine_export(engine, path, "otio", Path(tmp), fps)
        return otio.adapters.read_from_file(str(made))


def write_timeline(tl: otio.schema.Timeline, path: str | Path, engine: list[str] | None = None) -> list[Path]:
    """Write `tl` to `path`; non-OTIO suffixes are converted by the engine. Returns the files
    written (a format may need a sidecar or a second file, e.g. the music EDL)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in NATIVE:
        otio.adapters.write_to_file(tl, str(path))
        return [path]
    fmt = ENGINE_FORMATS.get(suffix)
    if fmt is None:
        raise TimelineIOError(f"{path}: unknown timeline format {suffix!r} (one of {', '.join(READ_SUFFIXES)})")
    if not engine:
        raise TimelineIOError(f"{path}: writing {suffix} needs the Montage AI engine (add-on preferences)")
    with tempfile.TemporaryDirectory(prefix="montage-ai-export-") as tmp:
        src = Path(tmp) / f"{path.stem}.otio"
        otio.adapters.write_to_file(tl, str(src))
        out = Path(tmp) / "out"
        out.mkdir()
        _engine_export(engine, src, fmt, out)
        written = []
        for made in sorted(out.iterdir()):
            if made.name.startswith("."):   # the engine's own bookkeeping (its ledger of outputs)
                continue
            target = path.parent / (path.stem + made.name[len(src.stem):])
            target.write_bytes(made.read_bytes())
            written.append(target)
        return written
