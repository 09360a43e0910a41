"""What an LLM director must reply, and how a reply becomes a validated EditPlan.

The LLM returns a *partial* plan on top of a named preset. Parsing is forgiving about form
(code fences, prose around the JSON, 2.0 beats) and strict about content: every value is
bounded by the EditPlan model, target durations must fit the music, section names must exist,
and shot IDs must be ones we sent. Any failure comes back as a list of plain-language errors
that can be quoted in one repair request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .plan import BeatRange, EditPlan, Look, Pacing, ShotWeights, TransitionStyle
from .presets import available_styles, load_style


class _Partial(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PacingPatch(_Partial):
    low: BeatRange | None = None
    mid: BeatRange | None = None
    high: BeatRange | None = None


class Decision(_Partial):
    decision: str = Field(max_length=300)
    reason: str = Field(max_length=500)


class DirectorReply(_Partial):
    """One plan as the LLM writes it: a preset plus the changes the brief calls for."""

    style: str = Field(description="base preset name")
    pacing: PacingPatch | None = Field(None, description="cut length in beats per energy level")
    section_pacing: dict[str, BeatRange] | None = Field(None, description="cut length by section label")
    cut_on: str | None = Field(None, description="beat or downbeat")
    energy_match: float | None = Field(None, ge=0.0, le=1.0)
    weights: ShotWeights | None = None
    transitions: TransitionStyle | None = None
    look: Look | None = None
    target_duration_s: float | None = Field(None, gt=0)
    favor_shots: list[str] = Field(default_factory=list, max_length=200)
    avoid_shots: list[str] = Field(default_factory=list, max_length=200)
    rationale: list[Decision] = Field(default_factory=list, max_length=20)


class VariantsReply(_Partial):
    variants: list[DirectorReply] = Field(min_length=1, max_length=5)


class PlanContext(BaseModel):
    """Facts a reply is checked against."""

    music_duration_s: float
    section_labels: list[str]
    shot_ids: set[str]


def reply_json_schema(variants: int = 1) -> dict[str, Any]:
    return (VariantsReply if variants > 1 else DirectorReply).model_json_schema()


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The JSON value in an LLM reply: fenced or bare, with any prose around it ignored."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        cand = cand.strip()
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            start = min((i for i in (cand.find("{"), cand.find("[")) if i >= 0), default=-1)
            if start >= 0:
                try:
                    return json.JSONDecoder().raw_decode(cand[start:])[0]
                except json.JSONDecodeError:
                    continue
    raise ValueError("the reply contains no parseable JSON object")


def _snap_beats(value: Any) -> Any:
    """Cut lengths are whole beats: 2.0 -> 2, 2.6 -> 3 (snapped to the grid, not rejected)."""
    if isinstance(value, dict):
        return {k: (round(v) if k in ("min_beats", "max_beats") and isinstance(v, (int, float)) and not isinstance(v, bool)
                    else _snap_beats(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_snap_beats(v) for v in value]
    return value


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()]


def to_plan(reply: DirectorReply, ctx: PlanContext, director: str) -> tuple[EditPlan | None, list[str]]:
    """Apply a reply to its preset; return the plan or the reasons it was rejected."""
    errors: list[str] = []
    if reply.style not in available_styles():
        return None, [f"style: {reply.style!r} is not one of {', '.join(available_styles())}"]
    base = load_style(reply.style)
    unknown = sorted(set(reply.favor_shots + reply.avoid_shots) - ctx.shot_ids)
    if unknown:
        errors.append(f"favor_shots/avoid_shots: unknown shot IDs {', '.join(unknown[:10])}; use only the IDs given")
    if reply.target_duration_s is not None and reply.target_duration_s > ctx.music_duration_s:
        errors.append(f"target_duration_s: {reply.target_duration_s} is longer than the music ({ctx.music_duration_s:.1f} s)")
    if reply.target_duration_s is not None and reply.target_duration_s < 2.0:
        errors.append("target_duration_s: must be at least 2 s")
    for label in reply.section_pacing or {}:
        if label not in ctx.section_labels:
            errors.append(f"section_pacing: no section is labelled {label!r} (labels: {', '.join(sorted(set(ctx.section_labels)))})")
    if reply.cut_on not in (None, "beat", "downbeat"):
        errors.append(f"cut_on: must be 'beat' or 'downbeat', not {reply.cut_on!r}")
    if errors:
        return None, errors
    update: dict[str, Any] = {"director": director}
    if reply.pacing is not None:
        update["pacing"] = Pacing(**{**base.pacing.model_dump(), **reply.pacing.model_dump(exclude_none=True)})
    for name in ("section_pacing", "cut_on", "energy_match", "weights", "transitions", "look", "target_duration_s"):
        value = getattr(reply, name)
        if value is not None:
            update[name] = value
    update["favor_shots"], update["avoid_shots"] = reply.favor_shots, reply.avoid_shots
    update["rationale"] = [f"{d.decision}: {d.reason}" for d in reply.rationale] or base.rationale
    try:
        return EditPlan.model_validate({**base.model_dump(), **{k: (v.model_dump() if isinstance(v, BaseModel) else v)
                                                                for k, v in update.items()}}), []
    except ValidationError as exc:
        return None, _errors(exc)


def parse_reply(text: str, ctx: PlanContext, director: str, variants: int = 1) -> tuple[list[EditPlan], list[str]]:
    """Text -> validated plans, or ([], errors) naming every problem found."""
    try:
        data = _snap_beats(extract_json(text))
    except ValueError as exc:
        return [], [str(exc)]
    if variants > 1 and isinstance(data, dict) and "variants" not in data:
        data = {"variants": [data]}
    if variants == 1 and isinstance(data, dict) and "variants" in data and data["variants"]:
        data = data["variants"][0]
    try:
        replies = VariantsReply.model_validate(data).variants if variants > 1 else [DirectorReply.model_validate(data)]
    except ValidationError as exc:
        return [], _errors(exc)
    plans, errors = [], []
    for i, r in enumerate(replies):
        plan, errs = to_plan(r, ctx, director)
        prefix = f"variants.{i}." if variants > 1 else ""
        errors += [prefix + e for e in errs]
        if plan is not None:
            plans.append(plan)
    return (plans, []) if not errors else ([], errors)
