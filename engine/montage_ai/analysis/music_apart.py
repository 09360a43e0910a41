"""The music analysis in a child process of its own.

librosa with numba and scipy adds about 220 MB to any process that imports it, and the engine
used to carry that through the render, where two 1080p encoders need the room (a 10-minute
1080p run peaked at 1.1 GB). Run apart, the analysis's memory is returned when it ends, a crash
in native code cannot take the run with it, and a stop ends it like every other child
(procs.py). The child prints the MusicAnalysis as JSON; a problem with the file comes back as
the same one-line MediaError.

    python -m montage_ai.analysis.music_apart SONG OFFSET_S
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import procs
from ..errors import MediaError, MontageError
from .music import MusicAnalysis

ERROR_PREFIX = "music-analysis-error: "
START_S, PER_AUDIO_MINUTE_S = 120.0, 20.0    # imports and numba's cache, then ~1 s per minute measured
MAX_REPLY_BYTES = 64 * 2**20                 # an hour-long mix's beats and energy are ~1 MB


def analyze_music_apart(path: Path, start_offset_s: float, audio_minutes: float) -> MusicAnalysis:
    """analyze_music(path, start_offset_s) in a child process, bounded in time by the song's length."""
    timeout = START_S + PER_AUDIO_MINUTE_S * max(1.0, audio_minutes)
    done = procs.run([sys.executable, "-m", "montage_ai.analysis.music_apart", str(path), repr(float(start_offset_s))],
                     timeout_s=timeout, capture_stdout=True, max_stdout_bytes=MAX_REPLY_BYTES)
    if done.timed_out:
        raise MontageError(f"{path}: the music analysis took longer than {timeout:.0f} s and was stopped")
    if done.returncode != 0:
        procs.check_interrupted()
        said = [ln[len(ERROR_PREFIX):] for ln in done.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
        if said:
            raise MediaError(said[-1])
        raise MontageError(f"{path}: the music analysis failed (exit {done.returncode}): {done.stderr_tail()}")
    return MusicAnalysis.model_validate_json(done.stdout)


def main(argv: list[str]) -> int:
    from .music import analyze_music

    try:
        analysis = analyze_music(Path(argv[0]), float(argv[1]))
    except MediaError as exc:
        print(ERROR_PREFIX + str(exc).replace("\n", " "), file=sys.stderr)
        return 2
    sys.stdout.write(analysis.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
