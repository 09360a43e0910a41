"""Run `cgpu serve` (Gemini over HTTP) on the user's host as a background process.

The Creative Director talks to Gemini through `cgpu serve`, a Node CLI that must run on the
user's machine (it calls the logged-in `gemini` CLI). Users should not need a second terminal
for it, so this module starts it detached (own session, output appended to a log under
`cache_dir/cgpu`), remembers its pid in a pid file, and answers "is it up?" for `doctor`, the
director and the web UI. Every failure is a one-line MontageError telling the user what to do.

Only `GET /health` is used here: it is the one route of `cgpu serve` that costs no Gemini quota.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests
from pydantic import BaseModel

from montage_ai.errors import MontageError
from montage_ai.settings import Settings

PID_NAME = "serve.pid"
LOG_NAME = "serve.log"
META_NAME = "serve.json"
TERM_GRACE_S = 5.0  # cgpu serve closes its listener on SIGTERM; give it this long before SIGKILL
_POLL_S = 0.2
LOG_ROTATE_BYTES = 5 * 1024 * 1024

# Popen objects of servers started by this Python process: kept so they can be reaped (no zombies,
# no "subprocess still running" ResourceWarning) when stop() ends them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ServeStatus(BaseModel):
    """What we know about `cgpu serve`: enough for a doctor line or a UI badge."""

    running: bool
    healthy: bool
    pid: int | None = None
    host: str
    port: int
    url: str  # base URL a client on this machine uses (the OpenAI base_url is url + "/v1")
    log_path: Path
    message: str  # one human line
    external: bool = False  # answers /health but was not started by montage-ai (no pid file)


# --------------------------------------------------------------------------- paths and helpers


def _state_dir(settings: Settings) -> Path:
    return Path(settings.cache_dir) / "cgpu"


def _pid_path(settings: Settings) -> Path:
    return _state_dir(settings) / PID_NAME


def _log_path(settings: Settings) -> Path:
    return _state_dir(settings) / LOG_NAME


def _meta_path(settings: Settings) -> Path:
    return _state_dir(settings) / META_NAME


def _probe_host(host: str) -> str:
    """A server bound to every interface is reached through loopback from here."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _base_url(host: str, port: int) -> str:
    return f"http://{_hostport(_probe_host(host), port)}"


def _read_pid(settings: Settings) -> int | None:
    try:
        text = _pid_path(settings).read_text().strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _read_meta(settings: Settings) -> dict:
    try:
        meta = json.loads(_meta_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _clear_state(settings: Settings) -> None:
    for path in (_pid_path(settings), _meta_path(settings)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie.

    Only servers we hold a Popen for are reaped here: a blind waitpid could steal the exit status
    of another subprocess of this Python process (an ffmpeg run) whose pid a stale file names.
    """
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _looks_like_cgpu(pid: int) -> bool:
    """Guard against a stale pid file whose pid now belongs to an unrelated program."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    return b"cgpu" in cmdline


def _our_pid(settings: Settings) -> int | None:
    """The pid from the pid file if that process is still our `cgpu serve`; clears stale files."""
    pid = _read_pid(settings)
    if pid is None:
        if _pid_path(settings).exists():
            _clear_state(settings)
        return None
    if _alive(pid) and _looks_like_cgpu(pid):
        return pid
    _clear_state(settings)
    return None


def _log_tail(path: Path, lines: int = 6, width: int = 400) -> str:
    """The last lines of the log on one line, for an error message."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("--- ")]
    tail = " | ".join(kept[-lines:])
    return tail if len(tail) <= width else "..." + tail[-width:]


def _node_hint() -> str:
    """Why `cgpu` may be missing: no Node, or a Node older than 18."""
    node = shutil.which("node")
    if not node:
        return "Node.js 18+ is needed and `node` is not on PATH: install Node first"
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL
        )
        version = (out.stdout or out.stderr).strip() or "unknown version"
    except (OSError, subprocess.TimeoutExpired):
        return "Node.js 18+ is needed; `node --version` did not answer"
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return f"Node.js 18+ is needed; found node {version}"
    if major < 18:
        return f"Node.js 18+ is needed; found node {version}, upgrade it first"
    return f"found node {version}"


def _port_problem(host: str, port: int) -> str | None:
    """Why we cannot listen on host:port (None when free), named for the user.

    Checked up front so the user reads "port 8080 is taken" instead of a Node EADDRINUSE trace.
    """
    try:
        infos = socket.getaddrinfo(host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return (
            f"cannot start cgpu serve on {host}:{port}: the host name does not resolve ({exc.strerror}); "
            "set CGPU_HOST to 127.0.0.1 (or 0.0.0.0 to serve a container)"
        )
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        # Same option Node sets, so a port left in TIME_WAIT is not reported as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            other = port + 1 if port < 65535 else 8081
            return (
                f"port {port} on {host} is already in use by another program; stop it or pick "
                f"another port with CGPU_PORT (e.g. CGPU_PORT={other})"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return (
                f"cannot start cgpu serve on {host}:{port}: {host} is not an address of this machine; "
                "set CGPU_HOST to 127.0.0.1 (or 0.0.0.0 to serve a container)"
            )
        if exc.errno == errno.EACCES:
            return f"not allowed to listen on port {port} (ports below 1024 need root); choose another with CGPU_PORT"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    finally:
        sock.close()
    return None


def _kill_group(pid: int, grace_s: float | None = None) -> bool:
    """SIGTERM the server's process group (cgpu may have a gemini child), SIGKILL if it lingers.

    Returns True when the process is gone.
    """
    grace = TERM_GRACE_S if grace_s is None else grace_s

    def signal_group(sig: int) -> None:
        try:
            os.killpg(pid, sig)  # start_new_session=True made the pid its group id
        except ProcessLookupError:
            pass
        except PermissionError:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def wait_gone(limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.05)
        return not _alive(pid)

    if not _alive(pid):
        signal_group(signal.SIGKILL)  # leader gone; leftovers of its group must not linger
        _reap(pid)
        return True
    signal_group(signal.SIGTERM)
    gone = wait_gone(grace)
    signal_group(signal.SIGKILL)  # also ends any gemini child left in the group
    if not gone:
        gone = wait_gone(3.0)
    _reap(pid)
    return gone


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass


def _status_for(
    settings: Settings, host: str, port: int, *, running: bool, healthy: bool, pid: int | None,
    message: str, external: bool = False,
) -> ServeStatus:
    return ServeStatus(
        running=running, healthy=healthy, pid=pid, host=host, port=port, url=_base_url(host, port),
        log_path=_log_path(settings), message=message, external=external,
    )


# --------------------------------------------------------------------------------- public API


def health(host: str, port: int, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Ask `GET /health` (free: no Gemini call) and explain a failure in one line.

    Used by doctor and the director to decide whether cgpu serve can be used right now.
    """
    probe = _probe_host(host)
    where = _hostport(probe, port)
    url = f"http://{where}/health"
    session = requests.Session()
    session.trust_env = False  # never route a local server through HTTP(S)_PROXY
    try:
        resp = session.get(url, timeout=(timeout_s, timeout_s))
    except requests.exceptions.ConnectTimeout:
        return False, f"no answer from {where} within {timeout_s:g} s (connect timeout)"
    except requests.exceptions.ReadTimeout:
        return False, f"{where} accepted the connection but /health did not answer within {timeout_s:g} s"
    except requests.exceptions.ConnectionError as exc:
        return False, _connection_reason(exc, probe, port, where)
    except requests.exceptions.RequestException as exc:
        return False, f"cannot reach {url}: {type(exc).__name__}"
    finally:
        session.close()
    if resp.status_code != 200:
        return False, f"{where} answered /health with HTTP {resp.status_code} (not cgpu serve?)"
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") != "ok":
        return False, f'{where} answered /health without {{"status":"ok"}} (not cgpu serve?)'
    return True, f"cgpu serve answers at http://{where}"


def _connection_reason(exc: BaseException, host: str, port: int, where: str) -> str:
    """Turn requests' nested connection errors into the few cases a user can act on."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ConnectionRefusedError) or getattr(err, "errno", None) == errno.ECONNREFUSED:
            return f"connection refused at {where}"
        if isinstance(err, socket.gaierror):
            return f"cannot resolve host {host}"
        for nxt in (err.__cause__, err.__context__, getattr(err, "reason", None), *getattr(err, "args", ())):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    text = str(exc)
    if "refused" in text.lower():
        return f"connection refused at {where}"
    if "resolve" in text.lower() or "Name or service not known" in text:
        return f"cannot resolve host {host}"
    if "unreachable" in text.lower():
        return f"network unreachable for {where}"
    return f"cannot connect to {where}"


def status(settings: Settings) -> ServeStatus:
    """Is our `cgpu serve` up and answering, or is someone else's answering at the address?"""
    pid = _our_pid(settings)
    meta = _read_meta(settings) if pid else {}
    host = str(meta.get("host") or settings.cgpu_host)
    port = int(meta.get("port") or settings.cgpu_port)
    if pid is not None:
        ok, reason = health(host, port)
        if ok:
            msg = f"cgpu serve is running (pid {pid}) and healthy at {_base_url(host, port)}"
        else:
            msg = f"cgpu serve is running (pid {pid}) but /health fails: {reason}; see {_log_path(settings)}"
        return _status_for(settings, host, port, running=True, healthy=ok, pid=pid, message=msg)
    ok, reason = health(host, port)
    if ok:
        return _status_for(
            settings, host, port, running=True, healthy=True, pid=None, external=True,
            message=f"something answers /health at {_base_url(host, port)} but montage-ai did not start it "
            "(running externally)",
        )
    return _status_for(
        settings, host, port, running=False, healthy=False, pid=None,
        message=f"cgpu serve is not running ({reason}); start it with `./montage-ai.sh cgpu-start` "
        f"(runs `cgpu serve --host {host} --port {port} --default-model {settings.cgpu_model}`)",
    )


DOCKER_BRIDGE = "docker0"


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface (Linux), or None."""
    import fcntl
    import struct

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
    except OSError:
        return None
    return socket.inet_ntoa(packed[20:24])


def bind_address(settings: Settings) -> str:
    """Where `cgpu-start` listens: CGPU_BIND, else CGPU_HOST. `docker` is the Docker bridge's
    address: containers reach it as host.docker.internal (host-gateway), the network does not.
    cgpu serve checks no credentials, so it must never listen on a public address."""
    bind = settings.cgpu_bind.strip()
    if bind.lower() != "docker":
        return bind or settings.cgpu_host
    address = interface_ipv4(DOCKER_BRIDGE)
    if address is None:
        raise MontageError(f"CGPU_BIND=docker: no {DOCKER_BRIDGE} interface here (is Docker running? On Docker "
                           "Desktop leave CGPU_BIND empty: host.docker.internal reaches the host's 127.0.0.1)")
    return address


def start(settings: Settings, wait_s: float = 30.0) -> ServeStatus:
    """Start `cgpu serve` detached and wait until /health answers, or explain why it cannot."""
    host, port, model = bind_address(settings), int(settings.cgpu_port), settings.cgpu_model
    pid = _our_pid(settings)
    if pid is not None:
        meta = _read_meta(settings)
        old_host, old_port = str(meta.get("host") or host), int(meta.get("port") or port)
        ok, _ = health(old_host, old_port)
        if ok:
            return _status_for(
                settings, old_host, old_port, running=True, healthy=True, pid=pid,
                message=f"cgpu serve is already running (pid {pid}) at {_base_url(old_host, old_port)}",
            )
        # Ours but not answering (hung, or half started): replace it rather than run two.
        _kill_group(pid)
        _clear_state(settings)

    port_problem = _port_problem(host, port)
    if port_problem is not None:
        ok, _ = health(host, port, timeout_s=1.0)
        if ok:  # a cgpu serve the user started by hand: use it, do not fight it for the port
            return _status_for(
                settings, host, port, running=True, healthy=True, pid=None, external=True,
                message=f"cgpu serve is already answering at {_base_url(host, port)} "
                "(started outside montage-ai); using it",
            )

    cgpu = shutil.which("cgpu")
    if not cgpu:
        raise MontageError(f"`cgpu` is not on PATH: install it with `npm install -g cgpu` ({_node_hint()})")
    if not shutil.which("gemini"):
        raise MontageError(
            "the Gemini CLI (`gemini`) is not on PATH, and cgpu serve runs it for every request: "
            "install it with `npm install -g @google/gemini-cli`, then run `gemini` once to log in"
        )
    if port_problem is not None:
        raise MontageError(port_problem)

    state = _state_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    log_path = _log_path(settings)
    try:  # keep one old log; the server runs for days and logs every failed Gemini call
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_name(LOG_NAME + ".1"))
    except OSError:
        pass
    cmd = [cgpu, "serve", "--host", host, "--port", str(port), "--default-model", model]
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise MontageError(f"cannot run {cgpu}: {exc.strerror or exc}") from None
    _CHILDREN[proc.pid] = proc
    _pid_path(settings).write_text(f"{proc.pid}\n")
    _meta_path(settings).write_text(
        json.dumps({"pid": proc.pid, "host": host, "port": port, "model": model, "started": time.time()})
    )

    try:
        return _wait_healthy(settings, proc, host, port, model, wait_s)
    except BaseException:
        # Failed, or interrupted (Ctrl-C): leave no half-started server and no stale pid file.
        _kill_group(proc.pid, grace_s=2.0)
        _clear_state(settings)
        raise


def _wait_healthy(
    settings: Settings, proc: subprocess.Popen[bytes], host: str, port: int, model: str, wait_s: float
) -> ServeStatus:
    """Poll /health until it answers; raise with the log's last lines if it never does."""
    log_path = _log_path(settings)
    url = _base_url(host, port)
    deadline = time.monotonic() + max(0.0, wait_s)
    reason = "not polled"
    while True:
        if proc.poll() is not None:
            raise MontageError(
                f"cgpu serve exited with code {proc.returncode} before answering on {url}/health; "
                f"see {log_path}" + _tail_suffix(log_path)
            )
        remaining = deadline - time.monotonic()
        ok, reason = health(host, port, timeout_s=max(0.2, min(1.0, remaining)))
        if ok:
            return _status_for(
                settings, host, port, running=True, healthy=True, pid=proc.pid,
                message=f"cgpu serve started (pid {proc.pid}) at {url}, default model {model}; log: {log_path}",
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
    raise MontageError(
        f"the server did not answer on {url}/health within {wait_s:g} s; see {log_path} (last try: {reason})"
        + _tail_suffix(log_path)
    )


def _tail_suffix(log_path: Path) -> str:
    """The log's last lines, so the one-line error carries the server's own words."""
    tail = _log_tail(log_path)
    return f": {tail}" if tail else ""


def stop(settings: Settings) -> ServeStatus:
    """Stop the `cgpu serve` we started (its whole process group); harmless when none runs."""
    host, port = settings.cgpu_host, int(settings.cgpu_port)
    pid = _read_pid(settings)
    meta = _read_meta(settings)
    host = str(meta.get("host") or host)
    port = int(meta.get("port") or port)
    if pid is not None and _alive(pid) and _looks_like_cgpu(pid):
        gone = _kill_group(pid)
        _clear_state(settings)
        if not gone:
            raise MontageError(f"cgpu serve (pid {pid}) did not exit after SIGKILL; check it with `ps -p {pid}`")
        return _status_for(
            settings, host, port, running=False, healthy=False, pid=None,
            message=f"cgpu serve (pid {pid}) stopped",
        )
    _clear_state(settings)
    ok, _ = health(host, port, timeout_s=1.0)
    if ok:
        return _status_for(
            settings, host, port, running=True, healthy=True, pid=None, external=True,
            message=f"cgpu serve was not started by montage-ai; the server at {_base_url(host, port)} "
            "was left running (stop it where it was started)",
        )
    return _status_for(
        settings, host, port, running=False, healthy=False, pid=None, message="cgpu serve is not running",
    )


__all__ = ["ServeStatus", "health", "start", "status", "stop"]

if __name__ == "__main__":  # pragma: no cover - manual check: python -m montage_ai.remote.cgpu_serve
    print(status(Settings()).model_dump_json(indent=2))
