"""Find and run ffmpeg.

No system package is required: ffmpeg on PATH wins (a user's build may have more encoders),
otherwise the static binary shipped in the imageio-ffmpeg wheel. Commands are argv lists,
never shell strings, so file names cannot reach a shell.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import procs
from ..errors import RenderError

if TYPE_CHECKING:
    import numpy as np


MIN_SYSTEM_MAJOR = 6   # filters and options the engine relies on (xfade, -display_rotation, -fps_mode)
_VERSION = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")


QUERY_TIMEOUT_S = 20.0   # -version, -encoders: instant unless the binary is broken


def _query(binary: str, *args: str) -> str:
    """What `binary args` prints (bounded in time; empty when it cannot run)."""
    try:
        done = procs.run([binary, "-hide_banner", *args], timeout_s=QUERY_TIMEOUT_S, capture_stdout=True)
    except OSError:
        return ""
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else ""


def _major_version(binary: str) -> int | None:
    """Major version of an ffmpeg binary; None when it cannot be told (git builds say N-...),
    -1 when it does not run."""
    text = _query(binary, "-version")
    if not text:
        return -1
    m = _VERSION.search(text)
    return int(m.group(1)) if m else None


@functools.cache
def ffmpeg_path() -> str:
    """The ffmpeg binary to use: $MONTAGE_FFMPEG, then a recent enough ffmpeg on PATH (a user's
    build may have more encoders), then imageio-ffmpeg's. An old distribution ffmpeg (Debian 12
    ships 5.1) lacks options the engine uses, so it is passed over rather than failing later."""
    explicit = os.environ.get("MONTAGE_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        major = _major_version(found)
        if major is None or major >= MIN_SYSTEM_MAJOR:
            return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - only without the wheel
        raise RenderError(f"no ffmpeg found on PATH and imageio-ffmpeg unavailable: {exc}") from exc


@functools.cache
def ffmpeg_version() -> str:
    text = _query(ffmpeg_path(), "-version")
    return text.splitlines()[0] if text else "unknown"


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    names = set()
    for line in _query(ffmpeg_path(), "-encoders").splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def run_ffmpeg(
    args: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    timeout_s: float | None = None,
    on_progress_frame: Callable[[int], None] | None = None,
) -> None:
    """Run ffmpeg with `args` (everything after the binary name), bounded by `timeout_s`.

    `what` names the job in the error message. When `on_progress_frame` is given, ffmpeg's
    machine-readable progress (`-progress pipe:1`) is parsed and the callback receives the
    number of frames written so far. The child runs in its own process group (procs.py), so
    a timeout or a stop of the engine ends it and everything it started.
    """
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if on_progress_frame is not None:
        argv += ["-progress", "pipe:1", "-nostats"]
    argv += [os.fspath(a) for a in args]

    def progress_line(line: str) -> None:
        if on_progress_frame is not None and line.startswith("frame="):
            try:
                on_progress_frame(int(line.split("=", 1)[1]))
            except ValueError:
                pass

    try:
        done = procs.run(argv, timeout_s=timeout_s, on_stdout_line=progress_line if on_progress_frame else None)
    except OSError as exc:
        raise RenderError(f"cannot start ffmpeg ({argv[0]}): {exc.strerror or exc}") from exc
    if done.timed_out:
        raise RenderError(f"{what}: ffmpeg took longer than {timeout_s:.0f} s and was stopped")
    if done.returncode != 0:
        procs.check_interrupted()   # killed because the run is stopping: not ffmpeg's fault
        raise RenderError(f"{what}: ffmpeg exited with {done.returncode}: {done.stderr_tail()}")


STDERR_TAIL_BYTES = 8192


class FfmpegPipe:
    """ffmpeg reading raw input on its stdin (frames the engine decoded and chose itself).

    Bounded like every child: a watchdog kills it (and so unblocks a write) past `timeout_s`;
    its stderr is drained in a thread, keeping only a tail for the error message. Use as a
    context manager: a clean exit waits for ffmpeg and checks it, an exception kills it."""

    def __init__(self, args: Sequence[str | os.PathLike[str]], *, what: str, timeout_s: float) -> None:
        import subprocess
        import threading

        self.what, self.timeout_s = what, timeout_s
        argv = [ffmpeg_path(), "-hide_banner", "-y", "-loglevel", "error", *[os.fspath(a) for a in args]]
        try:
            self.proc = procs.spawn(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise RenderError(f"cannot start ffmpeg ({argv[0]}): {exc.strerror or exc}") from exc
        self._pipes = procs.pipe_fds(self.proc)
        self._tail = b""
        self.timed_out = False
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self._watchdog = threading.Timer(timeout_s, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
            self._tail = (self._tail + chunk)[-STDERR_TAIL_BYTES:]

    def _expire(self) -> None:
        self.timed_out = True
        procs.kill_tree(self.proc, self._pipes)

    def _error(self) -> RenderError:
        procs.check_interrupted()
        if self.timed_out:
            return RenderError(f"{self.what}: ffmpeg took longer than {self.timeout_s:.0f} s and was stopped")
        lines = [ln for ln in self._tail.decode(errors="replace").splitlines() if ln.strip()]
        return RenderError(f"{self.what}: ffmpeg exited with {self.proc.returncode}: {' | '.join(lines[-3:])}")

    def write(self, data: bytes | memoryview | np.ndarray) -> None:
        """Write raw input; any C-contiguous buffer (a NumPy plane) goes to the pipe uncopied."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            self._finish(kill=True)
            raise self._error() from None

    def _finish(self, kill: bool) -> None:
        if kill:
            procs.kill_tree(self.proc, self._pipes)
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=self.timeout_s)
        except Exception:
            procs.kill_tree(self.proc, self._pipes)
            self.proc.wait(timeout=5)
        self._watchdog.cancel()
        self._reader.join(timeout=5)
        procs.release(self.proc)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> "FfmpegPipe":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._finish(kill=True)
            return
        self._finish(kill=False)
        if self.proc.returncode != 0:
            raise self._error()
