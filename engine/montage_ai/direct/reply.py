"""What an LLM director must reply, and how a reply becomes a validated EditPlan.

The LLM returns a *partial* plan on top of a named preset. Parsing is forgiving about form
(code fences, prose around the JSON, 2.0 beats) and strict about content: every value is
bounded by the EditPlan model, target durations must fit the music, section names must exist,
and shot IDs must be ones we sent. Any failure comes back as a list of plain-language errors
that can be quoted in one repair request.

A reply is hostile input: its size and nesting are checked before any parser sees it
(`unusable_reason`; such a reply is not worth a repair request), numbers JSON does not allow
(NaN, Infinity, 1e400) are errors rather than floats, and every value quoted back in an
error message is cut short.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import bounded
from .plan import BeatRange, EditPlan, Look, Pacing, ShotWeights, TransitionStyle
from .presets import available_styles, load_style

MAX_REPLY_CHARS = 200_000    # five variants with every field filled stay under 100 KB
MAX_REPLY_DEPTH = 16         # a reply nests about 5 levels (variants, plan, pacing, range, value)
REPAIR_EXCERPT_CHARS = 1500  # how much of a rejected reply a repair request quotes back
MAX_JSON_STARTS = 20         # "{" positions tried when prose surrounds the JSON

ShotId = Annotated[str, Field(max_length=32)]
Label = Annotated[str, Field(max_length=64)]


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

    style: str = Field(max_length=40, description="base preset name")
    pacing: PacingPatch | None = Field(None, description="cut length in beats per energy level")
    section_pacing: dict[Label, BeatRange] | None = Field(None, max_length=50, description="cut length by section label")
    cut_on: str | None = Field(None, max_length=20, description="beat or downbeat")
    energy_match: float | None = Field(None, ge=0.0, le=1.0)
    weights: ShotWeights | None = None
    transitions: TransitionStyle | None = None
    look: Look | None = None
    target_duration_s: float | None = Field(None, gt=0)
    favor_shots: list[ShotId] = Field(default_factory=list, max_length=200)
    avoid_shots: list[ShotId] = Field(default_factory=list, max_length=200)
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


def unusable_reason(text: str) -> str | None:
    """Why a reply cannot be read at all (too long, nested too deep), or None. Such a reply
    is not a plan gone wrong but garbage: it is neither parsed nor quoted in a repair."""
    try:
        bounded.check_json_text(text, what="the reply", max_chars=MAX_REPLY_CHARS, max_depth=MAX_REPLY_DEPTH)
    except bounded.BoundsError as exc:
        return str(exc)
    return None


def excerpt(text: str, limit: int = REPAIR_EXCERPT_CHARS) -> str:
    """At most `limit` characters of a reply, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit:,} more characters cut]"


def _json_span(text: str) -> str | None:
    """The first complete JSON object in `text`, found by a lenient parse (only to learn where
    it ends; `bounded.loads` then reads it strictly)."""
    decoder = json.JSONDecoder()
    starts = (i for i, ch in enumerate(text) if ch == "{")
    for _, start in zip(range(MAX_JSON_STARTS), starts):
        try:
            _, end = decoder.raw_decode(text, start)
        except ValueError:          # not JSON there, or an integer too long to convert
            continue
        return text[start:end]
    return None


def extract_json(text: str) -> Any:
    """The JSON object in an LLM reply: fenced or bare, with any prose around it ignored.
    Raises ValueError (a BoundsError when the reply is too large, too deep, or holds a number
    JSON does not allow)."""
    reason = unusable_reason(text)
    if reason:
        raise bounded.BoundsError(reason)
    candidates = [m.group(1) for m in _FENCE.finditer(text)][:5] + [text]
    for cand in candidates:
        span = _json_span(cand)
        if span is not None:
            return bounded.loads(span, what="the reply", max_chars=MAX_REPLY_CHARS, max_depth=MAX_REPLY_DEPTH)
    raise ValueError("the reply contains no parseable JSON object")


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut: a reply's values are quoted in errors that go back to the LLM."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snap_beats(value: Any) -> Any:
    """Cut lengths are whole beats: 2.0 -> 2, 2.6 -> 3 (snapped to the grid, not rejected)."""
    if isinstance(value, dict):
        return {k: (round(v) if k in ("min_beats", "max_beats") and isinstance(v, (int, float)) and not isinstance(v, bool)
                    else _snap_beats(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_snap_beats(v) for v in value]
    return value


def _errors(exc: ValidationError) -> list[str]:
    """pydantic's errors as 'field.path: message' (a key the LLM made up is cut short)."""
    def part(p: Any) -> str:
        text = str(p)
        return text if len(text) <= 40 else text[:39] + "…"
    return [f"{'.'.join(part(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()]


def to_plan(reply: DirectorReply, ctx: PlanContext, director: str) -> tuple[EditPlan | None, list[str]]:
    """Apply a reply to its preset; return the plan or the reasons it was rejected."""
    errors: list[str] = []
    if reply.style not in available_styles():
        return None, [f"style: {_short(reply.style)} is not one of {', '.join(available_styles())}"]
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
            errors.append(f"section_pacing: no section is labelled {_short(label)} "
                          f"(labels: {', '.join(sorted(set(ctx.section_labels)))})")
    if reply.cut_on not in (None, "beat", "downbeat"):
        errors.append(f"cut_on: must be 'beat' or 'downbeat', not {_short(reply.cut_on)}")
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


def _select(data: Any, variants: int) -> tuple[Any, list[str]]:
    """Accept one plan where variants were asked for, and the first variant where one plan was."""
    if not isinstance(data, dict):
        return data, []
    if variants > 1:
        return (data if "variants" in data else {"variants": [data]}), []
    if "variants" not in data:
        return data, []
    inner = data["variants"]
    if isinstance(inner, list) and inner:
        return inner[0], []
    return None, [f"variants: expected a non-empty list of plan objects, not {_short(inner)}"]


def parse_reply(text: str, ctx: PlanContext, director: str, variants: int = 1) -> tuple[list[EditPlan], list[str]]:
    """Text -> validated plans, or ([], errors) naming every problem found. Never raises."""
    try:
        data = _snap_beats(extract_json(text))
    except ValueError as exc:
        return [], [str(exc)]
    data, errors = _select(data, variants)
    if errors:
        return [], errors
    try:
        replies = VariantsReply.model_validate(data).variants if variants > 1 else [DirectorReply.model_validate(data)]
    except ValidationError as exc:
        return [], _errors(exc)
    plans = []
    for i, r in enumerate(replies):
        plan, errs = to_plan(r, ctx, director)
        prefix = f"variants.{i}." if variants > 1 else ""
        errors += [prefix + e for e in errs]
        if plan is not None:
            plans.append(plan)
    return (plans, []) if not errors else ([], errors)
