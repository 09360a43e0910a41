#!/usr/bin/env python3
"""Compile librosa's numba kernels once into NUMBA_CACHE_DIR so a first analysis is fast.

Runs the engine's own music analysis on a short synthesized drum track, so exactly the kernels
the engine uses get compiled.
"""

import tempfile
from pathlib import Path

from montage_ai.analysis.music import analyze_music
from montage_ai.demo.synth_audio import make_drum_track

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        track = Path(tmp) / "warm.wav"
        make_drum_track(track, bpm=120.0, duration_s=12.0)
        analyze_music(track)
    print("numba cache warm")
