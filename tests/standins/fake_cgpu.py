"""A fake `cgpu` executable that implements only `cgpu serve`, for subprocess tests.

Why: code that starts and stops `cgpu serve` as a child process (waits for its startup line,
checks /health, handles a taken port) must be tested against a real executable with the real
command line, output and exit codes; the real Node tool cannot be installed here. The HTTP side
is `CgpuServeStandIn`, run in the foreground.

Behaviour copied from cgpu (commander + chalk):
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
- The other real subcommands (connect, run, copy, status, logout) are not stood in: exit 1.

Stand-in knobs (environment): FAKE_CGPU_REPLY (answer text, default "{}"),
FAKE_CGPU_DELAY_S (seconds each answer takes, default 0).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import stat
import sys
import threading
from pathlib import Path

__all__ = ["install_fake_cgpu", "free_port", "main", "DEFAULT_MODEL"]

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
    if command in _OTHER_COMMANDS:
        print(_red(f"fake cgpu: only `cgpu serve` is stood in; `cgpu {command}` is not"),
              file=sys.stderr, flush=True)
        return 1
    return _fail(f"error: unknown command '{command}'")


def install_fake_cgpu(bin_dir: Path, gemini: bool = True) -> Path:
    """Write an executable `cgpu` (and, when `gemini`, a dummy `gemini`) into `bin_dir`.

    Put `bin_dir` first on PATH for the code under test. Returns the path of `cgpu`.
    The dummy gemini exits 0: cgpu serve only needs it to exist; answers come from
    FAKE_CGPU_REPLY.
    """
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    cgpu = bin_dir / "cgpu"
    cgpu.write_text(
        f"#!{sys.executable}\n"
        '"""Fake cgpu (tests/standins/fake_cgpu.py): only `serve` is implemented."""\n'
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


if __name__ == "__main__":
    sys.exit(main())
