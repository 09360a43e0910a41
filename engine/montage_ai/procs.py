"""Child processes: every ffmpeg, cgpu and helper process the engine starts goes through here.

- Each child runs in its own session (process group), so a timeout kills the whole tree, and
  on Linux it is told to die with the engine (PR_SET_PDEATHSIG): a `kill -9` of the engine
  leaves no orphaned ffmpeg writing on.
- `run()` bounds time and size: on timeout the group is killed, and so is any process still
  holding the child's output pipes (a grandchild that detached into a session of its own would
  otherwise keep the pipe open and the engine waiting forever). stderr keeps only its tail.
- A registry of live children lets the signal handler stop them all at once; after that no
  new child starts (`Interrupted` is raised instead), so a worker pool drains quickly.

SIGTERM (what `docker stop` sends) and Ctrl-C are handled alike: `install_signal_handlers()`
turns them into `Interrupted`, a KeyboardInterrupt, which unwinds through every `finally`
(temporary files removed) to the CLI's one line and exit code 128 + signal.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PIPE_GRACE_S = 2.0          # after the child exits, how long its pipes may stay open (grandchildren)
STDERR_TAIL_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
_POLL_S = 0.2


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM, SIGINT, SIGHUP); children are already stopped."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class Finished:
    """How a child ended: exit code (negative: killed by that signal), captured output."""

    returncode: int
    stdout: bytes
    stderr: str              # the last STDERR_TAIL_BYTES, decoded
    timed_out: bool = False
    stdout_overflow: bool = False

    def stderr_tail(self, lines: int = 3) -> str:
        kept = [ln.strip() for ln in self.stderr.strip().splitlines() if ln.strip()]
        return " | ".join(kept[-lines:])


_lock = threading.RLock()   # re-entrant: the signal handler may run while the main thread holds it
_live: dict[subprocess.Popen, list[int]] = {}   # child -> our ends of its pipes
_stopping: int | None = None


@functools.cache
def _die_with_engine_prefix() -> tuple[str, ...]:
    """The exec wrapper that makes a child die with the engine (Linux's PR_SET_PDEATHSIG):
    util-linux's `setpriv --pdeathsig KILL --`, which sets it and then execs the command.
    Setting it from Python between fork and exec (preexec_fn) is not safe in a threaded
    process: the forked child runs the interpreter and was seen to abort with a double free
    (Python 3.12, render threads). Empty where there is no setpriv (macOS, minimal images):
    children are then still stopped by the engine's signal handlers, only not on kill -9."""
    if not sys.platform.startswith("linux"):
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        ok = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (setpriv, "--pdeathsig", "KILL", "--") if ok else ()


def _executable(program: str, env: Mapping[str, str] | None, cwd: Path | None) -> str:
    """The program's path, or the OSError Popen would raise for it (a wrapper would only fail
    later, with an exit code)."""
    if os.sep in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
    else:
        path = shutil.which(program, path=(env if env is not None else os.environ).get("PATH", os.defpath))
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    return path


def spawn(argv: Sequence[str | os.PathLike[str]], *, stdin: int | None = subprocess.DEVNULL,
          stdout: int | None = subprocess.DEVNULL, stderr: int | None = subprocess.PIPE,
          env: Mapping[str, str] | None = None, cwd: Path | None = None,
          die_with_engine: bool = True) -> subprocess.Popen:
    """Start a child in its own process group, registered so a shutdown can stop it.
    Call `release(proc)` once it has ended (run() does)."""
    args = [os.fspath(a) for a in argv]
    prefix = _die_with_engine_prefix() if die_with_engine else ()
    if prefix:
        args = [*prefix, _executable(args[0], env, cwd), *args[1:]]
    with _lock:
        if _stopping is not None:
            raise Interrupted(_stopping)
        proc = subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
                                start_new_session=True)     # no preexec_fn: nothing runs between fork and exec
        _live[proc] = pipe_fds(proc)
    return proc


def pipe_fds(proc: subprocess.Popen) -> list[int]:
    """The child's pipe ends held here: what kill_tree follows to reach detached holders."""
    return [s.fileno() for s in (proc.stdin, proc.stdout, proc.stderr) if s is not None]



def release(proc: subprocess.Popen) -> None:
    with _lock:
        _live.pop(proc, None)


def kill_tree(proc: subprocess.Popen, pipes: Sequence[int] = ()) -> None:
    """SIGKILL the child's process group and any process holding one of `pipes` open."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except OSError:
            pass
    if pipes:
        _kill_pipe_holders(pipes)


def _kill_pipe_holders(fds: Sequence[int]) -> None:
    """Find (through /proc) the processes that hold the other end of our pipes, and kill them:
    a grandchild that moved to its own session is out of reach of killpg."""
    wanted = set()
    for fd in fds:
        try:
            wanted.add(f"pipe:[{os.fstat(fd).st_ino}]")
        except OSError:
            continue
    if not wanted:
        return
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except OSError:
        return
    for pid in pids:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & wanted:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def stop_all() -> None:
    """Kill every live child (their whole groups) and refuse new ones: the run is ending."""
    global _stopping
    with _lock:
        if _stopping is None:
            _stopping = signal.SIGTERM
        live = list(_live.items())
    for proc, pipes in live:
        kill_tree(proc, pipes)


def stopping() -> bool:
    return _stopping is not None


def check_interrupted() -> None:
    """For long loops in Python (decoding, analysis): stop promptly when the run is ending."""
    if _stopping is not None:
        raise Interrupted(_stopping)


def _on_signal(signum: int, _frame: object) -> None:
    global _stopping
    with _lock:
        first = _stopping is None
        _stopping = signum if first else _stopping
    if not first:
        return              # already unwinding; let the clean-up finish
    stop_all()
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGTERM, SIGINT and SIGHUP stop the children and raise Interrupted in the main thread."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def reset_for_tests() -> None:
    """Forget a previous stop (tests that simulate one in-process)."""
    global _stopping
    with _lock:
        _stopping = None


def run(argv: Sequence[str | os.PathLike[str]], *, timeout_s: float | None,
        on_stdout_line: Callable[[str], None] | None = None, capture_stdout: bool = False,
        max_stdout_bytes: int = 64 * 1024 * 1024, env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> Finished:
    """Run a child to completion within `timeout_s` (None: no limit) and return how it ended.

    stdout is passed line by line to `on_stdout_line`, or kept (at most `max_stdout_bytes`:
    beyond that the child is killed and `stdout_overflow` set) with `capture_stdout`, or
    discarded. stdin is /dev/null. Never raises for the child's own failure or a timeout: the
    caller turns `Finished` into its own one-line error. `on_stdout_line` may raise to stop
    early: the child and whatever holds its pipes are killed, then the exception propagates."""
    want_stdout = on_stdout_line is not None or capture_stdout
    proc = spawn(argv, stdout=subprocess.PIPE if want_stdout else subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        return _collect(proc, timeout_s, on_stdout_line, capture_stdout, max_stdout_bytes)
    except BaseException:
        kill_tree(proc, pipe_fds(proc))
        _reap(proc)
        raise
    finally:
        release(proc)        # before closing: its fd numbers must not outlive the pipes in the registry
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class _Lines:
    """Split a byte stream into lines for a callback, bounding any one line."""

    def __init__(self, fn: Callable[[str], None]) -> None:
        self.fn, self.buf = fn, b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        *whole, self.buf = self.buf.split(b"\n")
        for line in whole:
            self.fn(line.decode("utf-8", "replace").replace("\r", ""))
        if len(self.buf) > MAX_LINE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            line, self.buf = self.buf, b""
            self.fn(line.decode("utf-8", "replace").replace("\r", ""))


def _collect(proc: subprocess.Popen, timeout_s: float | None, on_line: Callable[[str], None] | None,
             capture: bool, max_bytes: int) -> Finished:
    start = time.monotonic()
    deadline = None if timeout_s is None else start + max(0.0, timeout_s)
    sel = selectors.DefaultSelector()
    fds = {}
    for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
        if stream is not None:
            os.set_blocking(stream.fileno(), False)
            sel.register(stream.fileno(), selectors.EVENT_READ, name)
            fds[name] = stream.fileno()
    lines = _Lines(on_line) if on_line is not None else None
    out_chunks: list[bytes] = []
    out_size = 0
    err_tail = bytearray()
    timed_out = overflow = False
    exited_at: float | None = None
    while sel.get_map():
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        limit = deadline
        if exited_at is not None:
            limit = exited_at + PIPE_GRACE_S if limit is None else min(limit, exited_at + PIPE_GRACE_S)
        if limit is not None and now >= limit:
            timed_out = exited_at is None
            kill_tree(proc, list(fds.values()))   # the child, or whoever still holds its pipes
            break
        wait = _POLL_S if limit is None else max(0.0, min(_POLL_S, limit - now))
        for key, _ in sel.select(wait):
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fd)
                continue
            if key.data == "err":
                err_tail += data
                del err_tail[:-STDERR_TAIL_BYTES]
            elif lines is not None:
                lines.feed(data)
            elif capture:
                out_size += len(data)
                if out_size > max_bytes:
                    overflow = True
                    kill_tree(proc, list(fds.values()))
                    sel.unregister(key.fd)
                    continue
                out_chunks.append(data)
    sel.close()
    if lines is not None:
        lines.flush()
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:   # it closed its pipes but kept running
        timed_out = True
        kill_tree(proc)
        _reap(proc)
    return Finished(returncode=proc.returncode if proc.returncode is not None else -9, stdout=b"".join(out_chunks),
                    stderr=err_tail.decode("utf-8", "replace"), timed_out=timed_out, stdout_overflow=overflow)
