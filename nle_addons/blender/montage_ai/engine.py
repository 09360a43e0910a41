"""Running the Montage AI engine from an editor without freezing it.

Pure Python (no bpy): the Blender operators only call `EngineJob.start()`, then `poll()` from a
timer. The engine runs as a child process started from an argument list (never a shell, so
paths with spaces or quotes need no escaping); two reader threads move its output into a queue,
so `poll()` never waits on a pipe and the editor's UI thread stays free.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .progress import ProgressTracker

State = Literal["idle", "running", "done", "failed", "cancelled"]

ENGINE_ENV = "MONTAGE_AI_ENGINE"   # an engine executable or montage-ai.sh; wins over PATH
HOME_ENV = "MONTAGE_AI_HOME"       # a Montage AI checkout (its montage-ai.sh is used)


class EngineNotFound(RuntimeError):
    """No engine at the preference, in the environment, on PATH or in a project checkout."""


def _launcher(path: Path) -> list[str]:
    """How to start `path`: a shell script through bash (Windows has no shebangs)."""
    if path.suffix == ".sh" and os.name == "nt":
        bash = shutil.which("bash")
        if not bash:
            raise EngineNotFound(f"{path} needs bash, which is not on PATH")
        return [bash, str(path)]
    return [str(path)]


def _as_engine(candidate: str | os.PathLike[str]) -> list[str] | None:
    p = Path(os.path.expanduser(str(candidate)))
    if p.is_dir():
        p = p / "montage-ai.sh"
    if p.is_file():
        return _launcher(p.resolve())
    found = shutil.which(str(candidate))
    return [found] if found else None


def find_engine(preference: str = "", here: Path | None = None) -> list[str]:
    """The argv prefix that runs the engine.

    Order: the add-on preference (an executable, montage-ai.sh, or the project folder), then
    $MONTAGE_AI_ENGINE, `montage-ai` on PATH, $MONTAGE_AI_HOME/montage-ai.sh, and finally the
    montage-ai.sh of a checkout this add-on sits in (a developer's symlinked extension)."""
    if preference.strip():
        found = _as_engine(preference.strip())
        if not found:
            raise EngineNotFound(f"engine not found at {preference!r} (add-on preferences)")
        return found
    for candidate in (os.environ.get(ENGINE_ENV, ""), "montage-ai"):
        if candidate and (found := _as_engine(candidate)):
            return found
    if os.environ.get(HOME_ENV) and (found := _as_engine(os.environ[HOME_ENV])):
        return found
    here = (here or Path(__file__)).resolve()
    for parent in here.parents:
        if (parent / "montage-ai.sh").is_file():
            return _launcher(parent / "montage-ai.sh")
    raise EngineNotFound("montage-ai is not on PATH: set the engine path in the add-on preferences "
                         "(the montage-ai executable, or the project's montage-ai.sh)")


@dataclass
class EngineRequest:
    """The panel's fields, as the engine's `run` flags."""

    clips: Path
    music: Path
    out: Path
    style: str = "dynamic"
    prompt: str = ""
    duration: float = 0.0          # 0: the music's length
    resolution: str = "1080p"
    aspect: str = "16:9"
    cgpu: bool = False
    upscale: bool = False
    export: tuple[str, ...] = ()
    # Where `--json` goes: "global" (`montage-ai --json run ...`, the engine's flag), "run"
    # (`run ... --json`, as first announced) or "" (an engine without it: read its text output).
    json_flag: str = "global"

    @property
    def json_events(self) -> bool:
        return bool(self.json_flag)

    def next_json_flag(self) -> None:
        """After the engine rejected `--json` where it was: try the other place, then none."""
        self.json_flag = {"global": "run", "run": ""}.get(self.json_flag, "")

    def args(self) -> list[str]:
        """Arguments after the engine's argv prefix: global flags, then `run ...`."""
        return (["--json"] if self.json_flag == "global" else []) + self.run_args()

    def run_args(self) -> list[str]:
        """The `run` subcommand and its flags."""
        args = ["run", "--clips", str(self.clips), "--music", str(self.music), "--out", str(self.out),
                "--style", self.style, "--resolution", self.resolution, "--aspect", self.aspect]
        if self.duration and self.duration > 0:
            args += ["--duration", f"{self.duration:g}"]
        if self.prompt.strip():
            args += ["--prompt", self.prompt.strip()]
        if self.cgpu:
            args.append("--cgpu")
        if self.upscale:
            args.append("--upscale")
        if self.export:
            args += ["--export", ",".join(self.export)]
        if self.json_flag == "run":
            args.append("--json")
        return args

    @property
    def timeline(self) -> Path:
        return self.out / "montage.otio"


def _unsupported_flag(stderr_text: str, flag: str) -> bool:
    """argparse's 'unrecognized arguments: ... --json' (not the usage line that lists it)."""
    return any("unrecognized arguments:" in line and flag in line.split("unrecognized arguments:", 1)[1].split()
               for line in stderr_text.splitlines())


@dataclass
class EngineJob:
    """One engine run in the background. Call `poll()` often (it never blocks); read `state`,
    `tracker.percent`, `tracker.stage`, `tracker.last_messages()`; `cancel()` to stop it."""

    engine: list[str]
    request: EngineRequest
    env: dict[str, str] | None = None
    cwd: Path | None = None
    grace_s: float = 3.0
    state: State = "idle"
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    returncode: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    _proc: subprocess.Popen[bytes] | None = None
    _queue: queue.Queue[tuple[str, str | None]] = field(default_factory=queue.Queue)
    _open_streams: int = 0
    _stderr_tail: list[str] = field(default_factory=list)
    _cancel_at: float = 0.0
    _signals_sent: int = 0
    _messages_at_start: int = 0

    @property
    def argv(self) -> list[str]:
        return [*self.engine, *self.request.args()]

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def timeline(self) -> Path | None:
        """The montage.otio the run wrote (the done event's path, else the --out folder's)."""
        reported = self.tracker.summary.get("timeline")
        for p in (reported, self.request.timeline):
            if p and Path(p).is_file():
                return Path(p)
        return None

    def start(self) -> EngineJob:
        """Start the engine; returns at once."""
        self.request.out.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True   # its own process group: cancel reaches ffmpeg too
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd=self.cwd, env=env, **kwargs)
        self._open_streams = 2
        self._stderr_tail = []
        self._messages_at_start = len(self.tracker.messages)
        for name, pipe in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
            threading.Thread(target=_pump, args=(pipe, name, self._queue), daemon=True,
                             name=f"montage-ai-{name}").start()
        self.state = "running"
        self.started_at = time.monotonic()
        return self

    def poll(self, budget_s: float = 0.02) -> State:
        """Take what the engine said since the last call and check whether it ended. Spends at
        most about `budget_s` on reading, so a chatty engine cannot stall the caller."""
        if self.state != "running" or self._proc is None:
            return self.state
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            try:
                stream, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._open_streams -= 1
            elif stream == "stdout":
                self.tracker.feed_stdout(line)
            else:
                self._stderr_tail = (self._stderr_tail + [line])[-50:]
                self.tracker.feed_stderr(line)
        self._escalate_cancel()
        rc = self._proc.poll()
        if rc is None or self._open_streams > 0:
            return self.state
        self.returncode = rc
        self.finished_at = time.monotonic()
        self._finish(rc)
        return self.state

    def wait(self, timeout_s: float, tick_s: float = 0.05) -> State:
        """Poll until the job ends or `timeout_s` passes (scripts and tests; the UI uses timers)."""
        end = time.monotonic() + timeout_s
        while self.poll() == "running" and time.monotonic() < end:
            time.sleep(tick_s)
        return self.state

    def cancel(self) -> None:
        """Ask the engine to stop (SIGINT: it keeps finished pieces cached), then insist."""
        if self.state != "running" or self._proc is None:
            return
        self._cancel_at = time.monotonic()
        self._signal(0)

    # --- internals ---------------------------------------------------------------------------

    def _finish(self, rc: int) -> None:
        stderr = "\n".join(self._stderr_tail)
        if self._cancel_at:
            self.state = "cancelled"
            self.tracker.messages.append("cancelled")
        elif rc == 0:
            self.tracker.complete()
            self.state = "done"
        elif self.request.json_events and _unsupported_flag(stderr, "--json"):
            # The engine did not take `--json` there: try the other place, then read its bars and
            # summary instead (its usage message is noise for the user).
            self.request.next_json_flag()
            while len(self.tracker.messages) > self._messages_at_start:
                self.tracker.messages.pop()
            self.tracker.error = ""
            if not self.request.json_events:
                self.tracker.messages.append("engine has no --json: reading its text output")
            self.start()
        else:
            if not self.tracker.error:
                last = [l for l in self._stderr_tail if l.strip()]
                self.tracker.error = last[-1].strip() if last else f"engine exited with code {rc}"
            self.state = "failed"

    def _escalate_cancel(self) -> None:
        if not self._cancel_at or self._proc is None or self._proc.poll() is not None:
            return
        waited = time.monotonic() - self._cancel_at
        if waited > self.grace_s * (self._signals_sent):
            self._signal(self._signals_sent)

    def _signal(self, level: int) -> None:
        """0: interrupt, 1: terminate, 2+: kill; the whole process group on POSIX."""
        assert self._proc is not None
        self._signals_sent = level + 1
        try:
            if os.name == "nt":
                if level == 0:
                    self._proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
                else:
                    self._proc.kill()
                return
            sig = (signal.SIGINT, signal.SIGTERM)[level] if level < 2 else signal.SIGKILL
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _pump(pipe, name: str, out: queue.Queue) -> None:
    """Reader thread: split the pipe on newlines and carriage returns (tqdm redraws with \\r)."""
    buf = b""
    try:
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                break
            buf += chunk
            buf = buf.replace(b"\r\n", b"\n")
            *lines, buf = buf.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                out.put((name, line.decode("utf-8", "replace")))
        if buf:
            out.put((name, buf.decode("utf-8", "replace")))
    finally:
        out.put((name, None))
        try:
            pipe.close()
        except OSError:
            pass
