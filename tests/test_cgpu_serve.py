"""`cgpu serve` lifecycle against a real subprocess that follows cgpu's contract.

cgpu cannot be installed here, so a fake `cgpu` executable (Python, same flags, same listening
line, same /health and 404 shapes) stands in; the process handling (detach, pid file, log,
process-group kill) is exercised for real.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from montage_ai.errors import MontageError
from montage_ai.remote import cgpu_serve
from montage_ai.settings import Settings

FAKE_CGPU = textwrap.dedent(
    """\
    #!{python}
    # Fake `cgpu serve`: GET /health -> 200 {{"status":"ok"}}, anything else -> 404 like cgpu.
    import argparse, json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ap = argparse.ArgumentParser(prog="cgpu")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("-H", "--host", default="127.0.0.1")
    s.add_argument("-p", "--port", type=int, default=8080)
    s.add_argument("--default-model", default="gemini-2.0-flash")
    s.add_argument("--timeout", default="120000")
    s.add_argument("--gemini-bin", default="gemini")
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def _json(self, code, payload):
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self._json(200, {{"status": "ok"}})
            else:
                self._json(404, {{"error": {{"code": "not_found", "message": "No route for GET " + self.path}}}})

        def do_POST(self):
            self._json(404, {{"error": {{"code": "not_found", "message": "No route for POST " + self.path}}}})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"cgpu serve listening on http://{{args.host}}:{{args.port}} (default model: {{args.default_model}})", flush=True)
    server.serve_forever()
    """
)

# Starts, spawns a child in its group (like a gemini run), logs a line, never listens.
FAKE_CGPU_HANGS = textwrap.dedent(
    """\
    #!{python}
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.environ["FAKE_CGPU_PIDS"], "w") as fh:
        fh.write(f"{{os.getpid()}} {{child.pid}}")
    print("waiting for gemini to warm up...", flush=True)
    time.sleep(60)
    """
)

FAKE_CGPU_CRASHES = textwrap.dedent(
    """\
    #!{python}
    import sys
    print("Error: something broke in cgpu", file=sys.stderr, flush=True)
    sys.exit(3)
    """
)

# Like FAKE_CGPU but deaf to SIGTERM, so stop() must escalate to SIGKILL.
FAKE_CGPU_STUBBORN = FAKE_CGPU.replace(
    "import argparse, json, sys", "import argparse, json, signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
)

FAKE_GEMINI = "#!/bin/sh\necho 'fake gemini'\n"


def _write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(pid: int, within_s: float = 3.0) -> bool:
    """True once pid no longer exists or is a zombie (a reaper may be slow in containers)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _path_without(*names: str) -> list[str]:
    """PATH entries that hold no real copy of the given executables."""
    keep = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and not any((Path(d) / n).exists() for n in names):
            keep.append(d)
    return keep


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with the fake cgpu and gemini first and no real ones anywhere."""
    d = tmp_path / "bin"
    d.mkdir()
    _write_exe(d / "cgpu", FAKE_CGPU.format(python=sys.executable))
    _write_exe(d / "gemini", FAKE_GEMINI)
    monkeypatch.setenv("PATH", os.pathsep.join([str(d), *_path_without("cgpu", "gemini")]))
    return d


@pytest.fixture
def settings(tmp_path: Path):
    s = Settings(cgpu_host="127.0.0.1", cgpu_port=_free_port(), cgpu_model="gemini-2.5-flash",
                 cache_dir=tmp_path / "cache")
    yield s
    cgpu_serve.stop(s)  # never leave a server behind, whatever the test did


def test_start_status_stop(bin_dir: Path, settings: Settings) -> None:
    st = cgpu_serve.start(settings, wait_s=10)
    assert st.running and st.healthy and not st.external
    assert st.pid and st.url == f"http://127.0.0.1:{settings.cgpu_port}"
    pid_file = settings.cache_dir / "cgpu" / "serve.pid"
    assert pid_file.read_text().strip() == str(st.pid)
    assert st.log_path.is_file()
    assert "cgpu serve listening on http://127.0.0.1:" in st.log_path.read_text()

    now = cgpu_serve.status(settings)
    assert now.running and now.healthy and now.pid == st.pid and not now.external

    ok, reason = cgpu_serve.health("127.0.0.1", settings.cgpu_port)
    assert ok, reason
    ok, _ = cgpu_serve.health("0.0.0.0", settings.cgpu_port)  # 0.0.0.0 is probed via loopback
    assert ok

    stopped = cgpu_serve.stop(settings)
    assert not stopped.running and "stopped" in stopped.message
    assert _gone(st.pid)
    assert not pid_file.exists()
    after = cgpu_serve.status(settings)
    assert not after.running and not after.healthy
    assert "connection refused" in after.message
    assert not cgpu_serve.stop(settings).running  # stopping twice is fine


def test_start_twice_reports_already_running(bin_dir: Path, settings: Settings) -> None:
    first = cgpu_serve.start(settings, wait_s=10)
    second = cgpu_serve.start(settings, wait_s=10)
    assert second.running and second.healthy and second.pid == first.pid
    assert "already running" in second.message


def test_cgpu_missing(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "only-gemini"
    d.mkdir()
    _write_exe(d / "gemini", FAKE_GEMINI)
    monkeypatch.setenv("PATH", os.pathsep.join([str(d), *_path_without("cgpu", "gemini")]))
    with pytest.raises(MontageError, match=r"npm install -g cgpu") as exc:
        cgpu_serve.start(settings, wait_s=1)
    assert "Node" in str(exc.value) or "node" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_gemini_missing(bin_dir: Path, settings: Settings) -> None:
    (bin_dir / "gemini").unlink()
    with pytest.raises(MontageError, match=r"Gemini CLI") as exc:
        cgpu_serve.start(settings, wait_s=1)
    assert "@google/gemini-cli" in str(exc.value)
    assert not (settings.cache_dir / "cgpu" / "serve.pid").exists()


def test_port_taken(bin_dir: Path, settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        taken = settings.model_copy(update={"cgpu_port": port})
        with pytest.raises(MontageError, match=rf"port {port}\b.*CGPU_PORT"):
            cgpu_serve.start(taken, wait_s=1)
    assert not (settings.cache_dir / "cgpu" / "serve.pid").exists()


def test_server_never_answers(bin_dir: Path, settings: Settings, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_CGPU_PIDS", str(pids_file))
    _write_exe(bin_dir / "cgpu", FAKE_CGPU_HANGS.format(python=sys.executable))
    t0 = time.monotonic()
    with pytest.raises(MontageError) as exc:
        cgpu_serve.start(settings, wait_s=1.0)
    msg = str(exc.value)
    assert f"did not answer on http://127.0.0.1:{settings.cgpu_port}/health within 1 s" in msg
    assert "serve.log" in msg and "waiting for gemini" in msg  # the log's last lines are quoted
    assert time.monotonic() - t0 < 6
    server_pid, child_pid = (int(x) for x in pids_file.read_text().split())
    assert _gone(server_pid) and _gone(child_pid)  # the whole process group was ended
    assert not (settings.cache_dir / "cgpu" / "serve.pid").exists()


def test_server_exits_early(bin_dir: Path, settings: Settings) -> None:
    _write_exe(bin_dir / "cgpu", FAKE_CGPU_CRASHES.format(python=sys.executable))
    with pytest.raises(MontageError, match=r"exited with code 3.*something broke in cgpu"):
        cgpu_serve.start(settings, wait_s=5)
    assert not (settings.cache_dir / "cgpu" / "serve.pid").exists()


def test_external_server_is_reported_not_stopped(bin_dir: Path, settings: Settings) -> None:
    proc = subprocess.Popen(
        [str(bin_dir / "cgpu"), "serve", "--host", "127.0.0.1", "--port", str(settings.cgpu_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline().decode()
        st = cgpu_serve.status(settings)
        assert st.running and st.healthy and st.external and st.pid is None
        assert "running externally" in st.message
        started = cgpu_serve.start(settings, wait_s=2)
        assert started.external and started.healthy
        cgpu_serve.stop(settings)
        assert proc.poll() is None  # not ours to stop
        ok, reason = cgpu_serve.health("127.0.0.1", settings.cgpu_port)
        assert ok, reason
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        proc.stdout.close()


def test_health_reasons(bin_dir: Path, settings: Settings) -> None:
    port = _free_port()
    ok, reason = cgpu_serve.health("127.0.0.1", port, timeout_s=1.0)
    assert not ok
    assert reason == f"connection refused at 127.0.0.1:{port}"


def test_stop_escalates_to_sigkill(bin_dir: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_exe(bin_dir / "cgpu", FAKE_CGPU_STUBBORN.format(python=sys.executable))
    monkeypatch.setattr(cgpu_serve, "TERM_GRACE_S", 0.3)
    st = cgpu_serve.start(settings, wait_s=10)
    assert st.healthy
    assert not cgpu_serve.stop(settings).running
    assert _gone(st.pid)


def test_stale_pid_file_is_not_trusted(bin_dir: Path, settings: Settings) -> None:
    """A pid file left by a crash may name a pid now used by something else: never kill that."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state = settings.cache_dir / "cgpu"
        state.mkdir(parents=True)
        (state / "serve.pid").write_text(f"{other.pid}\n")
        st = cgpu_serve.status(settings)
        assert not st.running and st.pid is None
        assert not (state / "serve.pid").exists()
        (state / "serve.pid").write_text(f"{other.pid}\n")
        cgpu_serve.stop(settings)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
