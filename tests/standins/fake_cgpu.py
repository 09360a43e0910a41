"""A fake `cgpu` executable for subprocess tests: `cgpu serve`, and `run`/`copy`/`status`
against a local folder standing in for the Colab runtime.

Why: code that drives cgpu as a child process (waits for its startup line, checks /health,
handles a taken port; runs remote commands, uploads, downloads through base64) must be tested
against a real executable with the real command line, output and exit codes; the real Node tool
cannot be installed here. The HTTP side is `CgpuServeStandIn`, run in the foreground.

Behaviour copied from cgpu (commander + chalk; shared/notes/cgpu.md):
- `cgpu --help` / `cgpu help` / `cgpu serve --help`: help on stdout, exit 0.
- `cgpu` alone: help on stderr, exit 1. `cgpu --version`: `error: unknown option '--version'`,
  exit 1. Unknown commands and options: `error: ...`, exit 1.
- `cgpu serve [-H/--host H] [-p/--port P] [--default-model M] [--timeout MS] [--gemini-bin B]
  [--workspace-dir D]`: prints `cgpu serve listening on http://H:P (default model: M)` once
  listening (the configured port, as given), serves until SIGTERM/SIGINT, then prints
  `cgpu serve shutdown complete` and exits 0. A taken port prints
  `listen EADDRINUSE: address already in use H:P` on stderr (red when chalk would colour it:
  a TTY or FORCE_COLOR) and exits 1.
- A missing gemini binary is only noticed per request (500 gemini_cli_missing), as in cgpu.
- `run`, `copy`, `status` are stood in only when FAKE_CGPU_ROOT names the runtime's `/`
  (ROOT/content is /content); otherwise they, like connect and logout, exit 1.
  - Without `$CGPU_CONFIG_DIR/state/session.json` every command waits forever for a browser login.
  - `run`: prints `Authenticated as <Name> <email>` first, feeds the command to a fresh bash
    through stdin like cgpu's terminal (a command reading stdin eats the control lines and the
    exit code is lost), starts in ROOT (`/content` in the command is rewritten to
    ROOT/content), merges stderr into stdout, strips `\r`, passes the exit code through, and
    takes its own flags (-v, --cpu, --tpu, --new-runtime) from anywhere in argv. The remote
    PATH is FAKE_CGPU_REMOTE_PATH.
  - `copy <local> [remote]`: into ROOT (leading `/` and `..` stripped, parent must exist),
    prints `Uploaded: <name> \u2192 /<path> (<size>)`. There is no download command.
  - `status`: `Authenticated as Test User. Eligible GPUs: T4`; assigns no runtime.

Stand-in knobs (environment):
- serve: FAKE_CGPU_REPLY (answer text, default "{}"), FAKE_CGPU_DELAY_S (seconds per answer).
- Colab faults: FAKE_CGPU_NO_GPU (run/copy exit 1 silently: no capacity), FAKE_CGPU_DROP_MATCH
  (the first run containing it drops its websocket while the remote command keeps running),
  FAKE_CGPU_UPLOAD_LIMIT (bytes; above it copy fails with 413), FAKE_CGPU_CORRUPT_B64 (one
  base64 character of the download flipped), FAKE_CGPU_HANG_MATCH (a run containing it never
  ends). FAKE_CGPU_LOG: append each call's argv (JSON) to this file.
- Hostile modes, for the client's bounds: FAKE_CGPU_DETACH_PIDS=<file> (every call leaves a
  child in a session of its own holding stdout and stderr, `setsid sleep 600 &`, and appends its
  pid to the file), FAKE_CGPU_HANG_AFTER_STATUS (status answers, every run and copy hangs
  forever), FAKE_CGPU_PART_LINE=truncate|garbage|deep|huge (the remote script's MONTAGE_PART
  lines arrive cut short, as binary junk, nested 1,500 deep, or 2 MB long),
  FAKE_CGPU_GARBAGE (every command prints junk, invalid UTF-8 and escape codes, and exits 0).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["install_fake_cgpu", "install_fake_colab", "FakeColab", "free_port", "main", "DEFAULT_MODEL",
           "detached_pids", "alive", "still_alive", "leftover_processes", "kill_leftovers"]

DEFAULT_MODEL = "gemini-2.0-flash"  # cgpu 0.1.4's --default-model default

_MAIN_HELP = """\
Usage: cgpu [options] [command]

Cloud GPU CLI

Options:
  -c, --config <path>  path to config file
  --force-login        ignore cached session
  -h, --help           display help for command

Commands:
  connect [options]    Authenticate and open a terminal on a Colab GPU runtime
  run [options] <command...>  Run a command on a Colab runtime and stream the output
  copy [options] <source> [destination]  Upload a local file to your Colab runtime
  status               Check whether the current session can reach Colab APIs
  logout               Forget cached credentials
  serve [options]      Start an OpenAI-compatible API server backed by Google Gemini
  help [command]       display help for command
"""

_SERVE_HELP = f"""\
Usage: cgpu serve [options]

Start an OpenAI-compatible API server backed by Google Gemini

Options:
  -p, --port <number>      Port to listen on (default: "8080")
  -H, --host <string>      Host to listen on (default: "127.0.0.1")
  --gemini-bin <path>      Path to the gemini executable (default: "gemini")
  --default-model <model>  Default model to use if not specified (default: "{DEFAULT_MODEL}")
  --timeout <ms>           Request timeout in milliseconds (default: "120000")
  --workspace-dir <path>   Directory prefix for temporary workspaces
  -h, --help               display help for command
"""

_SERVE_OPTIONS = {
    "-p": "port", "--port": "port", "-H": "host", "--host": "host",
    "--gemini-bin": "gemini_bin", "--default-model": "default_model",
    "--timeout": "timeout", "--workspace-dir": "workspace_dir",
}
_GLOBAL_OPTIONS = {"-c": True, "--config": True, "--force-login": False}
_OTHER_COMMANDS = ("connect", "run", "copy", "status", "logout")


def _red(message: str) -> str:
    """chalk.red: coloured only when chalk detects colour support (TTY or FORCE_COLOR)."""
    force = os.environ.get("FORCE_COLOR")
    colour = force not in (None, "0", "false") if force is not None else sys.stdout.isatty()
    return f"\x1b[31m{message}\x1b[39m" if colour else message


def _fail(message: str) -> int:
    """A commander usage error (plain text) -> exit 1."""
    print(message, file=sys.stderr, flush=True)
    return 1


def _serve(argv: list[str]) -> int:
    opts = {"port": "8080", "host": "127.0.0.1", "gemini_bin": "gemini",
            "default_model": DEFAULT_MODEL, "timeout": "120000", "workspace_dir": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            print(_SERVE_HELP, end="", flush=True)
            return 0
        name, value = (arg.split("=", 1) + [None])[:2] if arg.startswith("--") else (arg, None)
        if name not in _SERVE_OPTIONS:
            if arg.startswith("-"):
                return _fail(f"error: unknown option '{arg}'")
            return _fail(f"error: too many arguments for 'serve'. Expected 0 arguments but got {len(argv) - i}.")
        if value is None:
            if i + 1 >= len(argv):
                return _fail(f"error: option '{name}' argument missing")
            value, i = argv[i + 1], i + 1
        opts[_SERVE_OPTIONS[name]] = value
        i += 1

    port = _parse_int(opts["port"])
    if port is None or not 0 <= port <= 65535:
        shown = f"type number ({port if port is not None else 'NaN'})"
        print(_red(f"options.port should be >= 0 and < 65536. Received {shown}."), file=sys.stderr, flush=True)
        return 1
    timeout_ms = _parse_int(opts["timeout"])
    if timeout_ms is None or timeout_ms < 1:
        timeout_ms = 1  # setTimeout(NaN or <1) fires after 1 ms: every request times out

    if __package__:
        from .cgpu_serve import CgpuServeStandIn, Text
    else:  # run by the installed script, which imports this file as a top-level module
        from cgpu_serve import CgpuServeStandIn, Text  # type: ignore[no-redef]

    server = CgpuServeStandIn(
        default_text=os.environ.get("FAKE_CGPU_REPLY", "{}"),
        server_timeout_s=timeout_ms / 1000.0,
        default_model=opts["default_model"],
        gemini_bin=opts["gemini_bin"],
        host=opts["host"],
        port=port,
    )
    delay = float(os.environ.get("FAKE_CGPU_DELAY_S", "0") or 0)
    if delay > 0:
        default = server.default_text
        server.next_reply = lambda: Text(default, delay)  # type: ignore[method-assign]
    try:
        server.bind()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"listen EADDRINUSE: address already in use {opts['host']}:{port}"
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = f"listen EADDRNOTAVAIL: address not available {opts['host']}:{port}"
        else:
            message = f"listen {errno.errorcode.get(exc.errno or 0, 'EINVAL')}: {exc.strerror} {opts['host']}:{port}"
        print(_red(message), file=sys.stderr, flush=True)
        return 1

    httpd = server.bind()

    def shutdown(signum: int, frame: object) -> None:
        # server.close(): stop accepting and let the serve loop end. shutdown() must not run
        # on the thread that is inside serve_forever, hence the helper thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"cgpu serve listening on http://{opts['host']}:{port} "
          f"(default model: {opts['default_model']})", flush=True)
    httpd.serve_forever(poll_interval=0.01)
    server.stop()
    print("cgpu serve shutdown complete", flush=True)
    return 0


def _parse_int(text: str) -> int | None:
    """JavaScript parseInt(text, 10): leading sign and digits, else None (NaN)."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- run, copy, status

_COLAB_COMMANDS = ("run", "copy", "status")
_OWN_FLAGS = {"-v", "--verbose", "--cpu", "--tpu", "--new-runtime", "--force-login"}
_PREAMBLE = "Authenticated as Test User <test.user@example.com>"
_SUPPRESSED = {"PS1=", "stty -echo", "stty echo", "exit", "logout"}
_DROPPED = "Command finished without reporting an exit code; assuming failure (exit code 1)."


def _colab(command: str, rest: list[str]) -> int:
    """`cgpu run|copy|status` against the local runtime folder, with the configured faults."""
    _log([command, *rest])
    if not _session_ok():
        _login_forever()
    _leave_detached_child()
    if os.environ.get("FAKE_CGPU_GARBAGE"):
        return _print_garbage()
    flags, args = _split_flags(rest)
    verbose = bool(flags & {"-v", "--verbose"})
    if command == "status":
        print("Authenticated as Test User. Eligible GPUs: T4", flush=True)
        return 0
    if os.environ.get("FAKE_CGPU_HANG_AFTER_STATUS"):
        print(_PREAMBLE, flush=True)
        _sleep_forever()
    if os.environ.get("FAKE_CGPU_NO_GPU"):
        print(_PREAMBLE, flush=True)
        return _red_exit("Colab has no GPU capacity available for this account right now") if verbose else 1
    return _run(args, verbose) if command == "run" else _copy(args)


def _runtime_root() -> Path:
    return Path(os.environ["FAKE_CGPU_ROOT"])


def _log(argv: list[str]) -> None:
    path = os.environ.get("FAKE_CGPU_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(argv) + "\n")


def _red_exit(message: str) -> int:
    print(_red(message), file=sys.stderr, flush=True)
    return 1


def _session_ok() -> bool:
    base = os.environ.get("CGPU_CONFIG_DIR") or os.path.expanduser("~/.config/cgpu")
    return (Path(base) / "state" / "session.json").is_file()


def _sleep_forever() -> None:
    while True:
        time.sleep(3600)


def _login_forever() -> None:
    """What cgpu does without a session: print a login URL and wait for a browser, forever."""
    print("Open this URL in your browser to authorize cgpu: https://accounts.google.com/o/oauth2/v2/auth?...",
          flush=True)
    _sleep_forever()


def _leave_detached_child() -> None:
    """FAKE_CGPU_DETACH_PIDS: a grandchild in a session of its own (`setsid sleep 600 &`) that
    keeps our stdout and stderr open after we exit; its pid goes to the file."""
    pids = os.environ.get("FAKE_CGPU_DETACH_PIDS")
    if not pids:
        return
    child = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)
    with open(pids, "a") as fh:
        fh.write(f"{child.pid}\n")


def _print_garbage() -> int:
    """FAKE_CGPU_GARBAGE: junk instead of any answer (invalid UTF-8, escape codes, NULs, a 2 MB
    line without a newline), then exit 0 as if all went well."""
    out = sys.stdout.buffer
    out.write(b"\xff\xfe\x00garbage \x1b[31mred\x1b[0m \x1b]0;title\x07\r\n")
    out.write(b"MONTAGE_PART {\"name\": \x80\x81\n__MONTAGE_B64_BEGIN__\nB:@@@@\n")
    out.write(os.urandom(512) + b"\n")
    out.write(b"A" * (2 * 1024 * 1024))
    out.flush()
    return 0


def _split_flags(args: list[str]) -> tuple[set[str], list[str]]:
    """cgpu (commander) takes its own flags from anywhere before `--`."""
    flags: set[str] = set()
    rest: list[str] = []
    literal = False
    for a in args:
        if literal:
            rest.append(a)
        elif a == "--":
            literal = True
        elif a in _OWN_FLAGS:
            flags.add(a)
        else:
            rest.append(a)
    return flags, rest


def _run(args: list[str], verbose: bool) -> int:
    if not args:
        return _red_exit("No command provided. Pass the command after 'run'.")
    command = " ".join([args[0], *(shlex.quote(a) for a in args[1:])])   # quoteFirstArg: false
    print(_PREAMBLE, flush=True)
    if verbose:
        print(f"Running remote command on Colab GPU (T4): {command}", flush=True)
    hang = os.environ.get("FAKE_CGPU_HANG_MATCH")
    if hang and hang in command:
        _sleep_forever()                                # a remote command that never ends, no keep-alive
    root = _runtime_root()
    marker = "__COLAB_CLI_EXIT__" + uuid.uuid4().hex
    payload = "\n".join(["stty -echo 2>/dev/null", "PS1=", command.replace("/content", str(root / "content")),
                         "__COLAB_CLI_STATUS=$?", "stty echo 2>/dev/null",
                         f"printf '{marker}:%s\\n' \"$__COLAB_CLI_STATUS\"", "exit", ""]).encode()
    env = dict(os.environ, PATH=os.environ.get("FAKE_CGPU_REMOTE_PATH", os.environ["PATH"]))
    drop = os.environ.get("FAKE_CGPU_DROP_MATCH")
    dropped_flag = root / ".dropped-once"
    if drop and drop in command and not dropped_flag.exists():
        dropped_flag.touch()
        proc = subprocess.Popen(["bash"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        proc.stdin.write(payload)                       # type: ignore[union-attr]
        proc.stdin.close()                              # type: ignore[union-attr]  # keeps running on the "runtime"
        time.sleep(0.3)
        print(_DROPPED, file=sys.stderr, flush=True)
        return 1
    proc = subprocess.Popen(["bash"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    proc.stdin.write(payload)                           # type: ignore[union-attr]
    proc.stdin.close()                                  # type: ignore[union-attr]
    code = _relay(proc, marker)
    proc.wait()
    if code is None:
        print(_DROPPED, file=sys.stderr, flush=True)
        return 1
    return code


def _relay(proc: subprocess.Popen, marker: str) -> int | None:
    """Print the terminal's output as cgpu does (minus its control lines); the exit code."""
    code, corrupt = None, bool(os.environ.get("FAKE_CGPU_CORRUPT_B64"))
    for raw in proc.stdout:                             # type: ignore[union-attr]
        line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
        if line.startswith("/# "):
            line = line[3:]
        if line.strip().startswith(marker + ":"):
            code = int(line.strip().split(":", 1)[1])
            continue
        if line.strip() in _SUPPRESSED or not line:
            continue
        if corrupt and line.startswith("B:") and len(line) > 10:
            line = line[:6] + ("A" if line[6] != "A" else "B") + line[7:]
            corrupt = False
        if line.startswith("MONTAGE_PART "):
            line = _spoil_part_line(line)
        print(line, flush=True)
    return code


def _spoil_part_line(line: str) -> str:
    """FAKE_CGPU_PART_LINE: the remote script's result line as a hostile runtime might send it."""
    mode = os.environ.get("FAKE_CGPU_PART_LINE", "")
    if mode == "truncate":
        return line[: max(len("MONTAGE_PART "), len(line) // 2)]
    if mode == "garbage":
        return "MONTAGE_PART \x00\ufffd{\"name\": [}\x1b[2J" + "\ufffd" * 40
    if mode == "deep":
        return "MONTAGE_PART " + "[" * 1500 + "]" * 1500
    if mode == "huge":
        return "MONTAGE_PART {\"name\": \"" + "x" * (2 * 1024 * 1024) + "\"}"
    return line


def _fmt_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value, units, i = n / 1024, ["KB", "MB", "GB", "TB"], 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{value:.1f} {units[i]}"


def _copy(args: list[str]) -> int:
    if not args:
        return _red_exit("error: missing required argument 'source'")
    src = Path(args[0])
    print(_PREAMBLE, flush=True)
    if not src.is_file():
        return _red_exit(f"ENOENT: no such file or directory, stat '{src.resolve()}'")
    segments = [s for s in (args[1] if len(args) > 1 else f"content/{src.name}").replace("\\", "/").split("/")
                if s and s != ".."]
    rel = "/".join(segments) or "content"
    size = src.stat().st_size
    if size > int(os.environ.get("FAKE_CGPU_UPLOAD_LIMIT", str(384 * 1024 * 1024))):
        return _red_exit("Upload failed (413 Request Entity Too Large)")
    target = _runtime_root() / rel
    if not target.parent.is_dir():
        return _red_exit(f"Upload failed (404 Not Found): No such directory: {target.parent.relative_to(_runtime_root())}")
    shutil.copyfile(src, target)
    print(f"Uploaded: {src.name} \u2192 /{rel} ({_fmt_bytes(size)})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the fake `cgpu` executable."""
    args = list(sys.argv[1:] if argv is None else argv)
    while args and args[0] in _GLOBAL_OPTIONS or (args and args[0].startswith("--config=")):
        takes_value = _GLOBAL_OPTIONS.get(args[0], False)
        args = args[2:] if takes_value else args[1:]
    if not args:
        print(_MAIN_HELP, end="", file=sys.stderr, flush=True)
        return 1
    command, rest = args[0], args[1:]
    if command in ("-h", "--help"):
        print(_MAIN_HELP, end="", flush=True)
        return 0
    if command == "help":
        if rest and rest[0] == "serve":
            print(_SERVE_HELP, end="", flush=True)
        else:
            print(_MAIN_HELP, end="", flush=True)
        return 0
    if command.startswith("-"):
        return _fail(f"error: unknown option '{command}'")
    if command == "serve":
        return _serve(rest)
    if command in _COLAB_COMMANDS and os.environ.get("FAKE_CGPU_ROOT"):
        return _colab(command, rest)
    if command in _OTHER_COMMANDS:
        print(_red(f"fake cgpu: only `cgpu serve` is stood in; `cgpu {command}` is not"),
              file=sys.stderr, flush=True)
        return 1
    return _fail(f"error: unknown command '{command}'")


def install_fake_cgpu(bin_dir: Path, gemini: bool = True) -> Path:
    """Write an executable `cgpu` (and, when `gemini`, a dummy `gemini`) into `bin_dir`.

    Put `bin_dir` first on PATH for the code under test (and set FAKE_CGPU_ROOT for run, copy
    and status). Returns the path of `cgpu`.
    The dummy gemini exits 0: cgpu serve only needs it to exist; answers come from
    FAKE_CGPU_REPLY.
    """
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    cgpu = bin_dir / "cgpu"
    cgpu.write_text(
        f"#!{sys.executable}\n"
        '"""Fake cgpu (tests/standins/fake_cgpu.py): serve, and run/copy/status with FAKE_CGPU_ROOT."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(here)!r})\n"
        "from fake_cgpu import main\n"
        "sys.exit(main())\n"
    )
    _make_executable(cgpu)
    gemini_path = bin_dir / "gemini"
    if gemini:
        gemini_path.write_text("#!/bin/sh\nexit 0\n")
        _make_executable(gemini_path)
    elif gemini_path.exists():
        gemini_path.unlink()
    return cgpu


def _make_executable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def free_port() -> int:
    """A port that was free a moment ago (the fake, like cgpu, prints the port it was given)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- test-side helpers


@dataclass
class FakeColab:
    """An installed stand-in with its runtime: `env` is what the code under test needs."""

    root: Path           # the runtime's "/"
    bin: Path            # holds `cgpu`; first on PATH in env
    session: Path        # the login file; remove it to make every call wait for a login
    log: Path            # one JSON argv per call
    env: dict[str, str]


def install_fake_colab(base: Path, ffmpeg: str) -> FakeColab:
    """The stand-in in base/bin, a logged-in config dir, an empty runtime (base/runtime) whose
    PATH has `python3` (this interpreter, venv included) and `ffmpeg`."""
    bin_dir, root, remote_bin, conf = (base / n for n in ("bin", "runtime", "remote-bin", "cgpu-config"))
    for d in (root / "content", remote_bin, conf / "state"):
        d.mkdir(parents=True)
    install_fake_cgpu(bin_dir, gemini=False)
    python3 = remote_bin / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')   # a symlink would lose the venv
    _make_executable(python3)
    (remote_bin / "ffmpeg").symlink_to(ffmpeg)
    session = conf / "state" / "session.json"
    session.write_text('{"refresh_token": "stand-in"}')
    log = base / "cgpu-calls.jsonl"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(base / "home"),
           "CGPU_CONFIG_DIR": str(conf), "FAKE_CGPU_ROOT": str(root), "FAKE_CGPU_LOG": str(log),
           "FAKE_CGPU_REMOTE_PATH": f"{remote_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    return FakeColab(root=root, bin=bin_dir, session=session, log=log, env=env)


def detached_pids(pid_file: Path) -> list[int]:
    """The pids FAKE_CGPU_DETACH_PIDS recorded."""
    return [int(x) for x in pid_file.read_text().split()] if pid_file.exists() else []


def alive(pid: int) -> bool:
    """Is `pid` a running process (a zombie waiting for a reaper does not count)?"""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def still_alive(pids: list[int], grace_s: float = 3.0) -> list[int]:
    """Those of `pids` still running after `grace_s`: a SIGKILL is delivered asynchronously, so
    a process killed a moment ago may take a few milliseconds (longer on a loaded machine) to end."""
    deadline = time.monotonic() + grace_s
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def leftover_processes(root: Path) -> list[int]:
    """Live processes started by the stand-in for the runtime at `root` (they carry
    FAKE_CGPU_ROOT=root in their environment): the fake itself, its shells, detached children."""
    needle = f"FAKE_CGPU_ROOT={root}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(int(entry)):
            found.append(int(entry))
    return found


def kill_leftovers(root: Path) -> list[int]:
    """SIGKILL what `leftover_processes` finds after a short grace (test teardown: a failing
    test leaks nothing); returns what had to be killed."""
    pids = still_alive(leftover_processes(root))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids


if __name__ == "__main__":
    sys.exit(main())
