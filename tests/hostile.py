"""The checks every hostile-input case makes, in one place.

A case runs the real command line in a subprocess (`cli()`), then `assert_clean()` checks what
the issue asks of every one: a non-zero exit with exactly one error line naming what it must
(or success, when the input was valid after all), no traceback, no partial or temporary file
left in the folders the run writes, every source byte-identical, and the time within its bound.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from montage_ai.atomic import is_temp_name

PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if "error:" in ln]


def small_media(root: Path, clips: int = 2, music_s: float = 10) -> tuple[Path, Path]:
    """A clips folder (a.mp4 with two shots, then one-shot b.mp4, c.mp4, ...) and a 120 BPM drum
    track: the smallest real input a whole run needs."""
    from montage_ai.demo.synth_audio import make_drum_track
    from montage_ai.demo.synth_video import ShotSpec, distinct_colors, make_clip

    colors = distinct_colors(clips + 1)
    folder = root / "clips"
    make_clip(folder / "a.mp4", [ShotSpec(duration_s=3, color=colors[0]), ShotSpec(duration_s=3, color=colors[1])],
              width=320, height=180)
    for k in range(1, clips):
        make_clip(folder / f"{chr(ord('a') + k)}.mp4", [ShotSpec(duration_s=4, color=colors[k + 1])],
                  width=320, height=180)
    return folder, make_drum_track(root / "drums.wav", bpm=120, duration_s=music_s).path


def cli(*args: object, cache: Path, env: dict[str, str] | None = None, timeout_s: float = 300,
        cwd: Path | None = None) -> CliResult:
    """`montage-ai -q ARGS` in a fresh interpreter, with its own cache folder."""
    full_env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache), **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "montage_ai.cli", "-q", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout_s, cwd=cwd or PROJECT)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def sha256_tree(*paths: Path) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders), by path."""
    out: dict[str, str] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def live_processes(*needles: str) -> list[str]:
    """'pid: command line' of every live (not zombie) process whose command line holds all `needles`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if all(n in cmd for n in needles) and state != "Z":
            found.append(f"{pid}: {cmd[:200]}")
    return found


def temp_files(*folders: Path) -> list[Path]:
    """Temporary or partial files the engine's writers use, anywhere under `folders`."""
    found = []
    for folder in folders:
        if folder.exists():
            found += [p for p in folder.rglob("*") if is_temp_name(p.name) or ".partial" in p.name]
    return found


def assert_clean(result: CliResult, *, needles: tuple[str, ...] = (), ok: bool = False,
                 written: tuple[Path, ...] = (), sources: dict[str, str] | None = None,
                 max_seconds: float | None = None) -> None:
    """The promises every case keeps (see the module docstring)."""
    assert "Traceback" not in result.stderr, result.stderr
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, (result.stdout, result.stderr)
        assert len(result.error_lines) == 1, result.stderr
        for needle in needles:
            assert needle in result.error_lines[0], (needle, result.error_lines[0])
    leftovers = temp_files(*written)
    assert not leftovers, leftovers
    if sources is not None:
        after = sha256_tree(*(Path(p) for p in sources))
        changed = [p for p, digest in sources.items() if after.get(p) != digest]
        assert not changed, f"sources changed or removed: {changed}"
    if max_seconds is not None:
        assert result.seconds <= max_seconds, f"took {result.seconds:.1f} s, bound {max_seconds:.0f} s"
