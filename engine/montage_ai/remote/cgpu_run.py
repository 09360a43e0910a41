"""A client for `cgpu run`, `cgpu copy` and `cgpu status` (a Google Colab runtime from a terminal).

cgpu is built for people at a terminal, so a program driving it has to guard against every
quirk listed in shared/notes/cgpu.md:

- Any cgpu command waits forever for a browser login when the session is missing or expired:
  the session file is checked before any call, and every call runs through `procs.run` under
  our own timeout, in its own process group, killed as a whole when the time is up; a process
  cgpu leaves behind holding its output (a detached grandchild) is found and killed too, so a
  call never outlives its timeout.
- Everything cgpu prints comes from a remote machine: it is untrusted text. Output is kept up
  to a bound, lines are parsed strictly (a malformed one is a CgpuError, never a traceback),
  and text quoted in a message is made printable and short.
- The remote command is passed as ONE argument (cgpu takes its own flags from anywhere in
  argv), starts in `/` in a fresh shell each time (`cd /content` first), and reads `/dev/null`
  (a command reading stdin would eat cgpu's control lines).
- The first stdout line is `Authenticated as ...`; remote stderr arrives on stdout. Our commands
  print a begin marker first, so a silent exit 1 *before* it (Colab had no GPU to assign) is
  told apart from the remote command's own exit 1, which is passed through.
- A dropped websocket ("Command finished without reporting an exit code") is retried once;
  the commands sent are idempotent, and long ones take a remote lock so a retry waits for a
  first attempt that is still running.
- There is no download command: files come back as base64 between markers, in chunks, and
  are verified against a remote `sha256sum`. Uploads are one request of the whole file; about
  384 MiB is the ceiling, so callers split above `upload_limit_bytes`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import procs
from ..atomic import atomic_path
from ..errors import MontageError

BEGIN = "__MONTAGE_BEGIN__"
B64_BEGIN, B64_END = "__MONTAGE_B64_BEGIN__", "__MONTAGE_B64_END__"
DROPPED = "Command finished without reporting an exit code"
UPLOAD_CEILING = 384 * 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 320 * 1024 * 1024      # headroom under the ceiling
MIB = 1024 * 1024
BLOCK = 4096                  # dd block: download chunks are whole blocks
SMALL_CALL_S = 180.0          # a trivial command: runtime assignment can take a minute or two
ASSUMED_UPLOAD_BPS = 2 * MIB  # pessimistic, for timeouts only
ASSUMED_DOWNLOAD_BPS = 1 * MIB
MAX_OUTPUT_BYTES = 16 * MIB   # what one call may print (beyond: an error); a download chunk gets more
MESSAGE_CHARS = 300           # remote text quoted in an error message
_SIZE_LINE = re.compile(r"^SIZE (\d{1,15})$")
_SHA_LINE = re.compile(r"^([0-9a-f]{64})\s")

LineFn = Callable[[str], None]
BytesFn = Callable[[int, int], None]


class CgpuError(MontageError):
    """The Colab GPU could not do what was asked; the message says why and what to do."""

    exit_code = 4


class CgpuNotInstalled(CgpuError):
    pass


class CgpuNoSession(CgpuError):
    pass


class CgpuCapacityError(CgpuError):
    pass


class CgpuTimeout(CgpuError):
    pass


class CgpuDropped(CgpuError):
    pass


class CgpuTransferError(CgpuError):
    pass


class CgpuCommandFailed(CgpuError):
    def __init__(self, message: str, code: int, lines: list[str]) -> None:
        super().__init__(message)
        self.code, self.lines = code, lines


@dataclass
class RunResult:
    code: int
    lines: list[str] = field(default_factory=list)   # remote output after the begin marker
    account: str = ""
    attempts: int = 1


def config_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("CGPU_CONFIG_DIR")
    return Path(explicit).expanduser() if explicit else Path(env.get("HOME", "~")).expanduser() / ".config" / "cgpu"


def session_file(env: dict[str, str] | None = None) -> Path:
    return config_dir(env) / "state" / "session.json"


def session_problem(env: dict[str, str] | None = None) -> str | None:
    """Why cgpu would start an interactive login (and wait forever), or None."""
    path = session_file(env)
    try:
        if path.stat().st_size > 0:
            return None
        return f"the cgpu session file {path} is empty: run `cgpu connect` once in a terminal"
    except OSError:
        return f"no cgpu login ({path} is missing): run `cgpu connect` once in a terminal"


class CgpuClient:
    """One Colab runtime through the cgpu CLI; every call bounded by a timeout."""

    def __init__(self, binary: str = "cgpu", *, verbose: bool = False,
                 upload_limit_bytes: int = DEFAULT_UPLOAD_LIMIT, env: dict[str, str] | None = None) -> None:
        self.binary, self.verbose = binary, verbose
        self.upload_limit_bytes = min(upload_limit_bytes, UPLOAD_CEILING)
        self.env = dict(os.environ if env is None else env)
        self._exe: str | None = None
        self._answered = False               # has any call come back (so the login is fine)?
        self.calls: list[list[str]] = []     # argv of every call made, for diagnostics

    # ------------------------------------------------------------------ preflight

    def check_ready(self) -> str:
        """The cgpu executable, after checking that a call would not hang on a login."""
        exe = shutil.which(self.binary, path=self.env.get("PATH"))
        if exe is None:
            raise CgpuNotInstalled(f"`{self.binary}` not found on PATH: install it with `npm install -g cgpu` "
                                   "(Node 18+), then run `cgpu connect` once")
        problem = session_problem(self.env)
        if problem:
            raise CgpuNoSession(problem)
        self._exe = exe
        return exe

    def status(self, timeout_s: float = 60.0) -> str:
        """`cgpu status`: the account and eligible GPUs (assigns no runtime)."""
        code, out, err = self._call(["status"], timeout_s, what="cgpu status")
        text = clean_text(" ".join(out))
        if code != 0:
            raise CgpuError(f"cgpu status failed (exit {code}): {_tail(err) or text or 'no message'}")
        if "Authenticated as " not in _strip_ansi(" ".join(out)):
            raise CgpuError(f"cgpu status gave an unexpected answer: {text or 'nothing'}")
        return text

    # ------------------------------------------------------------------ run

    def run(self, command: str, *, timeout_s: float, on_line: LineFn | None = None, check: bool = True,
            retry_dropped: bool = True, what: str = "remote command",
            max_output_bytes: int = MAX_OUTPUT_BYTES) -> RunResult:
        """Run a one-line shell command in /content on the runtime; exit codes pass through.
        `on_line` sees each remote output line; a CgpuError it raises fails the call (after
        cgpu has ended), so a bad line never leaves a traceback or a running process."""
        if "\n" in command:
            raise ValueError("cgpu runs one line: join commands with && or ;")
        full = f"cd /content && echo {BEGIN} && ( {command} ) < /dev/null"
        argv = ["run", *(["-v"] if self.verbose else []), full]
        deadline = time.monotonic() + timeout_s      # a retry shares the call's time, never doubles it
        attempts = 0
        while True:
            attempts += 1
            out = _AfterBegin(on_line)
            code, raw, err = self._call(argv, deadline - time.monotonic(), what=what, on_line=out.take,
                                        max_output_bytes=max_output_bytes)
            if DROPPED in err and attempts == 1 and retry_dropped:
                continue
            if DROPPED in err:
                raise CgpuDropped(f"{what}: the connection to Colab dropped (twice); the remote process may "
                                  "still be running")
            account = next((ln for ln in raw if ln.startswith("Authenticated as ")), "")
            if code != 0 and not out.begun:
                raise self._start_failure(code, err, what)
            if not out.begun:
                raise CgpuError(f"{what}: cgpu exited 0 but the command never started (no start marker in its "
                                f"output): {_tail(raw) or 'no output'}")
            if code != 0 and check:
                raise CgpuCommandFailed(f"{what} failed on the Colab runtime (exit {code}): "
                                        f"{_tail(out.lines) or 'no output'}", code, out.lines)
            return RunResult(code=code, lines=out.lines, account=account, attempts=attempts)

    def _start_failure(self, code: int, err: str, what: str) -> CgpuError:
        """cgpu failed before the remote command started: capacity (silent) or its own error."""
        if err.strip():
            return CgpuError(f"{what}: cgpu failed (exit {code}): {_tail(err)}")
        return CgpuCapacityError(
            f"{what}: cgpu exited {code} without a message before the command started: Colab most likely "
            "has no GPU to assign right now (usage limits or no capacity). Run `cgpu run -v nvidia-smi` to "
            "see why; try again later, or render without --cgpu-gpu")

    # ------------------------------------------------------------------ files

    def copy(self, local: Path, remote: str, *, timeout_s: float) -> None:
        """Upload one file (whole, in one request) to an absolute /content path."""
        size = local.stat().st_size
        if size > self.upload_limit_bytes:
            raise CgpuTransferError(f"{local.name} is {size / MIB:.0f} MiB, above the cgpu upload limit of "
                                    f"{self.upload_limit_bytes / MIB:.0f} MiB: split it")
        code, out, err = self._call(["copy", str(local), remote], timeout_s,
                                    what=f"uploading {local.name} ({size / MIB:.1f} MiB)")
        if code != 0:
            if not err.strip():
                raise self._start_failure(code, err, f"uploading {local.name}")
            raise CgpuTransferError(f"uploading {local.name} failed (exit {code}): {_tail(err)}")
        if not any(ln.startswith("Uploaded") for ln in out):
            raise CgpuTransferError(f"uploading {local.name}: cgpu did not confirm the upload")

    def inspect(self, remote: str, *, timeout_s: float = SMALL_CALL_S) -> tuple[int, str]:
        """(size in bytes, sha256) of a remote file, computed on the runtime."""
        q = shlex.quote(remote)
        res = self.run(f"stat -c 'SIZE %s' {q} && sha256sum {q}", timeout_s=timeout_s, what=f"checking {remote}")
        size = next((int(m.group(1)) for m in map(_SIZE_LINE.match, res.lines) if m), -1)
        digest = next((m.group(1) for m in (_SHA_LINE.match(ln.strip() + " ") for ln in res.lines) if m), "")
        if size < 0 or not digest:
            raise CgpuTransferError(f"checking {remote}: unexpected answer {_tail(res.lines)}")
        return size, digest

    def download(self, remote: str, local: Path, *, size: int, sha256: str, timeout_s: float,
                 chunk_bytes: int = 32 * MIB, on_bytes: BytesFn | None = None) -> None:
        """Fetch a remote file as base64 between markers, chunk by chunk (a dropped connection
        costs one chunk), then check its sha256 against the remote one."""
        blocks = max(1, chunk_bytes // BLOCK)
        step = blocks * BLOCK
        digest = hashlib.sha256()
        started = time.monotonic()
        with atomic_path(local) as tmp, tmp.open("wb") as fh:
            for index in range(max(1, -(-size // step))):
                data = self._chunk(remote, index, blocks, timeout_s - (time.monotonic() - started), size)
                expected = min(step, size - index * step)
                if len(data) != expected:
                    raise CgpuTransferError(f"downloading {remote}: chunk {index} has {len(data)} bytes, "
                                            f"expected {expected}")
                fh.write(data)
                digest.update(data)
                if on_bytes is not None:
                    on_bytes(index * step + len(data), size)
            if digest.hexdigest() != sha256:
                raise CgpuTransferError(f"downloading {remote}: checksum mismatch (local sha256 "
                                        f"{digest.hexdigest()[:12]}..., remote {sha256[:12]}...): the transfer "
                                        "was corrupted")

    def _chunk(self, remote: str, index: int, blocks: int, timeout_s: float, size: int) -> bytes:
        what = f"downloading {remote} ({size / MIB:.1f} MiB, as base64 through the terminal)"
        if timeout_s <= 0:
            raise CgpuTimeout(f"{what}: out of time (CGPU_TIMEOUT)")
        q = shlex.quote(remote)
        cmd = (f"echo {B64_BEGIN} && dd if={q} bs={BLOCK} skip={index * blocks} count={blocks} status=none "
               f"| base64 -w 76 | sed 's/^/B:/' && echo {B64_END}")
        res = self.run(cmd, timeout_s=timeout_s, what=what, max_output_bytes=blocks * BLOCK * 3 // 2 + MIB)
        inside, ended, parts = False, False, []
        for line in res.lines:
            s = line.strip()
            if s == B64_BEGIN:
                inside = True
            elif s == B64_END:
                ended = True
                break
            elif inside and s.startswith("B:"):
                parts.append(s[2:])
        if not ended:
            raise CgpuTransferError(f"downloading {remote}: the end marker never arrived (output cut short)")
        try:
            return base64.b64decode("".join(parts), validate=True)
        except ValueError as exc:
            raise CgpuTransferError(f"downloading {remote}: damaged base64 ({exc})") from exc

    def remove(self, remote_dir: str, *, timeout_s: float = 60.0) -> bool:
        """Best-effort `rm -rf` of a directory under /content; False when it could not be done."""
        if not remote_dir.startswith("/content/") or ".." in remote_dir:
            raise ValueError(f"refusing to remove {remote_dir!r}")
        try:
            self.run(f"rm -rf {shlex.quote(remote_dir)}", timeout_s=timeout_s, what="cleaning up")
            return True
        except CgpuError:
            return False

    # ------------------------------------------------------------------ process

    def _call(self, args: list[str], timeout_s: float, *, what: str, on_line: LineFn | None = None,
              max_output_bytes: int = MAX_OUTPUT_BYTES) -> tuple[int, list[str], str]:
        """Run cgpu through procs (own process group, hard timeout, leftovers holding its pipes
        killed); (exit code, stdout lines, stderr tail)."""
        exe = self._exe or self.check_ready()
        if timeout_s <= 0:
            raise CgpuTimeout(f"{what}: no time left in the cloud budget (CGPU_TIMEOUT)")
        argv = [exe, *args]
        self.calls.append(argv)
        out = _Output(on_line, max_output_bytes)
        try:
            done = procs.run(argv, timeout_s=timeout_s, on_stdout_line=out.take, env=self.env)
        except OSError as exc:
            raise CgpuError(f"{what}: cannot start {exe}: {exc.strerror or exc}") from exc
        procs.check_interrupted()   # the run is stopping: not cgpu's fault
        if done.timed_out:
            raise CgpuTimeout(self._timeout_message(what, timeout_s))
        if out.error is not None:
            raise out.error
        if out.overflow:
            raise CgpuError(f"{what}: cgpu printed more than {max_output_bytes / MIB:.0f} MiB; the output was "
                            "not read further")
        self._answered = True
        return done.returncode, out.lines, _strip_ansi(done.stderr.replace("\r", ""))

    def _timeout_message(self, what: str, timeout_s: float) -> str:
        msg = f"{what}: no answer from cgpu within {timeout_s:.0f} s; stopped it"
        if not self._answered:   # nothing answered yet: the classic cause is a login prompt
            msg += " (if the Colab login expired, cgpu waits for a browser login: run `cgpu connect`)"
        return msg + ". CGPU_TIMEOUT sets the time allowed for a whole cloud job"


class _Output:
    """cgpu's stdout lines, kept up to a byte bound. An error raised while handling a line is
    kept for after the process has ended (raising inside procs.run would leave a detached
    grandchild of cgpu running); later lines are then ignored."""

    def __init__(self, on_line: LineFn | None, max_bytes: int) -> None:
        self.on_line, self.left = on_line, max_bytes
        self.lines: list[str] = []
        self.error: CgpuError | None = None
        self.overflow = False

    def take(self, line: str) -> None:
        if self.error is not None or self.overflow:
            return
        self.left -= len(line) + 1
        if self.left < 0:
            self.overflow = True
            return
        self.lines.append(line)
        if self.on_line is not None:
            try:
                self.on_line(line)
            except CgpuError as exc:
                self.error = exc


class _AfterBegin:
    """Collects the remote command's output: the lines after our begin marker (cgpu's own
    preamble and verbose logging come before it)."""

    def __init__(self, on_line: LineFn | None) -> None:
        self.on_line, self.begun, self.lines = on_line, False, []

    def take(self, line: str) -> None:
        if not self.begun:
            self.begun = line.strip() == BEGIN
            return
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", text)


def clean_text(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Remote text made fit for a one-line message: escape codes, control characters and
    undecodable bytes out, whitespace collapsed, at most `limit` characters."""
    text = "".join(ch if ch.isprintable() and ch != "\ufffd" else " " for ch in _strip_ansi(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(text: str | list[str], n: int = 3) -> str:
    lines = text.strip().splitlines() if isinstance(text, str) else [ln for ln in text if ln.strip()]
    return clean_text(" | ".join(ln.strip() for ln in lines[-n:]))


def upload_timeout(nbytes: int) -> float:
    return 60.0 + nbytes / ASSUMED_UPLOAD_BPS


def download_timeout(nbytes: int) -> float:
    return 60.0 + nbytes * 4 / 3 / ASSUMED_DOWNLOAD_BPS
