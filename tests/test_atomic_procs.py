"""The two mechanisms every writer and every child process go through: atomic writes with a
sweep of what killed writers left, and bounded child processes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from montage_ai import atomic, procs


# --------------------------------------------------------------------------- atomic writes


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "plan.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_an_os_error_names_the_final_file_not_the_temporary(tmp_path):
    target = tmp_path / "report.html"
    with pytest.raises(OSError) as info:
        with atomic.atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC


def test_parallel_writers_never_share_a_temporary_name(tmp_path):
    target = tmp_path / "piece.mkv"
    seen: list[str] = []
    barrier = threading.Barrier(8)

    def write(k: int) -> None:
        with atomic.atomic_path(target) as tmp:
            seen.append(tmp.name)
            barrier.wait()
            tmp.write_bytes(b"same content")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 8 and target.read_bytes() == b"same content"
    assert [p.name for p in tmp_path.iterdir()] == ["piece.mkv"]


def _hold(kind: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    """Another process holding a temporary file (or folder) in `folder`, as a live run does."""
    opener = ("atomic.scratch_dir(Path(sys.argv[1]), 'work')" if kind == "dir"
              else "atomic.atomic_path(Path(sys.argv[1]) / 'out.mp4')")
    code = ("import sys, time; from pathlib import Path; from montage_ai import atomic\n"
            f"cm = {opener}\n"
            "with cm as p:\n"
            "    (p / 'f').write_text('x') if p.is_dir() else p.write_text('x')\n"
            "    print(p, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_sweep_keeps_what_a_live_writer_holds_and_removes_what_a_killed_one_left(tmp_path, kind):
    proc, held = _hold(kind, tmp_path)
    try:
        assert held.exists() and atomic.is_temp_name(held.name)
        assert atomic.sweep_stale(tmp_path) == []
        assert held.exists()
    finally:
        proc.kill()          # like kill -9: no clean-up ran
        proc.wait()
    assert held.exists()
    assert atomic.sweep_stale(tmp_path) == [held]
    assert not held.exists()


def test_sweep_takes_old_style_partials_and_leaves_user_files(tmp_path):
    (tmp_path / ".montage.partial-1234.mp4").write_bytes(b"0.1 left this")
    (tmp_path / "my.partial.notes.txt").write_text("a user file")
    (tmp_path / ".hidden").write_text("a user file")
    removed = atomic.sweep_stale(tmp_path)
    assert [p.name for p in removed] == [".montage.partial-1234.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "my.partial.notes.txt"]


# --------------------------------------------------------------------------- child processes


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    done = procs.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout_s=1.0)
    assert done.timed_out and time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


def test_a_detached_grandchild_holding_the_pipe_does_not_hold_the_call(tmp_path):
    """The child exits but leaves a grandchild in a session of its own with our stdout: the
    call returns within the pipe grace, and the grandchild is killed."""
    pidfile = tmp_path / "grandchild.pid"
    t0 = time.monotonic()
    lines: list[str] = []
    done = procs.run([sys.executable, "-c",
                      "import os, subprocess, sys\n"
                      "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
                      f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
                      "print('done', flush=True)"], timeout_s=60, on_stdout_line=lines.append)
    took = time.monotonic() - t0
    assert done.returncode == 0 and not done.timed_out and lines == ["done"]
    assert took < procs.PIPE_GRACE_S + 3, took
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


def test_output_is_bounded(tmp_path):
    done = procs.run(["sh", "-c", "yes x | head -c 50000000"], timeout_s=30, capture_stdout=True,
                     max_stdout_bytes=1_000_000)
    assert done.stdout_overflow and len(done.stdout) <= 1_000_000
    noisy = procs.run(["sh", "-c", "yes error-line | head -c 5000000 >&2"], timeout_s=30)
    assert len(noisy.stderr) <= procs.STDERR_TAIL_BYTES


def test_a_raising_line_callback_stops_the_child(tmp_path):
    pidfile = tmp_path / "child.pid"

    def stop(line: str) -> None:
        raise ValueError(f"bad line {line!r}")

    t0 = time.monotonic()
    with pytest.raises(ValueError):
        procs.run(["sh", "-c", f"echo $$ > {pidfile}; echo first; sleep 300"], timeout_s=60, on_stdout_line=stop)
    assert time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))


def test_stop_all_ends_children_and_refuses_new_ones():
    result: dict[str, object] = {}

    def worker() -> None:
        result["done"] = procs.run(["sleep", "300"], timeout_s=None)

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.5)
    try:
        procs.stop_all()
        t.join(timeout=10)
        assert not t.is_alive() and result["done"].returncode == -9
        with pytest.raises(procs.Interrupted):
            procs.run(["true"], timeout_s=5)
    finally:
        procs.reset_for_tests()
    assert procs.run(["true"], timeout_s=5).returncode == 0


def test_a_child_dies_with_the_engine(tmp_path):
    """PR_SET_PDEATHSIG: kill -9 of the engine takes its ffmpeg with it."""
    pidfile = tmp_path / "child.pid"
    engine = subprocess.Popen([sys.executable, "-c",
                               "import sys\nfrom montage_ai import procs\n"
                               "p = procs.spawn(['sleep', '300'])\n"
                               f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
                               "p.wait()"])
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert _alive(child)
    engine.kill()
    engine.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    if _alive(child):      # pragma: no cover - do not leave it behind
        os.kill(child, 9)


def test_nothing_runs_between_fork_and_exec(monkeypatch):
    """A forked child of the threaded engine must not run Python before exec (preexec_fn): it
    was seen to abort with a double free under Python 3.12 while render threads ran. The
    death signal is set by an exec wrapper (setpriv) instead, where there is one."""
    seen = {}
    real = subprocess.Popen

    def spy(args, **kw):
        seen.update(kw, args=list(args))
        return real(args, **kw)

    monkeypatch.setattr(procs.subprocess, "Popen", spy)
    assert procs.run(["true"], timeout_s=10).returncode == 0
    assert seen.get("preexec_fn") is None and seen["start_new_session"] is True
    prefix = list(procs._die_with_engine_prefix())
    assert seen["args"][:len(prefix)] == prefix and seen["args"][-1].endswith("true")


def test_a_missing_or_unrunnable_program_fails_at_spawn(tmp_path):
    """Through the wrapper too, a program that is not there or cannot run is an OSError at
    spawn, as Popen gives it, so callers keep their one-line messages."""
    with pytest.raises(FileNotFoundError):
        procs.spawn(["no-such-program-montage-ai"])
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(PermissionError):
        procs.spawn([str(script)])
    script.chmod(0o755)
    assert procs.run([str(script)], timeout_s=10).returncode == 0
