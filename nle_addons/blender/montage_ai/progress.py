"""What the engine says while it runs, turned into one number and a few lines for the panel.

Pure Python (no bpy), so it is unit-tested without Blender. The engine speaks two dialects:
`run --json` prints one JSON object per line on stdout ({"event": "stage_start" | "progress" |
"stage_end" | "warning" | "done" | "error", "stage", "done", "total", "message", "t"}); an
engine without `--json` draws tqdm bars on stderr and prints a text summary on stdout. Both feed
the same tracker, so the panel looks the same either way.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Rough share of a run's wall time per stage (measured on synthetic and real media): the bar
# should move evenly, not jump from 5% to 95% when the render starts.
STAGE_WEIGHTS: dict[str, float] = {
    "probe": 2, "music": 14, "clips": 30, "direct": 4, "cut": 1, "timeline": 1, "render": 44, "report": 3,
    "export": 4,
}
STAGE_ORDER = list(STAGE_WEIGHTS)
_DEFAULT_WEIGHT = 4.0

# tqdm bar descriptions the engine uses -> (stage, share of that stage the bar covers)
_BAR_STAGE: dict[str, tuple[str, float, float]] = {
    "analyse clips": ("clips", 0.0, 1.0),
    "render pieces": ("render", 0.0, 0.6),
    "encode": ("render", 0.6, 1.0),
}
_TQDM = re.compile(r"^\s*(?P<desc>[^:|]+?):\s+(?P<pct>\d+)%\|.*?\|\s*(?P<n>\d+)/(?P<total>\d+)")


def _stage_base(name: str | None) -> str:
    """'render v2' (a variant) counts as 'render'."""
    return (name or "").split(" ")[0]


@dataclass
class ProgressTracker:
    """Accumulates engine output into `fraction` (0..1, never going back), the current stage,
    the last messages, the final summary and the error, whichever dialect the engine speaks."""

    max_messages: int = 200
    fraction: float = 0.0
    stage: str = ""
    finished_stages: list[str] = field(default_factory=list)
    messages: deque[str] = field(default_factory=deque)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    done: bool = False
    json_seen: bool = False
    _stage_fraction: float = 0.0

    # --- input -------------------------------------------------------------------------------

    def feed_stdout(self, line: str) -> None:
        """One stdout line: a JSON event, or a line of the text summary."""
        line = line.strip()
        if not line:
            return
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and "event" in event:
                self.json_seen = True
                self.feed_event(event)
                return
        self._note(line)

    def feed_stderr(self, line: str) -> None:
        """One stderr line (tqdm redraws arrive as separate lines): a bar, an error or a note."""
        text = line.strip()
        if not text:
            return
        bar = _TQDM.match(text)
        if bar:
            self._bar(bar.group("desc").strip(), int(bar.group("n")), int(bar.group("total")))
            return
        if text.startswith("montage-ai: error:"):
            self.error = text[len("montage-ai: error:"):].strip()
        self._note(text)

    def feed_event(self, event: dict[str, Any]) -> None:
        """One `--json` event."""
        kind = event.get("event")
        stage = event.get("stage") or ""
        message = event.get("message")
        if kind == "stage_start":
            self._enter(stage)
            self._note(f"{stage}…")
        elif kind == "progress":
            if stage and _stage_base(stage) != _stage_base(self.stage):
                self._enter(stage)
            total, done = event.get("total"), event.get("done")
            if total:
                self._set_stage_fraction(float(done or 0) / float(total))
        elif kind == "stage_end":
            self._finish(stage or self.stage)
            secs = event.get("seconds")
            if secs is not None:
                self._note(f"{stage} done in {float(secs):.1f} s")
        elif kind == "warning":
            self._note(f"warning: {message}")
        elif kind == "error":
            self.error = str(message or "the engine failed")
            self._note(f"error: {self.error}")
        elif kind == "done":
            self.done = True
            self.summary = dict(event.get("summary") or {})
            self.fraction = 1.0
            if message:
                self._note(str(message))
            if self.summary.get("video"):
                self._note(f"montage: {self.summary['video']}")

    def complete(self) -> None:
        """The process exited successfully: whatever the stages said, it is at 100%."""
        self.done = True
        self.fraction = 1.0

    # --- output ------------------------------------------------------------------------------

    @property
    def percent(self) -> int:
        return int(self.fraction * 100 + 1e-9)

    def last_messages(self, n: int = 5) -> list[str]:
        return list(self.messages)[-n:]

    # --- internals ---------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.messages.append(text)
        while len(self.messages) > self.max_messages:
            self.messages.popleft()

    def _enter(self, stage: str) -> None:
        base = _stage_base(stage)
        if _stage_base(self.stage) == base:
            return
        if self.stage and self.stage not in self.finished_stages:
            self.finished_stages.append(_stage_base(self.stage))
        # A stage later in the usual order implies the earlier ones are over (text dialect).
        if base in STAGE_ORDER:
            for earlier in STAGE_ORDER[: STAGE_ORDER.index(base)]:
                if earlier not in self.finished_stages and earlier not in ("report", "export"):
                    self.finished_stages.append(earlier)
        self.stage = base
        self._stage_fraction = 0.0
        self._update()

    def _finish(self, stage: str) -> None:
        base = _stage_base(stage)
        if base not in self.finished_stages:
            self.finished_stages.append(base)
        if _stage_base(self.stage) == base:
            self._stage_fraction = 0.0
            self.stage = ""
        self._update()

    def _set_stage_fraction(self, f: float) -> None:
        self._stage_fraction = max(0.0, min(1.0, f))
        self._update()

    def _bar(self, desc: str, n: int, total: int) -> None:
        stage, lo, hi = _BAR_STAGE.get(desc, (self.stage or desc, 0.0, 1.0))
        self._enter(stage)
        if total > 0:
            self._set_stage_fraction(lo + (hi - lo) * n / total)

    def _update(self) -> None:
        total = sum(STAGE_WEIGHTS.values())
        got = sum(STAGE_WEIGHTS.get(s, _DEFAULT_WEIGHT) for s in set(self.finished_stages))
        if self.stage and self.stage not in self.finished_stages:
            got += STAGE_WEIGHTS.get(self.stage, _DEFAULT_WEIGHT) * self._stage_fraction
        # Never reach 100% before the process says it is done; never go back.
        self.fraction = max(self.fraction, min(0.99, got / total))
