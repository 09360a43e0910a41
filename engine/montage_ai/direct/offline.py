"""The offline Creative Director: a style preset, fitted to the song, with no network.

This is the default path and the fallback for every LLM director, so it must always work.
"""

from __future__ import annotations

from ..analysis.music import MusicAnalysis
from .plan import EditPlan
from .presets import load_style


def direct_offline(style: str, music: MusicAnalysis, target_duration_s: float | None) -> EditPlan:
    """The preset `style` with the target duration set and a rationale that names the song's shape."""
    plan = load_style(style)
    levels = ", ".join(f"{s.label} {s.start_s:.0f}-{s.end_s:.0f}s ({s.level})" for s in music.sections)
    rationale = [
        *plan.rationale,
        f"Song at {music.tempo_bpm:.1f} BPM with sections: {levels or 'one'}.",
    ]
    return plan.model_copy(update={"target_duration_s": target_duration_s, "rationale": rationale})
