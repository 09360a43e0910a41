"""Timelines in and out of editors: OTIO, Kdenlive, FCP7 XML, FCPXML and CMX 3600 EDL.

Writing lowers a copy of the timeline for each target first (montage_otio.lowering), so what a
format cannot carry is changed on purpose and reported as notes, then writes it atomically.
Reading goes through the same adapters and undoes what they are known to change (fcpx_xml
reorders tracks, cmx_3600 moves dissolves onto the incoming event and reads at 24 fps unless
told the rate, FCP7 XML keeps marker comments only as metadata), so a file we wrote reads back
into the same cut, frame for frame. docs/interchange.md lists what each format keeps.

The stock fcpx_xml adapter does its time arithmetic with integer frame rates and truncation
(every NTSC time and about one in twenty 25 fps times come back a frame off) and skips
transitions, so FCPXML goes through small subclasses of it with exact rational time.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from fractions import Fraction
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import opentimelineio as otio
from pydantic import BaseModel

from montage_otio import lowering as low
from montage_otio.names import keep_carriage_returns

from .atomic import atomic_path, write_text
from .bounded import BoundsError, check_json_text, loads
from .errors import MontageError
from .timeline.model import LOOK_EFFECT

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


class Format(BaseModel):
    """An interchange format: file suffix, the OTIO adapter behind it, who reads it."""

    name: str
    suffix: str
    adapter: str
    for_: str


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format(name="otio", suffix=".otio", adapter="otio_json", for_="OTIO tools, Kdenlive 25.04+ (native import), Resolve"),
    Format(name="kdenlive", suffix=".kdenlive", adapter="montage_kdenlive", for_="Kdenlive project file"),
    Format(name="fcp7", suffix=".xml", adapter="fcp_xml", for_="Premiere Pro, DaVinci Resolve (FCP7 XML)"),
    Format(name="fcpxml", suffix=".fcpxml", adapter="fcpx_xml", for_="Final Cut Pro"),
    Format(name="edl", suffix=".edl", adapter="cmx_3600", for_="Avid, Resolve, any EDL reader (picture + music EDL)"),
]}
#: NAME.edl.json, NAME.xml.json, NAME.fcpxml.json: what the format cannot hold but a re-render
#: needs (the rate of an EDL, render settings, the grade, the music fade-out)
SIDECAR_SUFFIX = ".json"
SIDECAR_FORMATS = {"fcp7", "fcpxml", "edl"}


class ExportResult(BaseModel):
    """What one format export wrote, and what lowering changed to make it fit."""

    format: str
    paths: list[Path]
    notes: list[str]


# ---------------------------------------------------------------- helpers

def _adapter(name: str) -> otio.adapters.Adapter | None:
    try:
        return otio.adapters.from_name(name)
    except Exception:  # noqa: BLE001 - an unregistered or broken plugin is simply unavailable
        return None


_FEATURES = {"write": ("write_to_file", "write_to_string"), "read": ("read_from_file", "read_from_string")}


def adapter_can(name: str, what: str) -> bool:
    """Whether adapter `name` is installed and can 'write' or 'read' (by file or string):
    a plugin being written elsewhere may be registered before it can do either."""
    a = _adapter(name)
    return a is not None and any(a.has_feature(f) for f in _FEATURES[what])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_with_adapter(timeline: otio.schema.Timeline, path: Path, adapter_name: str, **kw: object) -> None:
    adapter = _adapter(adapter_name)
    if adapter is None:
        raise MontageError(f"cannot write {path.name}: OTIO adapter {adapter_name!r} is not installed")
    if adapter.has_feature("write_to_string"):
        write_text(path, adapter.write_to_string(timeline, **kw))
        return
    with atomic_path(path) as tmp:
        adapter.write_to_file(timeline, str(tmp), **kw)


def _render_meta(timeline: otio.schema.Timeline) -> dict:
    return dict((timeline.metadata.get(low.META_KEY) or {}).get("render") or {})


def _set_render_meta(timeline: otio.schema.Timeline, **values: object) -> None:
    """Put what a file told us about the output format where read_timeline looks for it."""
    meta = dict(timeline.metadata.get(low.META_KEY) or {})
    render = dict(meta.get("render") or {})
    render.update({k: v for k, v in values.items() if v is not None})
    meta["render"] = render
    timeline.metadata[low.META_KEY] = meta


# ---------------------------------------------------------------- export

def _export_otio(tl: otio.schema.Timeline, out: Path) -> ExportResult:
    lowered = low.for_otio_native(tl)
    _write_with_adapter(lowered.timeline, out, "otio_json")
    return ExportResult(format="otio", paths=[out], notes=lowered.notes)


def _export_kdenlive(tl: otio.schema.Timeline, out: Path) -> ExportResult:
    if not adapter_can("montage_kdenlive", "write"):
        raise MontageError(f"cannot write {out.name}: the montage_kdenlive adapter is not available")
    lowered = low.for_kdenlive(tl)
    _write_with_adapter(lowered.timeline, out, "montage_kdenlive")
    return ExportResult(format="kdenlive", paths=[out], notes=lowered.notes)


def _look_meta(timeline: otio.schema.Timeline) -> dict | None:
    for track in timeline.video_tracks():
        for effect in track.effects:
            if effect.effect_name == LOOK_EFFECT:
                return dict(effect.metadata.get(low.META_KEY) or {})
    return None


def _audio_meta(timeline: otio.schema.Timeline) -> list[dict]:
    """Our per-clip audio settings (the music's role and fade-out), by file name."""
    out = []
    for track in timeline.audio_tracks():
        for clip in track.find_clips():
            meta = clip.metadata.get(low.META_KEY) or {}
            if meta and isinstance(clip.media_reference, otio.schema.ExternalReference):
                out.append({"file": Path(low.url_to_path(clip.media_reference.target_url)).name,
                            **{k: meta[k] for k in ("role", "fade_out_s") if k in meta}})
    return out


def _write_sidecar(out: Path, timeline: otio.schema.Timeline, **extra: object) -> Path:
    """What `out`'s format cannot carry, for read_timeline_file to put back."""
    rate = low.video_rate(timeline)
    sidecar = out.with_name(out.name + SIDECAR_SUFFIX)
    write_text(sidecar, json.dumps({
        "what": f"montage_ai sidecar for {out.name}: what the format cannot carry",
        "fps_num": rate.numerator, "fps_den": rate.denominator, "render": _render_meta(timeline) or None,
        "look": _look_meta(timeline), "audio": _audio_meta(timeline), **extra,
    }, indent=2, ensure_ascii=False))
    return sidecar


def _export_fcp7(tl: otio.schema.Timeline, out: Path) -> ExportResult:
    lowered = low.for_fcp7(tl)
    write_text(out, _fcp7_text(lowered.timeline, out))
    return ExportResult(format="fcp7", paths=[out, _write_sidecar(out, tl)], notes=lowered.notes)


def _fcp7_text(timeline: otio.schema.Timeline, out: Path) -> str:
    """fcp_xml's document (its own write_to_string, for a timeline), serialised by ElementTree:
    the adapter pretty-prints through minidom, whose parser turns a CR in a name into LF, so
    the name would come back changed."""
    adapter = _adapter("fcp_xml")
    if adapter is None:
        raise MontageError(f"cannot write {out.name}: OTIO adapter 'fcp_xml' is not installed")
    fcp = adapter.module()
    root = ET.Element("xmeml", version="4")
    project = fcp._append_new_sub_element(root, "project")
    fcp._append_new_sub_element(project, "name", text=timeline.name)
    children = fcp._append_new_sub_element(project, "children")
    span = TR(timeline.global_start_time or RT(0, float(low.video_rate(timeline))), timeline.duration())
    children.append(fcp._build_sequence_for_timeline(timeline, span, defaultdict(dict)))
    ET.indent(root, space="    ")
    return '<?xml version="1.0" ?>\n' + keep_carriage_returns(ET.tostring(root, encoding="unicode")) + "\n"


def _export_fcpxml(tl: otio.schema.Timeline, out: Path) -> ExportResult:
    if _fcpx is None:
        raise MontageError(f"cannot write {out.name}: the otio-fcpx-xml-adapter package is not installed")
    lowered = low.for_fcpxml(tl)
    rate = low.video_rate(lowered.timeline)
    render = _render_meta(lowered.timeline)
    size = (int(render["width"]), int(render["height"])) if render.get("width") and render.get("height") else None
    write_text(out, _FcpxWriter(lowered.timeline, rate, size).to_xml())
    return ExportResult(format="fcpxml", paths=[out, _write_sidecar(out, tl)], notes=lowered.notes)


def _event_number(line: str) -> str | None:
    m = re.match(r"^(\d+)\s", line)
    return m.group(1) if m else None


def _dissolve_parts(text: str, keep: Callable[[str, str], str | None]) -> str:
    """Walk an EDL; in each dissolve event (the event number repeated) call keep(part, line)
    for the comment lines, part being 'from' (outgoing clip) or 'to' (after TO CLIP NAME)."""
    out: list[str] = []
    part, last = None, None
    for line in text.splitlines():
        number = _event_number(line)
        if number is not None:
            part = "from" if number == last else None
            last = number
        elif part == "from" and line.startswith("* TO CLIP NAME"):
            part = "to"
        if part is not None and number is None:
            line = keep(part, line)
            if line is None:
                continue
        out.append(line)
    return "\n".join(out)


def _drop_repeated_locators(text: str) -> str:
    """cmx_3600 repeats the outgoing clip's comments, LOCs included, on each dissolve event,
    where readers would attach them to the incoming clip: keep each LOC once."""
    return _dissolve_parts(text, lambda part, line: None if part == "from" and line.startswith("* LOC:") else line)


def _incoming_sources(text: str) -> str:
    """cmx_3600 reads a dissolve event's clip from its FROM CLIP comment, which names the
    outgoing clip; the incoming one is in TO CLIP. Give the reader only the incoming one."""
    def keep(part: str, line: str) -> str | None:
        if part == "from":
            return None if re.match(r"^\* (FROM (CLIP|FILE)|LOC:)", line) else line
        m = re.match(r"^\* TO (CLIP|FILE):(.*)$", line)
        return f"* FROM {m.group(1)}:{m.group(2)}" if m else line
    return _dissolve_parts(text, keep)


def _edl_text(tl: otio.schema.Timeline, rate: Fraction) -> str:
    """cmx_3600 text plus the FCM line it leaves out (it edits its input: give it a copy)."""
    text = _drop_repeated_locators(_adapter("cmx_3600").write_to_string(tl.deepcopy(), rate=float(rate)))
    fcm = "FCM: DROP FRAME" if re.search(r"\d\d;\d\d", text) else "FCM: NON-DROP FRAME"
    lines = text.splitlines()
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    return "\n".join(lines[:at] + [fcm] + lines[at:]) + "\n"


def _export_edl(tl: otio.schema.Timeline, out: Path) -> ExportResult:
    lowered = low.for_edl(tl)
    rate = low.video_rate(tl)
    if _adapter("cmx_3600") is None:
        raise MontageError(f"cannot write {out.name}: OTIO adapter 'cmx_3600' is not installed")
    paths = [out]
    write_text(out, _edl_text(lowered.timeline, rate))
    companions: dict[str, str] = {}
    for key, comp in lowered.companions.items():
        path = out.with_name(f"{out.stem}.{key}{out.suffix}")
        write_text(path, _edl_text(comp, rate))
        companions[key] = path.name
        paths.append(path)
    paths.append(_write_sidecar(out, tl, companions=companions, **lowered.sidecar))
    return ExportResult(format="edl", paths=paths, notes=lowered.notes)


_EXPORTERS: dict[str, Callable[[otio.schema.Timeline, Path], ExportResult]] = {
    "otio": _export_otio, "kdenlive": _export_kdenlive, "fcp7": _export_fcp7,
    "fcpxml": _export_fcpxml, "edl": _export_edl,
}


def export_timeline(timeline: otio.schema.Timeline, out_dir: Path, basename: str = "montage",
                    formats: list[str] | None = None) -> list[ExportResult]:
    """Write `timeline` once per format into out_dir as BASENAME.SUFFIX, each lowered for its
    target first. Without `formats`, every format whose adapter can write (an unavailable one
    is reported, not raised); asking for an unavailable or unknown one raises MontageError."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = list(formats) if formats else list(FORMATS)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise MontageError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    results: list[ExportResult] = []
    for name in wanted:
        fmt = FORMATS[name]
        out = out_dir / f"{basename}{fmt.suffix}"
        if not formats and not adapter_can(fmt.adapter, "write"):
            results.append(ExportResult(format=name, paths=[], notes=[f"skipped: adapter {fmt.adapter!r} cannot write"]))
            continue
        try:
            results.append(_EXPORTERS[name](timeline, out))
        except MontageError:
            raise
        except Exception as exc:  # noqa: BLE001 - an adapter failure is the user's one-line error
            raise MontageError(f"cannot write {out}: {_one_line(exc)}") from exc
    return results


# ---------------------------------------------------------------- read

def _format_for(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".fcpxmld"):
        return "fcpxml"
    for fmt in FORMATS.values():
        if name.endswith(fmt.suffix):
            return fmt.name
    raise MontageError(f"cannot read {path}: unknown timeline format (expected one of "
                       f"{', '.join(f.suffix for f in FORMATS.values())})")


def _first_timeline(result: otio.core.SerializableObject, path: Path) -> otio.schema.Timeline:
    if isinstance(result, otio.schema.Timeline):
        return result
    found = list(result.find_children(descended_from_type=otio.schema.Timeline)) \
        if isinstance(result, otio.schema.SerializableCollection) else []
    if not found:
        raise MontageError(f"cannot read {path}: it holds no timeline")
    return found[0]


def read_timeline_file(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """Read a timeline in any FORMATS format and undo what its adapter is known to change, so
    read_timeline() sees the cut that was exported. EDLs need the frame rate: `rate`, else the
    sidecar written at export (for NAME.music.edl, NAME.edl's), else MontageError."""
    path = Path(path)
    if not path.exists():
        raise MontageError(f"cannot read {path}: no such file")
    fmt = _format_for(path)
    try:
        timeline = _READERS[fmt](path, rate)
    except MontageError:
        raise
    except Exception as exc:  # noqa: BLE001 - adapter errors become one line naming the file
        raise MontageError(f"cannot read {path}: {_one_line(exc)}") from exc
    _urls_to_paths(timeline)
    if fmt in SIDECAR_FORMATS:
        _apply_sidecar(timeline, _load_sidecar(path, companion=fmt == "edl")[0])
    return timeline


def _apply_sidecar(timeline: otio.schema.Timeline, sidecar: dict | None) -> None:
    """Put back what the format could not carry; what the file itself says (an editor may
    have changed the sequence size) wins over the sidecar."""
    if not sidecar:
        return
    if sidecar.get("render"):
        _set_render_meta(timeline, **{**sidecar["render"], **_render_meta(timeline)})
    videos = timeline.video_tracks()
    if sidecar.get("look") and videos and _look_meta(timeline) is None:
        videos[0].effects.append(otio.schema.Effect(name=LOOK_EFFECT, effect_name=LOOK_EFFECT,
                                                    metadata={low.META_KEY: sidecar["look"]}))
    by_file = {a["file"]: a for a in sidecar.get("audio") or [] if a.get("file")}
    for track in timeline.audio_tracks():
        for clip in track.find_clips():
            ref = clip.media_reference
            extra = by_file.get(Path(low.url_to_path(ref.target_url)).name) \
                if isinstance(ref, otio.schema.ExternalReference) else None
            if extra:
                meta = dict(clip.metadata.get(low.META_KEY) or {})
                meta.update({k: v for k, v in extra.items() if k != "file" and k not in meta})
                clip.metadata[low.META_KEY] = meta


def _urls_to_paths(timeline: otio.schema.Timeline) -> None:
    """Local file:// URLs as plain paths, as our own timelines store them."""
    low.plain_paths(timeline)


MAX_TIMELINE_BYTES = 256 * 1024 * 1024
MAX_TIMELINE_DEPTH = 256   # OTIO's C++ JSON reader recurses and crashes the process near 100000


def _read_otio(path: Path, rate: float | None) -> otio.schema.Timeline:
    """OTIO JSON, checked for size and nesting first: a damaged or hostile file must end in a
    one-line error, not a segmentation fault inside the C++ reader."""
    if path.stat().st_size > MAX_TIMELINE_BYTES:
        raise MontageError(f"cannot read {path}: larger than {MAX_TIMELINE_BYTES // 2**20} MiB")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        check_json_text(text, what="it", max_chars=MAX_TIMELINE_BYTES, max_depth=MAX_TIMELINE_DEPTH)
    except BoundsError as exc:
        raise MontageError(f"cannot read {path}: {exc}") from None
    return _first_timeline(otio.adapters.read_from_string(text, adapter_name="otio_json"), path)


def _read_kdenlive(path: Path, rate: float | None) -> otio.schema.Timeline:
    if not adapter_can("montage_kdenlive", "read"):
        raise MontageError(f"cannot read {path}: the montage_kdenlive adapter cannot read")
    return _first_timeline(otio.adapters.read_from_file(str(path), adapter_name="montage_kdenlive"), path)


def _read_fcp7(path: Path, rate: float | None) -> otio.schema.Timeline:
    timeline = _first_timeline(otio.adapters.read_from_file(str(path), adapter_name="fcp_xml"), path)
    for m in timeline.tracks.markers:
        comment = (m.metadata.get("fcp_xml") or {}).get("comment")
        if comment and not m.comment:
            m.comment = str(comment)
    fcp = timeline.metadata.get("fcp_xml") or {}
    chars = (((fcp.get("media") or {}).get("video") or {}).get("format") or {}).get("samplecharacteristics") or {}
    seq_rate = fcp.get("rate") or {}
    fps = None
    if seq_rate.get("timebase"):   # the sequence's own rate: timebase 30 + ntsc TRUE is 30000/1001
        base = float(seq_rate["timebase"])
        fps = low.exact_rate(base * 1000 / 1001 if str(seq_rate.get("ntsc", "")).upper() == "TRUE" else base)
    if chars.get("width") and chars.get("height") and fps is not None:
        _set_render_meta(timeline, width=int(chars["width"]), height=int(chars["height"]),
                         fps_num=fps.numerator, fps_den=fps.denominator)
    return timeline


# ---- EDL

def _load_sidecar(path: Path, companion: bool = False) -> tuple[dict | None, bool]:
    """(NAME.SUFFIX.json, True), or with `companion` for NAME.KEY.edl its main EDL's sidecar
    (NAME.edl.json, False), or (None, False)."""
    candidates = [(path.with_name(path.name + SIDECAR_SUFFIX), True)]
    parts = path.name.split(".")
    if companion and len(parts) >= 3:
        candidates.append((path.with_name(".".join(parts[:-2] + parts[-1:]) + SIDECAR_SUFFIX), False))
    for c, own in candidates:
        if c.is_file():
            try:
                data = loads(c.read_text(encoding="utf-8"), what=str(c), max_chars=16 * 2**20)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return data, own
            except (OSError, ValueError) as exc:
                raise MontageError(f"cannot read {c}: {_one_line(exc)}") from exc
    return None, False


def _ndf_locators(text: str, rate: float) -> str:
    """The cmx_3600 reader skips LOC comments with drop-frame timecode: rewrite them as the
    non-drop timecode of the same frame."""
    def fix(m: re.Match) -> str:
        frames = otio.opentime.from_timecode(m.group(2), rate)
        return m.group(1) + otio.opentime.to_timecode(frames, rate, False)
    return re.sub(r"^(\*\s*LOC:\s*)(\d\d:\d\d:\d\d;\d\d)", fix, text, flags=re.MULTILINE)


def _centre_dissolves(track: otio.schema.Track) -> None:
    """cmx_3600 reads a dissolve as starting at the incoming event (in_offset 0); the picture
    is the same with the cut in its middle, which is how we (and FCP7 XML) store it."""
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Transition) or item.in_offset.value != 0 or not 0 < i < len(track) - 1:
            continue
        a, b = track[i - 1], track[i + 1]
        if not (isinstance(a, otio.schema.Clip) and isinstance(b, otio.schema.Clip)):
            continue
        total = item.out_offset
        half = RT(float(int(total.value) // 2), total.rate)
        if b.source_range.duration <= half:
            continue
        a.source_range = TR(a.source_range.start_time, a.source_range.duration + half)
        b.source_range = TR(b.source_range.start_time + half, b.source_range.duration - half)
        item.in_offset, item.out_offset = half, total - half


def _clip_markers_to_stack(timeline: otio.schema.Timeline, track: otio.schema.Track,
                          record_time: bool = False) -> None:
    """Undo markers_onto_clips: clip markers back to record time on the stack, text in comment.
    EDL LOC timecodes are record times already (`record_time`)."""
    for i, item in enumerate(track):
        if not isinstance(item, otio.schema.Clip) or not len(item.markers):
            continue
        rng = track.range_of_child_at_index(i)
        for m in list(item.markers):
            start = m.marked_range.start_time if record_time else \
                rng.start_time + (m.marked_range.start_time - item.source_range.start_time)
            start = RT(float(round(start.value_rescaled_to(rng.start_time.rate))), rng.start_time.rate)
            timeline.tracks.markers.append(otio.schema.Marker(
                name=m.name, marked_range=TR(start, m.marked_range.duration), color=m.color,
                comment=m.comment or m.name, metadata=m.metadata))
        item.markers[:] = []
    ordered = sorted(timeline.tracks.markers, key=lambda m: m.marked_range.start_time.to_seconds())
    timeline.tracks.markers[:] = ordered


def _read_edl_tracks(path: Path, rate: float) -> otio.schema.Timeline:
    text = _incoming_sources(_ndf_locators(path.read_text(encoding="utf-8"), rate))
    timeline = _adapter("cmx_3600").read_from_string(text, rate=rate)
    for track in timeline.tracks:
        _centre_dissolves(track)
        _clip_markers_to_stack(timeline, track, record_time=True)
    return timeline


def _read_edl(path: Path, rate: float | None) -> otio.schema.Timeline:
    sidecar, own = _load_sidecar(path, companion=True)
    if rate is None and sidecar:
        rate = float(Fraction(int(sidecar["fps_num"]), int(sidecar.get("fps_den", 1))))
    if rate is None:
        raise MontageError(f"cannot read {path}: an EDL does not say its frame rate and no "
                           f"{path.name}{SIDECAR_SUFFIX} sidecar was found; give it with --fps")
    rate = float(low.exact_rate(rate))
    timeline = _read_edl_tracks(path, rate)
    if sidecar and own:   # the main EDL: its music EDL(s) join it
        for name in (sidecar.get("companions") or {}).values():
            companion = path.with_name(name)
            if companion.is_file():
                for track in _read_edl_tracks(companion, rate).audio_tracks():
                    timeline.tracks.append(track.deepcopy())
    _restore_edl_paths(timeline, (sidecar or {}).get("media") or {})
    return timeline


def _restore_edl_paths(timeline: otio.schema.Timeline, media: dict) -> None:
    """Put back the paths an EDL line could not hold as they were (lowering.edl_path), by reel,
    where the event still names what we wrote: an editor's relink wins."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        entry = media.get((clip.metadata.get("cmx_3600") or {}).get("reel"))
        if entry and isinstance(ref, otio.schema.ExternalReference) and ref.target_url == entry.get("written"):
            ref.target_url = entry["path"]
            clip.name = Path(entry["path"]).name


# ---- FCPXML with exact time

def _seconds(value: str | None) -> Fraction:
    """An FCPXML time ('0s', '46/25s', '3600s', '1.5s') as exact seconds."""
    if not value or value == "0s":
        return Fraction(0)
    v = value.strip().rstrip("s")
    if "/" in v:
        a, b = v.split("/")
        return Fraction(a) / Fraction(b)
    return Fraction(v)


def _fcpx_time(frames: int, rate: Fraction) -> str:
    if not frames:
        return "0s"
    s = Fraction(frames) / rate
    return f"{s.numerator}s" if s.denominator == 1 else f"{s.numerator}/{s.denominator}s"


def _rt_seconds(t: RT) -> Fraction:
    return Fraction(round(t.value)) / low.exact_rate(t.rate)


try:  # the adapter is a dependency, but keep the engine importable without it
    from otio_fcpx_xml_adapter import fcpx_xml as _fcpx
except ImportError:  # pragma: no cover
    _fcpx = None

CROSS_DISSOLVE_UID = "FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"   # Final Cut Pro's Cross Dissolve


if _fcpx is not None:
    class _FcpxWriter(_fcpx.FcpxOtio):
        """fcpx_xml's writer with exact frame durations, exact connected-clip offsets, XPath-safe
        name lookups, spine transitions and a sized project format."""

        def __init__(self, timeline: otio.schema.Timeline, rate: Fraction, size: tuple[int, int] | None):
            super().__init__(timeline)
            self.rate = rate
            self.size = size
            self._dissolve_id: str | None = None

        @staticmethod
        def _framerate_to_frame_duration(framerate: float) -> str:
            r = low.exact_rate(framerate)
            return f"{r.denominator}/{r.numerator}s"

        def to_xml(self) -> str:
            """The adapter's document, serialised by ElementTree: the adapter pretty-prints with
            minidom, which (before Python 3.13) writes a newline or tab in an attribute raw, and
            XML readers turn those into spaces (a file or clip name would come back changed)."""
            super().to_xml()
            ET.indent(self.fcpx_xml, space="    ")
            body = ET.tostring(self.fcpx_xml, encoding="unicode")
            return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + keep_carriage_returns(body) + "\n"

        def _clip_format_name(self, clip: otio.core.Item) -> str:
            return ""   # the adapter would run ffprobe and build a name FCP does not know

        def _asset_by_path(self, path: str):  # noqa: ANN202
            return next((a for a in self.resource_element.findall("./asset") if a.get("src") == path), None)

        def _asset_clip_by_name(self, name: str):  # noqa: ANN202
            return next((a for a in self.event_resource.findall("./asset-clip") if a.get("name") == name), None)

        def _create_asset_element(self, clip: otio.schema.Clip, format_element: ET.Element):  # noqa: ANN202
            asset = super()._create_asset_element(clip, format_element)
            if getattr(clip.media_reference, "name", None):   # the file's name in FCP's browser
                asset.set("name", clip.media_reference.name)
            return asset

        def _media_by_name(self, name: str):  # noqa: ANN202
            return next((m for m in self.resource_element.findall("./media") if m.get("name") == name), None)

        def _find_parent_element(self, spine: ET.Element, trimmed_range: RT, format_id: str):  # noqa: ANN202
            t = _rt_seconds(trimmed_range)
            for item in spine.iter():
                if item.tag not in ("clip", "asset-clip", "gap", "ref-clip") or item.get("lane") is not None:
                    continue
                if item.tag == "gap" and item.find("./audio") is not None:
                    continue
                offset = _seconds(item.get("offset"))
                if offset <= t < offset + _seconds(item.get("duration")):
                    return item
            raise ValueError(f"nothing on the primary storyline at {float(t):.3f}s to connect a clip to")

        def _offset_based_on_parent(self, child: ET.Element, parent: ET.Element, default_format_id: str) -> RT:
            s = _seconds(child.get("offset")) - _seconds(parent.get("offset")) + _seconds(parent.get("start"))
            return RT(float(s * self.rate), float(self.rate))

        def _stack_to_sequence(self, stack: otio.schema.Stack, compound_clip: bool = False) -> ET.Element:
            sequence = super()._stack_to_sequence(stack, compound_clip)
            if compound_clip:
                return sequence
            videos = [t for t in stack if t.kind == otio.schema.TrackKind.Video]
            if videos:
                self._add_transitions(sequence.find("./spine"), videos[0])
            self._project_format(sequence)
            return sequence

        def _project_format(self, sequence: ET.Element) -> None:
            for fmt in self.resource_element.findall("./format"):
                if not fmt.get("name"):
                    fmt.attrib.pop("name", None)
            sequence.set("tcStart", "0s")
            sequence.set("tcFormat", "NDF")
            if self.size is None:
                return
            fmt = ET.SubElement(self.resource_element, "format", {
                "id": self._resource_id_generator(), "frameDuration": self._framerate_to_frame_duration(float(self.rate)),
                "width": str(self.size[0]), "height": str(self.size[1])})
            sequence.set("format", fmt.get("id"))

        def _dissolve_effect(self) -> str:
            if self._dissolve_id is None:
                self._dissolve_id = self._resource_id_generator()
                ET.SubElement(self.resource_element, "effect",
                              {"id": self._dissolve_id, "name": "Cross Dissolve", "uid": CROSS_DISSOLVE_UID})
            return self._dissolve_id

        def _add_transitions(self, spine: ET.Element, track: otio.schema.Track) -> None:
            """The adapter writes the primary storyline's clips and gaps in track order and skips
            transitions; put each back between its clips (offset = cut - in_offset)."""
            elements = list(spine)
            items = [i for i in track if isinstance(i, (otio.schema.Clip, otio.schema.Gap, otio.schema.Stack))]
            if len(elements) != len(items) or not any(isinstance(i, otio.schema.Transition) for i in track):
                return
            ordered: list[ET.Element] = []
            it = iter(elements)
            for index, item in enumerate(track):
                if not isinstance(item, otio.schema.Transition):
                    ordered.append(next(it))
                    continue
                cut = track.range_of_child_at_index(index + 1).start_time
                start = int(round(cut.value - item.in_offset.value))
                frames = int(round(item.in_offset.value + item.out_offset.value))
                t = ET.Element("transition", {"name": "Cross Dissolve", "offset": _fcpx_time(start, self.rate),
                                              "duration": _fcpx_time(frames, self.rate)})
                ET.SubElement(t, "filter-video", {"ref": self._dissolve_effect(), "name": "Cross Dissolve"})
                ordered.append(t)
            spine[:] = ordered

    class _FcpxReader(_fcpx.FcpxXml):
        """fcpx_xml's reader with exact rational rates and rounding instead of truncation, plus
        what it skips: spine transitions, the project size, track order and timeline markers."""

        def _format_fraction(self, format_id: str) -> Fraction:
            total, rate = self._format_frame_duration(format_id)
            return Fraction(rate) / Fraction(total)

        def _format_frame_rate(self, format_id: str) -> float:
            return float(self._format_fraction(format_id))

        def _number_of_frames(self, time_value: str | None, format_id: str) -> int:
            return round(_seconds(time_value) * self._format_fraction(format_id))

        def _rt(self, value: str | None, fps: Fraction) -> RT:
            return RT(float(round(_seconds(value) * fps)), float(fps))

        def _time_range(self, element: ET.Element, format_id: str) -> TR:
            fps = self._format_fraction(format_id)
            return TR(self._rt(element.get("start", "0s"), fps), self._rt(element.get("duration"), fps))

        def _reference_from_id(self, asset_id: str, default_format: str) -> otio.core.MediaReference:
            asset = self._asset_by_id(asset_id)
            src = asset.get("src", "") or next((r.get("src", "") for r in asset.findall("./media-rep")), "")
            if not src:
                return otio.schema.MissingReference()
            fps = self._format_fraction(asset.get("format") or default_format)
            asset_clip = self._assetclip_by_ref(asset_id)
            return otio.schema.ExternalReference(
                target_url=src, available_range=TR(self._rt(asset.get("start"), fps), self._rt(asset.get("duration"), fps)),
                metadata={"fcpx": self._create_metadta(asset_clip) if asset_clip is not None else {}})

        def _from_project(self, project_element: ET.Element) -> otio.schema.Timeline:
            timeline = super()._from_project(project_element)
            sequence = project_element.find("./sequence")
            fmt = self._format_by_id(sequence.get("format"))
            fps = self._format_fraction(sequence.get("format"))
            _sort_fcpx_tracks(timeline)
            primary = next(iter(timeline.video_tracks()), None)
            if primary is not None:
                _fcpx_transitions(primary, sequence.find("./spine"), fps)
                _clip_markers_to_stack(timeline, primary)
            if fmt is not None and fmt.get("width") and fmt.get("height"):
                _set_render_meta(timeline, width=int(fmt.get("width")), height=int(fmt.get("height")),
                                 fps_num=fps.numerator, fps_den=fps.denominator)
            return timeline


def _lane(track: otio.schema.Track) -> int:
    try:
        return int(track.name)
    except ValueError:
        return 0


def _sort_fcpx_tracks(timeline: otio.schema.Timeline) -> None:
    """fcpx_xml names tracks by lane and sorts the names as text ('-1' before '0'): put the
    video tracks first from the primary storyline up, then audio from lane -1 down."""
    tracks = list(timeline.tracks)
    ordered = sorted(tracks, key=lambda t: (t.kind != otio.schema.TrackKind.Video,
                                            _lane(t) if t.kind == otio.schema.TrackKind.Video else -_lane(t)))
    timeline.tracks[:] = []
    for track in ordered:
        timeline.tracks.append(track)


def _fcpx_transitions(track: otio.schema.Track, spine: ET.Element | None, fps: Fraction) -> None:
    """Spine <transition>s back into the track between the clips whose cut they cover."""
    if spine is None:
        return
    for t in spine.findall("./transition"):
        start = round(_seconds(t.get("offset")) * fps)
        end = start + round(_seconds(t.get("duration")) * fps)
        for i in range(1, len(track)):
            prev, item = track[i - 1], track[i]
            if not (isinstance(prev, otio.schema.Clip) and isinstance(item, otio.schema.Clip)):
                continue
            cut = round(track.range_of_child_at_index(i).start_time.value)
            if start <= cut <= end:
                track.insert(i, otio.schema.Transition(
                    name=t.get("name", "Cross Dissolve"), transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=RT(float(cut - start), float(fps)), out_offset=RT(float(end - cut), float(fps))))
                break


def _read_fcpxml(path: Path, rate: float | None) -> otio.schema.Timeline:
    if _fcpx is None:
        raise MontageError(f"cannot read {path}: the otio-fcpx-xml-adapter package is not installed")
    source = path / "Info.fcpxml" if path.is_dir() else path
    return _first_timeline(_FcpxReader(source.read_text(encoding="utf-8")).to_otio(), path)


_READERS: dict[str, Callable[[Path, float | None], otio.schema.Timeline]] = {
    "otio": _read_otio, "kdenlive": _read_kdenlive, "fcp7": _read_fcp7, "fcpxml": _read_fcpxml, "edl": _read_edl,
}


def export_paths(timeline: otio.schema.Timeline | None, out_dir: Path, basename: str,
                 formats: list[str]) -> list[Path]:
    """Every file `export_timeline` writes for these formats, so callers can check them before
    any is written. Without a timeline, one audio track (the engine's music) is assumed."""
    paths: list[Path] = []
    audio = 1 if timeline is None else sum(1 for t in timeline.audio_tracks() if t.enabled and len(t))
    for name in formats:
        out = Path(out_dir) / f"{basename}{FORMATS[name].suffix}"
        paths.append(out)
        if name == "edl":
            paths += [out.with_name(f"{out.stem}.{'music' if i == 0 else f'audio{i + 1}'}{out.suffix}")
                      for i in range(audio)]
        if name in SIDECAR_FORMATS:
            paths.append(out.with_name(out.name + SIDECAR_SUFFIX))
    return paths
