"""The cloud upscale path end to end against a stand-in `cgpu` executable.

The real cgpu (a Node CLI talking to Google Colab) cannot run here, so a Python stand-in is
written to a temporary bin directory first on PATH. It follows the contract in
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
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from media_tools import decode_frames, make_counter_clip, read_counter
from montage_ai.media.ffmpeg import ffmpeg_path
from montage_ai.remote.cgpu_run import CgpuClient, CgpuCommandFailed, CgpuNoSession, CgpuNotInstalled
from montage_ai.render.conform import render
from montage_ai.timeline.model import Piece, RenderSettings, RenderSpec, SourceSpan
from montage_ai.upscale import UpscaleError, UpscaleOptions, upscale_spec
from montage_ai.upscale.local import ncnn_status

FAKE_CGPU = r'''
"""Stand-in for the cgpu CLI (run, copy, status), per shared/notes/cgpu.md."""
import json, os, shlex, shutil, subprocess, sys, time, uuid
from pathlib import Path

sys.stdout.reconfigure(encoding="utf-8")
ROOT = Path(os.environ["FAKE_CGPU_ROOT"])          # the runtime's "/"; ROOT/content is /content
OWN_FLAGS = {"-v", "--verbose", "--cpu", "--tpu", "--new-runtime", "--force-login"}
PREAMBLE = "Authenticated as Test User <test.user@example.com>"
SUPPRESSED = {"PS1=", "stty -echo", "stty echo", "exit", "logout"}


def log(argv):
    path = os.environ.get("FAKE_CGPU_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(argv) + "\n")


def red(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def session_ok():
    base = os.environ.get("CGPU_CONFIG_DIR") or os.path.expanduser("~/.config/cgpu")
    return (Path(base) / "state" / "session.json").is_file()


def login_forever():
    print("Open this URL in your browser to authorize cgpu: https://accounts.google.com/o/oauth2/v2/auth?...",
          flush=True)
    while True:
        time.sleep(3600)


def split_flags(args):
    """cgpu (commander) takes its own flags from anywhere before `--`."""
    flags, rest, literal = set(), [], False
    for a in args:
        if literal:
            rest.append(a)
        elif a == "--":
            literal = True
        elif a in OWN_FLAGS:
            flags.add(a)
        else:
            rest.append(a)
    return flags, rest


def no_gpu(verbose):
    print(PREAMBLE, flush=True)
    if verbose:
        red("Colab has no GPU capacity available for this account right now")
    sys.exit(1)


def run(args, verbose):
    if not args:
        red("No command provided. Pass the command after 'run'.")
    command = " ".join([args[0], *(shlex.quote(a) for a in args[1:])])   # quoteFirstArg: false
    print(PREAMBLE, flush=True)
    if verbose:
        print(f"Running remote command on Colab GPU (T4): {command}", flush=True)
    hang = os.environ.get("FAKE_CGPU_HANG_MATCH")
    if hang and hang in command:
        while True:                                     # a remote command that never ends, no keep-alive
            time.sleep(3600)
    local = command.replace("/content", str(ROOT / "content"))
    marker = "__COLAB_CLI_EXIT__" + uuid.uuid4().hex
    payload = "\n".join(["stty -echo 2>/dev/null", "PS1=", local, "__COLAB_CLI_STATUS=$?", "stty echo 2>/dev/null",
                         f"printf '{marker}:%s\\n' \"$__COLAB_CLI_STATUS\"", "exit", ""])
    env = dict(os.environ, PATH=os.environ.get("FAKE_CGPU_REMOTE_PATH", os.environ["PATH"]))
    drop = os.environ.get("FAKE_CGPU_DROP_MATCH")
    dropped_flag = ROOT / ".dropped-once"
    if drop and drop in command and not dropped_flag.exists():
        dropped_flag.touch()
        proc = subprocess.Popen(["bash"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        proc.stdin.write(payload.encode())
        proc.stdin.close()                              # keeps running on the "runtime"
        time.sleep(0.3)
        sys.stderr.write("Command finished without reporting an exit code; assuming failure (exit code 1).\n")
        sys.exit(1)
    proc = subprocess.Popen(["bash"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)
    proc.stdin.write(payload.encode())
    proc.stdin.close()
    code, corrupted = None, not os.environ.get("FAKE_CGPU_CORRUPT_B64")
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
        if line.startswith("/# "):
            line = line[3:]
        if line.strip().startswith(marker + ":"):
            code = int(line.strip().split(":", 1)[1])
            continue
        if line.strip() in SUPPRESSED or not line:
            continue
        if not corrupted and line.startswith("B:") and len(line) > 10:
            line = line[:6] + ("A" if line[6] != "A" else "B") + line[7:]
            corrupted = True
        print(line, flush=True)
    proc.wait()
    if code is None:
        sys.stderr.write("Command finished without reporting an exit code; assuming failure (exit code 1).\n")
        sys.exit(1)
    sys.exit(code)


def fmt_bytes(n):
    if n < 1024:
        return f"{n} B"
    value, units = n / 1024, ["KB", "MB", "GB", "TB"]
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{value:.1f} {units[i]}"


def copy(args):
    if not args:
        red("error: missing required argument 'source'")
    src = Path(args[0])
    print(PREAMBLE, flush=True)
    if not src.is_file():
        red(f"ENOENT: no such file or directory, stat '{src.resolve()}'")
    segments = [s for s in (args[1] if len(args) > 1 else f"content/{src.name}").replace("\\", "/").split("/")
                if s and s != ".."]
    rel = "/".join(segments) or "content"
    size = src.stat().st_size
    if size > int(os.environ.get("FAKE_CGPU_UPLOAD_LIMIT", str(384 * 1024 * 1024))):
        red("Upload failed (413 Request Entity Too Large)")
    target = ROOT / rel
    if not target.parent.is_dir():
        red(f"Upload failed (404 Not Found): No such directory: {target.parent.relative_to(ROOT)}")
    shutil.copyfile(src, target)
    print(f"Uploaded: {src.name} \u2192 /{rel} ({fmt_bytes(size)})", flush=True)


def main(argv):
    log(argv)
    if not argv:
        red("Usage: cgpu [options] [command]")
    if argv[0] in ("--help", "-h", "help"):
        print("Usage: cgpu [options] [command]\n\nCommands:\n  connect\n  run\n  copy\n  status\n  logout\n  serve")
        return
    if "--version" in argv:
        red("error: unknown option '--version'")
    cmd, rest = argv[0], argv[1:]
    if cmd not in ("connect", "run", "copy", "status", "logout"):
        red(f"error: unknown command '{cmd}'")
    if not session_ok():
        login_forever()
    flags, args = split_flags(rest)
    verbose = bool(flags & {"-v", "--verbose"})
    if cmd == "status":
        print("Authenticated as Test User. Eligible GPUs: T4")
        return
    if cmd in ("run", "copy") and os.environ.get("FAKE_CGPU_NO_GPU"):
        no_gpu(verbose)
    if cmd == "run":
        run(args, verbose)
    elif cmd == "copy":
        copy(args)
    else:
        red(f"{cmd}: not available in the stand-in")


main(sys.argv[1:])
'''

W, H = 96, 54   # sources: a quarter of the 192x108 output, so everything upscales x2


def _write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def cloud(tmp_path, monkeypatch) -> dict:
    """The stand-in on PATH, a logged-in config dir, an empty runtime, and a remote PATH."""
    bin_dir, root, remote_bin, conf = (tmp_path / n for n in ("bin", "runtime", "remote-bin", "cgpu-config"))
    for d in (bin_dir, root / "content", remote_bin, conf / "state"):
        d.mkdir(parents=True)
    _write_exe(bin_dir / "cgpu", f"#!{sys.executable}\n{FAKE_CGPU}")
    _write_exe(remote_bin / "python3", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')   # a symlink loses the venv
    (remote_bin / "ffmpeg").symlink_to(ffmpeg_path())
    (conf / "state" / "session.json").write_text('{"refresh_token": "stand-in"}')
    log = tmp_path / "cgpu-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CGPU_CONFIG_DIR", str(conf))
    monkeypatch.setenv("FAKE_CGPU_ROOT", str(root))
    monkeypatch.setenv("FAKE_CGPU_LOG", str(log))
    monkeypatch.setenv("FAKE_CGPU_REMOTE_PATH", f"{remote_bin}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("MONTAGE_REMOTE_ENGINE", "lanczos")
    return {"root": root, "log": log, "session": conf / "state" / "session.json", "bin": bin_dir, "tmp": tmp_path}


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
    assert client.run("cat; pwd", timeout_s=20).lines == [str(cloud["root"] / "content")]   # stdin is /dev/null
    for argv in _calls(cloud["log"]):
        assert argv[0] == "run" and len(argv) == 2 and argv[1].startswith("cd /content && ")
    verbose = CgpuClient(verbose=True)
    verbose.run("true", timeout_s=20)
    assert _calls(cloud["log"])[-1][:2] == ["run", "-v"]
    assert "Eligible GPUs: T4" in client.status()


def test_stand_in_waits_forever_without_a_session_and_the_client_never_calls_it(cloud):
    cloud["session"].unlink()
    with pytest.raises(subprocess.TimeoutExpired):          # the stand-in is faithful: it hangs
        subprocess.run(["cgpu", "status"], capture_output=True, timeout=1.5)
    n = len(_calls(cloud["log"]))
    with pytest.raises(CgpuNoSession, match="cgpu connect"):
        _within(5, lambda: CgpuClient().run("true", timeout_s=5))
    assert len(_calls(cloud["log"])) == n


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
    calls = _calls(cloud["log"])
    assert calls[0] == ["status"]
    runs = [c for c in calls if c[0] == "run"]
    assert all(len(c) == 2 and c[1].startswith("cd /content && ") and "< /dev/null" in c[1] for c in runs)
    assert sum("sha256sum" in c[1] for c in runs) == 2 and sum("base64" in c[1] for c in runs) >= 2
    assert [p.name for p in (cloud["root"] / "content").iterdir() if p.name.startswith("montage-upscale")] == []
    render(spec, tmp_path / "plain.mp4", tmp_path / "rc", progress=False)
    render(new, tmp_path / "up.mp4", tmp_path / "rc", progress=False)
    assert _counters(tmp_path / "up.mp4") == _counters(tmp_path / "plain.mp4")
    before = len(calls)
    again, report2 = upscale_spec(spec, _options(), tmp_path / "cache")
    assert [e.backend for e in report2.entries] == ["cache", "cache"] and len(_calls(cloud["log"])) == before
    assert again == new


def test_dropped_connection_is_retried_once(cloud, sources, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CGPU_DROP_MATCH", "montage_upscale_remote.py")
    new, report = _within(60, lambda: upscale_spec(_spec(sources), _options(), tmp_path / "cache"))
    assert [e.backend for e in report.entries] == ["cloud", "cloud"]
    assert any("dropped once" in n for n in report.entries[0].notes)
    assert sum("montage_upscale_remote.py" in c[-1] for c in _calls(cloud["log"]) if c[0] == "run") == 2


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
    calls = _calls(cloud["log"])
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
        cloud["session"].unlink()
    if fault == "cgpu missing":
        (cloud["bin"] / "cgpu").unlink()
    timeout = 3 if fault == "timeout" else 60
    started = time.monotonic()
    new, report = _within(45, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout), tmp_path / "a"))
    assert [e.backend for e in report.entries] == ["ffmpeg", "ffmpeg"]
    assert any(message in why for why in report.fallbacks), report.fallbacks
    assert all(Path(p.a.path).parent.name == "upscale" for p in new.pieces)
    if fault in ("no session", "cgpu missing"):
        assert _calls(cloud["log"]) == []                      # refused before any cgpu call
    if fault == "timeout":
        assert time.monotonic() - started < 30
    with pytest.raises(UpscaleError, match=message if fault != "no GPU" else "no GPU"):
        _within(45, lambda: upscale_spec(_spec(sources), _options(cgpu_timeout_s=timeout, strict_cloud=True),
                                         tmp_path / "b"))
    leftovers = [p.name for p in (cloud["root"] / "content").iterdir() if p.name.startswith("montage-upscale")]
    assert leftovers == [] or fault in ("no GPU", "timeout")   # cleanup needs a working runtime


def test_client_refuses_when_cgpu_is_missing(cloud):
    (cloud["bin"] / "cgpu").unlink()
    with pytest.raises(CgpuNotInstalled, match="npm install -g cgpu"):
        CgpuClient().check_ready()
