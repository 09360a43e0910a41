"""Conform a RenderSpec to an MP4 on the local CPU with ffmpeg.

Each piece (a clip range, a dissolve, black) is decoded from its source with an accurate seek,
conformed to the output size and rate, and written as a *lossless* x264 (qp 0) intermediate with
exactly its frame count. The pieces are rendered in parallel (bounded by the worker count),
cached by content so an interrupted or repeated render resumes, and joined with the concat
demuxer into the single lossy encode, where the grade and the music are applied. So there is
one generation of lossy encoding from source to output, and the output appears atomically.

Pieces are content-addressed: identical pieces (the same source window used twice) are
rendered once, and two runs sharing one cache may render the same piece at the same time,
each into its own temporary file (atomic.py), the last rename winning with identical content.
The concat list names pieces relative to its own folder, so no path (a cache folder whose
name holds a quote or a newline) is ever written into it.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..atomic import atomic_path, scratch_path
from ..media.ffmpeg import run_ffmpeg
from ..report.progress import Progress, as_progress
from ..timeline.model import Piece, RenderSettings, RenderSpec

RENDER_VERSION = 1
SAMPLE_RATE = 48000
# Time bounds for ffmpeg: generous (a slow preset at 4K on two cores), but finite, so a hung
# decoder cannot hold a render forever.
PIECE_TIMEOUT_S, PIECE_TIMEOUT_PER_FRAME_S = 120.0, 2.0
ENCODE_TIMEOUT_S, ENCODE_TIMEOUT_PER_FRAME_S = 300.0, 3.0


@dataclass(frozen=True)
class RenderResult:
    path: Path
    frames: int
    pieces_rendered: int
    pieces_cached: int


def _fit_filter(s: RenderSettings) -> str:
    w, h = s.width, s.height
    if s.fit == "pad":
        scale = f"scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bicubic"
        return f"{scale},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black"
    return f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h}"


def _video_chain(s: RenderSettings, frames: int) -> str:
    """Source frames -> output grid. The first frame after the seek becomes frame 0; `fps`
    resamples to the output rate; `tpad` clones the last frame if the source runs short."""
    dur = frames / s.fps
    return (f"setpts=PTS-STARTPTS,fps={s.fps_num}/{s.fps_den},{_fit_filter(s)},setsar=1,format=yuv420p,"
            f"tpad=stop_mode=clone:stop_duration={float(dur) + 1:.3f}")


def _seek_args(span_start_s: float, fps: Fraction) -> list[str]:
    """Seek half an output frame early so the frame at the in-point survives float rounding."""
    return ["-ss", f"{max(0.0, span_start_s - 0.5 / float(fps)):.6f}"]


def _audio_chain(label: str, dur: float) -> str:
    return (f"[{label}]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"atrim=0:{dur:.6f},apad=whole_dur={dur:.6f}")


def piece_args(p: Piece, s: RenderSettings, threads: int, out: Path, with_audio: bool,
               has_audio: dict[Path, bool]) -> list[str]:
    """The ffmpeg arguments that render one piece to a lossless intermediate."""
    n = p.frames
    dur = float(n / s.fps)
    args: list[str] = ["-threads", str(threads)]
    fc: list[str] = []
    if p.kind == "black":
        args += ["-f", "lavfi", "-i", f"color=c=black:s={s.width}x{s.height}:r={s.fps_num}/{s.fps_den}"]
        fc.append("[0:v]setsar=1,format=yuv420p[v]")
        if with_audio:
            args += ["-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
            fc.append(_audio_chain("1:a", dur) + "[a]")
    elif p.kind == "clip":
        assert p.a is not None
        args += [*_seek_args(p.a.start_s, s.fps), "-i", str(p.a.path)]
        fc.append(f"[0:v]{_video_chain(s, n)}[v]")
        if with_audio:
            if has_audio.get(p.a.path):
                fc.append(_audio_chain("0:a", dur) + "[a]")
            else:
                args += ["-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
                fc.append(_audio_chain("1:a", dur) + "[a]")
    else:
        assert p.a is not None and p.b is not None
        args += [*_seek_args(p.a.start_s, s.fps), "-i", str(p.a.path),
                 *_seek_args(p.b.start_s, s.fps), "-i", str(p.b.path)]
        fc += [f"[0:v]{_video_chain(s, n)}[va]", f"[1:v]{_video_chain(s, n)}[vb]",
               f"[va][vb]xfade=transition=fade:duration={dur:.6f}:offset=0[v]"]
        if with_audio:
            labels = []
            for idx, src in ((0, p.a.path), (1, p.b.path)):
                if has_audio.get(src):
                    fade = "out" if idx == 0 else "in"
                    fc.append(_audio_chain(f"{idx}:a", dur) + f",afade=t={fade}:d={dur:.6f}[a{idx}]")
                    labels.append(f"[a{idx}]")
            if labels:
                fc.append("".join(labels) + f"amix=inputs={len(labels)}:normalize=0[a]")
            else:
                args += ["-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
                fc.append(_audio_chain("2:a", dur) + "[a]")
    args += ["-filter_complex", ";".join(fc), "-map", "[v]"]
    if with_audio:
        args += ["-map", "[a]", "-c:a", "pcm_s16le"]
    args += ["-frames:v", str(n), "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast",
             "-pix_fmt", "yuv420p", "-r", f"{s.fps_num}/{s.fps_den}", str(out)]
    return args


def _piece_key(p: Piece, s: RenderSettings, with_audio: bool) -> str:
    """Content key: the piece, the output format, and each source's size and mtime."""
    sources = []
    for span in (p.a, p.b):
        if span is not None:
            st = span.path.stat()
            sources.append([str(span.path), st.st_size, st.st_mtime_ns])
    blob = json.dumps({
        "v": RENDER_VERSION, "piece": p.model_dump(mode="json", exclude={"record_start_frame"}),
        "fmt": [s.width, s.height, s.fps_num, s.fps_den, s.fit], "audio": with_audio, "src": sources,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _probe_audio(paths: set[Path]) -> dict[Path, bool]:
    from ..media.probe import probe

    return {p: probe(p).has_audio for p in paths}


def _final_args(spec: RenderSpec, concat_list: Path, out: Path, threads: int) -> list[str]:
    s = spec.settings
    total_s = spec.duration_s
    args = ["-threads", str(threads), "-f", "concat", "-safe", "0", "-i", str(concat_list)]
    fc = []
    vchain = "[0:v]setsar=1"
    if spec.look is not None and not spec.look.is_neutral():
        lk = spec.look
        vchain += f",eq=contrast={lk.contrast}:saturation={lk.saturation}:brightness={lk.brightness}"
    fc.append(vchain + ",format=yuv420p[v]")
    mix: list[str] = []
    for i, a in enumerate(spec.audio, start=1):
        args += ["-ss", f"{a.source_start_s:.6f}", "-t", f"{a.duration_s + 0.5:.6f}", "-i", str(a.path)]
        chain = f"[{i}:a]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=0:{a.duration_s:.6f}"
        if a.fade_out_s > 0:
            fade = min(a.fade_out_s, a.duration_s)
            chain += f",afade=t=out:st={a.duration_s - fade:.6f}:d={fade:.6f}"
        delay_ms = round(a.record_start_s * 1000)
        if delay_ms > 0:
            chain += f",adelay={delay_ms}:all=1"
        fc.append(chain + f"[m{i}]")
        mix.append(f"[m{i}]")
    if s.keep_clip_audio:
        fc.append("[0:a]volume=0.35[clip]")   # ducked under the music
        mix.append("[clip]")
    if mix:
        joined = "".join(mix) + (f"amix=inputs={len(mix)}:normalize=0:duration=longest," if len(mix) > 1 else "")
        fc.append(f"{joined}{'' if len(mix) > 1 else 'anull,'}atrim=0:{total_s:.6f},apad=whole_dur={total_s:.6f}[a]")
    args += ["-filter_complex", ";".join(fc), "-map", "[v]"]
    if mix:
        args += ["-map", "[a]", "-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE)]
    args += ["-threads", str(threads), "-c:v", "libx264", "-crf", str(s.crf), "-preset", s.preset, "-pix_fmt", "yuv420p",
             "-r", f"{s.fps_num}/{s.fps_den}", "-frames:v", str(spec.total_frames),
             "-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


def render(spec: RenderSpec, out_path: Path, cache_dir: Path, workers: int = 2,
           progress: bool | Progress = True, encoder_threads: int | None = None) -> RenderResult:
    """Render `spec` to `out_path` (written atomically); pieces are cached under `cache_dir`.
    `workers` bounds the parallel piece jobs and `encoder_threads` the final encode, which is
    how MEMORY_LIMIT_GB reaches ffmpeg."""
    s = spec.settings
    cache_dir, out_path = cache_dir.resolve(), out_path.resolve()
    piece_dir = cache_dir / "pieces"
    piece_dir.mkdir(parents=True, exist_ok=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    threads = max(1, cores // max(1, workers))
    with_audio = s.keep_clip_audio
    has_audio = _probe_audio({sp.path for p in spec.pieces for sp in (p.a, p.b) if sp}) if with_audio else {}

    jobs = [(p, piece_dir / f"{_piece_key(p, s, with_audio)}.mkv") for p in spec.pieces]
    unique = {path: p for p, path in jobs}          # a source window used twice is rendered once
    todo = [(p, path) for path, p in unique.items() if not path.exists()]
    prog = as_progress(progress)
    bar = prog.bar("render pieces", total=len(unique), unit="piece", initial=len(unique) - len(todo))

    def one(job: tuple[Piece, Path]) -> None:
        p, final = job
        with atomic_path(final) as tmp:
            run_ffmpeg(piece_args(p, s, threads, tmp, with_audio, has_audio),
                       what=f"rendering frames {p.record_start_frame}-{p.record_start_frame + p.frames} "
                            f"({p.a.path.name if p.a else 'black'})",
                       timeout_s=PIECE_TIMEOUT_S + PIECE_TIMEOUT_PER_FRAME_S * p.frames)
        bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, todo))
    finally:
        bar.close()

    with scratch_path(piece_dir / "pieces.ffconcat") as concat:
        lines = ["ffconcat version 1.0", *(f"file '{path.name}'" for _, path in jobs)]
        concat.write_text("\n".join(lines) + "\n", encoding="utf-8")
        fbar = prog.bar("encode", total=spec.total_frames, unit="frame")
        try:
            with atomic_path(out_path) as tmp_out:
                run_ffmpeg(_final_args(spec, concat, tmp_out, encoder_threads or cores), what=f"encoding {out_path.name}",
                           on_progress_frame=fbar.set,
                           timeout_s=ENCODE_TIMEOUT_S + ENCODE_TIMEOUT_PER_FRAME_S * spec.total_frames)
        finally:
            fbar.close()
    return RenderResult(path=out_path, frames=spec.total_frames, pieces_rendered=len(todo),
                        pieces_cached=len(unique) - len(todo))
