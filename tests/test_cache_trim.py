"""A folder of cached files kept under a size (a Ray node's shipped sources): the files used
longest ago go first, one used recently never, and temporary files only when no writer holds them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from montage_ai.atomic import atomic_path
from montage_ai.cache_trim import mark_used, trim_to

HOUR = 3600.0


def _file(folder: Path, name: str, size: int, age_s: float) -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_the_least_recently_used_go_first_until_the_folder_fits(tmp_path):
    old = _file(tmp_path, "old.mp4", 4000, 5 * HOUR)
    older = _file(tmp_path, "older.mp4", 4000, 9 * HOUR)
    used = _file(tmp_path, "used.mp4", 4000, 8 * HOUR)
    mark_used(used)                                    # used again just now: the most recent
    removed = trim_to(tmp_path, keep_bytes=5000, in_use_s=HOUR)
    assert removed == [older, old]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used.mp4"]
    assert used.read_bytes() and len(used.read_bytes()) == 4000


def test_a_folder_under_its_size_is_left_as_it_is(tmp_path):
    files = [_file(tmp_path, f"{k}.mov", 1000, (k + 2) * HOUR) for k in range(3)]
    assert trim_to(tmp_path, keep_bytes=3000, in_use_s=HOUR) == []
    assert all(p.exists() for p in files)


def test_a_file_used_recently_is_kept_even_over_the_size(tmp_path):
    """A task on the node may be reading it: the folder stays over its size until it is not."""
    stale = _file(tmp_path, "stale.mp4", 3000, 3 * HOUR)
    fresh = _file(tmp_path, "fresh.mp4", 3000, 60.0)
    assert trim_to(tmp_path, keep_bytes=0, in_use_s=HOUR) == [stale]
    assert fresh.exists()


def test_temporary_files_go_only_when_no_writer_holds_them(tmp_path):
    """A copy a killed worker left half-written goes; one being written now stays."""
    with atomic_path(tmp_path / "left.mp4") as left:
        left.write_bytes(b"x" * 100)
        held = left
        (tmp_path / ".dead.partial-abc123.mp4").write_bytes(b"y" * 100)   # a temp name no writer holds
        removed = trim_to(tmp_path, keep_bytes=10**9, in_use_s=HOUR)
        assert held.exists()
    assert removed == [tmp_path / ".dead.partial-abc123.mp4"]


def test_a_folder_that_is_not_there_is_nothing_to_trim(tmp_path):
    assert trim_to(tmp_path / "none", keep_bytes=0, in_use_s=0) == []
