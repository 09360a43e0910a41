"""CMX 3600 EDL (`.edl`), through the `cmx_3600` adapter, with what it cannot do added around it.

An EDL has one picture track and no frame rate: the picture goes to NAME.edl, each audio track
to its own EDL (NAME.music.edl, NAME.audioN.edl) instead of being dropped, and the rate, the
render settings and what else a re-render needs to the sidecar NAME.edl.json. Source timecodes
are at each medium's own rate (a 25 fps file in a 29.97 sequence gets 25 fps source timecode,
docs/frame-rule.md's rounding); the sidecar lists the rates by reel and the exact in-points, so
our reader gets the same source frames back. For readers that take one rate for every timecode
(OpenTimelineIO's cmx_3600), `edl_source_timecode="sequence"` writes them at the sequence rate. Reading repairs what the adapter gets wrong: a
dissolve's incoming clip, LOCs repeated on dissolve events, drop-frame LOCs, the black before
the first event, source timecodes at another rate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from montage_otio import lowering as low
from montage_otio import sidecar
from montage_otio.errors import InterchangeError
from montage_otio.formats.base import ExportContext, FormatSpec, Written, need_adapter
from montage_otio.vocab import exact_rate, plain_path

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange

_RESERVED_REELS = {"AX", "BL", "BLACK", "BARS"}


# ---------------------------------------------------------------- lowering

def reel_names(paths: list[str], length: int = 8) -> dict[str, str]:
    """One valid CMX reel name per source file: letters and digits only, at most `length`
    characters, derived from the file name, unique (a counter replaces the tail on clashes)."""
    used = set(_RESERVED_REELS)
    out: dict[str, str] = {}
    for p in dict.fromkeys(paths):
        stem = Path(plain_path(p)).stem
        ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
        base = re.sub(r"[^A-Z0-9]", "", ascii_stem.upper()) or "REEL"
        name, n = base[:length], 1
        while name in used:
            n += 1
            suffix = str(n)
            name = base[: length - len(suffix)] + suffix
        used.add(name)
        out[p] = name
    return out


def _edl_sources(timeline: otio.schema.Timeline) -> list[str]:
    return [c.media_reference.target_url for c in timeline.find_clips()
            if isinstance(c.media_reference, otio.schema.ExternalReference)]


def _name_for_edl(clip: otio.schema.Clip, reels: dict[str, str], media: dict[str, dict[str, str]]) -> None:
    """Reel, `FROM CLIP NAME` (the file name) and `FROM CLIP` (the path) of one event, each on
    one line; a path that had to change is recorded in `media` by reel, for the sidecar."""
    url = clip.media_reference.target_url
    reel = reels[url]
    clip.metadata.setdefault("cmx_3600", {})
    clip.metadata["cmx_3600"]["reel"] = reel
    written = low.edl_path(url)
    if written != url:
        clip.media_reference.target_url = written
        media[reel] = {"written": written, "path": url}
    clip.name = low.edl_text(Path(url).name)


def lower(timeline: otio.schema.Timeline, base_dir: Path | None = None, media_facts: low.MediaCache | None = None,
          source_timecode: str = "own") -> low.Lowered:
    """CMX 3600 EDL: one video track in the main EDL and the music (every audio track) in
    companion EDLs instead of the adapter dropping it; one valid unique reel per file, the file
    name as `FROM CLIP NAME` and its path as `FROM CLIP`; dissolves kept as EDL dissolves;
    markers as `LOC` comments on the clip under them (points, upper case); every name and path
    on one line (edl_text, edl_path), with the paths that changed in the sidecar."""
    out, rate, notes = low.start(timeline, base_dir)
    low.stack_markers(out)
    low.plain_paths(out)
    reels = reel_names(_edl_sources(out))
    media: dict[str, dict[str, str]] = {}
    for clip in out.find_clips():
        if isinstance(clip.media_reference, otio.schema.ExternalReference):
            _name_for_edl(clip, reels, media)
    low.clean_texts(out, notes, low.edl_text, f"replaced line breaks and control characters in {{n}} name(s) with "
                                      f"{low.EDL_REPLACEMENT!r} (an EDL is read line by line)")
    renamed = [f"{low.file_name(u)} -> {r}" for u, r in reels.items() if r != Path(u).stem[:8].upper()]
    if renamed:
        notes.append("reel names made valid and unique: " + ", ".join(renamed))
    if media:
        notes.append(f"{len(media)} path(s) written with {low.EDL_REPLACEMENT!r} for line breaks, control characters or "
                     f"backslashes an EDL line cannot hold ({', '.join(low.file_name(m['path']) for m in media.values())}); "
                     "the sidecar maps them back")
    videos = [t for t in out.video_tracks() if t.enabled]
    if len(videos) > 1:
        flat = otio.algorithms.flatten_stack(videos)
        notes.append(f"flattened {len(videos)} video tracks into one (an EDL has one)")
        videos = [flat]
    video = videos[0] if videos else otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    video = video.deepcopy() if video.parent() is not None else video
    low.transitions_need_clips(video, notes)
    events = sum(1 for c in video if isinstance(c, otio.schema.Clip))
    if events > 999:
        notes.append(f"{events} events: CMX 3600 numbers up to 999, later events get four digits")
    audio = [t.deepcopy() for t in out.audio_tracks() if t.enabled and len(t)]
    main = otio.schema.Timeline(name=out.name, global_start_time=out.global_start_time,
                                metadata=out.metadata)
    main.tracks.markers.extend(m.deepcopy() for m in out.tracks.markers)
    main.tracks.append(video)
    low.markers_onto_clips(main, video, notes, "EDL markers are LOC comments on events", keep_duration=False,
                       record_time=True)
    if any(m.name != m.name.upper() for c in video.find_clips() for m in c.markers):
        notes.append("marker text is written in upper case (cmx_3600 LOC style)")
    companions: dict[str, otio.schema.Timeline] = {}
    for i, track in enumerate(audio):
        key = "music" if i == 0 else f"audio{i + 1}"
        companions[key] = _audio_edl_timeline(out, track, key)
        notes.append(f"audio track {track.name!r} written as its own EDL ({key}); the main EDL is picture only")
    if source_timecode == "sequence":
        sources = {}
        other = _own_rates(video, reels, rate, media_facts or low.MediaCache(None), [])
        notes.append("source timecodes at the sequence rate, for single-rate EDL readers" + (
            f"; an editor that conforms by source timecode misplaces {len(other)} reel(s) at another rate "
            f"({', '.join(other)})" if other else ""))
    else:
        sources = _own_rates(video, reels, rate, media_facts or low.MediaCache(None), notes)
    extra: dict[str, object] = {"media": media} if media else {}
    if sources:
        extra["sources"] = sources
    return low.Lowered(main, notes, companions, sidecar=extra)


def _own_rates(video: otio.schema.Track, reels: dict[str, str], rate: Fraction, media: low.MediaCache,
               notes: list[str]) -> dict[str, dict[str, int]]:
    """Each reel's own frame rate where it differs from the sequence's (its source timecode is
    written at that rate), from the timeline's metadata or the caller's probe."""
    paths = {reel: url for url, reel in reels.items()}
    out: dict[str, dict[str, int]] = {}
    unknown: list[str] = []
    odd: list[str] = []
    for clip in video.find_clips():
        reel = (clip.metadata.get("cmx_3600") or {}).get("reel")
        if reel is None or reel in out or reel not in paths:
            continue
        ref = otio.schema.ExternalReference(target_url=paths[reel], metadata=clip.media_reference.metadata)
        own = low.own_rate(ref, media)
        if own is None:
            unknown.append(low.file_name(paths[reel]))
        elif own != rate and not low.timebase_rate(own):
            odd.append(f"{low.file_name(paths[reel])} ({low.fps_text(own)} fps)")
        elif own != rate:
            out[reel] = {"fps_num": own.numerator, "fps_den": own.denominator}
    if unknown:
        notes.append(f"own frame rate unknown for {', '.join(dict.fromkeys(unknown))}: source timecode at the "
                     "sequence rate")
    if odd:
        notes.append(f"SMPTE timecode has no rate for {', '.join(dict.fromkeys(odd))}: source timecode at the "
                     "sequence rate")
    if out:
        shown = ", ".join(f"{r} {low.fps_text(Fraction(v['fps_num'], v['fps_den']))}" for r, v in out.items())
        notes.append(f"source timecode at each file's own rate for {len(out)} reel(s) ({shown})")
    return out


def _audio_edl_timeline(source: otio.schema.Timeline, track: otio.schema.Track, key: str) -> otio.schema.Timeline:
    """A timeline the cmx_3600 writer accepts for an audio EDL: it writes the first track and
    insists on exactly one video track, so the audio track goes first and an empty video
    track second."""
    tl = otio.schema.Timeline(name=f"{source.name} ({key})", global_start_time=source.global_start_time)
    tl.tracks.append(track)
    tl.tracks.append(otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video))
    return tl


# ---------------------------------------------------------------- writing

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


def _adapter_text(tl: otio.schema.Timeline, rate: Fraction) -> str:
    """cmx_3600 text plus the FCM line it leaves out (it edits its input: give it a copy)."""
    text = _drop_repeated_locators(need_adapter("cmx_3600", Path("EDL")).write_to_string(tl.deepcopy(), rate=float(rate)))
    fcm = "FCM: DROP FRAME" if re.search(r"\d\d;\d\d", text) else "FCM: NON-DROP FRAME"
    lines = text.splitlines()
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    return "\n".join(lines[:at] + [fcm] + lines[at:]) + "\n"

_TC = r"\d\d:\d\d:\d\d[:;]\d\d"
#: an event line: number, reel, ... then source in, source out, record in, record out
_EVENT = re.compile(rf"^(?P<head>(?P<num>\d+)\s+(?P<reel>\S+)\s.*?)(?P<sin>{_TC})(?P<s1>\s+)(?P<sout>{_TC})"
                    rf"(?P<s2>\s+)(?P<rin>{_TC})(?P<rest>\s+{_TC}\s*)$")


def _ntsc(rate: Fraction) -> bool:
    return rate.denominator == 1001 and rate.numerator in (30000, 60000)


def timecode(frames: int, rate: Fraction) -> str:
    """A timecode at `rate`: drop frame for 29.97 and 59.94, as editors write them."""
    return otio.opentime.to_timecode(RT(float(frames), float(rate)), float(rate), _ntsc(rate))


def frames_of(tc: str, rate: Fraction) -> int:
    return int(round(otio.opentime.from_timecode(tc, float(rate)).value))


def _at_own_rate(frames: int, seq: Fraction, own: Fraction) -> int:
    """A sequence-rate source position as the source frame docs/frame-rule.md names."""
    return low.source_frame(Fraction(frames) / seq, own)


def own_rate_timecodes(text: str, seq: Fraction, rates: dict[str, dict[str, int]]) -> tuple[str, dict[str, list[str]]]:
    """The EDL with each listed reel's source in/out at its own rate, and what was replaced:
    'EVENT REEL IN OUT' as written -> [in, out] at the sequence rate, for our reader."""
    written: dict[str, list[str]] = {}

    def fix(m: re.Match) -> str:
        entry = rates.get(m.group("reel"))
        if entry is None:
            return m.group(0)
        own = Fraction(int(entry["fps_num"]), int(entry["fps_den"]))
        sin = timecode(_at_own_rate(frames_of(m.group("sin"), seq), seq, own), own)
        sout = timecode(_at_own_rate(frames_of(m.group("sout"), seq), seq, own), own)
        written[f"{m.group('num')} {m.group('reel')} {sin} {sout}"] = [m.group("sin"), m.group("sout")]
        return m.group("head") + sin + m.group("s1") + sout + m.group("s2") + m.group("rin") + m.group("rest")

    return "\n".join(_EVENT.sub(fix, line) for line in text.split("\n")), written


def export(timeline: otio.schema.Timeline, out: Path, ctx: ExportContext) -> Written:
    need_adapter("cmx_3600", out)
    if ctx.edl_source_timecode not in ("own", "sequence"):
        raise InterchangeError(f"EDL source timecode {ctx.edl_source_timecode!r}: choose own or sequence")
    lowered = lower(timeline, ctx.base_dir, ctx.media, ctx.edl_source_timecode)
    rate = low.video_rate(timeline)
    rates = dict(lowered.sidecar.get("sources") or {})
    main, replaced = own_rate_timecodes(_adapter_text(lowered.timeline, rate), rate, rates)
    files = {out: main}
    companions: dict[str, str] = {}
    for key, comp in lowered.companions.items():
        path = out.with_name(f"{out.stem}.{key}{out.suffix}")
        files[path] = _adapter_text(comp, rate)   # key: music, audio2, ... as FormatSpec.paths names them
        companions[key] = path.name
    extra = dict(lowered.sidecar)
    if replaced:
        extra["source_timecodes"] = replaced
    start = lowered.timeline.global_start_time
    extra["record_start"] = int(round(start.value_rescaled_to(float(rate)))) if start is not None else 0
    files[sidecar.path_for(out)] = sidecar.text(out, timeline, rate.numerator, rate.denominator,
                                                companions=companions, **extra)
    return Written(files, lowered.notes)



# ---------------------------------------------------------------- reading

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


def _restore_edl_paths(timeline: otio.schema.Timeline, media: dict) -> None:
    """Put back the paths an EDL line could not hold as they were (lowering.edl_path), by reel,
    where the event still names what we wrote: an editor's relink wins."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        entry = media.get((clip.metadata.get("cmx_3600") or {}).get("reel"))
        if entry and isinstance(ref, otio.schema.ExternalReference) and ref.target_url == entry.get("written"):
            ref.target_url = entry["path"]
            clip.name = Path(entry["path"]).name


def _sequence_rate_timecodes(text: str, seq: Fraction, side: sidecar.Sidecar | None) -> str:
    """Undo own_rate_timecodes for the reels the sidecar lists: the exact in/out we replaced
    where the event is as written, else the source frame converted back to the sequence rate
    (an editor changed it)."""
    rates = (side.sources if side else {}) or {}
    if not rates:
        return text
    written = dict(side.source_timecodes)

    def fix(m: re.Match) -> str:
        entry = rates.get(m.group("reel"))
        if entry is None:
            return m.group(0)
        key = f"{m.group('num')} {m.group('reel')} {m.group('sin')} {m.group('sout')}"
        if key in written:
            sin, sout = written[key]
        else:   # the record side rules the length, so rounding cannot make the two disagree
            own = Fraction(int(entry["fps_num"]), int(entry["fps_den"]))
            start = round(Fraction(frames_of(m.group("sin"), own)) / own * seq)
            length = frames_of(m.group("rest").strip(), seq) - frames_of(m.group("rin"), seq)
            sin, sout = timecode(start, seq), timecode(start + length, seq)
        return m.group("head") + sin + m.group("s1") + sout + m.group("s2") + m.group("rin") + m.group("rest")

    return "\n".join(_EVENT.sub(fix, line) for line in text.split("\n"))


def _first_record(text: str, seq: Fraction) -> int | None:
    for line in text.split("\n"):
        m = _EVENT.match(line)
        if m:
            return frames_of(m.group("rin"), seq)
    return None


def _lead_black(timeline: otio.schema.Timeline, text: str, seq: Fraction, start: int | None) -> None:
    """cmx_3600 starts the track at its first event: put back the black before it. The
    timeline starts at the sidecar's record start, else (no sidecar, or an editor's EDL saved
    over ours at another hour) at the hour the first event is in: editors start at 01:00:00:00."""
    first = _first_record(text, seq)
    if first is None:
        return
    per_hour = round(seq * 3600) if not _ntsc(seq) else frames_of("01:00:00;00", seq)
    hour = (first // per_hour) * per_hour
    begin = start if start is not None and start // per_hour == first // per_hour else hour
    r = float(seq)
    for track in timeline.tracks:
        if first > begin and len(track):
            track.insert(0, otio.schema.Gap(source_range=TR(RT(0, r), RT(float(first - begin), r))))


def _read_tracks(path: Path, seq: Fraction, side: sidecar.Sidecar | None) -> otio.schema.Timeline:
    r = float(seq)
    raw = path.read_text(encoding="utf-8")
    text = _incoming_sources(_ndf_locators(_sequence_rate_timecodes(raw, seq, side), r))
    timeline = need_adapter("cmx_3600", path, "read").read_from_string(text, rate=r)
    _lead_black(timeline, text, seq, side.record_start if side else None)
    for track in timeline.tracks:
        _centre_dissolves(track)
        low.markers_back_to_stack(timeline, track, record_time=True)
    return timeline


def read(path: Path, rate: float | None = None) -> otio.schema.Timeline:
    """An EDL (and, for the main one, its music EDLs) at `rate`, else the sidecar's rate."""
    side, own = sidecar.load(path, companion=True)
    if rate is None and side is not None:
        rate = float(Fraction(side.fps_num, side.fps_den))
    if rate is None:
        raise InterchangeError(f"cannot read {path}: an EDL does not say its frame rate and no "
                               f"{sidecar.path_for(path).name} sidecar was found; give it with --fps")
    seq = exact_rate(rate)
    timeline = _read_tracks(path, seq, side)
    if side is not None and own:   # the main EDL: its music EDL(s) join it
        for name in side.companions.values():
            companion = path.with_name(name)
            if companion.is_file():
                for track in _read_tracks(companion, seq, side).audio_tracks():
                    timeline.tracks.append(track.deepcopy())
    _restore_edl_paths(timeline, side.media if side else {})
    return timeline


FORMAT = FormatSpec(name="edl", suffix=".edl", adapter="cmx_3600",
                    for_="Avid, Resolve, any EDL reader (picture + music EDL)", sidecar=True, audio_companions=True,
                    export=export, read=read)
