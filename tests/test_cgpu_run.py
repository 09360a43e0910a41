"""The cloud upscale path end to end against a stand-in `cgpu` executable.

The real cgpu (a Node CLI talking to Google Colab) cannot run here, so the stand-in
(tests/standins/fake_cgpu.py) is installed in a temporary bin directory first on PATH. It
follows the contract in
shared/notes/cgpu.md: `run` prints `Authenticated as <Name> <email>` first, feeds the command to
a fresh bash through stdin like cgpu's terminal (so a command reading stdin eats the control
lines and the exit code is lost), starts in the "remote root" (where /content is a temporary
folder: the command's `/content` is rewritten), merges stderr into stdout, strips `\\r`, passes
the exit code through, takes its own flags from anywhere in argv; `copy` uploads into the
mapped /content and prints `Uploaded: ...`; `status` prints the account and eligible GPUs;
there is no download command; and without a session file every command waits forever for a
browser login. Knobs (environment) make it fail like Colab does: a silent exit 1 (no GPU), a
dropped connection once (the remote process keeps running), an upload size limit, a corrupted
download, a hung remote command.

Its "remote GPU" runs the generated remote script with `python3` = this venv's Python and the
imageio ffmpeg: Real-ESRGAN through ncnn on the CPU where CUDA is absent (the success test) or
ffmpeg Lanczos (MONTAGE_REMOTE_ENGINE=lanczos, the fault tests, for speed). So packaging, both
transfer directions, the remote script, verification, retries, cleanup and the fallbacks all
really run.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from hostile import temp_files
from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.media.ffmpeg import ffmpeg_path
from montage_ai.remote.cgpu_run import (
    CgpuClient, CgpuCommandFailed, CgpuError, CgpuNoSession, CgpuNotInstalled, CgpuTimeout,
)
from montage_ai.render.conform import render
from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan
from montage_ai.upscale import UpscaleError, UpscaleOptions, upscale_spec
from montage_ai.upscale.local import ncnn_status
from standins.fake_cgpu import FakeColab, detached_pids, install_fake_colab, kill_leftovers, still_alive

W, H = 96, 54   # sources: a quarter of the 192x108 output, so everything upscales x2


@pytest.fixture
def cloud(tmp_path, monkeypatch) -> Iterator[FakeColab]:
    """The stand-in on PATH, a logged-in config dir, an empty runtime, and a remote PATH; at the
    end, nothing it started may still run (what is left is killed, and the test fails)."""
    colab = install_fake_colab(tmp_path, ffmpeg_path())
    for name, value in colab.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MONTAGE_REMOTE_ENGINE", "lanczos")
    yield colab
    assert kill_leftovers(colab.root) == [], "the stand-in's processes outlived the test"


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cloud-media")
    return {"a": make_counter_clip(d / "a.mp4", 60, fps="25", width=W, height=H, tint=(200, 30, 30)),
            "b": make_counter_clip(d / "b.mp4", 60, fps="30000/1001", width=W, height=H, tint=(30, 30, 200))}


def _noisy_counter_clip(path: Path, frames: int) -> Path:
    """Counter bars on top, noise below: frames that do not compress, so a few of them exceed
    a small upload limit (the plain counter clip packs a whole range into 2 KB)."""
    rng = np.random.default_rng(7)
    base = make_counter_clip(path.with_name("plain-" + path.name), frames, fps="25", width=W, height=H)
    with av.open(str(base)) as c:
        imgs = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    raw = b"".join(np.concatenate([im[: H // 2], rng.integers(0, 256, (H - H // 2, W, 3), np.uint8)]).tobytes()
                   for im in imgs)
    subprocess.run([ffmpeg_path(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                    "-r", "25", "-i", "pipe:0", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(path)],
                   input=raw, check=True)
    return path


def _spec(src: dict[str, Path]) -> RenderSpec:
    """Three cuts: two overlap in `a` (one range), one in `b`: two upscale jobs."""
    s = RenderSettings(width=2 * W, height=2 * H, fps_num=25, fit="crop")
    pieces = [Piece(kind="clip", record_start_frame=0, frames=6, a=SourceSpan(path=src["a"], start_s=10 / 25)),
              Piece(kind="clip", record_start_frame=6, frames=5, a=SourceSpan(path=src["b"], start_s=30 / 25)),
              Piece(kind="clip", record_start_frame=11, frames=6, a=SourceSpan(path=src["a"], start_s=13 / 25))]
    return RenderSpec(settings=s, total_frames=17, pieces=pieces, audio=[])


def _options(**kw) -> UpscaleOptions:
    base = dict(enabled=True, cloud=True, local="ffmpeg", cgpu_timeout_s=60)
    return UpscaleOptions(**{**base, **kw})


def _within(seconds: float, fn):
    """Run fn in a thread; the test fails (instead of hanging) when it takes longer."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:   # re-raised below in the test's thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s: something called cgpu without a timeout"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _counters(path: Path) -> list[int]:
    return [read_counter(f) for f in decode_frames(path)]


# --------------------------------------------------------------------------- the client


def test_client_contract(cloud):
    client = CgpuClient()
    res = client.run("echo out; echo err >&2; echo a -v --cpu", timeout_s=20)
    assert res.lines == ["out", "err", "a -v --cpu"]           # stderr merged; our flags not eaten
    assert res.account.startswith("Authenticated as Test User")
    assert client.run("exit 7", timeout_s=20, check=False).code == 7
    with pytest.raises(CgpuCommandFailed) as err:
        client.run("echo boom; exit 5", timeout_s=20)
    assert err.value.code == 5 and "boom" in str(err.value)
    assert client.run("cat; pwd", timeout_s=20).lines == [str(cloud.root / "content")]   # stdin is /dev/null
    for argv in _calls(cloud.log):
        assert argv[0] == "run" and len(argv) == 2 and argv[1].startswith("cd /content && ")
    verbose = CgpuClient(verbose=True)
    verbose.run("true", timeout_s=20)
    assert _calls(cloud.log)[-1][:2] == ["run", "-v"]
    assert "Eligible GPUs: T4" in client.status()


def test_stand_in_waits_forever_without_a_session_and_the_client_never_calls_it(cloud):
    cloud.session.unlink()
    with pytest.raises(subprocess.TimeoutExpired):          # the stand-in is faithful: it hangs
        subprocess.run(["cgpu", "status"], capture_output=True, timeout=1.5)
    n = len(_calls(cloud.log))
    with pytest.raises(CgpuNoSession, match="cgpu connect"):
        _within(5, lambda: CgpuClient().run("true", timeout_s=5))
    assert len(_calls(cloud.log)) == n


# --------------------------------------------------------------------------- end to end


def test_cloud_upscale_end_to_end(cloud, sources, tmp_path, monkeypatch):
    """Success: ranges packaged, uploaded, upscaled by the remote script (Real-ESRGAN ncnn on the
    CPU where CUDA is absent, when installed), downloaded, verified, cached; the render shows
    exactly the frames the original spec shows; remote files removed; a re-render reuses."""
    engine = "ncnn" if ncnn_status().available else "lanczos"
    monkeypatch.setenv("MONTAGE_REMOTE_ENGINE", "auto" if engine == "ncnn" else "lanczos")
    spec = _spec(sources)
    events: list[tuple[str, float, float]] = []
    new, report = _within(120, lambda: upscale_spec(spec, _options(), tmp_path / "cache",
                                                    progress=lambda ph, d, t, what: events.append((ph, d, t))))
    assert [e.backend for e in report.entries] == ["cloud", "cloud"], report.summary_lines()
    assert all(any(engine in n for n in e.notes) for e in report.entries), report.summary_lines()
    assert {ph for ph, _, _ in events} >= {"upload", "remote", "download"}
    assert any(ph == "download" and d == t for ph, d, t in events)
    calls = _calls(cloud.log)
    assert calls[0] == ["status"]
    runs = [c for c in calls if c[0] == "run"]
    assert all(len(c) == 2 and c[1].startswith("cd /content && ") and "< /dev/null" in c[1] for c in runs)
    assert sum("sha256sum" in c[1] for c in runs) == 2 and sum("base64" in c[1] for c in runs) >= 2
    assert [p.name for p in (cloud.root / "content").iterdir() if p.name.startswith("montage-upscale")] == []
    render(spec, tmp_path / "plain.mp4", tmp_path / "rc", progress=False)
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    assert _counters(tmp_path / "up.mp4") == _counters(tmp_path / "plain.mp4")
    before = len(calls)
    again, report2 = upscale_spec(spec, _options(), tmp_path / "cache")
    assert [e.backend for e in report2.entries] == ["cache", "cache"] and len(_calls(cloud.log)) == before
    assert again == new


def test_dropped_connection_is_retried_once(cloud, sources, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CGPU_DROP_MATCH", "montage_upscale_remote.py")
    new, report = _within(60, lambda: upscale_spec(_spec(sources), _options(), tmp_path / "cache"))
    assert [e.backend for e in report.entries] == ["cloud", "cloud"]
    assert any("dropped once" in n for n in report.entries[0].notes)
    assert sum("montage_upscale_remote.py" in c[-1] for c in _calls(cloud.log) if c[0] == "run") == 2


def test_upload_ceiling_splits_the_job(cloud, tmp_path, monkeypatch):
    """The stand-in rejects uploads above 48 KB; with the client's limit at 40 KB each range's
    input is split into parts and batches, outputs come back in 8 KB base64 chunks, and the
    joined result is still frame-exact."""
    monkeypatch.setenv("FAKE_CGPU_UPLOAD_LIMIT", str(48 * 1024))
    noisy = {"a": _noisy_counter_clip(tmp_path / "na.mp4", 40), "b": _noisy_counter_clip(tmp_path / "nb.mp4", 40)}
    spec = _spec(noisy)
    opts = _options(cgpu_upload_limit_mb=40 / 1024, cgpu_download_chunk_mb=8 / 1024)
    new, report = _within(90, lambda: upscale_spec(spec, opts, tmp_path / "c"))
    assert [e.backend for e in report.entries] == ["cloud", "cloud"], report.fallbacks
    calls = _calls(cloud.log)
    parts = [c[2] for c in calls if c[0] == "copy" and c[1].endswith(".in.mkv")]
    assert len(parts) > 2 and any("-p1." in p for p in parts)
    assert sum(1 for c in calls if c[0] == "run" and "montage_upscale_remote.py" in c[1]) > 1
    assert sum(1 for c in calls if c[0] == "run" and "base64" in c[1]) > len(parts)
    render(spec, tmp_path / "plain.mp4", tmp_path / "rc", progress=False)
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    assert _counters(tmp_path / "up.mp4") == _counters(tmp_path / "plain.mp4")


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault, env, message", [
    ("no session", {}, "cgpu connect"),
    ("cgpu missing", {}, "npm install -g cgpu"),
    ("no GPU", {"FAKE_CGPU_NO_GPU": "1"}, "no GPU"),
    ("corrupt download", {"FAKE_CGPU_CORRUPT_B64": "1"}, "checksum mismatch"),
    ("upload rejected", {"FAKE_CGPU_UPLOAD_LIMIT": "2000"}, "413"),
    ("timeout", {"FAKE_CGPU_HANG_MATCH": "montage_upscale_remote.py"}, "no answer from cgpu within"),
])
def test_cloud_faults_fall_back_or_fail_with_strict(cloud, sources, tmp_path, monkeypatch, fault, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if fault == "no session":
        cloud.session.unlink()
    if fault == "cgpu missing":
        (cloud.bin / "cgpu").unlink()
    timeout = 3 if fault == "timeout" else 60
    started = time.monotonic()
    new, report = _within(45, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout), tmp_path / "a"))
    assert [e.backend for e in report.entries] == ["ffmpeg", "ffmpeg"]
    assert any(message in why for why in report.fallbacks), report.fallbacks
    assert all(Path(p.a.path).parent.name == "upscale" for p in new.pieces)
    if fault in ("no session", "cgpu missing"):
        assert _calls(cloud.log) == []                      # refused before any cgpu call
    if fault == "timeout":
        assert time.monotonic() - started < 30
    with pytest.raises(UpscaleError, match=message if fault != "no GPU" else "no GPU"):
        _within(45, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout, strict_cloud=True),
                                         tmp_path / "b"))
    leftovers = [p.name for p in (cloud.root / "content").iterdir() if p.name.startswith("montage-upscale")]
    assert leftovers == [] or fault in ("no GPU", "timeout")   # cleanup needs a working runtime


def test_client_refuses_when_cgpu_is_missing(cloud):
    (cloud.bin / "cgpu").unlink()
    with pytest.raises(CgpuNotInstalled, match="npm install -g cgpu"):
        CgpuClient().check_ready()


# --------------------------------------------------------------------------- a hostile cgpu, call by call


def _timed(fn) -> tuple[object, float]:
    """(fn's result or the exception it raised, seconds), bounded by _within."""
    started = time.monotonic()
    try:
        value = _within(60, fn)
    except Exception as exc:   # the test inspects it
        value = exc
    return value, time.monotonic() - started


def _one_line(exc: object, cls: type = CgpuError) -> str:
    assert isinstance(exc, cls), repr(exc)
    text = str(exc)
    assert "\n" not in text and "\x1b" not in text and len(text) < 600, text
    return text


def test_detached_grandchild_does_not_hold_a_call(cloud, monkeypatch):
    """cgpu exits but leaves `setsid sleep 600` holding its stdout: the call still returns (the
    holder is found and killed about 2 s after cgpu exits) with cgpu's answer intact."""
    pids = cloud.root.parent / "detached.pids"
    monkeypatch.setenv("FAKE_CGPU_DETACH_PIDS", str(pids))
    res, seconds = _timed(lambda: CgpuClient().run("echo hi", timeout_s=10))
    print(f"\nrun with a detached grandchild: {seconds:.2f} s")
    assert res.lines == ["hi"] and seconds < 8
    assert "Eligible GPUs" in _within(20, lambda: CgpuClient().status(timeout_s=10))
    assert len(detached_pids(pids)) == 2 and still_alive(detached_pids(pids)) == []


def test_calls_after_status_hang_and_are_stopped(cloud, monkeypatch):
    """`status` answers, every later call hangs (and leaves a detached child): each call ends
    at its timeout with one line, and nothing stays running."""
    pids = cloud.root.parent / "detached.pids"
    monkeypatch.setenv("FAKE_CGPU_HANG_AFTER_STATUS", "1")
    monkeypatch.setenv("FAKE_CGPU_DETACH_PIDS", str(pids))
    client = CgpuClient()
    assert "Eligible GPUs" in _within(20, lambda: client.status(timeout_s=10))
    src = cloud.root.parent / "small.bin"
    src.write_bytes(b"x" * 100)
    for name, call in (("run", lambda: client.run("true", timeout_s=3)),
                       ("copy", lambda: client.copy(src, "/content/small.bin", timeout_s=3)),
                       ("remove", lambda: client.remove("/content/montage-upscale-x", timeout_s=3))):
        res, seconds = _timed(call)
        print(f"\n{name} hanging, timeout 3 s: returned after {seconds:.2f} s")
        assert seconds < 3 + 3
        if name == "remove":
            assert res is False                         # best effort: reported, never raised
        else:
            assert "no answer from cgpu within 3 s" in _one_line(res, CgpuTimeout)
    assert len(detached_pids(pids)) == 4 and still_alive(detached_pids(pids)) == []


def test_garbage_output_is_an_error_not_a_traceback(cloud, monkeypatch):
    """cgpu prints junk (invalid UTF-8, escape codes, a 2 MB line) and exits 0: status, run
    and copy each fail with one readable line."""
    monkeypatch.setenv("FAKE_CGPU_GARBAGE", "1")
    client = CgpuClient()
    src = cloud.root.parent / "small.bin"
    src.write_bytes(b"x" * 100)
    for name, call, needle in (
            ("status", lambda: client.status(timeout_s=10), "unexpected answer"),
            ("run", lambda: client.run("true", timeout_s=10), "never started"),
            ("copy", lambda: client.copy(src, "/content/small.bin", timeout_s=10), "did not confirm"),
            ("inspect", lambda: client.inspect("/content/x", timeout_s=10), "never started")):
        res, seconds = _timed(call)
        print(f"\n{name} answered with garbage: {seconds:.2f} s: {res}")
        assert needle in _one_line(res) and seconds < 8


def test_output_flood_is_bounded(cloud, monkeypatch):
    """A remote command printing without end is not kept in memory: past the bound the call
    fails with one line (after the command ends or its timeout)."""
    res, seconds = _timed(lambda: CgpuClient().run("head -c 3000000 /dev/zero | tr '\\0' 'a' | fold -w 1000",
                                                   timeout_s=20, max_output_bytes=1024 * 1024))
    print(f"\n3 MB of output against a 1 MiB bound: {seconds:.2f} s")
    assert "printed more than 1 MiB" in _one_line(res)


# --------------------------------------------------------------------------- a hostile cgpu, the whole cloud step

HOSTILE = {   # case: (environment, CGPU_TIMEOUT, what the fallback reason and the strict error say)
    "detached grandchild": ({"FAKE_CGPU_DETACH_PIDS": "{pids}"}, 10, "CGPU_TIMEOUT"),
    "hangs after status": ({"FAKE_CGPU_HANG_AFTER_STATUS": "1", "FAKE_CGPU_DETACH_PIDS": "{pids}"}, 10,
                           "no answer from cgpu within"),
    "truncated result line": ({"FAKE_CGPU_PART_LINE": "truncate"}, 60, "malformed MONTAGE_PART line"),
    "garbled result line": ({"FAKE_CGPU_PART_LINE": "garbage"}, 60, "malformed MONTAGE_PART line"),
    "deeply nested result line": ({"FAKE_CGPU_PART_LINE": "deep"}, 60, "nested more than"),
    "2 MB result line": ({"FAKE_CGPU_PART_LINE": "huge"}, 60, "malformed MONTAGE_PART line"),
    "garbage output": ({"FAKE_CGPU_GARBAGE": "1"}, 60, "unexpected answer"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_cgpu_cloud_step_is_bounded_and_falls_back(cloud, sources, tmp_path, monkeypatch, case):
    """The whole cloud step, clean-up included, ends within CGPU_TIMEOUT plus a few seconds,
    without a traceback: the ranges go to the local path with the reason in the report, or
    with --strict-cloud one error line says why. No process and no temporary file is left."""
    env, timeout, needle = HOSTILE[case]
    pids = tmp_path / "detached.pids"
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(pids=pids))
    started = time.monotonic()
    new, report = _within(timeout + 30, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout),
                                                             tmp_path / "a"))
    fell_back_s = time.monotonic() - started
    assert [e.backend for e in report.entries] == ["ffmpeg", "ffmpeg"], report.summary_lines()
    assert any(line.startswith("upscale fallback: Colab GPU failed") and needle in line
               for line in report.summary_lines()), report.summary_lines()
    started = time.monotonic()
    with pytest.raises(UpscaleError) as err:
        _within(timeout + 30, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout, strict_cloud=True),
                                                   tmp_path / "b"))
    strict_s = time.monotonic() - started
    print(f"\n{case} (CGPU_TIMEOUT={timeout}): fallback run {fell_back_s:.1f} s, strict {strict_s:.1f} s; "
          f"{_one_line(err.value, UpscaleError)}")
    assert needle in str(err.value) and "--strict-cloud" in str(err.value)
    assert strict_s < timeout + 5                      # the cloud step alone: no local upscale after it
    assert fell_back_s < timeout + 15                  # + packaging and the ffmpeg fallback of two ranges
    assert still_alive(detached_pids(pids)) == []
    assert temp_files(tmp_path / "a", tmp_path / "b") == []
    assert sorted(p.name for p in (tmp_path / "a" / "upscale").iterdir() if p.is_dir()) == []   # no work dir left
