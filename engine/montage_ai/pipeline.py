"""The story of a montage, in order: probe -> analyse -> direct -> cut -> timeline -> render.

Each stage hands a model to the next and nothing reaches back upstream. The renderer is given
the timeline (read back through the same reader that `render` uses for edited timelines), so
a timeline written here and one edited elsewhere are rendered by exactly the same path.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import opentimelineio as otio
from montage_otio.names import one_line
from pydantic import BaseModel

from . import atomic
from .analysis import cache as analysis_cache
from .analysis.clip_task import ANALYSIS, ClipItem
from .analysis.music import MusicAnalysis
from .analysis.music_apart import analyze_music_apart
from .analysis.shots import ClipAnalysis
from .analysis.similarity import with_groups
from .direct.llm import DirectorRecord, direct
from .direct.plan import EditPlan
from .direct.presets import load_style
from .errors import MediaError, MontageError
from .execute import Executor, StageUse, executor_for, placement_lines
from .execute.local import LocalExecutor
from .execute.ray_cluster import reachable as ray_reachable
from .media.probe import MediaInfo, probe
from .outputs import Inputs, Outputs, engine_outputs
from .plan.cutter import CutList, cut
from .plan.craft import CraftReport, craft_report
from .render.conform import render
from .report.page import CHART_NAME, REPORT_NAME, STORYBOARD_NAME, make_report
from .report.preview import PREVIEW_NAME, preview_spec
from .report.progress import Progress, as_progress
from .settings import Settings, parse_frame_rate
from .timeline.build import build_timeline
from .timeline.model import RenderSettings, RenderSpec
from .timeline.read import exact_rate, read_timeline

log = logging.getLogger("montage_ai")

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}


class RunSummary(BaseModel):
    out_dir: Path
    video: Path
    timeline: Path
    plan: Path
    tempo_bpm: float
    sections: list[str]
    cuts: int
    clips_used: int
    clips_found: int
    skipped: list[str]
    duration_s: float
    frames: int
    fps: str
    stages_s: dict[str, float]
    cache_hits: int
    warnings: list[str]
    director: DirectorRecord
    variants: list[Path] = []
    exports: list[str] = []
    notes: list[str] = []
    report: Path | None = None
    craft: CraftReport | None = None
    placement: dict[str, StageUse] = {}     # on a Ray cluster: where each kind of task ran

    def text(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.stages_s.items())
        lines = [
            f"montage: {self.video}",
            f"timeline: {self.timeline}   plan: {self.plan}" + (f"   report: {self.report}" if self.report else ""),
            f"tempo {self.tempo_bpm:.1f} BPM; sections: {' | '.join(self.sections)}",
            f"{self.cuts} segments from {self.clips_used}/{self.clips_found} clips; "
            f"{self.duration_s:.2f}s = {self.frames} frames at {self.fps} fps",
            f"time: {stages} (analysis cache hits: {self.cache_hits})",
            *self.director.line().split("\n"),
            *(self.craft.lines() if self.craft else []),
        ]
        lines += [f"variant: {v}" for v in self.variants]
        lines += [f"export {e}" for e in self.exports]
        lines += self.notes
        lines += [f"skipped: {s}" for s in self.skipped]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(one_line(line) for line in lines)   # a file name cannot break a line


def require_file(path: Path, what: str) -> Path:
    """`path` when it is a regular file, else one line saying what it is instead."""
    if path.is_file():
        return path
    if path.is_dir():
        raise MontageError(f"{path}: is a folder, not a {what}")
    if path.exists():
        raise MontageError(f"{path}: is not a regular file (a device or pipe), so not a {what}")
    raise MontageError(f"{path}: {what} not found")


def find_clips(folder: Path) -> list[Path]:
    """The video files in `folder` (not below it), hidden files and the engine's own outputs
    (a montage.mp4 written there by an earlier run) left out."""
    if not folder.is_dir():
        raise MontageError(f"{folder}: clips folder not found")
    own = engine_outputs(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise MontageError(f"{folder}: cannot list the clips folder ({exc.strerror or exc})") from exc
    return sorted(p.resolve() for p in entries if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                  and not p.name.startswith(".") and p.name not in own)


def probe_clips(paths: list[Path], folder: Path | None = None) -> tuple[list[MediaInfo], list[str]]:
    """Probe every file; unreadable ones are skipped with the reason, not fatal."""
    good, skipped = [], []
    for p in paths:
        try:
            info = probe(p)
            if not info.has_video or info.duration_s <= 0:
                raise MediaError(f"{p}: no video stream")
            good.append(info)
        except MediaError as exc:
            log.warning("skipping %s", exc)
            skipped.append(str(exc))
    if not good:
        raise MontageError(f"no usable video in {folder or (paths[0].parent if paths else 'the clips folder')}"
                           + (f" ({len(skipped)} unreadable)" if skipped else ""))
    return good, skipped


def analyze_clips(media: list[MediaInfo], cache_dir: Path, workers: int,
                  progress: bool | Progress, executor: Executor | None = None) -> tuple[list[ClipAnalysis], int, list[str]]:
    """Analyse clips in parallel (here in threads, or as tasks of a Ray cluster), each from the
    cache when its content was analysed before; a clip that fails to decode is skipped."""
    results: list[ClipAnalysis | None] = [None] * len(media)
    skipped: list[str] = []
    prog = as_progress(progress)
    bar = prog.bar("analyse clips", total=len(media), unit="clip")
    cache = cache_dir / "analysis"
    todo: list[ClipItem] = []
    for i, m in enumerate(media):
        results[i] = analysis_cache.load(m, i, cache)
        if results[i] is None:
            todo.append(ClipItem(i, m, str(m.path)))
        else:
            bar.update(1)
    for outcome in (executor or LocalExecutor(workers)).map(ANALYSIS, todo):
        i = todo[outcome.index].index
        analysis, err = outcome.result
        if analysis is not None:
            results[i] = analysis.model_copy(update={"media": media[i]})
            analysis_cache.store(media[i], results[i], cache)
        if err:
            log.warning("skipping %s", err)
            prog.warning(f"skipping {err}")
            skipped.append(err)
        bar.update(1)
    bar.close()
    clips = [r for r in results if r is not None and r.shots]
    if not clips:
        raise MontageError("no usable video shots in the clips folder")
    return with_groups(clips), len(media) - len(todo), skipped


def choose_fps(settings: Settings, media: list[MediaInfo]) -> Fraction:
    """--fps when given, else the most common source rate (so sources play frame for frame)."""
    if settings.fps:
        return parse_frame_rate(settings.fps)   # validated with the settings
    rates = Counter(exact_rate(float(m.fps)) for m in media if m.fps_num)
    return rates.most_common(1)[0][0] if rates else Fraction(30)


def prepare_cache(settings: Settings) -> Path:
    """Create the cache folder (one line naming MONTAGE_CACHE_DIR when that is impossible)
    and remove what killed runs left in it."""
    root = Path(settings.cache_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe_name = atomic.temp_name(root / ".write-test")
        probe_name.touch(exist_ok=False)
        probe_name.unlink()
    except OSError as exc:
        why = "it is a file, not a folder" if root.is_file() else (exc.strerror or str(exc))
        raise MontageError(f"MONTAGE_CACHE_DIR {root}: cannot use it as the cache folder ({why})") from exc
    atomic.sweep_stale_tree(root, max_depth=3)
    return root


def analysis_summary(music: MusicAnalysis | None, clips: list[ClipAnalysis]) -> dict:
    """The compact view of the analysis that a plan is made from (and an LLM would be shown)."""
    return {
        "music": None if music is None else {"path": str(music.path), "tempo_bpm": round(music.tempo_bpm, 2), "duration_s": round(music.duration_s, 3),
                  "start_offset_s": music.start_offset_s, "beats": len(music.beat_times_s),
                  "sections": [s.model_dump() for s in music.sections]},
        "shots": [{"id": s.id, "source": c.media.path.name, "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                   "score": round(s.score, 3), "motion": round(s.motion, 3), "sharpness": round(s.sharpness, 3),
                   "brightness": round(s.brightness, 3),
                   **({"same_moment_as": s.group} if s.group and s.group != s.id else {}),
                   **({"text": s.text} if s.text else {}),
                   **({"flicker": True} if s.flicker else {})}
                  for c in clips for s in c.shots],
    }


MONTAGE_FILES = ("montage.otio", "plan.json", REPORT_NAME, STORYBOARD_NAME, CHART_NAME)


def _export_formats(settings: Settings) -> list[str]:
    """The --export formats besides the montage.otio every run writes; unknown ones fail now."""
    wanted = [f.strip() for f in settings.export.split(",") if f.strip()]
    if not wanted:
        return []
    from .interchange import FORMATS

    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise MontageError(f"--export {settings.export}: unknown format(s) {', '.join(unknown)}; "
                           f"choose from {', '.join(FORMATS)}")
    return [f for f in dict.fromkeys(wanted) if f != "otio"]


def _montage_outputs(folder: Path, settings: Settings) -> list[Path]:
    """Every file one montage writes into `folder`."""
    from .interchange import export_paths

    video = PREVIEW_NAME if settings.preview else "montage.mp4"
    files = [folder / name for name in (video, *MONTAGE_FILES)]
    formats = _export_formats(settings)
    return files + (export_paths(None, folder, "montage", formats) if formats else [])


def _variant_folder(out: Path, k: int) -> Path:
    return out if k == 0 else out / f"variant-{k + 1}"


def run(settings: Settings, progress: bool | Progress = True) -> RunSummary:
    """Make the montage(s) for `settings`. Before any work, every output is checked against
    the inputs and the files already in the output folder (outputs.py); every output lands
    atomically and is recorded as the engine's."""
    if settings.clips is None or settings.music is None:
        raise MontageError("both --clips DIR and --music FILE are needed")
    out = Path(settings.out).expanduser().absolute()
    load_style(settings.style)  # an unknown style fails now, not after the analysis
    if settings.ray_address:
        ray_reachable(settings.ray_address)     # ...and so does a cluster that is not there
    music_path = require_file(settings.music.expanduser().resolve(), "music file")
    clip_paths = find_clips(settings.clips)
    inputs = Inputs([music_path], "the music")
    inputs.add(clip_paths, "a clip")
    inputs.add_folder(settings.clips)
    with Outputs(inputs, force=settings.force) as outputs:
        outputs.lock(out)
        for k in range(settings.variants):
            outputs.check(_montage_outputs(_variant_folder(out, k), settings))
        prepare_cache(settings)
        return _run_checked(settings, clip_paths, music_path, out, outputs, as_progress(progress))


def _run_checked(settings: Settings, clip_paths: list[Path], music_path: Path, out: Path, outputs: Outputs,
                 prog: Progress) -> RunSummary:
    stages = prog.stage
    with stages("probe"):
        media, skipped = probe_clips(clip_paths, settings.clips)
    with stages("music"):
        music_info = probe(music_path)
        music = analyze_music_apart(music_path, settings.music_start, music_info.duration_s / 60)
    target = settings.duration or music.duration_s
    if settings.duration and settings.duration > music.duration_s + 0.05:
        raise MontageError(f"{music_path}: target {settings.duration:.1f}s is longer than the music "
                           f"({music.duration_s:.1f}s after the {settings.music_start:.1f}s start)")
    workers = settings.worker_count()
    notes: list[str] = []
    executor = executor_for(settings.ray_address, workers, notes)
    try:
        return _run_with(executor, notes, settings, media, skipped, music, music_info, target, out, outputs, prog)
    finally:
        executor.close()


def _run_with(executor: Executor, notes: list[str], settings: Settings, media: list[MediaInfo], skipped: list[str],
              music: MusicAnalysis, music_info: MediaInfo, target: float, out: Path, outputs: Outputs,
              prog: Progress) -> RunSummary:
    stages = prog.stage
    workers = settings.worker_count()
    with stages("clips"):
        clips, hits, failed = analyze_clips(media, settings.cache_dir, workers, prog, executor)
    skipped += failed
    with stages("direct"):
        directed = direct(settings, music, clips)
    fps = choose_fps(settings, media)
    w, h = settings.output_size()
    render_settings = RenderSettings(width=w, height=h, fps_num=fps.numerator, fps_den=fps.denominator,
                                     fit=settings.fit, keep_clip_audio=settings.keep_clip_audio,
                                     crf=settings.crf, preset=settings.preset)
    context = _MontageContext(settings=settings, music=music, music_info=music_info, media=media, clips=clips,
                              fps=fps, render=render_settings, target_s=target, record=directed.record,
                              workers=workers, notes=notes, outputs=outputs, executor=executor)
    made: list[_Montage] = []
    for k, plan in enumerate(directed.plans):
        made.append(_make_montage(context, plan, _variant_folder(out, k), prog,
                                  suffix="" if k == 0 else f" v{k + 1}"))
    cuts, craft, otio_path, plan_path = made[0]
    exports: list[str] = []
    if settings.export:
        with stages("export"):
            exports = _export([m.timeline for m in made], _export_formats(settings), outputs,
                              settings.edl_source_timecode)
    video_name = PREVIEW_NAME if settings.preview else "montage.mp4"
    summary = RunSummary(
        out_dir=out, video=out / video_name, timeline=otio_path, plan=plan_path,
        tempo_bpm=music.tempo_bpm,
        sections=[f"{s.label} {s.start_s:.1f}-{s.end_s:.1f}s" for s in music.sections],
        cuts=len(cuts.segments), clips_used=len({s.source for s in cuts.segments}), clips_found=len(media) + len(skipped),
        skipped=skipped, duration_s=cuts.total_frames / float(fps), frames=cuts.total_frames,
        fps=str(fps), stages_s=dict(prog.stages_s), cache_hits=hits, warnings=cuts.warnings,
        craft=craft,
        director=directed.record, variants=[m.timeline.parent / video_name for m in made[1:]], exports=exports,
        notes=(placement_lines(executor) if executor.remote else []) + context.notes,
        placement=executor.use if executor.remote else {},
    )
    with stages("report"):
        for m in made:
            _report(m.timeline, m.plan, summary, music, settings, video_name, outputs)
    summary.stages_s = dict(prog.stages_s)
    summary.report = out / REPORT_NAME
    return summary


def _export(timelines: list[Path], formats: list[str], outputs: Outputs, edl_source_timecode: str) -> list[str]:
    """Write each montage timeline for the editors asked for; lines for the summary."""
    from .interchange import export_paths, export_timeline

    lines: list[str] = []
    for path in timelines:
        timeline = otio.adapters.read_from_file(str(path))
        outputs.check(export_paths(timeline, path.parent, "montage", formats))
        for result in export_timeline(timeline, path.parent, basename="montage", formats=formats,
                                      edl_source_timecode=edl_source_timecode):
            outputs.record(*result.paths)
            lines += [f"{result.format}: {p}" for p in result.paths]
            lines += [f"{result.format} note: {n}" for n in result.notes]
    return lines


def _report(otio_path: Path, plan_path: Path, summary: RunSummary, music: MusicAnalysis, settings: Settings,
            video_name: str, outputs: Outputs) -> None:
    """report.html, storyboard.png and timeline.png beside a montage, from what was written."""
    folder = otio_path.parent
    make_report(folder, otio.adapters.read_from_file(str(otio_path)), json.loads(plan_path.read_text()),
                summary.model_dump(mode="json"), music=music, video_name=video_name,
                settings=settings.model_dump(mode="json", exclude={"openai_api_key"}))
    outputs.record(*(folder / name for name in (REPORT_NAME, STORYBOARD_NAME, CHART_NAME)))


class _Montage(NamedTuple):
    """One montage made: its cut, how it was judged, and the files written."""

    cuts: CutList
    craft: CraftReport
    timeline: Path
    plan: Path


@dataclass
class _MontageContext:
    settings: Settings
    music: MusicAnalysis
    music_info: MediaInfo
    media: list[MediaInfo]
    clips: list[ClipAnalysis]
    fps: Fraction
    render: RenderSettings
    target_s: float
    record: DirectorRecord
    workers: int
    notes: list[str]
    outputs: Outputs
    executor: Executor


def _make_montage(c: _MontageContext, plan: EditPlan, out: Path, prog: Progress,
                  suffix: str = "") -> _Montage:
    """One plan -> cut -> montage.otio + plan.json -> montage.mp4 (or the preview) in `out`."""
    stages = prog.stage
    c.outputs.lock(out)
    with stages("cut" + suffix):
        cuts = cut(c.music, c.clips, plan, c.fps, plan.target_duration_s or c.target_s, c.settings.seed)
    with stages("timeline" + suffix):
        record = c.record.model_dump(mode="json")
        timeline = build_timeline("Montage AI", cuts, {str(m.path): m for m in c.media}, c.music, c.music_info,
                                  plan, c.render, extra_metadata={"seed": c.settings.seed, "director_record": record,
                                                                "plan": plan.model_dump(mode="json")})
        otio_path = out / "montage.otio"
        atomic.write_text(otio_path, otio.adapters.write_to_string(timeline, "otio_json"))
        plan_path = out / "plan.json"
        craft = craft_report(cuts, c.clips, c.music)
        atomic.write_text(plan_path, json.dumps({
            "plan": plan.model_dump(mode="json"),
            "director": record,
            "analysis": analysis_summary(c.music, c.clips),
            "segments": [s.model_dump(mode="json") for s in cuts.segments],
            "craft": craft.model_dump(mode="json"),
            "warnings": cuts.warnings,
        }, indent=2))
        c.outputs.record(otio_path, plan_path)
    spec = read_timeline(otio.adapters.read_from_file(str(otio_path)), base_dir=out, source=otio_path)
    if c.settings.upscale:
        with stages("upscale" + suffix):
            spec = upscale_for(spec, c.settings, c.notes, prog, c.executor)
    video_name = "montage.mp4"
    if c.settings.preview:   # same cut, same frames, low resolution and a fast encode
        spec, video_name = preview_spec(spec), PREVIEW_NAME
    with stages("render" + suffix):
        render(spec, out / video_name, c.settings.cache_dir / "render", workers=c.workers, progress=prog,
               encoder_threads=c.settings.encoder_threads(), executor=c.executor)
    c.outputs.record(out / video_name)
    return _Montage(cuts, craft, otio_path, plan_path)


def _phase_bars(prog: Progress):
    """The upscaler reports (phase, done, total, what); each phase gets its own progress bar:
    frames upscaled locally or remotely, bytes uploaded and downloaded."""
    bars: dict[str, object] = {}

    def on_phase(phase: str, done: float, total: float, what: str) -> None:
        bar = bars.get(phase)
        if bar is None:
            unit = "B" if phase in ("upload", "download") else "frame"
            bar = bars[phase] = prog.bar(f"upscale {phase}", total=int(total) or None, unit=unit)
        bar.set(int(done))
        if total and done >= total:
            bar.close()
            bars.pop(phase)

    return on_phase


def upscale_for(spec: RenderSpec, settings: Settings, notes: list[str], prog: Progress | None = None,
                executor: Executor | None = None) -> RenderSpec:
    """Upscale the source ranges the cut uses (once, cached) and point the spec at them; a Ray
    executor's GPU workers come first."""
    from .upscale import upscale_spec

    spec, report = upscale_spec(spec, settings.upscale_options(), settings.cache_dir,
                                progress=_phase_bars(prog) if prog is not None else None, executor=executor)
    notes += report.summary_lines()
    return spec


def render_timeline_file(path: Path, out: Path, settings: Settings, search: list[Path],
                         overrides: dict[str, object], progress: bool | Progress = True) -> Path:
    """Re-render a timeline file (any format OTIO has an adapter for) exactly as edited. The
    output may replace neither the timeline nor any media it uses."""
    path = Path(path).expanduser().absolute()
    out = Path(out).expanduser().absolute()
    require_file(path, "timeline file")
    if out.is_dir():
        raise MontageError(f"{out}: is a folder; give the output a file name (-o FOLDER/montage.mp4)")
    from .interchange import read_timeline_file

    try:
        timeline = read_timeline_file(path)
    except MontageError:
        if not settings.fps:
            raise
        # an EDL without its sidecar stores no rate: then --fps is the rate it was cut at
        timeline = read_timeline_file(path, rate=float(parse_frame_rate(settings.fps)))
    spec = read_timeline(timeline, base_dir=path.parent, search_dirs=search, overrides=overrides, source=path)
    inputs = Inputs([path, path.with_name(path.name + ".json")], "the timeline being rendered")
    inputs.add(spec_sources(spec), "media the timeline uses")
    with Outputs(inputs, force=settings.force) as outputs:
        outputs.lock(out.parent)
        outputs.check([out])
        prepare_cache(settings)
        notes: list[str] = []
        executor = executor_for(settings.ray_address, settings.worker_count(), notes)
        try:
            if settings.upscale:
                spec = upscale_for(spec, settings, notes, as_progress(progress), executor)
            render(spec, out, settings.cache_dir / "render", workers=settings.worker_count(), progress=progress,
                   encoder_threads=settings.encoder_threads(), executor=executor)
        finally:
            executor.close()
        for line in (placement_lines(executor) if executor.remote else []) + notes:
            log.warning("%s", line)
        outputs.record(out)
    return out


def spec_sources(spec: RenderSpec) -> list[Path]:
    """Every file a render reads: picture sources and audio."""
    return [*(span.path for p in spec.pieces for span in (p.a, p.b) if span), *(a.path for a in spec.audio)]


def export_file(path: Path, formats: list[str], out_dir: Path | None, rate: float | None, force: bool,
                edl_source_timecode: str = "own"):
    """`export`: write a timeline file for other editors beside it (or into out_dir), never
    over the timeline itself or a file the engine did not write."""
    from .interchange import FORMATS, export_paths, export_timeline, read_timeline_file

    path = Path(path).expanduser().absolute()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise MontageError(f"--to {','.join(formats)}: unknown format(s) {', '.join(unknown) or '(none)'}; "
                           f"choose from {', '.join(FORMATS)}")
    timeline = read_timeline_file(path, rate=rate)
    folder = Path(out_dir).expanduser().absolute() if out_dir else path.parent
    basename = path.stem
    if folder == path.parent and any(p == path for p in export_paths(timeline, folder, basename, formats)):
        basename += ".export"  # exporting montage.otio to otio beside itself
    with Outputs(Inputs([path, path.with_name(path.name + ".json")], "the timeline being exported"),
                 force=force) as outputs:
        outputs.lock(folder)
        outputs.check(export_paths(timeline, folder, basename, formats))
        results = export_timeline(timeline, folder, basename=basename, formats=formats,
                                  edl_source_timecode=edl_source_timecode)
        for result in results:
            outputs.record(*result.paths)
    return results
