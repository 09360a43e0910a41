"""Sidecars: `NAME.SUFFIX.json` beside an fcp7, fcpxml or edl export, holding what the format
cannot carry but a re-render needs (an EDL's rate, the render settings, the grade, the music's
fade-out, paths an EDL line could not hold, the media's own rates).

On reading, whatever the file itself says (an editor may have changed the sequence size) wins
over the sidecar: the sidecar only fills what the file lacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import opentimelineio as otio
from pydantic import BaseModel, ConfigDict

from montage_otio.errors import InterchangeError
from montage_otio.vocab import LOOK_EFFECT, META_KEY, plain_path

SUFFIX = ".json"
MAX_BYTES = 16 * 2**20


class Sidecar(BaseModel):
    """The sidecar document. Unknown keys are kept, so a newer writer's file still reads."""

    model_config = ConfigDict(extra="allow")

    what: str = ""
    fps_num: int
    fps_den: int = 1
    render: dict[str, Any] | None = None
    look: dict[str, Any] | None = None
    audio: list[dict[str, Any]] = []
    companions: dict[str, str] = {}
    media: dict[str, dict[str, str]] = {}
    sources: dict[str, dict[str, int]] = {}          # EDL: reel -> its own rate, where not the sequence's
    source_timecodes: dict[str, list[str]] = {}      # EDL: "EVENT REEL IN OUT" as written -> in, out at the sequence rate
    record_start: int | None = None                  # EDL: the sequence's first frame (black before event 1)


def path_for(out: Path) -> Path:
    return out.with_name(out.name + SUFFIX)


def render_meta(timeline: otio.schema.Timeline) -> dict:
    return dict((timeline.metadata.get(META_KEY) or {}).get("render") or {})


def set_render_meta(timeline: otio.schema.Timeline, **values: object) -> None:
    """Put what a file told us about the output format where the engine looks for it."""
    meta = dict(timeline.metadata.get(META_KEY) or {})
    render = dict(meta.get("render") or {})
    render.update({k: v for k, v in values.items() if v is not None})
    meta["render"] = render
    timeline.metadata[META_KEY] = meta


def look_meta(timeline: otio.schema.Timeline) -> dict | None:
    for track in timeline.video_tracks():
        for effect in track.effects:
            if effect.effect_name == LOOK_EFFECT:
                return dict(effect.metadata.get(META_KEY) or {})
    return None


def audio_meta(timeline: otio.schema.Timeline) -> list[dict]:
    """Our per-clip audio settings (the music's role and fade-out), by file name."""
    out = []
    for track in timeline.audio_tracks():
        for clip in track.find_clips():
            meta = clip.metadata.get(META_KEY) or {}
            if meta and isinstance(clip.media_reference, otio.schema.ExternalReference):
                out.append({"file": Path(plain_path(clip.media_reference.target_url)).name,
                            **{k: meta[k] for k in ("role", "fade_out_s") if k in meta}})
    return out


def text(out: Path, timeline: otio.schema.Timeline, rate_num: int, rate_den: int, **extra: Any) -> str:
    """The sidecar for `out`, from the original (unlowered) timeline."""
    doc = Sidecar(what=f"montage_ai sidecar for {out.name}: what the format cannot carry",
                  fps_num=rate_num, fps_den=rate_den, render=render_meta(timeline) or None,
                  look=look_meta(timeline), audio=audio_meta(timeline), **extra)
    return json.dumps(doc.model_dump(exclude_none=True), indent=2, ensure_ascii=False)


def load(path: Path, companion: bool = False) -> tuple[Sidecar | None, bool]:
    """(NAME.SUFFIX.json, True), or with `companion` for NAME.KEY.edl its main EDL's sidecar
    (NAME.edl.json, False), or (None, False)."""
    candidates = [(path_for(path), True)]
    parts = path.name.split(".")
    if companion and len(parts) >= 3:
        candidates.append((path.with_name(".".join(parts[:-2] + parts[-1:]) + SUFFIX), False))
    for c, own in candidates:
        if c.is_file():
            try:
                if c.stat().st_size > MAX_BYTES:
                    raise ValueError(f"larger than {MAX_BYTES // 2**20} MiB")
                data = json.loads(c.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return Sidecar.model_validate(data), own
            except (OSError, ValueError, RecursionError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise InterchangeError(f"cannot read {c}: {type(exc).__name__}: {first}") from exc
    return None, False


def apply(timeline: otio.schema.Timeline, sidecar: Sidecar | None) -> None:
    """Put back what the format could not carry; what the file itself says wins."""
    if sidecar is None:
        return
    if sidecar.render:
        set_render_meta(timeline, **{**sidecar.render, **render_meta(timeline)})
    videos = timeline.video_tracks()
    if sidecar.look and videos and look_meta(timeline) is None:
        videos[0].effects.append(otio.schema.Effect(name=LOOK_EFFECT, effect_name=LOOK_EFFECT,
                                                    metadata={META_KEY: sidecar.look}))
    by_file = {a["file"]: a for a in sidecar.audio if a.get("file")}
    for track in timeline.audio_tracks():
        for clip in track.find_clips():
            ref = clip.media_reference
            extra = by_file.get(Path(plain_path(ref.target_url)).name) \
                if isinstance(ref, otio.schema.ExternalReference) else None
            if extra:
                meta = dict(clip.metadata.get(META_KEY) or {})
                meta.update({k: v for k, v in extra.items() if k != "file" and k not in meta})
                clip.metadata[META_KEY] = meta
