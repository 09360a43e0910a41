"""Keep a folder of cached files under a size: the least recently used go first.

A cache that only grows fills a disk in the end (a Ray worker keeps every source shipped to it,
hundreds of GB over a few shoots). Users mark a file used by touching it (`mark_used`); the
trim removes the files used longest ago until the folder fits, and never one used within
`in_use_s` (a running task may be reading it) nor a temporary file a live writer holds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .atomic import is_temp_name, sweep_stale


def mark_used(path: Path) -> None:
    """Record that `path` was used now (its modification time; the content is unchanged)."""
    try:
        os.utime(path)
    except OSError:
        pass


def trim_to(folder: Path, keep_bytes: int, in_use_s: float) -> list[Path]:
    """Remove the least recently used files of `folder` (not below it) beyond `keep_bytes`, and
    temporary files no writer holds. Returns what was removed; an unreadable folder is left."""
    removed = sweep_stale(folder)
    try:
        entries = [e for e in os.scandir(folder) if e.is_file(follow_symlinks=False) and not is_temp_name(e.name)]
    except OSError:
        return removed
    files = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, Path(entry.path)))
    total = sum(size for _, size, _ in files)
    recent = time.time() - in_use_s
    for mtime, size, path in sorted(files):
        if total <= keep_bytes or mtime > recent:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed
