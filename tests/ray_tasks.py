"""Task functions for the Ray tests: they travel to the workers by value (the workers have
only the engine's packages), and each says where it ran."""

from __future__ import annotations

import os
import time


def nap(item: tuple[int, float]) -> int:
    """Sleeps `seconds` anywhere but in the process that made the item; returns the pid it ran in."""
    maker, seconds = item
    if os.getpid() != maker:
        time.sleep(seconds)
    return os.getpid()


def two_seconds(item: object) -> float:
    return 2.0


def a_minute(item: object) -> float:
    return 60.0


def one_second(item: object) -> float:
    return 1.0


def fails_remotely(item: tuple[int, str]) -> int:
    """Raises, naming the file, anywhere but in the process that made the item."""
    maker, name = item
    if os.getpid() != maker:
        raise OSError(f"{name}: cannot be decoded on this worker")
    return os.getpid()


def materialize_timed(item: tuple[str, str, list, float]) -> tuple[str, float, float]:
    """Write a shipped copy from its object-store pieces, as a worker does, starting at the
    wall-clock time `start_at` (every node of these tests shares this machine's clock)
    -> (path, start, end)."""
    from montage_ai.execute.ray_driver import _materialize

    fp, suffix, refs, start_at = item
    time.sleep(max(0.0, start_at - time.time()))
    start = time.time()
    path = _materialize(fp, suffix, refs)
    return str(path), start, time.time()
