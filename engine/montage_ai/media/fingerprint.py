"""A file's identity by its content, the same on every machine and under every path.

Hashing a whole 4K recording costs as long as reading it, on every run. Camera files are never
edited in place: a re-encode, a trim or a different take changes the size or the bytes at its
start, middle and end. So the fingerprint is BLAKE2b over the size and SAMPLES evenly spaced
blocks of SAMPLE_BYTES (the whole file when it is smaller than that): about 2 MiB read per
file. It keys the analysis cache (a copy on another node, or under another name, is a hit) and
says whether a Ray worker's file at the same path is the user's file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

SAMPLES, SAMPLE_BYTES = 8, 256 * 1024
FINGERPRINT_VERSION = 1

_known: dict[tuple[str, int, int], str] = {}      # (path, size, mtime_ns) -> fingerprint, this process
_lock = threading.Lock()


def fingerprint(path: Path | str) -> str:
    """Hex digest of the file's size and sampled content (OSError when it cannot be read)."""
    path = os.fspath(path)
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _lock:
        known = _known.get(memo)
    if known is not None:
        return known
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"v{FINGERPRINT_VERSION}:{st.st_size}:".encode())
    with open(path, "rb") as f:
        if st.st_size <= SAMPLES * SAMPLE_BYTES:
            digest.update(f.read())
        else:
            step = (st.st_size - SAMPLE_BYTES) // (SAMPLES - 1)
            for k in range(SAMPLES):
                f.seek(k * step)
                digest.update(f.read(SAMPLE_BYTES))
    value = digest.hexdigest()
    with _lock:
        _known[memo] = value
    return value


def same_file(path: Path | str, expected: str) -> bool:
    """Whether `path` holds the file with fingerprint `expected` (False when it is not there)."""
    try:
        return os.path.isfile(path) and fingerprint(path) == expected
    except OSError:
        return False
