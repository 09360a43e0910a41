"""`upscale_spec`: RenderSpec -> RenderSpec whose low-resolution spans read upscaled intermediates.

The renderer needs no change: it still seeks into a file and scales it to the output, only the
file is now an upscaled copy of the range it uses. Backends are tried in an explicit order, and
a failing one hands its jobs to the next:

1. Ray GPU ("ray"): with a Ray executor (RAY_ADDRESS / --ray), each range, in parts of at most
   RAY_PART_BYTES of result, is Ray tasks asking for one GPU each, upscaled there with
   Real-ESRGAN (PyTorch where installed, else ncnn); the bytes come back and are checked, joined
   and cached here (gpu_task.py). A cluster without GPU, a worker with neither engine or a task
   past its bound passes the range on, and the report says why.
2. Colab GPU through `cgpu run` ("cloud"), when enabled; `strict_cloud` makes its failure an error.
3. Local Real-ESRGAN ncnn ("ncnn"), when it loads here.
4. ffmpeg Lanczos ("ffmpeg"), always.

Results are cached by what determines their pixels (source identity, range, crop, scale,
model), not by backend, and written atomically, so a re-render or a second montage over the
same footage reuses them. The report says which path made which range (and on which Ray node
and device), and why a faster one did not.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..atomic import atomic_path, scratch_dir, sweep_stale, write_bytes, write_text
from ..errors import MontageError
from ..execute import Executor, Failed, Outcome
from ..media.ffmpeg import run_ffmpeg
from ..timeline.model import RenderSpec
from .ranges import (
    CropBox, ModelName, SkippedSource, SourceGeom, UpscaleError, UpscaleJob, plan_upscale, remap_spec,
)

ProgressFn = Callable[[str, float, float, str], None]
"""progress(phase, done, total, what): phase is "upscale" (frames, local backends), "upload",
"download" (bytes) or "remote" (frames on the Colab GPU or Ray GPU workers); `what` names the
range or file."""

Backend = Literal["ray", "cloud", "ncnn", "ffmpeg", "cache"]


class UpscaleOptions(BaseModel):
    """What `run --upscale ...` asks for (CLI flags and environment map onto these fields)."""

    enabled: bool = False                               # --upscale
    model: ModelName = "realesr-animevideov3"           # --upscale-model
    scale: Literal[2, 3, 4] | None = None               # --upscale-scale (None: smallest that reaches the output)
    cloud: bool = False                                 # --cgpu-gpu / CGPU_GPU_ENABLED
    strict_cloud: bool = False                          # --strict-cloud: a cloud failure is an error
    cgpu_timeout_s: float = Field(1800.0, gt=0)         # CGPU_TIMEOUT: the whole cloud job
    cgpu_bin: str = "cgpu"
    cgpu_upload_limit_mb: float = Field(320.0, gt=0)    # cgpu copy's ceiling is about 384 MiB
    cgpu_download_chunk_mb: float = Field(32.0, gt=0)   # base64 per `cgpu run`: a drop costs one chunk
    cgpu_verbose: bool = False                          # pass -v to cgpu run
    local: Literal["auto", "ffmpeg"] = "auto"           # "ffmpeg": skip ncnn (fast previews)
    threads: int | None = Field(None, gt=0)             # CPU threads for ncnn/ffmpeg (default: all)
    local_timeout_s: float | None = Field(None, gt=0)   # per range, local ncnn


class UpscaleEntry(BaseModel):
    """One upscaled range: what was made, by which path, how long it took, and why."""

    source: Path
    start_s: float
    end_s: float
    frames: int
    crop: CropBox
    scale: int
    model: str
    backend: Backend
    seconds: float
    output: Path
    notes: list[str] = []


class UpscaleReport(BaseModel):
    entries: list[UpscaleEntry] = []
    skipped: list[SkippedSource] = []
    fallbacks: list[str] = []           # why a backend was passed over

    def backends(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.backend] = out.get(e.backend, 0) + 1
        return out

    def summary_lines(self) -> list[str]:
        """Human lines for the end-of-run summary."""
        lines = [f"upscale {e.source.name} {e.start_s:.2f}-{e.end_s:.2f}s ({e.frames} frames, crop "
                 f"{e.crop.w}x{e.crop.h}, x{e.scale} {e.model}): {e.backend} in {e.seconds:.1f} s"
                 + (f" [{'; '.join(e.notes)}]" if e.notes else "") for e in self.entries]
        lines += [f"upscale {s.path.name}: not needed ({s.reason})" for s in self.skipped]
        lines += [f"upscale fallback: {why}" for why in self.fallbacks]
        return lines


# --------------------------------------------------------------------------- cache


class UpscaleCache:
    """<dir>/<key>.mkv with a <key>.json sidecar naming the backend; both written atomically
    (montage_ai.atomic), and what a killed run left half-written is swept on open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        sweep_stale(root)

    def video(self, job: UpscaleJob) -> Path:
        return self.root / f"{job.key()}.mkv"

    def get(self, job: UpscaleJob) -> dict | None:
        meta = self.root / f"{job.key()}.json"
        if not (self.video(job).is_file() and meta.is_file()):
            return None
        try:
            return json.loads(meta.read_text())
        except ValueError:
            return None

    def put(self, job: UpscaleJob, video: Path, backend: str, notes: list[str]) -> Path:
        """Move `video` in (with the source's audio for the range muxed in) and record it."""
        final = self.video(job)
        if job.has_audio:
            with atomic_path(final) as tmp:
                _mux_range_audio(video, job, tmp)
        else:
            os.replace(video, final)          # a finished file, same filesystem: the work dir is under root
        meta = {"job": json.loads(job.model_dump_json()), "backend": backend, "notes": notes, "made": time.time()}
        write_text(self.root / f"{job.key()}.json", json.dumps(meta, indent=1))
        return final


def _mux_range_audio(video: Path, job: UpscaleJob, out: Path) -> None:
    """Intermediate = upscaled video + the source's audio for the same range (time 0 = range
    start), so `keep_clip_audio` renders read the same sound as from the source."""
    from .local import ffmpeg_timeout

    run_ffmpeg(["-i", video, "-ss", f"{job.start_s:.6f}", "-t", f"{job.frames / float(job.fps):.6f}", "-i", job.source,
                "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", "-c:a", "flac", "-map_metadata", "-1",
                "-f", "matroska", out],
               what=f"adding audio to the upscaled {job.describe()}", timeout_s=ffmpeg_timeout(job.frames))


# --------------------------------------------------------------------------- entry point


def probe_geoms(spec: RenderSpec) -> dict[Path, SourceGeom]:
    from ..media.probe import probe

    paths = {span.path for p in spec.pieces for span in (p.a, p.b) if span is not None}
    return {path: SourceGeom.from_media(probe(path)) for path in sorted(paths)}


def upscale_spec(spec: RenderSpec, options: UpscaleOptions, cache_dir: Path, progress: ProgressFn | None = None,
                 *, geoms: dict[Path, SourceGeom] | None = None,
                 executor: Executor | None = None) -> tuple[RenderSpec, UpscaleReport]:
    """Upscale every used range of every too-small source once and re-point the spec at the
    results. `cache_dir` is the engine cache (results go under cache_dir/upscale); a remote
    `executor` (Ray) puts its GPU workers first in the chain. Raises UpscaleError when nothing
    could upscale, or when --strict-cloud and the cloud failed."""
    report = UpscaleReport()
    if not options.enabled:
        return spec, report
    plan = plan_upscale(spec, geoms if geoms is not None else probe_geoms(spec), options.model, options.scale)
    report.skipped = plan.skipped
    cache = UpscaleCache(Path(cache_dir) / "upscale")
    outputs: dict[str, Path] = {}
    pending: list[UpscaleJob] = []
    for job in plan.jobs:
        hit = cache.get(job)
        if hit is not None:
            outputs[job.key()] = cache.video(job)
            report.entries.append(_entry(job, "cache", 0.0, cache.video(job), [f"made by {hit.get('backend')}"]))
        else:
            pending.append(job)
    runners = {**_RUNNERS, "ray": functools.partial(_run_ray, executor)}
    for backend in _backends(options, report, executor):
        if not pending:
            break
        pending = runners[backend](pending, options, cache, outputs, report, progress)
    if pending:
        raise UpscaleError("no upscaler could process " + ", ".join(j.describe() for j in pending)
                           + ": " + "; ".join(report.fallbacks[-2:]))
    return remap_spec(spec, plan, outputs), report


def _backends(options: UpscaleOptions, report: UpscaleReport, executor: Executor | None = None) -> list[str]:
    """The chain, fastest first: Ray GPU (with a Ray executor), Colab GPU (when enabled), local
    ncnn (when it loads), Lanczos."""
    chain = ["ray"] if executor is not None and executor.remote else []
    if options.cloud:
        chain.append("cloud")
    if options.local == "auto":
        from .local import ncnn_status

        status = ncnn_status()
        if status.available:
            chain.append("ncnn")
        else:
            report.fallbacks.append(f"local Real-ESRGAN skipped: {status.reason}")
    return [*chain, "ffmpeg"]


def _entry(job: UpscaleJob, backend: Backend, seconds: float, output: Path, notes: list[str]) -> UpscaleEntry:
    return UpscaleEntry(source=job.source, start_s=job.start_s, end_s=job.end_s, frames=job.frames, crop=job.crop,
                        scale=job.scale, model=job.model, backend=backend, seconds=round(seconds, 3),
                        output=output, notes=notes)


def _run_cloud(jobs: list[UpscaleJob], options: UpscaleOptions, cache: UpscaleCache, outputs: dict[str, Path],
               report: UpscaleReport, progress: ProgressFn | None) -> list[UpscaleJob]:
    """All pending jobs in one cloud job; returns those not finished (after a failure)."""
    from ..remote.cgpu_run import MIB
    from .cloud import CloudOptions, upscale_cloud

    opts = CloudOptions(binary=options.cgpu_bin, timeout_s=options.cgpu_timeout_s, verbose=options.cgpu_verbose,
                        upload_limit_bytes=int(options.cgpu_upload_limit_mb * MIB),
                        download_chunk_bytes=int(options.cgpu_download_chunk_mb * MIB))
    clock = [time.monotonic()]

    def done(job: UpscaleJob, video: Path, notes: list[str]) -> None:
        outputs[job.key()] = cache.put(job, video, "cloud", notes)
        now = time.monotonic()
        report.entries.append(_entry(job, "cloud", now - clock[0], outputs[job.key()], notes))
        clock[0] = now

    try:
        with scratch_dir(cache.root, "work") as work:
            upscale_cloud(jobs, work, opts, on_done=done, progress=progress)
    except (MontageError, OSError) as exc:
        if options.strict_cloud:
            raise UpscaleError(f"cloud upscale failed (--strict-cloud): {exc}") from exc
        report.fallbacks.append(f"Colab GPU failed, using the local path: {exc}")
    return [j for j in jobs if j.key() not in outputs]


RAY_PART_BYTES = 256 * 1024 * 1024   # a worker's result crosses the object store and this process's memory whole


def ray_parts(job: UpscaleJob, part_bytes: int | None = None) -> list[UpscaleJob]:
    """The job cut by frames into parts whose lossless result (FFV1 RGB: at most about 4 bytes a
    pixel) stays under `part_bytes`, one GPU task each: a long 4K range neither sits whole in
    memory nor waits for one GPU while others idle. Frame i of a part is frame i of the job's
    grid from the part's start (the grid is absolute), so the joined parts are the whole job."""
    per = max(1, (part_bytes or RAY_PART_BYTES) // (job.out_width * job.out_height * 4))
    return [job.model_copy(update={"start_frame": first, "end_frame": min(first + per, job.end_frame)})
            for first in range(job.start_frame, job.end_frame, per)]


class _RayJob:
    """A job's parts, and their results coming back from the cluster in any order."""

    def __init__(self, parts: list[UpscaleJob]) -> None:
        self.parts = parts
        self.files: list[Path | None] = [None] * len(parts)
        self.notes: list[str] = []
        self.seconds = 0.0
        self.why = ""                   # set once a part fails: the job is passed over

    def done(self) -> bool:
        return all(f is not None for f in self.files)


def _run_ray(executor: Executor, jobs: list[UpscaleJob], options: UpscaleOptions, cache: UpscaleCache,
             outputs: dict[str, Path], report: UpscaleReport, progress: ProgressFn | None) -> list[UpscaleJob]:
    """Each job's parts as Ray tasks on GPU workers, checked and joined here, each job cached as
    its last part comes back; returns the jobs the cluster could not do, and the report says why
    each was passed over."""
    from .gpu_task import UPSCALE_GPU

    state = {job.key(): _RayJob(ray_parts(job)) for job in jobs}
    items = [(job, k, part) for job in jobs for k, part in enumerate(state[job.key()].parts)]
    total, done = sum(j.frames for j in jobs), 0
    with scratch_dir(cache.root, "work") as work:
        for outcome in executor.map(UPSCALE_GPU, [part for _, _, part in items]):
            job, k, part = items[outcome.index]
            got = state[job.key()]
            if got.why:
                continue
            got.why = (outcome.result.reason if isinstance(outcome.result, Failed)
                       else _keep_ray_part(part, k, outcome, work, got))
            if not got.why and got.done():
                got.why = _cache_ray_job(job, got, work, cache, outputs, report)
            if not got.why:
                done += part.frames
                if progress is not None:
                    progress("remote", done, total, job.describe())
    passed: dict[str, int] = {}             # why -> ranges passed over for that reason
    for got in state.values():
        if got.why:
            passed[got.why] = passed.get(got.why, 0) + 1
    report.fallbacks += [f"Ray GPU passed over for {n} range(s): {why}" for why, n in passed.items()]
    return [j for j in jobs if j.key() not in outputs]


def _keep_ray_part(part: UpscaleJob, k: int, outcome: Outcome, work: Path, got: _RayJob) -> str:
    """A worker's intermediate for one part, written and checked (it crossed machines); returns
    why it could not be used, or ""."""
    from .cloud import verify_video

    video = work / f"{part.key()}.part.mkv"
    try:
        write_bytes(video, outcome.result.video)
        verify_video(video, part.frames, part.out_width, part.out_height, part.fps)
    except (MontageError, OSError) as exc:
        return f"the result from Ray node {outcome.node} for {part.describe()} was unusable: {exc}"
    got.files[k] = video
    note = f"Real-ESRGAN {outcome.result.engine} on Ray node {outcome.node}: {outcome.result.device}"
    if note not in got.notes:
        got.notes.append(note)
    got.seconds += outcome.seconds
    return ""


def _cache_ray_job(job: UpscaleJob, got: _RayJob, work: Path, cache: UpscaleCache, outputs: dict[str, Path],
                   report: UpscaleReport) -> str:
    """The job's parts joined (stream copy, checked) and cached; returns why not, or ""."""
    from .cloud import join_parts
    from .local import ffmpeg_timeout

    files = [f for f in got.files if f is not None]
    try:
        video = join_parts(job, files, work, ffmpeg_timeout(job.frames))
        outputs[job.key()] = cache.put(job, video, "ray", got.notes)
    except (MontageError, OSError) as exc:
        return f"the parts of {job.describe()} from the Ray cluster could not be joined: {exc}"
    finally:
        for f in files:
            f.unlink(missing_ok=True)
    report.entries.append(_entry(job, "ray", got.seconds, outputs[job.key()], got.notes))
    return ""


def _run_local(backend: str) -> Callable[..., list[UpscaleJob]]:
    def run(jobs: list[UpscaleJob], options: UpscaleOptions, cache: UpscaleCache, outputs: dict[str, Path],
            report: UpscaleReport, progress: ProgressFn | None) -> list[UpscaleJob]:
        """Each job in turn; a failing job is left for the next backend."""
        from .fallback import upscale_lanczos
        from .local import upscale_ncnn

        left: list[UpscaleJob] = []
        with scratch_dir(cache.root, "work") as work:
            for job in jobs:
                tick = _frames_progress(progress, job.describe())
                video = work / f"{job.key()}.video.mkv"
                started = time.monotonic()
                try:
                    if backend == "ncnn":
                        note = upscale_ncnn(job, video, threads=options.threads, timeout_s=options.local_timeout_s,
                                            progress=tick)
                        notes = [f"Real-ESRGAN ncnn on {note}"]
                    else:
                        notes = [upscale_lanczos(job, video, threads=options.threads, progress=tick)]
                    outputs[job.key()] = cache.put(job, video, backend, notes)
                    report.entries.append(_entry(job, backend, time.monotonic() - started, outputs[job.key()], notes))
                except (MontageError, OSError) as exc:
                    report.fallbacks.append(f"{backend} failed for {job.describe()}: {exc}")
                    left.append(job)
                finally:
                    video.unlink(missing_ok=True)
        return left
    return run


def _frames_progress(progress: ProgressFn | None, what: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress("upscale", done, total, what)


_RUNNERS = {"cloud": _run_cloud, "ncnn": _run_local("ncnn"), "ffmpeg": _run_local("ffmpeg")}


# --------------------------------------------------------------------------- doctor


def doctor_line(cloud_enabled: bool, cgpu_bin: str = "cgpu", cgpu_timeout_s: float = 1800.0) -> str:
    """One `doctor` line: which upscale path a run would take here, without calling cgpu."""
    from ..remote.cgpu_run import session_problem
    from .local import ncnn_status

    st = ncnn_status()
    local = (f"local Real-ESRGAN ncnn {st.version} on {st.reason}" if st.available
             else f"local Real-ESRGAN unavailable ({st.reason}); ffmpeg Lanczos fallback")
    if not cloud_enabled:
        cloud = "cloud GPU disabled (--cgpu-gpu or CGPU_GPU_ENABLED=1)"
    elif shutil.which(cgpu_bin) is None:
        cloud = f"cloud GPU enabled but `{cgpu_bin}` is not installed (npm install -g cgpu)"
    else:
        problem = session_problem()
        cloud = (f"cloud GPU enabled via {cgpu_bin}, CGPU_TIMEOUT={cgpu_timeout_s:.0f}s"
                 + (f"; {problem}" if problem else "; session present"))
    return f"upscale    {local}; {cloud}"


def chain_line(cloud_enabled: bool, ray_address: str, cgpu_bin: str = "cgpu") -> str:
    """The `doctor` line with the upscale chain in the order a run tries it and the state of
    each step, without joining a Ray cluster (a TCP check at most) or calling cgpu."""
    steps = [f"Ray GPU ({_ray_state(ray_address)})", f"Colab GPU ({_cloud_state(cloud_enabled, cgpu_bin)})",
             f"local Real-ESRGAN ncnn ({_local_state()})", "ffmpeg Lanczos (always)"]
    return "upscale    chain: " + " -> ".join(steps)


def _ray_state(address: str) -> str:
    """Whether a Ray cluster could take GPU tasks: whether it answers, not whether it has GPUs
    (counting them means joining it, which a run does)."""
    import importlib.util

    from ..execute.ray_cluster import reachable

    if not address:
        return "off: --ray or RAY_ADDRESS"
    if importlib.util.find_spec("ray") is None:
        return f"RAY_ADDRESS {address}, but Ray is not installed here: pip install 'montage-ai[ray]'"
    if address == "auto":
        return f"RAY_ADDRESS {address}, not checked; a run counts its GPUs when it joins"
    try:
        reachable(address)
    except MontageError as exc:
        return str(exc)
    return f"RAY_ADDRESS {address} answers; a run counts its GPUs when it joins (PyTorch or ncnn on each)"


def _cloud_state(enabled: bool, cgpu_bin: str) -> str:
    from ..remote.cgpu_run import session_problem

    if not enabled:
        return "disabled: --cgpu-gpu or CGPU_GPU_ENABLED=1"
    if shutil.which(cgpu_bin) is None:
        return f"enabled, but `{cgpu_bin}` is not installed: npm install -g cgpu"
    return f"enabled, {session_problem() or 'session present'}"


def _local_state() -> str:
    from .local import ncnn_status

    st = ncnn_status()
    return f"{st.version} on {st.reason}" if st.available else f"unavailable: {st.reason}"
