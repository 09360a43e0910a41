"""Progress and events: one object the pipeline reports through, three ways to show it.

- "bars" (default): tqdm bars on stderr, as before; stdout stays free for the summary.
- "quiet": nothing at all (scripts); the caller prints the final summary itself.
- "json": one JSON object per line on stdout for other programs (the Blender add-on):
  {"event": "stage_start"|"progress"|"stage_end"|"warning"|"done"|"error",
   "stage": str|null, "done": int|null, "total": int|null, "message": str|null, "t": seconds}
  plus a few extra fields per kind (`desc`, `unit` on progress, `seconds` on stage_end,
  `summary` on done). `t` is seconds since the Progress was made (monotonic clock).

Stages run one after another (the pipeline's order); analysis and rendering update bars from
worker threads, so every emit goes through one lock, and a bar remembers the stage it was
opened in, so events from its threads name the right stage.
Progress events are throttled (first, last and at most every `min_interval_s` per bar) so an
ffmpeg frame callback cannot flood a reader.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

from montage_otio.names import one_line

Mode = Literal["bars", "quiet", "json"]
EVENT_KINDS = ("stage_start", "progress", "stage_end", "warning", "done", "error")


class Bar:
    """An updatable progress handle; the same calls the pipeline made on tqdm bars."""

    def __init__(self, owner: Progress, desc: str, total: int | None, unit: str, stage: str | None,
                 initial: int = 0) -> None:
        self._owner = owner
        self.desc, self.total, self.unit, self.stage = desc, total, unit, stage
        self.n = initial
        self._closed = False
        self._last_emit = -1.0
        self._emitted_n: int | None = None      # the count last sent, so close() does not repeat it
        self._tqdm = owner._open_tqdm(desc, total, unit, initial)
        owner._bar_progress(self, force=True)

    def update(self, n: int = 1) -> None:
        """Advance by `n` (thread-safe)."""
        self._advance(lambda: n)

    def set(self, done: int) -> None:
        """Set the absolute count (for callbacks that report a running total, like ffmpeg's frame=)."""
        self._advance(lambda: done - self.n)

    def _advance(self, step_of: Callable[[], int]) -> None:
        with self._owner._lock:
            step = step_of()
            if step <= 0:
                return
            self.n += step
            if self._tqdm is not None:
                self._tqdm.update(step)
            finished = self.total is not None and self.n >= self.total
        self._owner._bar_progress(self, force=finished)

    def close(self) -> None:
        """Finish the bar; emits a last progress event so a reader sees the final count."""
        if self._closed:
            return
        self._closed = True
        self._owner._bar_progress(self, force=True)
        with self._owner._lock:
            if self._tqdm is not None:
                self._tqdm.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """Stages, bars, warnings and the final event of one run. Thread-safe.

    `stream` is where JSON lines go (stdout by default) and `bar_stream` where tqdm draws
    (stderr by default). `stages_s` collects each stage's wall time like the pipeline's
    `_Stages`, so it can replace that too.
    """

    def __init__(self, mode: Mode = "bars", stream: IO[str] | None = None, bar_stream: IO[str] | None = None,
                 min_interval_s: float = 0.1) -> None:
        if mode not in ("bars", "quiet", "json"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode: Mode = mode
        self._stream = stream
        self._bar_stream = bar_stream
        self.min_interval_s = min_interval_s
        self._lock = threading.RLock()
        self._t0 = time.monotonic()
        self._stage: str | None = None
        self.stages_s: dict[str, float] = {}

    @classmethod
    def from_flags(cls, quiet: bool = False, json_lines: bool = False, **kw: Any) -> Progress:
        """--json wins over --quiet (a program asked for the events); else --quiet, else bars."""
        return cls("json" if json_lines else "quiet" if quiet else "bars", **kw)

    # --- the API the pipeline calls ---------------------------------------------------------

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage: stage_start, then stage_end with `seconds`, or (JSON mode) an error
        event naming the stage, and re-raise."""
        previous, self._stage = self._stage, name
        self.event("stage_start", stage=name)
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.stages_s[name] = round(time.perf_counter() - t0, 2)
            if self.mode == "json":   # on a terminal the CLI prints the one error line itself
                self.event("error", stage=name, message=_describe(exc))
            raise
        else:
            self.stages_s[name] = round(time.perf_counter() - t0, 2)
            self.event("stage_end", stage=name, seconds=self.stages_s[name])
        finally:
            self._stage = previous

    def bar(self, desc: str, total: int | None, unit: str = "it", initial: int = 0) -> Bar:
        """A progress handle for `total` units of work in the current stage."""
        return Bar(self, desc, total, unit, self._stage, initial)

    def event(self, kind: str, **fields: Any) -> None:
        """Emit one event. Known keys: stage, done, total, message; others pass through (JSON mode)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
        if self.mode == "json":
            self._write_json(kind, fields)
        elif self.mode == "bars" and kind in ("warning", "error") and fields.get("message"):
            self._write_bar_line(f"{kind}: {one_line(str(fields['message']))}")

    def warning(self, message: str) -> None:
        self.event("warning", stage=self._stage, message=message)

    def done(self, summary: dict[str, Any] | None = None, message: str | None = None) -> None:
        """The run finished: JSON mode sends the summary (the caller prints text otherwise)."""
        self.event("done", message=message, summary=summary or {})

    def error(self, message: str) -> None:
        self.event("error", stage=self._stage, message=message)

    @property
    def current_stage(self) -> str | None:
        return self._stage

    # --- internals --------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def _write_json(self, kind: str, fields: dict[str, Any]) -> None:
        # the time is read and the line written under one lock: events from several threads
        # reach the reader in the order of their times
        with self._lock:
            record: dict[str, Any] = {"event": kind, "stage": fields.pop("stage", self._stage),
                                      "done": fields.pop("done", None), "total": fields.pop("total", None),
                                      "message": fields.pop("message", None), "t": self._elapsed()}
            record.update(fields)
            line = json.dumps(record, default=str, ensure_ascii=False)
            out = self._stream or sys.stdout
            out.write(line + "\n")
            out.flush()

    def _write_bar_line(self, text: str) -> None:
        from tqdm import tqdm

        with self._lock:
            tqdm.write(text, file=self._bar_stream or sys.stderr)

    def _open_tqdm(self, desc: str, total: int | None, unit: str, initial: int) -> Any:
        if self.mode != "bars":
            return None
        from tqdm import tqdm

        with self._lock:
            return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                        file=self._bar_stream or sys.stderr)

    def _bar_progress(self, bar: Bar, force: bool) -> None:
        if self.mode != "json":
            return
        with self._lock:   # re-entrant: the count is taken and written in one piece, so counts never go back
            now = time.monotonic()
            if bar.n == bar._emitted_n or (not force and now - bar._last_emit < self.min_interval_s):
                return
            bar._last_emit, bar._emitted_n = now, bar.n
            self.event("progress", stage=bar.stage, done=bar.n, total=bar.total, desc=bar.desc, unit=bar.unit)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return f"stopped ({str(exc) or 'SIGINT'})"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def as_progress(progress: bool | Progress | None) -> Progress:
    """Accept the old `progress: bool` arguments during the switch: True -> bars, False/None -> quiet.

    A fresh object each time: a Progress holds one run's stage times."""
    if isinstance(progress, Progress):
        return progress
    return Progress("bars" if progress else "quiet")
