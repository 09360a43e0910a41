"""Any OTIO timeline (ours, or edited in another editor) -> RenderSpec.

The renderer reads nothing else, so this is where an edited cut becomes frames: clips, gaps
and transitions on the video track(s) become pieces in record order, audio clips become spans
to mix. Media that moved is relinked by file name against search folders, and whatever cannot
be found is listed in one error.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from montage_otio.vocab import exact_rate, url_to_path  # the shared vocabulary, re-exported here
from pydantic import ValidationError

from ..direct.plan import Look
from ..errors import MontageError, plain_validation_message
from .model import LOOK_EFFECT, META_KEY, AudioSpan, Piece, RenderSettings, RenderSpec, SourceSpan

MAX_DURATION_S = 6 * 3600      # longer than any song or DJ set a montage is cut to
MAX_PIECES = 50_000            # each piece is one ffmpeg run
SEARCH_MAX_ENTRIES = 2_000_000  # --search walks at most this many folder entries
SEARCH_MAX_S = 120.0
_PSEUDO_FS = ("/proc", "/sys", "/dev", "/run")   # never media; /proc alone is endless





class Relinker:
    """Finds moved media by file name under search folders; remembers what it could not find."""

    def __init__(self, base_dir: Path | None, search_dirs: list[Path]):
        self.base_dir = base_dir
        self.search_dirs = search_dirs
        self.missing: list[str] = []
        self._index: dict[str, Path] | None = None

    def _by_name(self) -> dict[str, Path]:
        if self._index is None:
            self._index = {}
            budget = _WalkBudget()
            for d in self.search_dirs:
                for p in _walk_files(Path(d), budget):
                    self._index.setdefault(p.name, p)
        return self._index

    def resolve(self, ref: otio.core.MediaReference, clip_name: str) -> Path | None:
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            self.missing.append(f"{clip_name}: no media reference")
            return None
        path = url_to_path(ref.target_url, self.base_dir)
        if path.is_file():
            return path.resolve()
        found = self._by_name().get(path.name) if self.search_dirs else None
        if found is None or not found.is_file():
            self.missing.append(str(path))
            return None
        return found.resolve()


class _WalkBudget:
    """How much of the disk one --search may walk: a bound on entries and on time."""

    def __init__(self) -> None:
        self.entries = 0
        self.deadline = time.monotonic() + SEARCH_MAX_S

    def spend(self, root: Path) -> None:
        self.entries += 1
        if self.entries > SEARCH_MAX_ENTRIES or (self.entries % 4096 == 0 and time.monotonic() > self.deadline):
            raise MontageError(f"--search {root}: gave up after {self.entries:,} entries; point --search at "
                               "the folder that holds the media")


def _walk_files(root: Path, budget: _WalkBudget):
    """Names under `root` (not following links), skipping /proc, /sys, /dev, /run and folders
    that cannot be read. Nothing is stat'ed here: only the names asked for are checked."""
    if not root.is_dir():
        raise MontageError(f"--search {root}: folder not found")
    if str(root.resolve()) in _PSEUDO_FS:
        return
    for folder, dirs, files in os.walk(root, onerror=lambda _e: None, followlinks=False):
        dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in _PSEUDO_FS)
        for name in sorted(files):
            budget.spend(root)
            yield Path(folder, name)


def exact_time(t: otio.opentime.RationalTime) -> Fraction:
    """An OTIO time as exact seconds: its value over its rate's exact fraction (OTIO stores
    29.97 as a float), so in-points keep their frame and the frame rule sees no rounding."""
    return Fraction(t.value) / exact_rate(t.rate)


def _media_offset(clip: otio.schema.Clip) -> Fraction:
    """Editors may start media at a timecode (01:00:00:00): source times are relative to it."""
    ref = clip.media_reference
    avail = getattr(ref, "available_range", None)
    return exact_time(avail.start_time) if avail is not None else Fraction(0)


def _source_start(clip: otio.schema.Clip) -> Fraction:
    """The clip's in-point as a media time, never before the media's first frame."""
    return max(Fraction(0), exact_time(clip.trimmed_range().start_time) - _media_offset(clip))


def _video_track(timeline: otio.schema.Timeline, label: str) -> otio.schema.Track:
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    if not tracks:
        raise MontageError(f"{label} has no video track")
    if len(tracks) == 1:
        return tracks[0]
    return otio.algorithms.flatten_stack(tracks)


def _settings(timeline: otio.schema.Timeline, track: otio.schema.Track,
              overrides: dict[str, object], label: str) -> RenderSettings:
    meta = dict(timeline.metadata.get(META_KEY, {}).get("render", {}) or {})
    if "fps_num" not in meta:
        rate = next((c.trimmed_range().duration.rate for c in track.find_clips()), 30.0)
        fps = exact_rate(rate)
        meta.update(fps_num=fps.numerator, fps_den=fps.denominator)
    meta.setdefault("width", 1920)
    meta.setdefault("height", 1080)
    meta.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RenderSettings(**meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "render settings"
        raise MontageError(f"{label}: render setting {field} = {err.get('input')!r} "
                           f"is not usable ({plain_validation_message(err)})") from None


def _look(track: otio.schema.Track) -> Look | None:
    for effect in track.effects:
        if effect.effect_name == LOOK_EFFECT:
            return Look(**effect.metadata.get(META_KEY, {}))
    return None


def _frames(t: otio.opentime.RationalTime, fps: Fraction) -> int:
    return round(t.to_seconds() * fps)


def _pieces(track: otio.schema.Track, fps: Fraction, relink: Relinker) -> list[Piece]:
    pieces: list[Piece] = []
    children = list(track)
    for i, item in enumerate(children):
        rng = track.range_of_child_at_index(i)
        start, dur = _frames(rng.start_time, fps), _frames(rng.duration, fps)
        if isinstance(item, otio.schema.Transition):
            prev, nxt = children[i - 1] if i else None, children[i + 1] if i + 1 < len(children) else None
            if not isinstance(prev, otio.schema.Clip) or not isinstance(nxt, otio.schema.Clip):
                continue
            pa, pb = relink.resolve(prev.media_reference, prev.name), relink.resolve(nxt.media_reference, nxt.name)
            cut = _frames(track.range_of_child_at_index(i + 1).start_time, fps)
            before, after = _frames(item.in_offset, fps), _frames(item.out_offset, fps)
            if pa and pb and before + after > 0:
                prev_end = _source_start(prev) + exact_time(prev.trimmed_range().duration)
                pieces.append(Piece(
                    kind="dissolve", record_start_frame=cut - before, frames=before + after,
                    a=SourceSpan(path=pa, start=max(Fraction(0), prev_end - before / fps)),
                    b=SourceSpan(path=pb, start=max(Fraction(0), _source_start(nxt) - before / fps)),
                ))
            continue
        if dur <= 0:
            continue
        if isinstance(item, otio.schema.Clip) and item.enabled:
            path = relink.resolve(item.media_reference, item.name)
            if path is not None:
                pieces.append(Piece(kind="clip", record_start_frame=start, frames=dur,
                                    a=SourceSpan(path=path, start=_source_start(item))))
                continue
        pieces.append(Piece(kind="black", record_start_frame=start, frames=dur))
    return _trim_under_dissolves(pieces, fps)


def _trim_under_dissolves(pieces: list[Piece], fps: Fraction) -> list[Piece]:
    """Clips keep their full record range in OTIO; a dissolve covers the frames around the cut,
    so shorten the neighbours where it lies on them and keep the record order."""
    dissolves = [p for p in pieces if p.kind == "dissolve"]
    out: list[Piece] = []
    for p in pieces:
        if p.kind == "dissolve":
            out.append(p)
            continue
        start, end = p.record_start_frame, p.record_start_frame + p.frames
        for d in dissolves:
            d_start, d_end = d.record_start_frame, d.record_start_frame + d.frames
            if d_start <= start < d_end:
                start = d_end
            if d_start < end <= d_end:
                end = d_start
        if end > start:
            shift_s = (start - p.record_start_frame) / fps
            a = p.a.model_copy(update={"start": p.a.start + shift_s}) if p.a else None
            out.append(p.model_copy(update={"record_start_frame": start, "frames": end - start, "a": a}))
    out.sort(key=lambda p: p.record_start_frame)
    return out


def _audio(timeline: otio.schema.Timeline, relink: Relinker) -> list[AudioSpan]:
    spans: list[AudioSpan] = []
    for track in timeline.audio_tracks():
        if not track.enabled:
            continue
        for i, item in enumerate(track):
            if not isinstance(item, otio.schema.Clip) or not item.enabled:
                continue
            path = relink.resolve(item.media_reference, item.name)
            if path is None:
                continue
            rng = track.range_of_child_at_index(i)
            fade = float(item.metadata.get(META_KEY, {}).get("fade_out_s", 0.0))
            if exact_time(rng.duration) <= 0:
                continue
            spans.append(AudioSpan(path=path, record_start=max(Fraction(0), exact_time(rng.start_time)),
                                   source_start=_source_start(item),
                                   duration=exact_time(rng.duration), fade_out_s=max(0.0, fade)))
    return spans


def _check_length(timeline: otio.schema.Timeline, label: str) -> None:
    """Refuse absurd lengths before building anything (a damaged or hostile file)."""
    try:
        seconds = timeline.duration().to_seconds()
    except (ValueError, ArithmeticError) as exc:
        raise MontageError(f"{label}: its length cannot be computed ({exc})") from None
    if not seconds <= MAX_DURATION_S:   # also catches NaN
        raise MontageError(f"{label} is {seconds / 3600:,.1f} hours long; montage-ai renders "
                           f"at most {MAX_DURATION_S // 3600} hours")


def read_timeline(
    timeline: otio.schema.Timeline,
    base_dir: Path | None = None,
    search_dirs: list[Path] | None = None,
    overrides: dict[str, object] | None = None,
    source: Path | None = None,
) -> RenderSpec:
    """Turn `timeline` into a RenderSpec; raise MontageError listing media that cannot be found.
    `source` is the file the timeline came from, named in error messages."""
    label = str(source) if source is not None else f"timeline {timeline.name!r}"
    track = _video_track(timeline, label)
    settings = _settings(timeline, track, overrides or {}, label)
    _check_length(timeline, label)
    relink = Relinker(base_dir, list(search_dirs or []))
    pieces = _pieces(track, settings.fps, relink)
    audio = _audio(timeline, relink)
    if relink.missing:
        listed = "; ".join(dict.fromkeys(relink.missing))
        raise MontageError(f"media not found (use --search DIR to relink by file name): {listed}")
    video_end = max((p.record_start_frame + p.frames for p in pieces), default=0)
    total = max(video_end, _frames(timeline.duration(), settings.fps))
    if video_end < total:  # the sequence runs as long as its longest track; picture goes black
        pieces.append(Piece(kind="black", record_start_frame=video_end, frames=total - video_end))
    if total <= 0 or video_end <= 0:
        raise MontageError(f"{label} has no picture to render")
    if len(pieces) > MAX_PIECES:
        raise MontageError(f"{label} has {len(pieces):,} pieces; montage-ai renders at most "
                           f"{MAX_PIECES:,}")
    return RenderSpec(settings=settings, total_frames=total, pieces=pieces, audio=audio, look=_look(track))
