"""Atomic writes: the one way the engine puts a file where a reader (or a user) can see it.

Every output and every cache entry is written to a temporary name beside its final name and
renamed into place when complete, so a reader never sees half a file and a killed run never
leaves a half file under a real name. The temporary name is unique per write (not per process:
two threads of one run, or two runs sharing a cache, never share one), and the writer holds an
exclusive `flock` on it for as long as it exists.

That lock is what makes clean-up safe: `sweep_stale(folder)` removes temporary files whose
lock nobody holds, which means their writer is gone (killed with SIGKILL, a crash, a power
loss), while a temporary file of a run that is still writing is left alone. The kernel drops a
dead process's locks, so no pid guessing is involved (pids repeat, and in containers every run
is pid 1). A temporary file is created under a `.creating-` name and renamed to its
`.partial-` name only once it is locked, so the sweeper can never catch one unlocked.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial-"
CREATING = ".creating-"
# .<stem>.partial-<token><suffix>: the suffix stays last so ffmpeg and OTIO adapters, which go
# by it, still see .mp4 / .otio / .kdenlive.
_TEMP_NAME = re.compile(r"^\..*\.(partial|creating)-[0-9a-f]+(-\d+)?(\.[^./]*)?$")   # also 0.1's .partial-<pid>
_CREATING_STALE_S = 60.0   # a .creating- name lives for microseconds; older ones are leftovers
_counter = itertools.count()


def temp_name(final: Path, kind: str = PARTIAL) -> Path:
    """A name beside `final` that no other write (thread or process) will use."""
    token = f"{os.getpid():x}{os.urandom(3).hex()}-{next(_counter)}"
    return final.with_name(f".{final.stem}{kind}{token}{final.suffix}")


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


class _LockedTemp:
    """A temporary file that exists only while this object holds its lock."""

    def __init__(self, final: Path) -> None:
        creating = temp_name(final, CREATING)
        self.path = creating.with_name(creating.name.replace(CREATING, PARTIAL, 1))
        self.fd = os.open(creating, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            os.rename(creating, self.path)
        except BaseException:
            os.close(self.fd)
            _unlink(creating)
            raise

    def release(self) -> None:
        """Remove the temporary file if it is still there, then drop the lock."""
        _unlink(self.path)
        os.close(self.fd)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a locked temporary path beside `final` for any writer (ffmpeg, an adapter, PIL);
    when the block ends without an exception it is renamed over `final`. On any failure or
    interruption the temporary file is removed and `final` is untouched."""
    final = Path(final)
    try:
        temp = _LockedTemp(final)
    except OSError as exc:
        raise _naming(exc, final) from exc
    try:
        yield temp.path
        if not temp.path.exists():
            raise FileNotFoundError(f"{final}: the writer produced no file")
        os.replace(temp.path, final)
    except OSError as exc:
        raise _naming(exc, final) from exc
    finally:
        temp.release()


def _naming(exc: OSError, final: Path) -> OSError:
    """The error with the file the user knows (the final name), not the temporary one: a disk
    that fills up while writing report.html is reported as report.html."""
    if exc.filename is not None and not is_temp_name(Path(str(exc.filename)).name):
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(final))


def write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def sweep_stale(folder: Path) -> list[Path]:
    """Remove temporary files in `folder` (not below it) that no live writer holds: what a
    killed run left. Returns what was removed; a folder that cannot be read is skipped."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp_name(entry.name):
            continue
        path = Path(entry.path)
        if CREATING in entry.name:
            try:
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > _CREATING_STALE_S:
                    shutil.rmtree(path, ignore_errors=True) if entry.is_dir(follow_symlinks=False) else _unlink(path)
                    removed.append(path)
            except OSError:
                pass
            continue
        if _unlink_if_unlocked(path):
            removed.append(path)
    return removed


def sweep_stale_tree(root: Path, max_depth: int = 3) -> list[Path]:
    """`sweep_stale` on `root` and its sub-folders down to `max_depth` (a cache tree)."""
    removed = sweep_stale(root)
    if max_depth > 0:
        try:
            subdirs = [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
        except OSError:
            subdirs = []
        for sub in subdirs:
            removed += sweep_stale_tree(sub, max_depth - 1)
    return removed


@contextmanager
def scratch_path(final: Path) -> Iterator[Path]:
    """A locked temporary file beside `final` that is always removed afterwards (a list or a
    script a child reads), never renamed into place."""
    temp = _LockedTemp(Path(final))
    try:
        yield temp.path
    finally:
        temp.release()


@contextmanager
def scratch_dir(parent: Path, name: str) -> Iterator[Path]:
    """A locked working folder in `parent`, removed with all it holds afterwards; one a killed
    run left behind is removed by `sweep_stale(parent)` like a temporary file."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    creating = temp_name(parent / name, CREATING)
    path = creating.with_name(creating.name.replace(CREATING, PARTIAL, 1))
    os.mkdir(creating)
    fd = os.open(creating, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(creating, path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(creating, ignore_errors=True)
        os.close(fd)


def _unlink_if_unlocked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False            # a live writer holds it
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except OSError:
            return False
        if same:
            shutil.rmtree(path, ignore_errors=True) if is_dir else _unlink(path)
        return same
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
