"""Output safety: no output ever replaces an input, or a file the engine did not write.

One mechanism for every command that writes where the user keeps files (run, render, export,
demo):

- `Outputs.check(paths)` runs before any work. An output that is, or would replace, an input
  (a clip, any file in the clips folder, the music, a timeline or its media) is refused even
  with --force. An existing file the engine did not write is refused unless --force. A folder
  where a file should go is refused.
- What the engine wrote is recorded in a small ledger in each output folder
  (`.montage-ai.json`: name, size and mtime of each output). A file counts as the engine's only
  while it is unchanged since: a montage.kdenlive the user edited and saved is the user's now.
  `run --out` pointed at the clips folder therefore never takes its own montage.mp4 as footage
  (`engine_outputs(folder)` lists what to ignore), and a re-run replaces only its own files.
- Each output folder is locked (`flock` on the folder) while a run writes into it, so a second
  run into the same folder stops at once instead of interleaving files; what a killed run left
  (temporary files) is swept when the next run takes the folder.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from . import atomic
from .errors import MontageError

LEDGER_NAME = ".montage-ai.json"
LEDGER_MAX_BYTES = 1024 * 1024


class _Entry(BaseModel):
    size: int
    mtime_ns: int


class _Ledger(BaseModel):
    """The ledger file's content; `what` tells a curious user why the file is there."""

    what: str = "files montage-ai wrote into this folder (it replaces only these, while unchanged)"
    files: dict[str, _Entry] = {}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_ledger(folder: Path) -> _Ledger:
    """The folder's ledger; a missing, oversized or damaged one counts as empty (safe: then
    nothing in the folder is treated as the engine's)."""
    path = folder / LEDGER_NAME
    try:
        if path.stat().st_size > LEDGER_MAX_BYTES:
            return _Ledger()
        return _Ledger.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return _Ledger()


def _unchanged(path: Path, entry: _Entry | None) -> bool:
    if entry is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns


def engine_outputs(folder: Path) -> set[str]:
    """Names of the files in `folder` that the engine wrote and nobody changed since."""
    ledger = _read_ledger(folder)
    return {name for name, entry in ledger.files.items() if _unchanged(folder / name, entry)}


class Inputs:
    """Files an output must never replace, compared by identity (device, inode) where they
    exist, so a symlink or a second path to the same file is caught too."""

    def __init__(self, paths: Iterable[Path] = (), role: str = "an input") -> None:
        self._ids: dict[tuple[int, int], tuple[Path, str]] = {}
        self._paths: dict[str, tuple[Path, str]] = {}
        self.add(paths, role)

    def add(self, paths: Iterable[Path], role: str) -> None:
        """`role` says what the files are, for the error message ("the music", "a clip")."""
        for p in paths:
            p = Path(p)
            ident = _identity(p)
            if ident is not None:
                self._ids.setdefault(ident, (p, role))
            self._paths.setdefault(os.path.abspath(p), (p, role))

    def add_folder(self, folder: Path) -> None:
        """Every file in the folder (not below it) except the engine's own outputs there."""
        own = engine_outputs(folder)
        try:
            entries = [Path(e.path) for e in os.scandir(folder) if e.name not in own and e.name != LEDGER_NAME]
        except OSError:
            return
        self.add(entries, "a file in the clips folder")

    def find(self, path: Path) -> tuple[Path, str] | None:
        """(the input, its role) when `path` is the same file as an input, else None."""
        ident = _identity(path)
        if ident is not None and ident in self._ids:
            return self._ids[ident]
        return self._paths.get(os.path.abspath(path))


class _LockedFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise MontageError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            raise MontageError(f"{folder}: another montage-ai run is writing into this folder; wait for it "
                               "to finish or choose another output folder") from exc
        atomic.sweep_stale(folder)
        self._check_writable()

    def _check_writable(self) -> None:
        probe = atomic.temp_name(self.folder / ".write-test")
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            os.unlink(probe)
        except OSError as exc:
            self.close()
            raise MontageError(f"{self.folder}: output folder is not writable ({exc.strerror or exc})") from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Outputs:
    """The outputs of one command: checked up front, their folders locked while written,
    every file recorded in its folder's ledger once in place."""

    def __init__(self, inputs: Inputs, force: bool = False) -> None:
        self.inputs = inputs
        self.force = force
        self._checked: set[str] = set()
        self._locks: dict[str, _LockedFolder] = {}

    def check(self, paths: Iterable[Path]) -> None:
        """Refuse, with one line naming the file, any output that would replace an input or a
        file the engine did not write (the latter allowed with --force)."""
        ledgers: dict[Path, _Ledger] = {}
        for path in paths:
            path = Path(os.path.abspath(path))
            clash = self.inputs.find(path)
            if clash is not None:
                source, role = clash
                same = "" if os.path.abspath(source) == str(path) else f" ({source})"
                raise MontageError(f"{path}: is {role}{same}; refusing to write an output over it "
                                   "(choose another output folder or file name)")
            if path.is_dir():
                raise MontageError(f"{path}: is a folder; an output file cannot replace it")
            if path.exists() or path.is_symlink():
                ledger = ledgers.setdefault(path.parent, _read_ledger(path.parent))
                entry = ledger.files.get(path.name)
                if not self.force and not _unchanged(path, entry):
                    why = "changed since montage-ai wrote it" if entry else "not written by montage-ai"
                    raise MontageError(f"{path}: already exists and was {why}; refusing to replace it "
                                       "(use --force to replace it, or choose another output)")
            self._checked.add(str(path))

    def lock(self, folder: Path) -> Path:
        """Create and lock an output folder for this command (idempotent); sweeps what a killed
        run left there. Raises when another run holds it or it is not writable."""
        folder = Path(os.path.abspath(folder))
        if str(folder) not in self._locks:
            self._locks[str(folder)] = _LockedFolder(folder)
        return folder

    def record(self, *paths: Path) -> None:
        """Note in the folder's ledger that the engine wrote `paths` (checked and locked before)."""
        by_folder: dict[Path, list[Path]] = {}
        for path in paths:
            path = Path(os.path.abspath(path))
            if str(path) not in self._checked:
                raise RuntimeError(f"{path} was written without being checked first")   # a bug, not the user's
            if str(path.parent) not in self._locks:
                raise RuntimeError(f"{path.parent} was written without being locked first")
            by_folder.setdefault(path.parent, []).append(path)
        for folder, written in by_folder.items():
            ledger = _read_ledger(folder)
            for path in written:
                st = path.stat()
                ledger.files[path.name] = _Entry(size=st.st_size, mtime_ns=st.st_mtime_ns)
            ledger.files = {n: e for n, e in ledger.files.items() if (folder / n).exists()}
            atomic.write_text(folder / LEDGER_NAME, ledger.model_dump_json(indent=1))

    def close(self) -> None:
        for lock in self._locks.values():
            lock.close()
        self._locks.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
