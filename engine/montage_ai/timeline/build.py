"""Segments -> OpenTimelineIO Timeline: the one contract between planning and rendering.

Everything the renderer needs is in the timeline: clips with absolute source paths and
whole-frame ranges at the output rate, the music clip with its offset into the song, dissolves
as OTIO Transitions, the grade as an Effect on the video track, and the output size and rate in
`metadata["montage_ai"]["render"]`. Markers sit on the stack (`timeline.tracks.markers`),
because a Timeline has no markers of its own and OTIO drops them silently.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import opentimelineio as otio

from .. import __version__
from ..analysis.music import MusicAnalysis
from ..direct.plan import EditPlan
from ..media.probe import MediaInfo
from ..plan.cutter import CutList
from .model import LOOK_EFFECT, META_KEY, RenderSettings

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def _frames(n: int, rate: float) -> otio.opentime.RationalTime:
    return RT(float(n), rate)


def _reference(media: MediaInfo, rate: float) -> otio.schema.ExternalReference:
    """The file, its length at the timeline rate, and its own frame rate (what exports write as
    the file's rate and source timecode base, without probing the file again)."""
    ref = otio.schema.ExternalReference(
        target_url=str(media.path),
        available_range=TR(_frames(0, rate), _frames(int(media.duration_s * rate), rate)),
    )
    if media.has_video and media.fps_num:
        ref.metadata[META_KEY] = {"fps_num": media.fps_num, "fps_den": media.fps_den}
    return ref


def _markers(music: MusicAnalysis, total_frames: int, fps: Fraction) -> list[otio.schema.Marker]:
    rate = float(fps)
    out: list[otio.schema.Marker] = []
    downbeats = {round(t * fps) for t in music.downbeat_times_s}
    for t in music.beat_times_s:
        f = round(t * fps)
        if 0 <= f < total_frames:
            kind = "downbeat" if f in downbeats else "beat"
            out.append(otio.schema.Marker(
                name=kind, marked_range=TR(_frames(f, rate), _frames(0, rate)),
                color=otio.schema.MarkerColor.RED if kind == "downbeat" else otio.schema.MarkerColor.GREEN,
                comment=kind, metadata={META_KEY: {"kind": kind, "time_s": round(t, 4)}},
            ))
    for s in music.sections:
        start, end = round(s.start_s * fps), min(round(s.end_s * fps), total_frames)
        if start < total_frames:
            out.append(otio.schema.Marker(
                name=f"section: {s.label}", marked_range=TR(_frames(start, rate), _frames(end - start, rate)),
                color=otio.schema.MarkerColor.PURPLE, comment=f"{s.label} ({s.level} energy)",
                metadata={META_KEY: {"kind": "section", "label": s.label, "level": s.level, "energy": s.energy}},
            ))
    return out


def build_timeline(
    name: str,
    cuts: CutList,
    media: dict[str, MediaInfo],
    music: MusicAnalysis,
    music_media: MediaInfo,
    plan: EditPlan,
    render: RenderSettings,
    extra_metadata: dict[str, Any] | None = None,
) -> otio.schema.Timeline:
    """The montage as an OTIO Timeline at the output frame rate. `media` maps source path -> info."""
    fps = Fraction(cuts.fps_num, cuts.fps_den)
    rate = float(fps)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for seg in cuts.segments:
        if seg.transition_in_frames:
            half = seg.transition_in_frames // 2
            video.append(otio.schema.Transition(
                name=f"dissolve {seg.index}", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=_frames(half, rate), out_offset=_frames(seg.transition_in_frames - half, rate),
            ))
        info = media[str(seg.source)]
        video.append(otio.schema.Clip(
            name=f"{seg.index:03d} {seg.shot_id} {info.path.name}",
            media_reference=_reference(info, rate),
            source_range=TR(_frames(seg.source_in_frame, rate), _frames(seg.duration_frames, rate)),
            metadata={META_KEY: seg.model_dump(mode="json", exclude={"source"})},
        ))
    if not plan.look.is_neutral():
        video.effects.append(otio.schema.Effect(
            name=LOOK_EFFECT, effect_name=LOOK_EFFECT, metadata={META_KEY: plan.look.model_dump()}))

    audio = otio.schema.Track(name="A1 music", kind=otio.schema.TrackKind.Audio)
    music_in = round(music.start_offset_s * fps)
    audio.append(otio.schema.Clip(
        name=f"music {music_media.path.name}",
        media_reference=_reference(music_media, rate),
        source_range=TR(_frames(music_in, rate), _frames(cuts.total_frames, rate)),
        metadata={META_KEY: {"role": "music", "fade_out_s": plan.music_fade_out_s}},
    ))

    timeline = otio.schema.Timeline(name=name, global_start_time=_frames(0, rate))
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    timeline.tracks.markers.extend(_markers(music, cuts.total_frames, fps))
    timeline.metadata[META_KEY] = {
        "version": __version__,
        "render": render.model_dump(mode="json"),
        "style": plan.style,
        "director": plan.director,
        "tempo_bpm": round(music.tempo_bpm, 3),
        "rationale": plan.rationale,
        **(extra_metadata or {}),
    }
    return timeline
