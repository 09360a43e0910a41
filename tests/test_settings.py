"""Settings precedence: flags > environment > .env > defaults, through the real CLI parser."""

from __future__ import annotations

import pytest

from montage_ai.cli import build_parser, settings_from
from montage_ai.settings import Settings


def test_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MAX_PARALLEL_JOBS", "MONTAGE_STYLE", "CGPU_PORT", "MEMORY_LIMIT_GB"):
        monkeypatch.delenv(var, raising=False)
    assert Settings().max_parallel_jobs == 2 and Settings().style == "dynamic"
    (tmp_path / ".env").write_text("MAX_PARALLEL_JOBS=3\nMONTAGE_STYLE=wedding\nCGPU_PORT=9000\n")
    s = Settings()
    assert (s.max_parallel_jobs, s.style, s.cgpu_port) == (3, "wedding", 9000)
    monkeypatch.setenv("MONTAGE_STYLE", "fast")
    monkeypatch.setenv("CGPU_PORT", "9100")
    s = Settings()
    assert (s.max_parallel_jobs, s.style, s.cgpu_port) == (3, "fast", 9100)
    args = build_parser().parse_args(["run", "--style", "documentary"])
    s = settings_from(args)
    assert (s.style, s.cgpu_port) == ("documentary", 9100)
    # a flag not given leaves the environment's value alone
    args = build_parser().parse_args(["run", "--seed", "4"])
    assert settings_from(args).style == "fast"


@pytest.mark.parametrize("aspect,res,size", [("16:9", "1080p", (1920, 1080)), ("9:16", "720p", (720, 1280)),
                                             ("1:1", "1080p", (1080, 1080)), ("4:5", "1080p", (1080, 1350))])
def test_output_size(aspect, res, size):
    assert Settings(aspect=aspect, resolution=res).output_size() == size


def test_workers_bounded_by_memory_and_jobs(monkeypatch):
    assert Settings(max_parallel_jobs=1, memory_limit_gb=8).worker_count() == 1
    assert Settings(max_parallel_jobs=8, memory_limit_gb=0.5).worker_count() == 1
