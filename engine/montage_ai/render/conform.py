"""Conform a RenderSpec to an MP4 on the local CPU: one lossy encode, frame- and sample-exact.

The cut is split into chunks of whole pieces. For each chunk the engine decodes the sources
itself (decode.py), picks every output frame by the one rule (docs/frame-rule.md), conforms it
to the output size (picture.py) and pipes it to an x264 encoder at final quality. Chunks are
encoded in parallel (bounded by the worker count), cached by content, so a killed or repeated
render resumes from the finished chunks, and joined by stream copy. The soundtrack is mixed to
PCM sample-exactly (audio_mix.py) and encoded once when the chunks are muxed. So every source
frame goes through one decode and one lossy encode, and the output appears atomically.

Dissolves are blended here (linear, as ffmpeg's xfade `fade`); the grade is ffmpeg's `eq`
filter in each chunk's encoder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from av.video.reformatter import VideoReformatter

from ..atomic import atomic_path, scratch_dir, write_bytes
from ..execute import Executor, Task
from ..execute.local import LocalExecutor
from ..media.ffmpeg import FfmpegPipe, run_ffmpeg
from ..media.fingerprint import fingerprint
from ..procs import check_interrupted
from ..report.progress import Bar, Progress, as_progress
from ..timeline.model import Piece, RenderSettings, RenderSpec
from .audio_mix import CHANNELS, SAMPLE_RATE, mix_to_pcm
from .decode import SourceClock, source_clock, span_frames
from .frame_rule import source_times
from .picture import Planes, black, blend, conform

RENDER_VERSION = 2
# Chunks: long enough that x264 settles and the join is cheap, short enough that a killed
# render loses little and both workers stay busy on a short montage.
CHUNK_MIN_S, CHUNK_MAX_S, CHUNKS_PER_CUT = 2, 30, 4
# Time bounds for ffmpeg: generous (a slow preset at 4K on two cores), but finite.
CHUNK_TIMEOUT_S, CHUNK_TIMEOUT_PER_FRAME_S = 120.0, 3.0
MUX_TIMEOUT_S, MUX_TIMEOUT_PER_FRAME_S = 120.0, 0.05


@dataclass(frozen=True)
class RenderResult:
    path: Path
    frames: int
    chunks_rendered: int
    chunks_cached: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole pieces encoded as one closed stretch of H.264."""

    pieces: tuple[Piece, ...]

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.pieces)


# --------------------------------------------------------------------------- planning


def split_piece(p: Piece, at: int, fps: Fraction) -> tuple[Piece, Piece]:
    """A clip or black piece cut after `at` frames; the second half's in-point moves by exactly
    `at` output frames, so the frame rule gives the same frames as the whole piece."""
    a = p.a.model_copy(update={"start": p.a.start + Fraction(at) / fps}) if p.a is not None else None
    return (p.model_copy(update={"frames": at}),
            p.model_copy(update={"record_start_frame": p.record_start_frame + at, "frames": p.frames - at, "a": a}))


def plan_chunks(spec: RenderSpec) -> list[Chunk]:
    """Whole pieces grouped into chunks of about a quarter of the cut, clamped to 2-30 s; longer
    clips and black are split (a dissolve never is). The plan depends on the timeline only, so
    a render with other worker settings still finds the chunks a killed one finished."""
    fps = spec.settings.fps
    target = max(int(CHUNK_MIN_S * fps), min(int(CHUNK_MAX_S * fps), math.ceil(spec.total_frames / CHUNKS_PER_CUT)))
    chunks: list[Chunk] = []
    current: list[Piece] = []
    filled = 0                               # frames in `current`
    queue = deque(sorted(spec.pieces, key=lambda p: p.record_start_frame))
    while queue:
        p = queue.popleft()
        room = target - filled
        if p.frames > room and p.kind != "dissolve" and room >= max(1, int(fps // 2)):
            p, tail = split_piece(p, room, fps)
            queue.appendleft(tail)
        current.append(p)
        filled += p.frames
        if filled >= target:
            chunks.append(Chunk(tuple(current)))
            current, filled = [], 0
    if current:
        chunks.append(Chunk(tuple(current)))
    return chunks


def chunk_key(chunk: Chunk, spec: RenderSpec) -> str:
    """Content key: the pieces (without their record position), the output format and grade,
    and each source's size and mtime."""
    s = spec.settings
    sources = []
    for p in chunk.pieces:
        for span in (p.a, p.b):
            if span is not None:
                st = span.path.stat()
                sources.append([str(span.path), st.st_size, st.st_mtime_ns])
    blob = json.dumps({
        "v": RENDER_VERSION,
        "pieces": [p.model_dump(mode="json", exclude={"record_start_frame"}) for p in chunk.pieces],
        "fmt": [s.width, s.height, s.fps_num, s.fps_den, s.fit, s.crf, s.preset],
        "look": spec.look.model_dump(mode="json") if spec.look is not None else None, "src": sources,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- pictures


class Clocks:
    """Each source's media time zero, found once per render (thread-safe enough: a race only
    decodes one first frame twice)."""

    def __init__(self) -> None:
        self._known: dict[Path, SourceClock] = {}

    def __call__(self, path: Path) -> SourceClock:
        if path not in self._known:
            self._known[path] = source_clock(path)
        return self._known[path]


def piece_pictures(p: Piece, s: RenderSettings, clocks: Clocks) -> Iterator[Planes]:
    """The output pictures of one piece, in order, exactly p.frames of them."""
    if p.kind == "black" or p.a is None:
        frame = black(s)
        for _ in range(p.frames):
            yield frame
        return
    a = _span_pictures(p.a.path, p.a.start, p.frames, s, clocks)
    if p.kind == "clip" or p.b is None:
        yield from a
        return
    b = _span_pictures(p.b.path, p.b.start, p.frames, s, clocks)
    for k, (fa, fb) in enumerate(zip(a, b)):
        yield blend(fa, fb, k / p.frames)


def _span_pictures(path: Path, start: Fraction, frames: int, s: RenderSettings, clocks: Clocks) -> Iterator[Planes]:
    clock = clocks(path)
    scaler = VideoReformatter()
    count = 0
    for frame in span_frames(path, clock, source_times(start, frames, s.fps)):
        count += 1
        yield conform(frame, clock.rotation_deg, s, scaler)
    assert count == frames, (path, count, frames)


# --------------------------------------------------------------------------- encoding


def _encoder_args(spec: RenderSpec, threads: int, frames: int, out: Path) -> list[str]:
    s = spec.settings
    args = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{s.width}x{s.height}",
            "-framerate", f"{s.fps_num}/{s.fps_den}", "-i", "pipe:0"]
    if spec.look is not None and not spec.look.is_neutral():
        lk = spec.look
        args += ["-vf", f"eq=contrast={lk.contrast}:saturation={lk.saturation}:brightness={lk.brightness},format=yuv420p"]
    return args + ["-threads", str(threads), "-c:v", "libx264", "-crf", str(s.crf), "-preset", s.preset,
                   "-pix_fmt", "yuv420p", "-frames:v", str(frames), "-video_track_timescale", str(_timescale(s)),
                   "-an", "-f", "mp4", str(out)]


def _timescale(s: RenderSettings) -> int:
    """An MP4 timescale in which every frame lasts a whole number of ticks (30000 for 29.97)."""
    return s.fps_num * max(1, 1000 // s.fps_num) if s.fps_den == 1 else s.fps_num


def encode_chunk(chunk: Chunk, spec: RenderSpec, out: Path, threads: int, clocks: Clocks,
                 pieces_bar: Bar, frames_bar: Bar) -> None:
    first = chunk.pieces[0].record_start_frame
    what = f"rendering frames {first}-{first + chunk.frames}"
    timeout = CHUNK_TIMEOUT_S + CHUNK_TIMEOUT_PER_FRAME_S * chunk.frames
    with FfmpegPipe(_encoder_args(spec, threads, chunk.frames, out), what=what, timeout_s=timeout) as enc:
        for p in chunk.pieces:
            for planes in piece_pictures(p, spec.settings, clocks):
                check_interrupted()
                for plane in planes.buffers():
                    enc.write(plane)
                frames_bar.update(1)
            pieces_bar.update(1)


def _mux_args(spec: RenderSpec, concat: Path, pcm: Path | None, out: Path) -> list[str]:
    args = ["-f", "concat", "-safe", "0", "-i", str(concat)]
    if pcm is not None:
        args += ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", str(CHANNELS), "-i", str(pcm)]
    args += ["-map", "0:v:0", "-c:v", "copy"]
    if pcm is not None:
        args += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
    return args + ["-frames:v", str(spec.total_frames), "-movflags", "+faststart", "-f", "mp4", str(out)]


def _has_soundtrack(spec: RenderSpec) -> bool:
    return bool(spec.audio) or spec.settings.keep_clip_audio


class ChunkJob(NamedTuple):
    """One chunk to encode: a render task's item."""

    chunk: Chunk
    spec: RenderSpec
    threads: int
    out: Path           # where this machine keeps it


def encode_in_place(job: ChunkJob, clocks: Clocks, bars: tuple[Bar, Bar]) -> None:
    with atomic_path(job.out) as tmp:
        encode_chunk(job.chunk, job.spec, tmp, job.threads, clocks, *bars)


def encode_to_bytes(job: ChunkJob) -> bytes:
    """The chunk's MP4 as bytes, encoded in a temporary folder of the machine this runs on."""
    quiet = as_progress(False)
    with tempfile.TemporaryDirectory(prefix="montage-chunk-") as folder:
        out = Path(folder) / "chunk.mp4"
        encode_chunk(job.chunk, job.spec, out, job.threads, Clocks(), quiet.bar("", None), quiet.bar("", None))
        return out.read_bytes()


def chunk_files(job: ChunkJob) -> dict[Path, str]:
    return {sp.path: fingerprint(sp.path) for p in job.chunk.pieces for sp in (p.a, p.b) if sp is not None}


def chunk_moved(job: ChunkJob, moved: dict[Path, Path]) -> ChunkJob:
    def span(sp):
        return sp.model_copy(update={"path": moved.get(sp.path, sp.path)}) if sp is not None else None

    pieces = tuple(p.model_copy(update={"a": span(p.a), "b": span(p.b)}) for p in job.chunk.pieces)
    return job._replace(chunk=Chunk(pieces))


def chunk_timeout_s(job: ChunkJob) -> float:
    return CHUNK_TIMEOUT_S + CHUNK_TIMEOUT_PER_FRAME_S * job.chunk.frames


LEGACY_PIECES = "pieces"    # lossless per-piece intermediates of engines before chunked render: never read now


def render(spec: RenderSpec, out_path: Path, cache_dir: Path, workers: int = 2,
           progress: bool | Progress = True, encoder_threads: int | None = None,
           executor: Executor | None = None) -> RenderResult:
    """Render `spec` to `out_path` (written atomically); finished chunks are cached under
    `cache_dir`. `workers` bounds the chunks encoded at once here and `encoder_threads` the
    threads all encoders share, which is how MEMORY_LIMIT_GB reaches x264. With a Ray
    executor the chunks are encoded on the cluster (with the same x264 threads, so the same
    bytes) and this machine joins them."""
    cache_dir, out_path = cache_dir.resolve(), out_path.resolve()
    chunk_dir = cache_dir / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache_dir / LEGACY_PIECES, ignore_errors=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers)
    cores = os.cpu_count() or 1
    threads = max(1, (encoder_threads or cores) // workers)
    chunks = plan_chunks(spec)
    jobs = [(c, chunk_dir / f"{chunk_key(c, spec)}.mp4") for c in chunks]
    unique = {path: c for c, path in jobs}          # the same stretch of picture twice is encoded once
    todo = [(c, path) for path, c in unique.items() if not path.exists()]
    prog = as_progress(progress)
    clocks = Clocks()
    pieces_bar = prog.bar("render pieces", total=sum(len(c.pieces) for c, _ in todo), unit="piece")
    frames_bar = prog.bar("encode", total=sum(c.frames for c, _ in todo), unit="frame")
    executor = executor or LocalExecutor(workers)
    if executor.remote:     # encoded on the cluster's nodes, the bytes come back and are written here
        task = Task("render", run=encode_to_bytes, files=chunk_files, relocate=chunk_moved, timeout_s=chunk_timeout_s,
                    cpus=threads)
    else:
        task = Task("render", run=functools.partial(encode_in_place, clocks=clocks, bars=(pieces_bar, frames_bar)))
    jobs_todo = [ChunkJob(c, spec, threads, path) for c, path in todo]
    try:
        for outcome in executor.map(task, jobs_todo):
            if executor.remote:
                job = jobs_todo[outcome.index]
                write_bytes(job.out, outcome.result)
                pieces_bar.update(len(job.chunk.pieces))
                frames_bar.update(job.chunk.frames)
    finally:
        pieces_bar.close()
        frames_bar.close()

    with scratch_dir(chunk_dir, "mux") as work:
        concat = work / "chunks.ffconcat"
        concat.write_text("ffconcat version 1.0\n" + "".join(f"file '../{path.name}'\n" for _, path in jobs),
                          encoding="utf-8")
        pcm = None
        if _has_soundtrack(spec):
            pcm = work / "soundtrack.f32"
            origins = {path: clocks(path).zero_time
                       for path in {sp.path for p in spec.pieces for sp in (p.a, p.b) if sp is not None}} \
                if spec.settings.keep_clip_audio else {}
            mix_to_pcm(spec, pcm, origins)
        with atomic_path(out_path) as tmp_out:
            run_ffmpeg(_mux_args(spec, concat, pcm, tmp_out), what=f"writing {out_path.name}",
                       timeout_s=MUX_TIMEOUT_S + MUX_TIMEOUT_PER_FRAME_S * spec.total_frames)
    return RenderResult(path=out_path, frames=spec.total_frames, chunks_rendered=len(todo),
                        chunks_cached=len(unique) - len(todo))
