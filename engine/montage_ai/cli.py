"""Command line: flags -> Settings -> one call into the pipeline.

Exit codes and one-line errors live here. Every failure prints exactly one line,
`montage-ai: error: ...`, naming the file or setting and the reason, and exits non-zero:
a MontageError (the user's input or environment) with its own code, an OS error (disk full,
permissions) with 2, anything else (a bug) with 1 and a request to report it. Tracebacks
only with --debug. SIGTERM (`docker stop`) and Ctrl-C stop the children, remove temporary
files and exit 143 / 130 with one line.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from montage_otio.names import one_line

from . import procs
from .choices import ASPECTS, EDL_SOURCE_TIMECODES, EXPORT_FORMATS, RESOLUTIONS, STYLES, TITLES
from .errors import MontageError
from .settings import Settings, load_settings

# flag name -> Settings field; only flags the user actually gave override env/.env/defaults
_RUN_FLAGS = ["clips", "music", "out", "style", "duration", "music_start", "aspect", "resolution", "fps",
              "fit", "seed", "keep_clip_audio", "crf", "preset", "prompt", "cgpu_enabled", "variants", "export", "edl_source_timecode", "titles",
              "upscale", "upscale_model", "upscale_scale", "cgpu_gpu_enabled", "strict_cloud", "preview", "force",
              "ray_address"]
# fields whose flag is not --field-name
_FLAG_NAMES = {"cgpu_enabled": "--cgpu", "cgpu_gpu_enabled": "--cgpu-gpu", "ray_address": "--ray"}


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS
    # the global -q/--json also work after the subcommand (`montage-ai run --json ...`)
    p.add_argument("-q", "--quiet", action="store_true", default=S, help="no progress bars, only the final summary")
    p.add_argument("--json", action="store_true", default=S, help="events as JSON lines on stdout")
    p.add_argument("--clips", type=Path, default=S, help="folder of video clips")
    p.add_argument("--music", type=Path, default=S, help="music file (mp3, wav, ogg, flac, m4a, or a video's audio)")
    p.add_argument("--out", type=Path, default=S, help="output folder (default: ./output)")
    p.add_argument("--style", default=S, help=f"style preset: {', '.join(STYLES)} (see `montage-ai styles`)")
    p.add_argument("--duration", type=float, default=S, help="target length in seconds (default: the music)")
    p.add_argument("--music-start", dest="music_start", type=float, default=S, help="start offset into the song, seconds")
    p.add_argument("--aspect", choices=ASPECTS, default=S)
    p.add_argument("--resolution", choices=RESOLUTIONS, default=S)
    p.add_argument("--fps", default=S, help="output frame rate, e.g. 25 or 30000/1001 (default: the sources')")
    p.add_argument("--fit", choices=["crop", "pad"], default=S, help="fill the frame by cropping, or letterbox")
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--keep-clip-audio", dest="keep_clip_audio", action="store_true", default=S,
                   help="mix the clips' own sound under the music")
    p.add_argument("--prompt", default=S, help="a plain-language brief for the Creative Director (LLM)")
    p.add_argument("--titles", choices=TITLES, default=S,
                   help="text on screen in the footage (titles, credits, lower thirds): leave it out (avoid), "
                        "open on a title (open) or use it like footage (allow); default: the plan's, which avoids it")
    p.add_argument("--cgpu", dest="cgpu_enabled", action="store_true", default=S,
                   help="ask Gemini through `cgpu serve` (CGPU_HOST:CGPU_PORT) for the edit plan")
    p.add_argument("--ray", dest="ray_address", default=S, metavar="ADDRESS",
                   help="analyse the clips on a Ray cluster (host:port, or auto; RAY_ADDRESS); needs montage-ai[ray]")
    p.add_argument("--variants", type=int, default=S, help="ask the LLM for N plans in one request; render each")
    p.add_argument("--upscale", action="store_true", default=S, help="upscale low-resolution sources with Real-ESRGAN")
    p.add_argument("--upscale-model", dest="upscale_model", choices=["realesr-animevideov3", "realesrgan-x4plus"], default=S)
    p.add_argument("--upscale-scale", dest="upscale_scale", type=int, choices=[2, 3, 4], default=S)
    p.add_argument("--cgpu-gpu", dest="cgpu_gpu_enabled", action="store_true", default=S,
                   help="upscale on a Colab GPU through `cgpu run` (CGPU_GPU_ENABLED)")
    p.add_argument("--strict-cloud", dest="strict_cloud", action="store_true", default=S,
                   help="a cloud GPU failure is an error instead of a fallback")
    p.add_argument("--preview", action="store_true", default=S,
                   help="fast low-resolution render of the same cut (montage-preview.mp4)")
    p.add_argument("--export", default=S, help=f"also write the timeline for other editors: {','.join(EXPORT_FORMATS)}")
    _add_edl_flag(p, default=S)
    p.add_argument("--crf", type=int, default=S, help="x264 quality of the final encode (default 20)")
    p.add_argument("--preset", default=S, help="x264 preset of the final encode (default veryfast)")
    p.add_argument("--force", action="store_true", default=S,
                   help="replace existing files in the output folder that montage-ai did not write (never an input)")


def _add_edl_flag(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--edl-source-timecode", dest="edl_source_timecode", choices=EDL_SOURCE_TIMECODES, default=default,
                   help="an EDL's source timecodes at each file's own rate (default: for editors that conform by "
                        "source timecode) or at the sequence rate (for single-rate EDL readers)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the flags given (only those override env/.env/defaults), or one line
    naming the bad flag or variable."""
    given = {k: getattr(args, k) for k in _RUN_FLAGS if hasattr(args, k)}
    return load_settings(_FLAG_NAMES, **given)


def _progress(args: argparse.Namespace):
    """The command's one Progress (the error event at the end shares its clock and stage)."""
    from .report.progress import Progress

    if getattr(args, "_progress_obj", None) is None:
        args._progress_obj = Progress.from_flags(quiet=args.quiet, json_lines=args.json)
    return args._progress_obj


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run

    prog = _progress(args)
    summary = run(settings_from(args), progress=prog)
    if args.json:
        prog.done(summary.model_dump(mode="json"))
    else:
        print(summary.text())
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from .pipeline import analysis_summary, analyze_clips, find_clips, prepare_cache, probe_clips
    from .analysis.music import analyze_music

    s = settings_from(args)
    prepare_cache(s)
    out: dict = {}
    clips = []
    if s.clips:
        media, skipped = probe_clips(find_clips(s.clips))
        clips, hits, failed = analyze_clips(media, s.cache_dir, s.worker_count(), not args.quiet)
        out["skipped"] = skipped + failed
    music = analyze_music(s.music.resolve(), s.music_start) if s.music else None
    out.update(analysis_summary(music, clips))
    print(json.dumps(out, indent=2, default=str))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .pipeline import render_timeline_file
    from .settings import parse_frame_rate

    s = settings_from(args)
    overrides = {"width": None, "height": None}
    if hasattr(args, "resolution") or hasattr(args, "aspect"):
        overrides["width"], overrides["height"] = s.output_size()
    if hasattr(args, "fps"):
        fps = parse_frame_rate(s.fps)
        overrides.update(fps_num=fps.numerator, fps_den=fps.denominator)
    if hasattr(args, "fit"):
        overrides["fit"] = s.fit
    out = args.output or args.timeline.with_suffix(".mp4")
    path = render_timeline_file(args.timeline, out, s, args.search or [], overrides, progress=_progress(args))
    print(f"rendered {args.timeline} -> {path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .pipeline import export_file
    from .settings import parse_frame_rate

    rate = None
    if args.fps:
        try:
            rate = float(parse_frame_rate(args.fps))
        except ValueError as exc:
            raise MontageError(f"--fps {args.fps!r}: {exc}") from None
    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    for result in export_file(args.timeline, formats, args.out_dir, rate, force=args.force,
                              edl_source_timecode=args.edl_source_timecode):
        print(f"{result.format}: {', '.join(str(p) for p in result.paths)}")
        for note in result.notes:
            print(f"  note: {note}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo.media import build_demo_media
    from .pipeline import run

    work = Path(args.work or "demo").resolve()
    demo = build_demo_media(work / "media", prefer_real=not args.synthetic)
    print(f"demo media ({demo.kind}): clips {demo.clips}, music {demo.music}")
    s = load_settings(clips=demo.clips, music=demo.music, out=work / "output", duration=demo.duration_s,
                      resolution="720p", style=getattr(args, "style", "dynamic"))
    summary = run(s, progress=_progress(args))
    print(summary.text())
    print(f"\nYour montage is at {summary.video}")
    return 0


def _cmd_styles(args: argparse.Namespace) -> int:
    from .direct.presets import available_styles, load_style

    for name in available_styles():
        print(f"{name:12s} {load_style(name).description}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report

    print(report(load_settings(), probe=args.probe))
    return 0


def _cmd_cgpu(args: argparse.Namespace) -> int:
    from .remote import cgpu_serve

    action = {"cgpu-start": cgpu_serve.start, "cgpu-stop": cgpu_serve.stop, "cgpu-status": cgpu_serve.status}[args.command]
    st = action(load_settings())
    print(st.message)
    return 0 if (st.running or args.command == "cgpu-stop") else 1


def _cmd_test(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[2]
    return subprocess.call([sys.executable, "-m", "pytest", str(root / "tests"), *args.pytest_args], cwd=root)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="montage-ai", description="Beat-cut montages from clips and a song.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, only the final summary")
    parser.add_argument("--json", action="store_true",
                        help="events as JSON lines on stdout (stage_start, progress, stage_end, warning, done, error)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="clips + music -> montage.mp4, montage.otio, plan.json")
    _add_run_flags(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("analyze", help="print the music and shot analysis as JSON")
    _add_run_flags(p)
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("render", help="render an OTIO timeline (possibly edited elsewhere) to MP4")
    p.add_argument("timeline", type=Path)
    p.add_argument("-o", "--output", type=Path, help="output file (default: beside the timeline, .mp4)")
    p.add_argument("--search", type=Path, action="append", help="folder to relink moved media by file name")
    _add_run_flags(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("export", help="write a timeline for other editors (Kdenlive, Premiere/Resolve, Final Cut, EDL)")
    p.add_argument("timeline", type=Path, help="a montage.otio (or any format the adapters read)")
    p.add_argument("--to", required=True, help=f"comma list of: {','.join(EXPORT_FORMATS)}")
    p.add_argument("--out-dir", type=Path, help="folder for the exports (default: beside the timeline)")
    p.add_argument("--fps", help="frame rate for reading an EDL (EDLs do not store it)")
    _add_edl_flag(p, default="own")
    p.add_argument("--force", action="store_true",
                   help="replace existing files that montage-ai did not write (never the timeline itself)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("demo", help="make demo media and render a montage from it")
    p.add_argument("--work", help="folder for demo media and output (default ./demo)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic media even when ../shared/media exists")
    p.add_argument("--style", default="dynamic")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("env-example", help="print the .env.example generated from the settings model")
    p.add_argument("path", nargs="?", help="write it to this file instead")
    p.set_defaults(func=lambda a: __import__("montage_ai.deploy.env_example", fromlist=["main"]).main(
        [a.path] if a.path else []))

    p = sub.add_parser("styles", help="list the style presets")
    p.set_defaults(func=_cmd_styles)
    p = sub.add_parser("doctor", help="check ffmpeg, packages, caches and backends")
    p.add_argument("--probe", action="store_true",
                   help="also send one tiny request to each configured LLM backend (costs one request)")
    p.set_defaults(func=_cmd_doctor)
    for name, text in (("cgpu-start", "start `cgpu serve` on this host in the background and wait for it"),
                       ("cgpu-stop", "stop the `cgpu serve` started by cgpu-start"),
                       ("cgpu-status", "is `cgpu serve` running and healthy?")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=_cmd_cgpu)
    p = sub.add_parser("test", help="run the test suite")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_test)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="montage-ai: %(levelname)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_one_line_records)
    procs.install_signal_handlers()
    try:
        return args.func(args)
    except procs.Interrupted as exc:
        return _fail(args, f"stopped by {signal_name(exc.signum)}: children stopped and temporary files "
                           "removed; finished pieces stay cached, so a re-run resumes", exc.exit_code, exc)
    except KeyboardInterrupt as exc:
        return _fail(args, "interrupted: temporary files removed; finished pieces stay cached, so a re-run "
                           "resumes", 130, exc)
    except MontageError as exc:
        return _fail(args, str(exc), exc.exit_code, exc)
    except OSError as exc:   # disk full, permissions, a vanished file: the user's environment
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args, f"{where}{exc.strerror or exc}", 2, exc)
    except RecursionError as exc:
        return _fail(args, "input nested too deeply to process", 2, exc)
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with --debug
        return _fail(args, f"unexpected {type(exc).__name__}: {_first_line(exc)} (a bug: please report it "
                           "with the output of --debug)", 1, exc)


def _one_line_records(record: logging.LogRecord) -> bool:
    """Log lines stay one line each, whatever file name a message holds."""
    record.msg, record.args = one_line(record.getMessage()), None
    return True


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def _fail(args: argparse.Namespace, message: str, code: int, exc: BaseException) -> int:
    """The one error line (and, with --json, the error event); the traceback only with --debug."""
    message = one_line(message)   # one line, whatever file name the message holds
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(exc)
    if getattr(args, "json", False):
        _progress(args).error(message)
    print(f"montage-ai: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
