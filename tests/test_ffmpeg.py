"""Which ffmpeg the engine runs: a recent one on PATH, else the wheel's; never an old one that
lacks options the engine uses (Debian 12's 5.1 has no -display_rotation)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from montage_ai.media import ffmpeg


def _fake(bin_dir: Path, version_line: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "ffmpeg"
    exe.write_text(f"#!{sys.executable}\nprint({version_line!r})\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.delenv("MONTAGE_FFMPEG", raising=False)
    ffmpeg.ffmpeg_path.cache_clear()
    yield
    ffmpeg.ffmpeg_path.cache_clear()


@pytest.mark.parametrize("line,chosen", [
    ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers", False),
    ("ffmpeg version 7.1.1 Copyright (c) 2000-2025 the FFmpeg developers", True),
    ("ffmpeg version n9.0.2-17-g2a571b6068 Copyright", True),
    ("ffmpeg version N-118000-gabcdef Copyright", True),   # a git build: trusted
])
def test_path_ffmpeg_is_used_only_when_recent(tmp_path, monkeypatch, line, chosen):
    exe = _fake(tmp_path / "bin", line)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    picked = ffmpeg.ffmpeg_path()
    assert (picked == str(exe)) == chosen
    if not chosen:
        assert "imageio_ffmpeg" in picked


def test_explicit_binary_wins(tmp_path, monkeypatch):
    exe = _fake(tmp_path / "bin", "ffmpeg version 4.4")
    monkeypatch.setenv("MONTAGE_FFMPEG", str(exe))
    assert ffmpeg.ffmpeg_path() == str(exe)
