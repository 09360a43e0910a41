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
